/**
 * Customer -> core over the gateway, DMs: the real discord.js against FakeDiscord.
 * Mapping, files through resolveAttachment (expired links refreshed), edits,
 * ignored authors, resume versus a fresh IDENTIFY with history fetch, restarts.
 */
import type { Readable } from 'node:stream';
import { AttachmentGoneError, type AttachmentRef, type InboundMessage } from '@kitbridge/core';
import { type FakeDiscord, TestContext } from '@kitbridge/testkit';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { cursorKey, INDEX_KEY } from '../src/checkpoints.js';
import type { DiscordConnector } from '../src/connector.js';
import { ALICE, BOB, startFake, testConnector } from './setup.js';

let fake: FakeDiscord;
const running: { c: DiscordConnector; tc: TestContext }[] = [];

beforeEach(async () => {
  fake = await startFake();
});
afterEach(async () => {
  for (const { c, tc } of running.splice(0)) {
    tc.abort.abort();
    await c.stop();
  }
  await fake.close();
});

async function started(tc = new TestContext({ captureLogs: true }), c = testConnector(fake)) {
  running.push({ c, tc });
  await c.start(tc.ctx);
  await tc.until(() => c.status().state === 'connected', 10_000, 'connected');
  return { c, tc };
}

const texts = (tc: TestContext, clientId?: string) =>
  tc.received.filter((m) => !clientId || m.client.clientId === clientId).map((m) => m.text);

const media = (m: InboundMessage) =>
  (m.items ?? []).filter((i): i is AttachmentRef & { type: 'media' } => i.type === 'media');

async function bytesOf(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c as Uint8Array));
  return Buffer.concat(chunks);
}

describe('DMs to core', () => {
  it('a DM reaches core as dc:<user> with its channel, the profile from the message, and no platform call before receive', async () => {
    const { tc } = await started();
    const before = fake.calls.length;
    const m = fake.dm(ALICE, 'hello, my order is late');
    await tc.waitForMessages(1);
    const got = tc.received[0]!;
    expect(got).toMatchObject({
      client: {
        clientId: `dc:${ALICE}`,
        address: { channelId: m.channel_id },
        profile: {
          displayName: 'Alice Archer',
          avatar: { ref: expect.stringMatching(/^av:/), kind: 'photo' },
        },
      },
      messageId: m.id,
      text: 'hello, my order is late',
    });
    expect(got.client.profile).not.toHaveProperty('language');
    expect(fake.calls.slice(before)).toEqual([]);
    // The checkpoint moves after receive resolved; the channel is in the index for the next start.
    await tc.until(() => tc.checkpoints.get(cursorKey(m.channel_id)) === m.id);
    expect(JSON.parse(tc.checkpoints.get(INDEX_KEY)!).channels[m.channel_id]).toEqual({ k: 'dm', u: ALICE });
  });

  it('resolveProfile: global name, else username, and the avatar; looked up once per customer', async () => {
    const { c } = await started();
    const signal = new AbortController().signal;
    const alice = await c.resolveProfile({ clientId: `dc:${ALICE}` }, signal);
    expect(alice).toEqual({
      displayName: 'Alice Archer',
      avatar: {
        ref: expect.stringMatching(new RegExp(`^av:${ALICE}:`)),
        kind: 'photo',
        fileName: 'avatar.png',
        mimeType: 'image/png',
      },
    });
    expect(await c.resolveProfile({ clientId: `dcs:333333333333333333:${ALICE}` }, signal)).toEqual(alice);
    expect(await c.resolveProfile({ clientId: `dc:${BOB}` }, signal)).toEqual({ displayName: 'bob' });
    expect(fake.callsTo('GET /users/:user')).toHaveLength(2);
    expect(c.profileTtlMs).toBe(24 * 3_600_000);
  });

  it('mentions and custom emoji are made readable', async () => {
    const { tc } = await started();
    fake.dm(ALICE, {
      content: `ask <@${BOB}> about <:shipit:123456789012345678> and <a:party:123456789012345679>`,
      mentions: [BOB],
    });
    await tc.waitForMessages(1);
    expect(tc.received[0]!.text).toBe('ask @bob about :shipit: and :party:');
  });

  it('every attachment kind, stickers and replies; files stream through resolveAttachment', async () => {
    const { c, tc } = await started();
    const first = fake.dm(ALICE, 'my order');
    const files = [
      { filename: 'photo.jpg', bytes: Buffer.from('JPEGDATA'), contentType: 'image/jpeg' },
      { filename: 'clip.mp4', bytes: Buffer.from('MP4DATA'), contentType: 'video/mp4' },
      { filename: 'song.mp3', bytes: Buffer.from('MP3DATA'), contentType: 'audio/mpeg' },
      {
        filename: 'voice-message.ogg',
        bytes: Buffer.from('OGGDATA'),
        contentType: 'audio/ogg',
        flags: 1 << 13,
      },
      { filename: 'invoice.pdf', bytes: Buffer.from('%PDF-1.4'), contentType: 'application/pdf' },
    ];
    fake.dm(ALICE, {
      content: 'here',
      attachments: files,
      sticker_items: [{ name: 'wave' }],
      replyTo: first.id,
    });
    await tc.waitForMessages(2);
    const m = tc.received[1]!;
    expect(m.text).toBe('> my order\nhere\n[sticker: wave]');
    const items = media(m);
    expect(items.map((i) => [i.kind, i.fileName, i.mimeType])).toEqual([
      ['photo', 'photo.jpg', 'image/jpeg'],
      ['video', 'clip.mp4', 'video/mp4'],
      ['audio', 'song.mp3', 'audio/mpeg'],
      ['audio', 'voice-message.ogg', 'audio/ogg'],
      ['document', 'invoice.pdf', 'application/pdf'],
    ]);
    for (const [i, item] of items.entries()) {
      // The identity of the file, never its signed, expiring link.
      expect(item.ref).not.toMatch(/[?&](ex|is|hm)=/);
      const f = await c.resolveAttachment(item);
      expect((await bytesOf(f.stream)).equals(files[i]!.bytes)).toBe(true);
      expect(f).toMatchObject({ fileName: files[i]!.filename, contentType: files[i]!.contentType });
    }
    const avatar = await c.resolveAttachment(m.client.profile!.avatar!);
    expect((await bytesOf(avatar.stream)).toString()).toBe('alice-avatar');
  });

  it('an expired CDN link is signed again (refresh-urls) when Kit fetches, days later; a deleted message is gone', async () => {
    const { c, tc } = await started();
    const m = fake.dm(ALICE, {
      attachments: [{ filename: 'scan.png', bytes: Buffer.from('PNG'), contentType: 'image/png' }],
    });
    await tc.waitForMessages(1);
    const [item] = media(tc.received[0]!);
    fake.expireCdnLinks();
    expect((await fetch(m.attachments[0]!.url)).status).toBe(404);
    expect((await bytesOf((await c.resolveAttachment(item!)).stream)).toString()).toBe('PNG');
    expect(fake.callsTo('POST /attachments/refresh-urls')).toHaveLength(1);
    // Again within the fresh link's life: no new refresh.
    await bytesOf((await c.resolveAttachment(item!)).stream);
    expect(fake.callsTo('POST /attachments/refresh-urls')).toHaveLength(1);
    // The cached link expires too: it is noticed and refreshed.
    fake.expireCdnLinks();
    expect((await bytesOf((await c.resolveAttachment(item!)).stream)).toString()).toBe('PNG');
    expect(fake.callsTo('POST /attachments/refresh-urls')).toHaveLength(2);

    fake.deleteMessage(m.channel_id, m.id);
    await expect(c.resolveAttachment(item!)).rejects.toBeInstanceOf(AttachmentGoneError);
    await expect(c.resolveAttachment({ ref: 'tg-file', kind: 'photo' })).rejects.toBeInstanceOf(
      AttachmentGoneError,
    );
  });

  it('an edit in a DM channel discord.js has not cached still reaches core, as an edit with its own id', async () => {
    const m = fake.dm(ALICE, 'written before the bot connected');
    const { tc } = await started();
    fake.editMessage(m.channel_id, m.id, 'fixed typo');
    await tc.waitForMessages(1);
    expect(tc.received[0]).toMatchObject({
      text: 'fixed typo',
      edited: true,
      messageId: expect.stringMatching(new RegExp(`^${m.id}:e\\d+$`)),
    });
  });

  it('ignores the bot itself and other bots', async () => {
    const { c, tc } = await started();
    fake.user('666666666666666666', { username: 'otherbot', bot: true });
    fake.dm('666666666666666666', 'beep');
    await c.deliver(
      { clientId: `dc:${ALICE}` },
      { eventId: 'e1', text: 'from the agent', attachments: [], locations: [], contacts: [], notices: [] },
    );
    fake.dm(ALICE, 'human');
    await tc.waitForMessages(1);
    await new Promise((r) => setTimeout(r, 100));
    expect(texts(tc)).toEqual(['human']);
  });

  it('a refused receive is tried again, in order per channel, each message once', async () => {
    const { tc } = await started();
    tc.failNext(3);
    for (const t of ['one', 'two', 'three']) fake.dm(ALICE, t);
    fake.dm(BOB, 'bob');
    await tc.waitForMessages(4, 10_000);
    expect(texts(tc, `dc:${ALICE}`)).toEqual(['one', 'two', 'three']);
    expect(texts(tc, `dc:${BOB}`)).toEqual(['bob']);
  });
});

describe('nothing missed while disconnected', () => {
  it('a resumable disconnect: RESUME replays what was missed, reconnecting then connected, no history fetch', async () => {
    const { c, tc } = await started();
    fake.dm(ALICE, 'before');
    await tc.waitForMessages(1);
    const since = fake.gatewayLog.length;
    fake.disconnect({ resumable: true });
    fake.dm(ALICE, 'while away');
    await tc.waitForMessages(2);
    await fake.waitForGateway('resumed', { since });
    await tc.until(() => c.status().state === 'connected');
    expect(texts(tc)).toEqual(['before', 'while away']);
    expect(tc.statuses.map((s) => s.state).slice(-2)).toEqual(['reconnecting', 'connected']);
    expect(tc.statuses.find((s) => s.state === 'reconnecting')).toMatchObject({ code: 'network' });
    expect(fake.callsTo('GET /channels/:channel/messages')).toHaveLength(0);
    expect(fake.identifies).toHaveLength(1);
  });

  it('a fresh IDENTIFY fetches the history after each checkpoint; the overlap is dropped as duplicates', async () => {
    const { c, tc } = await started();
    const a1 = fake.dm(ALICE, 'a1');
    fake.dm(BOB, 'b1');
    await tc.waitForMessages(2);
    await tc.until(() => tc.checkpoints.get(cursorKey(a1.channel_id)) === a1.id);
    const since = fake.gatewayLog.length;
    fake.disconnect({ resumable: false });
    // Written between the close and the new session: only in the channels' history.
    for (const t of ['a2', 'a3']) fake.dm(ALICE, t);
    fake.dm(BOB, 'b2');
    await fake.waitForGateway('ready', { since });
    fake.dm(ALICE, 'a4');
    await tc.waitForMessages(6, 10_000);
    await tc.until(() => c.status().state === 'connected');
    expect(texts(tc, `dc:${ALICE}`)).toEqual(['a1', 'a2', 'a3', 'a4']);
    expect(texts(tc, `dc:${BOB}`)).toEqual(['b1', 'b2']);
    const fetches = fake.callsTo('GET /channels/:channel/messages');
    expect(fetches.find((f) => f.params['channel'] === a1.channel_id)?.query).toMatchObject({
      after: a1.id,
      limit: '100',
    });
    expect(fake.identifies).toHaveLength(2);
  });

  it('a restart fetches what came while the process was down, also in a channel with more than a page', async () => {
    const first = await started();
    fake.dm(ALICE, 'seen');
    fake.dm(BOB, 'seen too');
    await first.tc.waitForMessages(2);
    await first.tc.until(() => first.tc.checkpoints.size >= 3);
    await first.c.stop();
    running.splice(0);
    for (let i = 1; i <= 130; i++) fake.dm(ALICE, `down ${i}`);
    fake.dm(BOB, 'down bob');
    // The next process, on the same durable checkpoints.
    const tc = new TestContext({ captureLogs: true });
    for (const [k, v] of first.tc.checkpoints) tc.checkpoints.set(k, v);
    await started(tc);
    await tc.waitForMessages(131, 15_000);
    expect(texts(tc, `dc:${ALICE}`)).toEqual(Array.from({ length: 130 }, (_, i) => `down ${i + 1}`));
    expect(texts(tc, `dc:${BOB}`)).toEqual(['down bob']);
    expect(tc.attempts.filter((m) => m.text === 'seen')).toHaveLength(0);
  });

  it('a message the store never took is not checkpointed: after a stop the next process gets it', async () => {
    const first = await started();
    const before = fake.dm(ALICE, 'stored');
    await first.tc.until(() => first.tc.checkpoints.get(cursorKey(before.channel_id)) === before.id);
    // The store goes down: the message is tried again and again, never checkpointed.
    first.tc.failNext(1_000);
    const m = fake.dm(ALICE, 'not stored yet');
    await first.tc.until(() => first.tc.attempts.length >= 3);
    expect(first.tc.checkpoints.get(cursorKey(m.channel_id))).toBe(before.id);
    first.tc.abort.abort();
    await first.c.stop();
    running.splice(0);
    const tc = new TestContext();
    for (const [k, v] of first.tc.checkpoints) tc.checkpoints.set(k, v);
    await started(tc);
    await tc.waitForMessages(1);
    expect(tc.received.map((r) => [r.messageId, r.text])).toEqual([[m.id, 'not stored yet']]);
  });
});
