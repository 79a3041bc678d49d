import { FakeTelegram, fakeBotToken, tgUser } from '@kitbridge/testkit';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TelegramConnector } from '../src/connector.js';
import { WEBHOOK_BODY_LIMIT_BYTES } from '../src/webhook.js';
import { TestContext, webhookHost } from './helpers.js';
import { testConnector } from './setup.js';

const alice = tgUser(777, 'Alice');

describe('TelegramConnector, webhook mode', () => {
  let tg: FakeTelegram;
  let host: Awaited<ReturnType<typeof webhookHost>>;
  let conn: TelegramConnector;
  const secret = 'hook_secret-123';

  beforeEach(async () => {
    tg = await new FakeTelegram().start();
    host = await webhookHost();
    conn = testConnector(tg, { mode: 'webhook', webhookSecret: secret });
    await conn.start(host.tc.ctx);
  });
  afterEach(async () => {
    await conn.stop();
    await host.close();
    await tg.close();
  });

  it('registers the webhook with its secret and reports connected', () => {
    expect(tg.webhook).toEqual({ url: `${host.url}/telegram/webhook`, secret_token: secret });
    expect(tg.callsOf('setWebhook')[0]!.params['allowed_updates']).toEqual(['message', 'edited_message']);
    expect(tg.callsOf('getUpdates')).toHaveLength(0);
    expect(conn.status().state).toBe('connected');
  });

  it('answers 200 only after the message was received', async () => {
    const res = await tg.deliverWebhook({ message: tg.buildMessage(alice, { text: 'via webhook' }) });
    expect(res.status).toBe(200);
    expect(host.tc.received.map((m) => m.text)).toEqual(['via webhook']);
  });

  it('refuses a wrong or missing secret with 401 and receives nothing', async () => {
    expect(
      (await tg.deliverWebhook({ message: tg.buildMessage(alice, { text: 'x' }) }, { secret: 'wrong' }))
        .status,
    ).toBe(401);
    expect(
      (await tg.deliverWebhook({ message: tg.buildMessage(alice, { text: 'y' }) }, { secret: null })).status,
    ).toBe(401);
    expect(host.tc.attempts).toHaveLength(0);
  });

  it('answers 400 to a body that is not an update and 413 past the size limit, receiving nothing', async () => {
    const post = (body: string) =>
      fetch(`${host.url}/telegram/webhook`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-telegram-bot-api-secret-token': secret },
        body,
      });
    expect((await post('{"update_id": 1, "message": ')).status).toBe(400);
    expect((await post('{"message": {}}')).status).toBe(400);
    expect((await post('[1, 2]')).status).toBe(400);
    const huge = JSON.stringify({ update_id: 2, padding: 'x'.repeat(WEBHOOK_BODY_LIMIT_BYTES) });
    expect((await post(huge)).status).toBe(413);
    expect(host.tc.attempts).toHaveLength(0);
    // A good update still goes through afterwards.
    expect((await tg.deliverWebhook({ message: tg.buildMessage(alice, { text: 'fine' }) })).status).toBe(200);
    expect(host.tc.received.map((m) => m.text)).toEqual(['fine']);
  });

  it('confirms type-confused updates with 200 and forwards none of them', async () => {
    const good = tg.buildMessage(alice, { text: 'ok' }) as unknown as Record<string, unknown>;
    const chat = good['chat'] as Record<string, unknown>;
    const from = good['from'] as Record<string, unknown>;
    const confused: Record<string, unknown>[] = [
      { ...good, text: 12345 },
      { ...good, chat: { ...chat, id: 'not-a-number' } },
      { ...good, from: { ...from, id: { nested: true } } },
      { ...good, photo: { file_id: 'x' } },
      { ...good, photo: [{ file_id: 7, file_unique_id: 'u', width: 1, height: 1 }] },
      { ...good, document: 'doc' },
      { ...good, location: { latitude: '1', longitude: 2 } },
      { ...good, contact: { phone_number: 5 } },
      { ...good, message_id: '1' },
      { ...good, chat: null },
    ];
    for (const message of confused) {
      const res = await tg.deliverWebhook({ message } as never);
      expect(res.status, JSON.stringify(message)).toBe(200);
    }
    expect(host.tc.attempts).toHaveLength(0);
    // Unknown fields and update kinds are fine.
    expect(
      (await tg.deliverWebhook({ message: { ...good, brand_new_field: { x: 1 } } } as never)).status,
    ).toBe(200);
    expect(host.tc.received.map((m) => m.text)).toEqual(['ok']);
  });

  it('answers an error when receive fails, so Telegram sends the update again', async () => {
    host.tc.failNext(1);
    const update = tg.number({ message: tg.buildMessage(alice, { text: 'retry me' }) });
    expect((await tg.deliverWebhook(update)).status).toBeGreaterThanOrEqual(500);
    expect((await tg.deliverWebhook(update)).status).toBe(200);
    expect(host.tc.received.map((m) => m.text)).toEqual(['retry me']);
  });

  it('answers 503 after stop, leaving the update with Telegram', async () => {
    await conn.stop();
    expect((await tg.deliverWebhook({ message: tg.buildMessage(alice, { text: 'late' }) })).status).toBe(503);
    expect(host.tc.attempts).toHaveLength(0);
    // The webhook stays registered: Telegram keeps queueing for the next start.
    expect(tg.webhook).toBeDefined();
  });
});

describe('TelegramConnector, start-up failures', () => {
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

  it('a rejected token makes start() reject with a message that names the variable, not the token', async () => {
    const token = fakeBotToken();
    conn = new TelegramConnector({ token, apiRoot: tg.apiRoot });
    const tc = new TestContext();
    const err = await conn.start(tc.ctx).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toBe('Telegram rejected TELEGRAM_BOT_TOKEN (revoked or wrong)');
    expect(JSON.stringify(tc.statuses)).not.toContain(token);
    expect(conn.status()).toEqual({
      state: 'failed',
      code: 'bad_credentials',
      reason: 'Telegram rejected TELEGRAM_BOT_TOKEN (revoked or wrong)',
    });
  });

  /** Without the handover window: every 409 is another consumer at once. */
  const noHandover = () =>
    testConnector(tg, {
      polling: { timeoutSeconds: 2, backoff: { baseMs: 20, maxMs: 100 }, blockedRetryMs: 100, handoverMs: 0 },
    });

  it('409 (another consumer) means failed, without a crash; polling resumes when it clears', async () => {
    tg.conflict = true;
    const tc = new TestContext();
    conn = noHandover();
    await conn.start(tc.ctx);
    expect(conn.status()).toEqual({
      state: 'failed',
      code: 'conflict',
      reason: 'another consumer (polling or webhook) holds this bot token',
    });
    // It keeps trying, slowly (every blockedRetryMs).
    await tc.until(() => tg.callsOf('getUpdates').length >= 2);
    tg.conflict = false;
    await tc.until(() => tc.state === 'connected');
    tg.textFrom(alice, 'back');
    await tc.waitForMessages(1);
  });

  it('409 during polling (a second poller appears) also reports failed', async () => {
    const tc = new TestContext();
    conn = noHandover();
    await conn.start(tc.ctx);
    expect(tc.state).toBe('connected');
    tg.conflict = true;
    tg.textFrom(alice, 'wake the long poll'); // answered; the next getUpdates gets 409
    await tc.until(() => tc.state === 'failed');
    expect(tc.statuses.at(-1)!.reason).toMatch(/another consumer/);
  });

  it('409 within the handover window is standby (another replica took polling over); past it, failed', async () => {
    const tc = new TestContext();
    conn = testConnector(tg, {
      polling: {
        timeoutSeconds: 2,
        backoff: { baseMs: 20, maxMs: 100 },
        blockedRetryMs: 50,
        handoverMs: 400,
      },
    });
    await conn.start(tc.ctx);
    expect(tc.state).toBe('connected');
    tg.conflict = true;
    tg.textFrom(alice, 'wake the long poll');
    await tc.until(() => tc.state === 'standby');
    expect(tc.statuses.at(-1)).toMatchObject({ state: 'standby', code: 'conflict' });
    expect(tc.statuses.some((s) => s.state === 'failed')).toBe(false);
    // Still 409 after the window: no handover takes that long, it is another consumer.
    await tc.until(() => tc.state === 'failed');
    expect(tc.statuses.at(-1)).toMatchObject({
      code: 'conflict',
      reason: expect.stringMatching(/another consumer/),
    });
    tg.conflict = false;
    await tc.until(() => tc.state === 'connected');
  });

  it('an unreachable Telegram at start: start resolves, status reconnecting, then connects', async () => {
    const port = Number(new URL(tg.apiRoot).port);
    const token = tg.token;
    await tg.close();
    const tc = new TestContext();
    conn = new TelegramConnector({
      token,
      apiRoot: `http://127.0.0.1:${port}`,
      connectBackoff: { baseMs: 20, maxMs: 50 },
      polling: { timeoutSeconds: 1 },
    });
    await conn.start(tc.ctx);
    expect(conn.status().state).toBe('reconnecting');
    expect(JSON.stringify(tc.statuses)).not.toContain(token);
    tg = new FakeTelegram({ token });
    await tg.start(port);
    await tc.until(() => tc.state === 'connected');
  });

  it('validateConfig: webhook mode needs a secret, and https towards the cloud Bot API', () => {
    const c = new TelegramConnector({ token: tg.token, mode: 'webhook', publicUrl: 'http://example.com' });
    expect(c.validateConfig()).toEqual([
      'TELEGRAM_WEBHOOK_SECRET is required when TELEGRAM_MODE=webhook',
      'Telegram delivers webhooks over HTTPS only: KITBRIDGE_PUBLIC_URL must start with https://',
    ]);
    expect(new TelegramConnector({ token: tg.token }).validateConfig()).toEqual([]);
  });
});
