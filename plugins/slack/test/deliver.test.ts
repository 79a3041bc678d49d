/**
 * Agent -> customer on FakeSlack with the real WebClient: split and escaped
 * text, the agent's name as the sender with chat:write.customize (core's
 * prefix otherwise, never both), files of every kind streamed through the
 * three upload steps into the DM or the support thread, the DM opened from the
 * client id alone, and Slack's errors as core's delivery errors.
 */
import { PermanentDeliveryError, RetryableDeliveryError } from '@kitbridge/core';
import { FakeSlack, SLACK_UPLOAD, SlackErrors, type SlackUser } from '@kitbridge/testkit';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { SlackConnector } from '../src/connector.js';
import { TEXT_LIMIT } from '../src/limits.js';
import { decodeEntities } from '../src/mrkdwn.js';
import { agentIdentity } from '../src/outbound.js';
import { ChannelPacer } from '../src/pacing.js';
import { agentMessage, FileServer, TestContext, TestDelivery, testConnector } from './setup.js';

let fake: FakeSlack;
let files: FileServer;
let tc: TestContext;
let conn: SlackConnector;
let ann: SlackUser;
let target: { clientId: string; address: { channel: string } };

beforeAll(async () => {
  files = await new FileServer().start();
});
afterAll(() => files.close());

beforeEach(async () => {
  fake = await new FakeSlack().start();
  ann = fake.user({ name: 'ann' });
  target = { clientId: `sl:${fake.teamId}:${ann.id}`, address: { channel: fake.dmChannelId(ann.id) } };
  tc = new TestContext();
  conn = testConnector(fake);
  await conn.start(tc.ctx);
});

afterEach(async () => {
  tc.abort.abort();
  await conn.stop();
  await fake.close();
});

const work = () => new TestDelivery().next();
const dmTexts = () => fake.delivered(target.address.channel).map((m) => m.text);

describe('text', () => {
  it('a long text is split at word boundaries, each piece under the limit; notices follow the text', async () => {
    const long = Array.from({ length: 1_200 }, (_, i) => `word${i}`).join(' ');
    const r = await conn.deliver(
      target,
      agentMessage({ text: long, notices: ['big.zip: https://kit/x'] }),
      work(),
    );
    const texts = dmTexts();
    expect(texts.length).toBeGreaterThan(1);
    for (const t of texts) expect(t.length).toBeLessThanOrEqual(TEXT_LIMIT);
    expect(texts.join(' ').replace(/\s+/g, ' ')).toBe(`${long} big.zip: https://kit/x`);
    expect(r.platformMessageIds).toEqual(fake.delivered(target.address.channel).map((m) => m.ts));
  });

  it("escapes &, < and > so an agent's text is never a mention, a link or a broadcast", async () => {
    await conn.deliver(target, agentMessage({ text: 'Tom & Jerry <!channel> <@U0BOSS> 3 > 2' }), work());
    expect(dmTexts()).toEqual(['Tom &amp; Jerry &lt;!channel&gt; &lt;@U0BOSS&gt; 3 &gt; 2']);
    expect(decodeEntities(dmTexts()[0]!)).toBe('Tom & Jerry <!channel> <@U0BOSS> 3 > 2');
  });

  it("with chat:write.customize, core's 'Name: ' prefix becomes the sender's name; without it, the prefix stays", async () => {
    const sender = { displayName: 'Bob Agent', type: 'agent' };
    await conn.deliver(target, agentMessage({ text: 'Bob Agent: Hello!', sender }), work());
    // KITBRIDGE_SHOW_AGENT_NAME off: no prefix from core, so the app posts under its own name.
    await conn.deliver(target, agentMessage({ text: 'No prefix here', sender }), work());
    const [named, plain] = fake.delivered(target.address.channel);
    expect(named).toMatchObject({ text: 'Hello!', username: 'Bob Agent' });
    expect(plain).toMatchObject({ text: 'No prefix here' });
    expect(plain!.username).toBeUndefined();

    fake.scopes.delete('chat:write.customize');
    const other = testConnector(fake);
    await other.start(new TestContext().ctx);
    await other.deliver(target, agentMessage({ text: 'Bob Agent: Hello again', sender }), work());
    await other.stop();
    const last = fake.delivered(target.address.channel).at(-1)!;
    expect(last.text).toBe('Bob Agent: Hello again');
    expect(last.call.params['username']).toBeUndefined();
    expect(agentIdentity({ text: 'Bob Agent: x', sender }, false)).toEqual({ text: 'Bob Agent: x' });
  });

  it('locations and contacts go as text', async () => {
    await conn.deliver(
      target,
      agentMessage({
        locations: [{ latitude: 52.52, longitude: 13.405, address: 'Alexanderplatz 1' }],
        contacts: [{ name: 'Support line', number: '+49 30 1234' }],
      }),
      work(),
    );
    expect(dmTexts()).toEqual([
      '📍 Alexanderplatz 1\nhttps://www.google.com/maps?q=52.52,13.405',
      '👤 Support line: +49 30 1234',
    ]);
  });

  it('with an empty store, the DM is found from the client id alone and recorded as the address', async () => {
    await conn.deliver({ clientId: target.clientId }, agentMessage({ text: 'found you' }), work());
    expect(fake.callsOf('conversations.open')[0]?.params['users']).toBe(ann.id);
    expect(dmTexts()).toEqual(['found you']);
    expect(tc.updates).toEqual([{ clientId: target.clientId, address: { channel: target.address.channel } }]);
    // Without im:write: chat.postMessage to the user id, which Slack posts into the app's DM.
    fake.scopes.delete('im:write');
    await conn.deliver({ clientId: target.clientId }, agentMessage({ text: 'still found' }), work());
    expect(fake.sent.at(-1)?.params['channel']).toBe(ann.id);
    expect(dmTexts()).toEqual(['found you', 'still found']);
  });
});

describe('files', () => {
  const kinds = [
    { kind: 'photo', name: 'photo.jpg', type: 'image/jpeg' },
    { kind: 'video', name: 'clip.mp4', type: 'video/mp4' },
    { kind: 'audio', name: 'voice.ogg', type: 'audio/ogg' },
    { kind: 'document', name: 'invoice 42.pdf', type: 'application/pdf' },
  ] as const;

  it('every kind: getUploadURLExternal with the exact length, one raw streamed POST, completeUploadExternal into the DM', async () => {
    const attachments = kinds.map((k, i) => {
      const bytes = Buffer.alloc(200_000 + i, i + 1);
      return { bytes, a: files.attachment(`/${k.kind}`, k.kind, k.name, bytes, k.type) };
    });
    const r = await conn.deliver(
      target,
      agentMessage({ text: 'your files', attachments: attachments.map((x) => x.a) }),
      work(),
    );
    expect(
      fake.callsOf('files.getUploadURLExternal').map((c) => [c.params['filename'], c.params['length']]),
    ).toEqual(kinds.map((k, i) => [k.name, String(200_000 + i)]));
    expect(
      fake.uploads.map((u) => [u.encoding, u.status, u.contentType ?? u.headers['content-type']]),
    ).toEqual(kinds.map((k) => ['raw', 200, k.type]));
    const shared = fake.delivered(target.address.channel).filter((m) => m.files?.length);
    expect(shared.map((m) => m.files![0]!.name)).toEqual(kinds.map((k) => k.name));
    for (const [i, m] of shared.entries())
      expect(fake.fileBytes(m.files![0]!.id)!.equals(attachments[i]!.bytes)).toBe(true);
    expect(r.platformMessageIds).toHaveLength(5);
    expect(fake.callsOf('files.upload')).toHaveLength(0);
  });

  it('a file of unknown size is spooled to learn its length, then streamed', async () => {
    const bytes = Buffer.from('no content-length known up front '.repeat(1_000));
    const a = files.attachment('/unknown', 'document', 'notes.txt', bytes, 'text/plain');
    const sizeless = {
      ...a,
      size: undefined,
      open: async () => {
        const f = await a.open();
        return { ...f, size: undefined };
      },
    };
    await conn.deliver(target, agentMessage({ attachments: [sizeless] }), work());
    expect(fake.uploads[0]).toMatchObject({ declaredLength: bytes.length, status: 200 });
    expect(fake.uploads[0]!.bytes.equals(bytes)).toBe(true);
  });

  it('a failed upload resumes at the file: what went out before is not sent again', async () => {
    const one = files.attachment('/one', 'document', 'one.pdf', Buffer.from('one'), 'application/pdf');
    const two = files.attachment('/two', 'document', 'two.pdf', Buffer.from('two!'), 'application/pdf');
    const msg = agentMessage({ text: 'two files', attachments: [one, two] });
    const delivery = new TestDelivery();
    fake.failNext(SLACK_UPLOAD, { status: 500, afterCalls: 1 });
    await expect(conn.deliver(target, msg, delivery.next())).rejects.toThrow(/HTTP 500/);
    expect(delivery.saves.at(-1)).toMatchObject({ sent: 2 });
    await conn.deliver(target, msg, delivery.next());
    expect(dmTexts().filter(Boolean)).toEqual(['two files']);
    expect(
      fake
        .delivered(target.address.channel)
        .flatMap((m) => m.files ?? [])
        .map((f) => f.name),
    ).toEqual(['one.pdf', 'two.pdf']);
  });
});

describe('Slack errors', () => {
  it('429 with Retry-After is RetryableDeliveryError with the wait (chat.postMessage and the upload)', async () => {
    fake.rateLimitNext('chat.postMessage', 30);
    const e = await conn.deliver(target, agentMessage({ text: 'x' }), work()).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(RetryableDeliveryError);
    expect((e as RetryableDeliveryError).retryAfterMs).toBe(30_000);
    const a = files.attachment('/rl', 'document', 'rl.pdf', Buffer.from('rl'), 'application/pdf');
    fake.rateLimitNext(SLACK_UPLOAD, 7);
    const u = await conn.deliver(target, agentMessage({ attachments: [a] }), work()).catch((x: unknown) => x);
    expect(u).toBeInstanceOf(RetryableDeliveryError);
    expect((u as RetryableDeliveryError).retryAfterMs).toBe(7_000);
    // Counted for core's metrics: the Web API's from the WebClient's event, the upload's by the connector.
    expect(tc.rateLimits).toEqual([30_000, 7_000]);
  });

  it('channel_not_found, is_archived, not_in_channel, user_not_found are permanent; 5xx and token trouble are retried', async () => {
    for (const spec of [
      SlackErrors.channelNotFound,
      SlackErrors.isArchived,
      SlackErrors.notInChannel,
      { error: 'user_not_found' },
    ]) {
      fake.failNext('chat.postMessage', spec);
      const e = await conn.deliver(target, agentMessage({ text: 'x' }), work()).catch((x: unknown) => x);
      expect(e, spec.error).toBeInstanceOf(PermanentDeliveryError);
    }
    for (const spec of [SlackErrors.internal, SlackErrors.tokenRevoked, { error: 'fatal_error' }]) {
      fake.failNext('chat.postMessage', spec);
      const e = await conn.deliver(target, agentMessage({ text: 'x' }), work()).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(Error);
      expect(e).not.toBeInstanceOf(PermanentDeliveryError);
      expect(e).not.toBeInstanceOf(RetryableDeliveryError);
      expect((e as Error).message).not.toContain(fake.botToken);
    }
    fake.archiveChannel(target.address.channel);
    await expect(conn.deliver(target, agentMessage({ text: 'x' }), work())).rejects.toBeInstanceOf(
      PermanentDeliveryError,
    );
  });

  it('every call is given the attempt signal: a stalled upload or share is aborted at the deadline', async () => {
    const a = files.attachment('/slow', 'document', 'slow.pdf', Buffer.from('slow'), 'application/pdf');
    for (const method of [SLACK_UPLOAD, 'files.completeUploadExternal', 'files.getUploadURLExternal']) {
      fake.stallNext(method);
      const started = Date.now();
      await expect(
        conn.deliver(target, agentMessage({ attachments: [a] }), new TestDelivery(200).next()),
      ).rejects.toThrow();
      expect(Date.now() - started, method).toBeLessThan(3_000);
    }
  });
});

describe('pacing', () => {
  it('about one message per second per channel after a short burst; other channels are not held up', async () => {
    const pacer = new ChannelPacer({ perSecond: 10, burst: 2 });
    const signal = new AbortController().signal;
    const t0 = Date.now();
    for (let i = 0; i < 4; i++) await pacer.take('D1', signal);
    const elapsed = Date.now() - t0;
    expect(elapsed).toBeGreaterThanOrEqual(150);
    const t1 = Date.now();
    await pacer.take('D2', signal);
    expect(Date.now() - t1).toBeLessThan(50);
    const abort = new AbortController();
    const waiting = pacer.take('D1', abort.signal);
    abort.abort(new Error('deadline'));
    await expect(waiting).rejects.toThrow('deadline');
  });
});
