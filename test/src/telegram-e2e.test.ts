/**
 * The Telegram connector through a running Bridge: real grammY against the fake
 * Bot API on one side, FakeKit on the other, over real HTTP.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Bridge, startBridge } from '@kitbridge/core';
import { TelegramConnector, type TelegramConnectorOptions } from '@kitbridge/telegram';
import { FakeKit, FakeTelegram, freePort, testCoreConfig, tgUser } from '@kitbridge/testkit';
import { request } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

const creds = {
  account: 'acme',
  apiToken: 'api-token-0123456789',
  channelUuid: 'chan-0001-uuid',
  salt: 'salt-abc',
};
const alice = tgUser(5150, 'Alice', { last_name: 'Liddell', language_code: 'en' });

let kit: FakeKit;
let tg: FakeTelegram;
let bridge: Bridge | undefined;
let callbackUrl: string;

async function start(opts: Partial<TelegramConnectorOptions> = {}) {
  const port = await freePort();
  const connector = new TelegramConnector({
    token: tg.token,
    apiRoot: tg.apiRoot,
    pacing: { perChatMs: 5, globalMs: 1 },
    polling: { timeoutSeconds: 2, backoff: { baseMs: 20, maxMs: 100 } },
    ...opts,
  });
  bridge = await startBridge({ config: testCoreConfig({ url: kit.url, ...creds }, port), connector });
  callbackUrl = `${bridge.url}/kit/callback`;
}

async function get(url: string) {
  const r = await request(url);
  return { status: r.statusCode, body: Buffer.from(await r.body.arrayBuffer()) };
}

const messageOf = (event: unknown) => (event as any).event_data.message;

beforeEach(async () => {
  kit = new FakeKit(creds);
  await kit.start();
  tg = await new FakeTelegram().start();
});

afterEach(async () => {
  await bridge?.stop(500);
  bridge = undefined;
  await tg.close();
  await kit.close();
});

describe('Telegram -> Kit', () => {
  it('relays a text message with the profile and a proxied avatar', async () => {
    const avatar = Buffer.from('avatar-jpeg-bytes');
    tg.setProfilePhoto(alice.id, avatar);
    await start();
    tg.textFrom(alice, 'Hello, I need help');
    await kit.waitForEvents(1);
    const ev = kit.events[0] as { client_data: Record<string, unknown>; event_type: string };
    expect(ev.event_type).toBe('send_message');
    expect(ev.client_data).toMatchObject({
      client_id: 'tg:5150',
      client_display_name: 'Alice Liddell',
      client_language: 'en',
    });
    expect(messageOf(ev).text).toBe('Hello, I need help');
    const avatarUrl = String(ev.client_data['client_avatar']);
    expect(avatarUrl).not.toContain(tg.token);
    const got = await get(avatarUrl);
    expect(got.status).toBe(200);
    expect(got.body).toEqual(avatar);
  });

  it('relays a photo as a media-proxy URL that serves the exact bytes and carries no token', async () => {
    await start();
    const photo = Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 7) % 256));
    const update = tg.photoFrom(alice, photo, { caption: 'broken screen' });
    await kit.waitForEvents(1);
    const msg = messageOf(kit.events[0]);
    expect(msg.text).toBe('broken screen');
    expect(msg.payload).toHaveLength(1);
    expect(msg.payload[0].type).toBe('photo');
    const url = String(msg.payload[0].file_url);
    const fileId = (update.message!['photo'] as { file_id: string }[]).at(-1)!.file_id;
    expect(url).not.toContain(tg.token);
    expect(url).not.toContain(fileId);
    const got = await get(url);
    expect(got.status).toBe(200);
    expect(got.body).toEqual(photo);
  });

  it('takes updates by webhook too', async () => {
    await start({ mode: 'webhook', webhookSecret: 'e2e-secret' });
    expect(tg.webhook?.url).toBe(`${bridge!.url}/telegram/webhook`);
    const wrong = await tg.deliverWebhook(
      { message: tg.buildMessage(alice, { text: 'forged' }) },
      { secret: 'nope' },
    );
    expect(wrong.status).toBe(401);
    const ok = await tg.deliverWebhook({ message: tg.buildMessage(alice, { text: 'via webhook' }) });
    expect(ok.status).toBe(200);
    await kit.waitForEvents(1);
    expect(kit.events).toHaveLength(1);
    expect(messageOf(kit.events[0]).text).toBe('via webhook');
  });
});

describe('Kit -> Telegram', () => {
  let files: Server;
  let filesUrl: string;
  const pdf = Buffer.from('%PDF-1.4 agent file');

  beforeEach(async () => {
    files = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/pdf', 'content-length': pdf.length }).end(pdf);
    });
    await new Promise<void>((r) => files.listen(0, '127.0.0.1', r));
    filesUrl = `http://127.0.0.1:${(files.address() as AddressInfo).port}`;
  });
  afterEach(async () => {
    await new Promise<void>((r) => files.close(() => r()));
  });

  it('delivers an agent reply as sendMessage to the chat', async () => {
    await start();
    const r = await kit.sendCallback(callbackUrl, kit.agentMessage('tg:5150', { text: 'How can I help?' }));
    expect(r.status).toBe(200);
    const call = await tg.waitFor((c) => c.method === 'sendMessage');
    expect(call.params).toMatchObject({ chat_id: 5150, text: 'How can I help?' });
  });

  it('tells the agent in the Kit conversation when the customer blocked the bot, once', async () => {
    await start();
    tg.failNext('sendMessage', { error_code: 403 });
    const body = kit.agentMessage('tg:5150', { text: 'Are you still there?' });
    expect((await kit.sendCallback(callbackUrl, body)).status).toBe(200);
    await kit.waitForEvents(1);
    const notice = kit.events[0] as any;
    expect(notice.client_data.client_id).toBe('tg:5150');
    expect(messageOf(notice).text).toMatch(/^⚠️ kitbridge \(automatic notice, not written by the customer\)/);
    expect(messageOf(notice).text).toContain('"Are you still there?" did not reach the customer');
    expect(messageOf(notice).text).toContain('blocked');
    // Kit sends the same callback again (its retry): a duplicate, neither delivered nor told again.
    expect((await kit.sendCallback(callbackUrl, body)).status).toBe(200);
    // A later reply goes out (the customer unblocked the bot): by then anything doubled would show.
    await kit.sendCallback(callbackUrl, kit.agentMessage('tg:5150', { text: 'Welcome back' }));
    await tg.waitFor((c) => c.method === 'sendMessage' && c.params.text === 'Welcome back');
    expect(kit.events).toHaveLength(1);
    expect(tg.sent.filter((c) => c.method === 'sendMessage').map((c) => c.params.text)).toEqual([
      'Are you still there?',
      'Welcome back',
    ]);
  });

  it('uploads an agent file to the chat', async () => {
    await start();
    const body = kit.agentMessage('tg:5150', {
      text: 'Your invoice',
      payload: [{ type: 'document', file_name: 'invoice.pdf', file_url: `${filesUrl}/invoice.pdf` }],
    });
    await kit.sendCallback(callbackUrl, body);
    const doc = await tg.waitFor((c) => c.method === 'sendDocument');
    expect(doc.files[0]).toMatchObject({ param: 'document', fileName: 'invoice.pdf' });
    expect(doc.files[0]!.bytes).toEqual(pdf);
    expect(tg.sent.map((c) => c.method)).toEqual(['sendMessage', 'sendDocument']);
  });
});
