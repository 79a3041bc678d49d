/**
 * Agent -> customer, DMs: the real discord.js REST against FakeDiscord, with
 * core's KitClient (undici 7) loaded and used in the same process.
 */
import {
  type AgentMessage,
  KitClient,
  PermanentDeliveryError,
  RetryableDeliveryError,
} from '@kitbridge/core';
import {
  agentMessage,
  DiscordErrors,
  type FakeDiscord,
  FakeKit,
  FileServer,
  TestContext,
  TestDelivery,
} from '@kitbridge/testkit';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { DiscordConnector } from '../src/connector.js';
import { DEFAULT_UPLOAD_BYTES } from '../src/limits.js';
import { nonceFor } from '../src/outbound.js';
import { ALICE, BOB, startFake, testConnector } from './setup.js';

const MESSAGES = 'POST /channels/:channel/messages' as const;
const MiB = 1024 * 1024;
let fake: FakeDiscord;
let files: FileServer;
let conn: DiscordConnector | undefined;
let tc: TestContext;

beforeAll(async () => {
  files = await new FileServer().start();
});
afterAll(async () => {
  await files.close();
});
beforeEach(async () => {
  fake = await startFake();
});
afterEach(async () => {
  tc?.abort.abort();
  await conn?.stop();
  conn = undefined;
  await fake.close();
});

async function started(c = testConnector(fake)): Promise<DiscordConnector> {
  tc = new TestContext({ captureLogs: true });
  conn = c;
  await c.start(tc.ctx);
  await tc.until(() => c.status().state === 'connected', 10_000, 'connected');
  return c;
}

const alice = { clientId: `dc:${ALICE}` };
const dmOf = (user: string) => fake.dmChannel(user).id;
const contents = (user: string) => fake.delivered(dmOf(user)).map((d) => d.content);

describe('text', () => {
  it('splits at 2000 on boundaries, never drops; every POST has a nonce from the event id and the step, enforce_nonce, and pings nobody', async () => {
    const c = await started();
    const para = `${'Sentence number one is here. '.repeat(40).trim()}\n\n`;
    const text = `${para.repeat(3)}@everyone see <@${BOB}> end.`;
    const msg = agentMessage({ text, notices: ['photo.png (too large to send here): https://kit/x'] });
    const receipt = await c.deliver(alice, msg, new TestDelivery().next());
    const got = fake.delivered(dmOf(ALICE));
    expect(got.length).toBeGreaterThan(2);
    for (const d of got) expect(d.content.length).toBeLessThanOrEqual(2000);
    expect(
      got
        .map((d) => d.content)
        .join('\n\n')
        .replace(/\s+/g, ' '),
    ).toBe(`${text}\n\nphoto.png (too large to send here): https://kit/x`.replace(/\s+/g, ' '));
    got.forEach((d, i) => {
      expect(d.call.body).toMatchObject({
        nonce: nonceFor(msg.eventId, i),
        enforce_nonce: true,
        allowed_mentions: { parse: [] },
      });
      expect(String(d.nonce).length).toBeLessThanOrEqual(25);
    });
    expect(receipt.platformMessageIds).toEqual(got.map((d) => d.message.id));
  });

  it('locations and contacts go as text', async () => {
    const c = await started();
    await c.deliver(
      alice,
      agentMessage({
        locations: [{ latitude: 52.5, longitude: 13.4, address: 'Alexanderplatz' }],
        contacts: [{ name: 'Acme desk', number: '+49 30 1234' }, {}],
      }),
      new TestDelivery().next(),
    );
    expect(contents(ALICE)).toEqual([
      'Location: Alexanderplatz https://www.google.com/maps?q=52.5,13.4',
      'Contact: Acme desk, +49 30 1234',
    ]);
  });

  it('the closing text, with a nonce key kept in the delivery progress across attempts', async () => {
    const c = await started();
    const delivery = new TestDelivery();
    fake.failNext(MESSAGES, DiscordErrors.internal);
    fake.failNext(MESSAGES, DiscordErrors.internal);
    await expect(
      c.closeConversation(alice, 'CLOSED_BY_AGENT', 'Thanks, closed.', delivery.next()),
    ).rejects.toThrow();
    const key = delivery.done?.['nonceKey'];
    expect(typeof key).toBe('string');
    await c.closeConversation(alice, 'CLOSED_BY_AGENT', 'Thanks, closed.', delivery.next());
    expect(contents(ALICE)).toEqual(['Thanks, closed.']);
    const nonces = fake.sent.map((s) => (s.body as { nonce?: string }).nonce);
    expect(new Set(nonces)).toEqual(new Set([nonceFor(key as string, 0)]));
    expect(await c.closeConversation(alice, 'CLOSED_BY_BOT', undefined, new TestDelivery().next())).toEqual(
      {},
    );
  });

  it('shows typing', async () => {
    const c = await started();
    await c.sendTyping(alice);
    expect(fake.callsTo('POST /channels/:channel/typing')[0]?.params['channel']).toBe(dmOf(ALICE));
  });
});

describe('where it goes', () => {
  it('opens the DM channel on demand when the client has no address (as after a restart) and records it', async () => {
    const c = await started();
    await c.deliver({ clientId: `dc:${BOB}` }, agentMessage({ text: 'hi Bob' }), new TestDelivery().next());
    expect(fake.callsTo('POST /users/@me/channels')[0]?.body).toEqual({ recipient_id: BOB });
    expect(contents(BOB)).toEqual(['hi Bob']);
    expect(tc.updates).toContainEqual({ clientId: `dc:${BOB}`, address: { channelId: dmOf(BOB) } });
    // Known now: no second open.
    await c.deliver({ clientId: `dc:${BOB}` }, agentMessage({ text: 'again' }), new TestDelivery().next());
    expect(fake.callsTo('POST /users/@me/channels')).toHaveLength(1);
  });

  it('a stored channel that is gone (10003) is opened again', async () => {
    const c = await started();
    await c.deliver(
      { clientId: `dc:${ALICE}`, address: { channelId: '999999999999999999' } },
      agentMessage({ text: 'found you' }),
      new TestDelivery().next(),
    );
    expect(contents(ALICE)).toEqual(['found you']);
    expect(tc.updates.at(-1)).toEqual({ clientId: `dc:${ALICE}`, address: { channelId: dmOf(ALICE) } });
  });

  it('a client id that is not Discord’s is permanent', async () => {
    const c = await started();
    await expect(c.deliver({ clientId: 'dc:nope' }, agentMessage({ text: 'x' }))).rejects.toBeInstanceOf(
      PermanentDeliveryError,
    );
  });
});

describe('files', () => {
  it('uploads from streams as multipart files[0] + payload_json, with KitClient (undici 7) loaded and used', async () => {
    const kit = new FakeKit({
      account: 'acme',
      apiToken: 'kit-token-0001',
      channelUuid: 'chan-1',
      salt: 's',
    });
    await kit.start();
    const client = new KitClient({
      baseUrl: kit.url,
      account: 'acme',
      apiToken: 'kit-token-0001',
      channelUuid: 'chan-1',
    });
    try {
      await client.login();
      // The trap is armed: undici 7 is the process-wide dispatcher now.
      expect((globalThis as Record<symbol, unknown>)[Symbol.for('undici.globalDispatcher.1')]).toBeDefined();
      const c = await started();
      const pdf = Buffer.from(`%PDF-1.4 ${'x'.repeat(300_000)}`);
      const png = Buffer.from('PNGDATA');
      const msg = agentMessage({
        text: 'your documents',
        attachments: [
          files.attachment('/r.pdf', 'document', 'report one.pdf', pdf, 'application/pdf'),
          files.attachment('/p.png', 'photo', 'photo.png', png, 'image/png'),
        ],
      });
      await c.deliver(alice, msg, new TestDelivery().next());
      const got = fake.delivered(dmOf(ALICE));
      expect(got.map((d) => d.content)).toEqual(['your documents', '', '']);
      expect(got[1]!.call.encoding).toBe('multipart');
      expect(got[1]!.files[0]).toMatchObject({
        field: 'files[0]',
        fileName: 'report one.pdf',
        contentType: 'application/pdf',
      });
      expect(got[1]!.files[0]!.bytes.equals(pdf)).toBe(true);
      expect(got[2]!.files[0]!.bytes.equals(png)).toBe(true);
      expect(got[1]!.call.body).toMatchObject({ nonce: nonceFor(msg.eventId, 1), enforce_nonce: true });
    } finally {
      await client.close();
      await kit.close();
    }
  });

  it('a file over the target’s limit goes as a line with its link, also when its size was not known; a 413 too', async () => {
    const c = await started(testConnector(fake, { maxUploadBytes: 1024 }));
    expect(c.mediaLimits.video.maxUploadBytes).toBe(1024);
    const big = Buffer.alloc(2048, 1);
    const known = files.attachment('/big1.bin', 'document', 'big.bin', big);
    const { size: _s, ...unknownSize } = files.attachment('/big2.bin', 'document', 'big2.bin', big);
    await c.deliver(
      alice,
      agentMessage({ attachments: [known, { ...unknownSize, open: unknownSize.open }] }),
      new TestDelivery().next(),
    );
    expect(contents(ALICE)).toEqual([
      `big.bin (too large to send here): ${known.url}`,
      `big2.bin (too large to send here): ${unknownSize.url}`,
    ]);
    fake.failNext(MESSAGES, { status: 413, code: 40005, message: 'Request entity too large' });
    const small = files.attachment('/s.bin', 'document', 's.bin', Buffer.alloc(10));
    await c.deliver(alice, agentMessage({ attachments: [small] }), new TestDelivery().next());
    expect(contents(ALICE).at(-1)).toBe(`s.bin (too large to send here): ${small.url}`);
  });

  it('mediaLimitsFor: 10 MiB in DMs by default; DISCORD_MAX_UPLOAD_MB for every target', async () => {
    const c = await started();
    const signal = new AbortController().signal;
    expect((await c.mediaLimitsFor(alice, signal)).photo.maxUploadBytes).toBe(DEFAULT_UPLOAD_BYTES);
    expect(DEFAULT_UPLOAD_BYTES).toBe(10 * MiB);
    const over = testConnector(fake, { maxUploadBytes: 25 * MiB });
    expect((await over.mediaLimitsFor(alice, signal)).document.maxUploadBytes).toBe(25 * MiB);
    await over.stop();
  });
});

describe('failures', () => {
  it('50007 is permanent with its reason; other customers are unaffected', async () => {
    const c = await started();
    fake.closeDms(ALICE);
    const err = await c
      .deliver(alice, agentMessage({ text: 'x' }), new TestDelivery().next())
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentDeliveryError);
    expect((err as Error).message).toMatch(
      /Cannot send messages to this user \(50007\): the customer does not accept DMs/,
    );
    await c.deliver({ clientId: `dc:${BOB}` }, agentMessage({ text: 'fine' }), new TestDelivery().next());
    expect(contents(BOB)).toEqual(['fine']);
  });

  it('a long 429 comes back as RetryableDeliveryError with Discord’s wait; a short one is waited inside the call', async () => {
    const c = await started();
    await c.deliver(alice, agentMessage({ text: 'warm up' }), new TestDelivery().next());
    fake.rateLimitNext(MESSAGES, 0.3);
    const t0 = Date.now();
    await c.deliver(alice, agentMessage({ text: 'after a short wait' }), new TestDelivery().next());
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    fake.rateLimitNext(MESSAGES, 120);
    const err = await c
      .deliver(alice, agentMessage({ text: 'later' }), new TestDelivery().next())
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RetryableDeliveryError);
    expect((err as RetryableDeliveryError).retryAfterMs).toBeGreaterThanOrEqual(119_000);
    expect(contents(ALICE)).toEqual(['warm up', 'after a short wait']);
    // Both 429s are counted for core's metrics, the one @discordjs/rest waited out too.
    expect(tc.rateLimits).toEqual([300, 120_000]);
  });

  it('a POST whose answer was lost is retried by @discordjs/rest with the same nonce: one message', async () => {
    const c = await started();
    fake.stallNext(MESSAGES, { process: true });
    const msg = agentMessage({ text: 'exactly once' });
    await c.deliver(alice, msg, new TestDelivery().next());
    expect(
      fake.sent.filter((s) => (s.body as { nonce?: string }).nonce === nonceFor(msg.eventId, 0)),
    ).toHaveLength(2);
    expect(contents(ALICE)).toEqual(['exactly once']);
  });

  it('an attempt that hit its deadline after the POST reached Discord, retried: the nonce dedupes across attempts', async () => {
    const c = await started(testConnector(fake, { rest: { timeoutMs: 10_000, retries: 0 } }));
    fake.stallNext(MESSAGES, { process: true });
    const msg = agentMessage({ text: 'once across attempts' });
    const delivery = new TestDelivery(300);
    await expect(c.deliver(alice, msg, delivery.next())).rejects.toThrow(/deadline|aborted/);
    const receipt = await c.deliver(alice, msg, delivery.next());
    expect(contents(ALICE)).toEqual(['once across attempts']);
    expect(receipt.platformMessageIds).toEqual([fake.delivered(dmOf(ALICE))[0]!.message.id]);
  });

  it("every REST call gets the attempt's signal: a stalled DM open is given up at the deadline", async () => {
    const c = await started();
    fake.stallNext('POST /users/@me/channels');
    const t0 = Date.now();
    await expect(
      c.deliver({ clientId: `dc:${BOB}` }, agentMessage({ text: 'x' }), new TestDelivery(300).next()),
    ).rejects.toThrow();
    expect(Date.now() - t0).toBeLessThan(1_400);
  });

  it('no secret in any log line', () => {
    expect(tc.logLines.join('')).not.toContain(fake.token);
  });
});

export type { AgentMessage };
