import { PermanentDeliveryError, RetryableDeliveryError } from '@kitbridge/core';
import { FakeTelegram } from '@kitbridge/testkit';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { TelegramConnector } from '../src/connector.js';
import { agentMessage, FileServer, TestContext } from './helpers.js';
import { testConnector } from './setup.js';

const target = { clientId: 'tg:4242' };

describe('TelegramConnector, delivery', () => {
  let tg: FakeTelegram;
  let conn: TelegramConnector;
  let tc: TestContext;
  const files = new FileServer();

  beforeAll(async () => {
    await files.start();
  });
  afterAll(async () => {
    await files.close();
  });
  beforeEach(async () => {
    tg = await new FakeTelegram().start();
    conn = testConnector(tg, { autoRetry: { maxRetryAttempts: 2, maxDelaySeconds: 5 } });
    tc = new TestContext();
    await conn.start(tc.ctx);
  });
  afterEach(async () => {
    await conn.stop();
    await tg.close();
  });

  it('sends text with the notices appended', async () => {
    await conn.deliver(target, agentMessage({ text: 'Hello!', notices: ['(file too large: big.zip)'] }));
    expect(tg.sent).toHaveLength(1);
    expect(tg.sent[0]!.method).toBe('sendMessage');
    expect(tg.sent[0]!.params).toMatchObject({ chat_id: 4242, text: 'Hello!\n\n(file too large: big.zip)' });
  });

  it('splits long text into ordered messages of at most 4096 characters, losing nothing', async () => {
    const paragraphs = Array.from(
      { length: 12 },
      (_, i) => `Paragraph ${i}. ${'lorem ipsum '.repeat(80).trim()}`,
    );
    const text = paragraphs.join('\n\n');
    await conn.deliver(target, agentMessage({ text }));
    const texts = tg.sent.map((c) => String(c.params['text']));
    expect(texts.length).toBeGreaterThan(2);
    for (const t of texts) expect(t.length).toBeLessThanOrEqual(4096);
    expect(texts.join('\n\n')).toBe(text);
  });

  it('uploads a photo and a document streamed from their URLs, after the text', async () => {
    const jpg = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 4, 0xff, 0xd9]);
    const pdf = Buffer.from('%PDF-1.7\nbinary\u0000stuff');
    await conn.deliver(
      target,
      agentMessage({
        text: 'Here you go',
        attachments: [
          files.attachment('/a.jpg', 'photo', 'holiday photo.jpg', jpg, 'image/jpeg'),
          files.attachment('/b.pdf', 'document', 'invoice 2024.pdf', pdf, 'application/pdf'),
        ],
      }),
    );
    expect(tg.sent.map((c) => c.method)).toEqual(['sendMessage', 'sendPhoto', 'sendDocument']);
    const [, photo, doc] = tg.sent;
    expect(photo!.encoding).toBe('multipart');
    expect(photo!.params['chat_id']).toBe(4242);
    expect(photo!.files).toHaveLength(1);
    expect(photo!.files[0]).toMatchObject({ param: 'photo', fileName: 'holiday photo.jpg' });
    expect(photo!.files[0]!.bytes).toEqual(jpg);
    expect(doc!.files[0]).toMatchObject({ param: 'document', fileName: 'invoice 2024.pdf' });
    expect(doc!.files[0]!.bytes).toEqual(pdf);
  });

  it('sends ogg audio as a voice note and other audio as audio', async () => {
    await conn.deliver(
      target,
      agentMessage({
        attachments: [
          files.attachment('/v.ogg', 'audio', 'note.ogg', Buffer.from('OggS'), 'audio/ogg'),
          files.attachment('/s.mp3', 'audio', 'song.mp3', Buffer.from('ID3'), 'audio/mpeg'),
          files.attachment('/m.mp4', 'video', 'clip.mp4', Buffer.from('ftyp'), 'video/mp4'),
        ],
      }),
    );
    expect(tg.sent.map((c) => c.method)).toEqual(['sendVoice', 'sendAudio', 'sendVideo']);
  });

  it('falls back to a document when Telegram refuses the image as a photo', async () => {
    tg.failNext('sendPhoto', { error_code: 400, description: 'Bad Request: PHOTO_INVALID_DIMENSIONS' });
    const png = Buffer.from('tall image');
    await conn.deliver(
      target,
      agentMessage({ attachments: [files.attachment('/t.png', 'photo', 'tall.png', png)] }),
    );
    expect(tg.sent.map((c) => c.method)).toEqual(['sendPhoto', 'sendDocument']);
    expect(tg.sent[1]!.files[0]!.bytes).toEqual(png);
  });

  it('sends locations and contacts; a contact without a number goes as text', async () => {
    await conn.deliver(
      target,
      agentMessage({
        locations: [{ latitude: 55.75, longitude: 37.61, address: 'Red Square' }],
        contacts: [{ name: 'Support', number: '+7 800 000' }, { name: 'Only a name' }],
      }),
    );
    expect(tg.sent.map((c) => c.method)).toEqual([
      'sendLocation',
      'sendMessage',
      'sendContact',
      'sendMessage',
    ]);
    expect(tg.sent[0]!.params).toMatchObject({ latitude: 55.75, longitude: 37.61 });
    expect(tg.sent[1]!.params['text']).toBe('Red Square');
    expect(tg.sent[2]!.params).toMatchObject({ phone_number: '+7 800 000', first_name: 'Support' });
    expect(tg.sent[3]!.params['text']).toBe('Only a name');
  });

  it('a blocked bot is a PermanentDeliveryError', async () => {
    tg.failNext('sendMessage', { error_code: 403, description: 'Forbidden: bot was blocked by the user' });
    const err = await conn.deliver(target, agentMessage({ text: 'hi' })).catch((e: Error) => e);
    expect(err).toBeInstanceOf(PermanentDeliveryError);
    expect((err as Error).message).toContain('bot was blocked by the user');
  });

  it('"chat not found" is permanent too; other errors are rethrown for a retry', async () => {
    tg.failNext('sendMessage', { error_code: 400, description: 'Bad Request: chat not found' });
    expect(await conn.deliver(target, agentMessage({ text: 'a' })).catch((e) => e)).toBeInstanceOf(
      PermanentDeliveryError,
    );
    tg.failNext('sendMessage', { error_code: 400, description: 'Bad Request: something odd' });
    const err = await conn.deliver(target, agentMessage({ text: 'b' })).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(PermanentDeliveryError);
    expect(err).not.toBeInstanceOf(RetryableDeliveryError);
  });

  it('honours retry_after on 429 and then succeeds', async () => {
    tg.failNext('sendMessage', { error_code: 429, retry_after: 1 });
    await conn.deliver(target, agentMessage({ text: 'patience' }));
    const calls = tg.callsOf('sendMessage');
    expect(calls).toHaveLength(2);
    expect(calls[1]!.at - calls[0]!.at).toBeGreaterThanOrEqual(950);
    // Counted for core's metrics, though auto-retry waited it out inside the call.
    expect(tc.rateLimits).toEqual([1000]);
  });

  it('429 beyond the retry budget is a RetryableDeliveryError carrying retry_after', async () => {
    for (let i = 0; i < 3; i++) tg.failNext('sendMessage', { error_code: 429, retry_after: 0 });
    const err = await conn.deliver(target, agentMessage({ text: 'x' })).catch((e: Error) => e);
    expect(err).toBeInstanceOf(RetryableDeliveryError);
    expect((err as RetryableDeliveryError).retryAfterMs).toBe(0);
  });

  it('a 429 longer than the cap goes straight back to the outbox', async () => {
    tg.failNext('sendMessage', { error_code: 429, retry_after: 3600 });
    const err = await conn.deliver(target, agentMessage({ text: 'x' })).catch((e: Error) => e);
    expect(err).toBeInstanceOf(RetryableDeliveryError);
    expect((err as RetryableDeliveryError).retryAfterMs).toBe(3_600_000);
    expect(tg.callsOf('sendMessage')).toHaveLength(1);
    expect(tc.rateLimits).toEqual([3_600_000]);
  });

  it('a retried delivery resumes after the steps recorded in its progress, and honours the deadline', async () => {
    const msg = agentMessage({
      text: 'first',
      attachments: [files.attachment('/r.pdf', 'document', 'r.pdf', Buffer.from('r'))],
    });
    // The durable progress of one delivery, as the outbox keeps it in the store.
    let done: Record<string, unknown> | undefined;
    const saves: unknown[] = [];
    const work = () => ({
      signal: new AbortController().signal,
      progress: {
        done: done as never,
        save: async (p: Record<string, unknown>) => {
          saves.push(p);
          done = p;
        },
      },
    });
    tg.failNext('sendDocument', { error_code: 400, description: 'Bad Request: a passing hiccup' });
    tg.failNext('sendDocument', { error_code: 400, description: 'Bad Request: a passing hiccup' });
    await expect(conn.deliver(target, msg, work())).rejects.toThrow(/hiccup/);
    // Recorded as soon as the text went out, before the document failed.
    expect(saves).toHaveLength(1);
    await expect(conn.deliver(target, msg, work())).rejects.toThrow(/hiccup/);
    const receipt = await conn.deliver(target, msg, work());
    expect(tg.sent.map((c) => c.method)).toEqual([
      'sendMessage',
      'sendDocument',
      'sendDocument',
      'sendDocument',
    ]);
    expect(receipt?.platformMessageIds).toHaveLength(2);
    // A new event starts from its first step.
    done = undefined;
    await conn.deliver(target, { ...msg, eventId: 'another' }, work());
    expect(tg.sent.map((c) => c.method).slice(4)).toEqual(['sendMessage', 'sendDocument']);
    // An aborted signal sends nothing.
    const aborted = new AbortController();
    aborted.abort(new Error('deadline'));
    done = undefined;
    await expect(
      conn.deliver(target, msg, {
        signal: aborted.signal,
        progress: { done: undefined, save: async () => {} },
      }),
    ).rejects.toThrow();
    expect(tg.sent).toHaveLength(6);
  });

  it('closeConversation sends the closing text, or nothing', async () => {
    await conn.closeConversation(target, 'CLOSED_BY_AGENT');
    expect(tg.sent).toHaveLength(0);
    await conn.closeConversation(target, 'CLOSED_BY_AGENT', 'Thanks, bye!');
    expect(tg.sent[0]!.params).toMatchObject({ chat_id: 4242, text: 'Thanks, bye!' });
  });

  it('sendTyping sends the typing action; a foreign client id is refused permanently', async () => {
    await conn.sendTyping(target);
    expect(tg.callsOf('sendChatAction')[0]!.params).toMatchObject({ chat_id: 4242, action: 'typing' });
    await expect(conn.deliver({ clientId: 'dc:1' }, agentMessage({ text: 'x' }))).rejects.toBeInstanceOf(
      PermanentDeliveryError,
    );
    expect(conn.ownsClient('tg:1')).toBe(true);
    expect(conn.ownsClient('dc:1')).toBe(false);
  });
});
