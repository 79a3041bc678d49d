import { AttachmentGoneError } from '@kitbridge/core';
import { FakeTelegram, tgUser } from '@kitbridge/testkit';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { TelegramConnector } from '../src/connector.js';
import { TestContext } from './helpers.js';
import { testConnector } from './setup.js';

const alice = tgUser(4242, 'Alice', { last_name: 'Liddell', language_code: 'de', username: 'alice' });

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c as Buffer));
  return Buffer.concat(chunks);
}

describe('TelegramConnector, long polling', () => {
  let tg: FakeTelegram;
  let conn: TelegramConnector | undefined;

  beforeEach(async () => {
    tg = await new FakeTelegram().start();
  });
  afterEach(async () => {
    await conn?.stop();
    conn = undefined;
    await tg.close();
  });

  async function started(tc = new TestContext()) {
    conn = testConnector(tg);
    await conn.start(tc.ctx);
    return tc;
  }

  it('identifies the bot, removes a webhook, polls, and reports connected', async () => {
    tg.webhook = { url: 'https://old.example/hook' };
    const tc = await started();
    expect(tc.state).toBe('connected');
    expect(conn!.status()).toEqual({ state: 'connected' });
    expect(tg.callsOf('getMe')).toHaveLength(1);
    expect(tg.callsOf('deleteWebhook')).toHaveLength(1);
    expect(tg.webhook).toBeUndefined();
    const poll = tg.callsOf('getUpdates')[0]!;
    expect(poll.params['allowed_updates']).toEqual(['message', 'edited_message']);
  });

  it('hands a text message to core with the profile; the avatar comes later, looked up once per user', async () => {
    const avatar = tg.setProfilePhoto(alice.id, Buffer.from('avatar-bytes'));
    const tc = await started();
    const u = tg.textFrom(alice, 'Hello there');
    await tc.waitForMessages(1);
    expect(tc.received[0]).toEqual({
      client: {
        clientId: 'tg:4242',
        profile: { displayName: 'Alice Liddell', language: 'de' },
      },
      messageId: String(u.message!.message_id),
      text: 'Hello there',
    });
    // No platform call before the update was confirmed: the avatar is core's late lookup.
    expect(tg.callsOf('getUserProfilePhotos')).toHaveLength(0);
    const signal = new AbortController().signal;
    expect(await conn!.resolveProfile({ clientId: 'tg:4242' }, signal)).toEqual({
      avatar: {
        ref: avatar.file_id,
        kind: 'photo',
        fileName: 'avatar.jpg',
        mimeType: 'image/jpeg',
        size: 12,
      },
    });
    await conn!.resolveProfile({ clientId: 'tg:4242' }, signal);
    expect(tg.callsOf('getUserProfilePhotos')).toHaveLength(1);
    // Groups have no one face.
    expect(await conn!.resolveProfile({ clientId: 'tg:-100123' }, signal)).toBeUndefined();
  });

  it('confirms only handled updates: nothing lost or repeated across stop and start', async () => {
    const tc = new TestContext();
    await started(tc);
    for (const t of ['one', 'two', 'three']) tg.textFrom(alice, t);
    await tc.waitForMessages(3);
    await conn!.stop();
    // stop() confirmed the three: the fake dropped them.
    expect(tg.pendingUpdates).toHaveLength(0);

    tg.textFrom(alice, 'four');
    tg.textFrom(alice, 'five');
    conn = testConnector(tg);
    await conn.start(tc.ctx);
    await tc.waitForMessages(5);
    expect(tc.received.map((m) => m.text)).toEqual(['one', 'two', 'three', 'four', 'five']);
    expect(tc.attempts).toHaveLength(5);
  });

  it('does not confirm an update whose receive failed: it comes again, in order', async () => {
    const tc = new TestContext();
    tc.failNext(2);
    await started(tc);
    const first = tg.textFrom(alice, 'first');
    tg.textFrom(alice, 'second');
    await tc.waitForMessages(2);
    expect(tc.received.map((m) => m.text)).toEqual(['first', 'second']);
    const tries = tc.attempts.filter((m) => m.messageId === String(first.message!.message_id));
    expect(tries).toHaveLength(3);
    // The offset never passed the failed update until it was stored.
    const firstId = first.update_id;
    const offsets = tg.pollOffsets;
    expect(offsets.filter((o) => o === firstId || o === 0).length).toBeGreaterThanOrEqual(3);
  });

  it('does not confirm an update whose receive still fails when the connector stops', async () => {
    const tc = new TestContext();
    tc.failNext(1000);
    await started(tc);
    tg.textFrom(alice, 'stuck');
    await tc.until(() => tc.attempts.length >= 1);
    await conn!.stop();
    expect(tg.pendingUpdates).toHaveLength(1);
  });

  it('maps every kind of message and serves its file through resolveAttachment', async () => {
    const tc = await started();
    const photo = Buffer.from('a photo, full size');
    tg.photoFrom(alice, photo, { caption: 'my photo' });
    const pdf = Buffer.from('%PDF-1.4 report');
    tg.documentFrom(alice, pdf, { fileName: 'my report.pdf', mimeType: 'application/pdf' });
    tg.messageFrom(alice, { location: { latitude: 1.5, longitude: 2.5 } });
    tg.messageFrom(alice, { contact: { phone_number: '+49 1', first_name: 'Alice', user_id: alice.id } });
    const orig = tg.textFrom(alice, 'typo');
    tg.editedTextFrom(alice, orig.message!.message_id, 'fixed', 1_700_000_000);
    await tc.waitForMessages(6);
    const [p, d, l, c, , e] = tc.received;

    expect(p!.text).toBe('my photo');
    const photoRef = p!.items![0]!;
    expect(photoRef).toMatchObject({ type: 'media', kind: 'photo', size: photo.length });
    if (photoRef.type !== 'media') throw new Error('not media');
    const file = await conn!.resolveAttachment(photoRef);
    expect(await readAll(file.stream)).toEqual(photo);
    expect(file).toMatchObject({ contentType: 'image/jpeg', size: photo.length });

    const docRef = d!.items![0]!;
    expect(docRef).toMatchObject({
      kind: 'document',
      fileName: 'my report.pdf',
      mimeType: 'application/pdf',
    });
    if (docRef.type !== 'media') throw new Error('not media');
    expect(await readAll((await conn!.resolveAttachment(docRef)).stream)).toEqual(pdf);

    expect(l!.items).toEqual([{ type: 'location', latitude: 1.5, longitude: 2.5 }]);
    expect(c!.items).toEqual([{ type: 'contact', name: 'Alice', number: '+49 1' }]);
    expect(c!.client.profile?.phone).toBe('+49 1');
    expect(e).toMatchObject({
      edited: true,
      text: 'fixed',
      messageId: `${orig.message!.message_id}:e1700000000`,
    });
  });

  it('forwards nothing for /start, and stores the deep-link utm before the update is confirmed', async () => {
    const tc = await started();
    tg.textFrom(alice, '/start');
    const start = tg.textFrom(alice, '/start google-spring-cpc');
    tg.textFrom(alice, 'hi');
    await tc.waitForMessages(1);
    expect(tc.received.map((m) => m.text)).toEqual(['hi']);
    // The bare /start records nothing; the deep link records its utm for core to send on.
    expect(tc.updates).toEqual([
      { clientId: 'tg:4242', profile: { utm: { source: 'google', campaign: 'spring', medium: 'cpc' } } },
    ]);
    expect(tc.received[0]!.client.profile?.utm).toBeUndefined();
    await tg.waitForCall((c) => c.method === 'getUpdates' && Number(c.params['offset']) > start.update_id);
  });

  it('ignores group chats by default and serves them when allowed', async () => {
    const tc = new TestContext();
    conn = testConnector(tg);
    await conn.start(tc.ctx);
    const group = { id: -100777, type: 'supergroup' as const, title: 'Team' };
    tg.groupMessageFrom(alice, group, { text: 'in the group' });
    tg.textFrom(alice, 'private');
    await tc.waitForMessages(1);
    expect(tc.received.map((m) => m.text)).toEqual(['private']);
    await conn.stop();

    const tc2 = new TestContext();
    conn = testConnector(tg, { allowGroups: true });
    await conn.start(tc2.ctx);
    tg.groupMessageFrom(alice, group, { text: 'hello team' });
    await tc2.waitForMessages(1);
    expect(tc2.received[0]).toMatchObject({
      client: { clientId: 'tg:-100777', profile: { displayName: 'Team' } },
      text: 'Alice Liddell: hello team',
    });
  });

  it('resolveAttachment: a forgotten file is AttachmentGoneError, a too-big one says so; no token in errors', async () => {
    await started();
    const gone = tg.addFile(Buffer.from('x'));
    tg.removeFile(gone.file_id);
    const err = await conn!.resolveAttachment({ ref: gone.file_id, kind: 'document' }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(AttachmentGoneError);
    expect(String(err)).not.toContain(tg.token);

    const big = tg.addFile(Buffer.from('y'), { reportedSize: 30 * 1024 * 1024 });
    const err2 = await conn!.resolveAttachment({ ref: big.file_id, kind: 'video' }).catch((e: Error) => e);
    expect(err2).toBeInstanceOf(AttachmentGoneError);
    expect(String(err2)).toMatch(/file is too big/);
  });

  it('resolveAttachment: network failure messages never carry the token', async () => {
    await started();
    const f = tg.addFile(Buffer.from('z'));
    await tg.close();
    const err = await conn!.resolveAttachment({ ref: f.file_id, kind: 'document' }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect(`${(err as Error).message} ${(err as Error).stack}`).not.toContain(tg.token);
    tg = await new FakeTelegram().start(); // for afterEach
  });
});
