/**
 * The bad-input suite: hostile and odd requests against every route of a running
 * `kitbridge run telegram` (webhook mode, SQLite store, a child process), generated
 * with fast-check, plus the known cases as fixed examples. Legit traffic flows
 * beside them. Throughout:
 * - the process stays up and `/healthz` answers;
 * - every bad request gets a 4xx, never a 5xx (no dependency is down here);
 * - nothing reaches Kit or Telegram but the legit traffic, each message once;
 * - no secret in any response or log line, no log line longer than a few KB,
 *   and no error-level line at all.
 * New routes (Discord, Slack, operator pages) join this suite when they land.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { parseCallback } from '@kitbridge/core';
import { checkUpdate } from '@kitbridge/telegram';
import { FakeKit, FakeTelegram, fakeBotToken, freePort } from '@kitbridge/testkit';
import fc from 'fast-check';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const bin = new URL('../../packages/cli/bin/kitbridge.js', import.meta.url).pathname;
const CREDS = {
  account: 'acme',
  apiToken: 'badinput-api-token-0001',
  channelUuid: 'badinput-channel-01',
  salt: 'badinput-salt-0001',
};
const MEDIA_SECRET = 'badinput-media-secret-0123456789abcdef';
const WEBHOOK_SECRET = 'badinput_webhook_secret_42';
const RUNS = Number(process.env.BAD_INPUT_RUNS ?? 150);

let kit: FakeKit;
let tg: FakeTelegram;
let token: string;
let tmp: string;
let base: string;
let child: ChildProcess;
let logs = '';
let mediaLink: string;
const dispatcher = new Agent({ connections: 8 });
const secrets = () => [token, CREDS.apiToken, CREDS.salt, MEDIA_SECRET, WEBHOOK_SECRET];

/** Legit traffic sent so far: each must arrive exactly once. */
const legit = { customer: [] as string[], agent: [] as string[] };
const customer = { id: 9001, is_bot: false, first_name: 'Legit' };

beforeAll(async () => {
  kit = new FakeKit(CREDS);
  await kit.start();
  token = fakeBotToken();
  tg = await new FakeTelegram({ token }).start();
  tmp = mkdtempSync(join(os.tmpdir(), 'kitbridge-badinput-'));
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  child = spawn(process.execPath, [bin, 'run', 'telegram'], {
    env: {
      PATH: process.env.PATH ?? '',
      KIT_IM_URL: kit.url,
      KIT_ACCOUNT: CREDS.account,
      KIT_API_TOKEN: CREDS.apiToken,
      KIT_CHANNEL_UUID: CREDS.channelUuid,
      KIT_CHANNEL_SALT: CREDS.salt,
      KITBRIDGE_HOST: '127.0.0.1',
      KITBRIDGE_PORT: String(port),
      KITBRIDGE_PUBLIC_URL: base,
      KITBRIDGE_MEDIA_SECRET: MEDIA_SECRET,
      KITBRIDGE_STORE: `sqlite:${join(tmp, 'kitbridge.db')}`,
      KITBRIDGE_LOG_LEVEL: 'debug',
      TELEGRAM_BOT_TOKEN: token,
      TELEGRAM_API_ROOT: tg.apiRoot,
      TELEGRAM_MODE: 'webhook',
      TELEGRAM_WEBHOOK_SECRET: WEBHOOK_SECRET,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d) => (logs += d));
  child.stderr!.on('data', (d) => (logs += d));
  await until(async () => (await get('/readyz')).status === 200, 'the connector to be ready');

  // A real customer photo gives a real media link.
  const photo = randomBytes(300_000);
  const sent = await tg.deliverWebhook({
    message: tg.buildMessage(customer, { photo: tg.photoSizes(photo) }),
  });
  expect(sent.status).toBe(200);
  legit.customer.push('(photo)');
  await kit.waitForEvents(1);
  const event = kit.events[0] as { event_data: { message: { payload: { file_url: string }[] } } };
  mediaLink = event.event_data.message.payload[0]!.file_url;
  expect(mediaLink.startsWith(`${base}/media/`)).toBe(true);
}, 60_000);

afterAll(async () => {
  if (child && child.exitCode === null) {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
  await dispatcher.close();
  await tg?.close();
  await kit?.close();
  rmSync(tmp, { recursive: true, force: true });
});

// ---------------------------------------------------------------- helpers

async function until(check: () => Promise<boolean> | boolean, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      if (await check()) return;
    } catch {}
    if (child.exitCode !== null)
      throw new Error(`the connector exited (${child.exitCode}):\n${logs.slice(-3000)}`);
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

async function send(
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string | Buffer,
): Promise<Reply> {
  const res = await request(`${base}${path}`, {
    method: method as 'GET',
    headers,
    dispatcher,
    ...(body !== undefined && method !== 'GET' && method !== 'HEAD' ? { body } : {}),
  });
  const text =
    method === 'HEAD' ? '' : (await res.body.arrayBuffer().then((b) => Buffer.from(b))).toString('latin1');
  if (method === 'HEAD') await res.body.dump();
  return { status: res.statusCode, headers: res.headers, body: text };
}

const get = (path: string) => send('GET', path);

/** What every answer to a bad request must satisfy. */
function expectRefused(r: Reply, what: string, allowed: number[] = []): void {
  if (!allowed.includes(r.status)) expect(r.status, what).toBeGreaterThanOrEqual(400);
  expect(r.status, what).toBeLessThan(500);
  expectNoSecret(r, what);
}

function expectNoSecret(r: Reply, what: string): void {
  const all = JSON.stringify(r.headers) + r.body;
  for (const s of secrets()) expect(all.includes(s), `${what}: a secret in the answer`).toBe(false);
}

let sinceHealth = 0;
/** Every few requests: the process is up, and a legit message goes through beside the noise. */
async function heartbeat(): Promise<void> {
  if (++sinceHealth % 25 !== 0) return;
  expect(child.exitCode, 'the connector is running').toBeNull();
  expect((await get('/healthz')).status).toBe(200);
  const n = legit.customer.length;
  const text = `legit customer ${n}`;
  expect((await tg.deliverWebhook({ message: tg.buildMessage(customer, { text }) })).status).toBe(200);
  legit.customer.push(text);
  const reply = `legit agent ${legit.agent.length}`;
  // Spread over chats: Telegram's pacing allows about one message a second per chat.
  const chat = `tg:${9001 + (legit.agent.length % 10)}`;
  expect(
    (await kit.sendCallback(`${base}/kit/callback`, kit.agentMessage(chat, { text: reply }))).status,
  ).toBe(200);
  legit.agent.push(reply);
}

const sign = (eventId?: string) => kit.signatureFor(eventId);

/**
 * Bodies as sent: arbitrary JSON, sometimes very deep or very long (kept as text,
 * so fast-check never has to print a 20,000-level object).
 */
const hostileBody = fc.oneof(
  fc.jsonValue().map((v) => JSON.stringify(v) ?? 'null'),
  fc.object().map((v) => JSON.stringify(v) ?? 'null'),
  fc.integer({ min: 50, max: 20_000 }).map((d) => `${'['.repeat(d)}${']'.repeat(d)}`),
  fc
    .integer({ min: 50, max: 20_000 })
    .map((d) => `{"event_id":"deep","event_type":"send_message","x":${'{"a":'.repeat(d)}1${'}'.repeat(d)}}`),
  fc
    .integer({ min: 1_000, max: 900_000 })
    .map((n) => JSON.stringify({ event_id: 'e'.repeat(n), event_type: 'send_message' })),
);

/** A callback-shaped object with one part of the wrong type or missing. */
const brokenCallback = fc
  .record({
    client_data: fc.oneof(fc.constant(undefined), fc.jsonValue(), fc.record({ client_id: fc.jsonValue() })),
    event_id: fc.oneof(fc.uuid(), fc.string({ maxLength: 300 }), fc.integer()),
    event_type: fc.oneof(fc.constantFrom('send_message', 'close_conversation'), fc.jsonValue()),
    event_data: fc.oneof(
      fc.jsonValue(),
      fc.record({ message: fc.jsonValue(), sender_data: fc.jsonValue() }),
      fc.record({
        message: fc.record({ message_id: fc.jsonValue(), text: fc.jsonValue(), payload: fc.jsonValue() }),
      }),
    ),
  })
  .map((r) => JSON.stringify(r));

/** Would the route accept this body as a real event (a legit side effect, so not a bad request)? */
function isRealEvent(body: unknown): boolean {
  if (!body || typeof body !== 'object' || Array.isArray(body)) return false;
  const copy = { ...(body as Record<string, unknown>) };
  if (typeof copy.event_id === 'number') copy.event_id = String(copy.event_id);
  if (typeof copy.event_id !== 'string' || !copy.event_id) return false;
  const parsed = parseCallback(copy);
  return parsed.ok && parsed.value.kind !== 'unknown';
}

// ---------------------------------------------------------------- the suite

describe('bad input against a running connector', () => {
  it('fixed cases: HEAD and unsatisfiable ranges on a media link, a client that hangs up midway', async () => {
    const path = new URL(mediaLink).pathname;
    const head = await send('HEAD', path);
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe('300000');
    for (const range of ['bytes=999999-', 'bytes=-0', 'bytes=300000-']) {
      const r = await send('GET', path, { range });
      expect(r.status, range).toBe(416);
    }
    const part = await send('GET', path, { range: 'bytes=0-9' });
    expect(part.status).toBe(206);
    expect(part.body.length).toBe(10);
    // Hang up after the first bytes.
    await new Promise<void>((resolve) => {
      const s = connect(Number(new URL(base).port), '127.0.0.1', () => {
        s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
      });
      s.once('data', () => {
        s.destroy();
        resolve();
      });
      s.on('error', () => resolve());
    });
    await new Promise((r) => setTimeout(r, 300));
    expect(child.exitCode).toBeNull();
    expect((await get('/healthz')).status).toBe(200);
  });

  it('fixed cases: a signed callback nested 10,000 deep, a 900 KB event id, type-confused updates', async () => {
    const deep = `${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}`;
    const body = `{"client_data":{"client_id":"tg:9001"},"event_id":"deep-1","event_type":"send_message","event_data":{"message":{"message_id":"m","text":"x"},"extra":${deep}}}`;
    const r = await send(
      'POST',
      '/kit/callback',
      { 'content-type': 'application/json', authorization: sign('deep-1') },
      body,
    );
    expect([400, 413]).toContain(r.status);
    const huge = JSON.stringify({ event_id: 'x'.repeat(900_000), event_type: 'send_message' });
    expectRefused(
      await send('POST', '/kit/callback', { 'content-type': 'application/json' }, huge),
      'huge event id',
    );
    const confused = { ...tg.buildMessage(customer, { text: 'never forwarded' }), text: 12345 };
    expect((await tg.deliverWebhook({ message: confused } as never)).status).toBe(200);
  });

  it('the Kit callback route refuses generated bad requests', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(hostileBody, brokenCallback),
        fc.constantFrom('none', 'garbage', 'valid', 'test-request', 'bearer'),
        fc.constantFrom('POST', 'GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'),
        fc.boolean(),
        async (text, signature, method, rawBytes) => {
          const body = JSON.parse(text) as unknown;
          const eventId =
            body && typeof body === 'object' ? (body as { event_id?: unknown }).event_id : undefined;
          const signed = signature === 'valid' || signature === 'bearer';
          fc.pre(!(signed && isRealEvent(body)));
          const auth =
            signature === 'none'
              ? undefined
              : signature === 'garbage'
                ? 'deadbeef'
                : signature === 'test-request'
                  ? sign()
                  : `${signature === 'bearer' ? 'Bearer ' : ''}${sign(eventId === undefined ? undefined : String(eventId))}`;
          const payload = rawBytes ? randomBytes(64) : text;
          const r = await send(
            method,
            '/kit/callback',
            { 'content-type': 'application/json', ...(auth ? { authorization: auth } : {}) },
            payload,
          );
          // The channel's test request (signed, no event id) and events of unknown types are acknowledged.
          expectRefused(r, `${method} ${signature}`, [200]);
          if (r.status === 200) expect(signed || signature === 'test-request').toBe(true);
          await heartbeat();
        },
      ),
      { numRuns: RUNS },
    );
  }, 120_000);

  it('the Telegram webhook refuses or confirms generated bad updates, forwarding none', async () => {
    const wrongType = fc.oneof(
      fc.integer(),
      fc.boolean(),
      fc.constant(null),
      fc.array(fc.integer()),
      fc.object(),
      fc.string(),
    );
    const fields = [
      'text',
      'chat',
      'from',
      'photo',
      'document',
      'location',
      'contact',
      'message_id',
      'caption',
      'venue',
      'sticker',
    ];
    const confusedMessage = fc.tuple(fc.constantFrom(...fields), wrongType);
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          confusedMessage.map(([field, value]) => ({ kind: 'confused' as const, field, value })),
          hostileBody.map((value) => ({ kind: 'json' as const, value })),
        ),
        fc.constantFrom('right', 'wrong', 'none'),
        async (input, secret) => {
          let body: string;
          if (input.kind === 'confused') {
            const message: Record<string, unknown> = { ...tg.buildMessage(customer, { text: 'confused' }) };
            message[input.field] = JSON.parse(JSON.stringify(input.value) ?? 'null');
            const update = tg.number({ message } as never);
            // A value that happens to have the right type makes a real message: not a bad request.
            fc.pre(!checkUpdate(update).ok);
            body = JSON.stringify(update);
          } else {
            const v = JSON.parse(input.value) as unknown;
            // Anything with a message in it might be a real one; the generated JSON never is, but be sure.
            fc.pre(!(v && typeof v === 'object' && ('message' in v || 'edited_message' in v)));
            body = input.value;
          }
          const r = await send(
            'POST',
            '/telegram/webhook',
            {
              'content-type': 'application/json',
              ...(secret === 'right'
                ? { 'x-telegram-bot-api-secret-token': WEBHOOK_SECRET }
                : secret === 'wrong'
                  ? { 'x-telegram-bot-api-secret-token': 'nope' }
                  : {}),
            },
            body,
          );
          if (secret !== 'right') expect(r.status).toBe(401);
          // With the right secret: refused (400, 413) or confirmed and dropped (200).
          expectRefused(r, `webhook ${secret}`, [200]);
          await heartbeat();
        },
      ),
      { numRuns: RUNS },
    );
  }, 120_000);

  it('the media route answers generated requests on real, tampered and made-up links without a crash', async () => {
    const path = new URL(mediaLink).pathname;
    const token = path.slice('/media/'.length).split('/')[0]!;
    const tampered = fc
      .tuple(fc.nat({ max: token.length - 1 }), fc.constantFrom('A', 'b', '_', '-', '0', '%', '.'))
      .map(([i, c]) => `/media/${token.slice(0, i)}${c}${token.slice(i + 1)}`);
    const range = fc.oneof(
      fc.constant(undefined),
      fc
        .tuple(fc.option(fc.nat({ max: 400_000 })), fc.option(fc.nat({ max: 400_000 })))
        .map(([a, b]) => `bytes=${a ?? ''}-${b ?? ''}`),
      fc.string({ maxLength: 40 }).map((s) => s.replace(/[^\x20-\x7e]/g, '')),
      fc.constantFrom('bytes=0-1,5-9', 'bytes=-0', 'bytes=999999-', 'items=0-1', 'bytes=5-1'),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.constant(path),
          fc.constant(`${path}/any%20name.jpg`),
          tampered,
          fc.string({ maxLength: 200 }).map((s) => `/media/${encodeURIComponent(s)}`),
        ),
        fc.constantFrom('GET', 'HEAD', 'POST', 'DELETE'),
        range,
        fc.option(fc.constantFrom('"x"', '*', 'W/"y"')),
        fc.option(fc.constantFrom('"x"', 'Mon, 01 Jan 2024 00:00:00 GMT')),
        async (p, method, r, ifNoneMatch, ifRange) => {
          const headers: Record<string, string> = {};
          if (r) headers.range = r;
          if (ifNoneMatch) headers['if-none-match'] = ifNoneMatch;
          if (ifRange) headers['if-range'] = ifRange;
          const reply = await send(method, p, headers);
          const real = p === path || p === `${path}/any%20name.jpg`;
          if (real && (method === 'GET' || method === 'HEAD')) {
            expect([200, 206, 304, 416], `${method} ${r}`).toContain(reply.status);
            expect(String(reply.headers['content-security-policy'])).toContain("default-src 'none'");
            expectNoSecret(reply, 'media');
          } else expectRefused(reply, `${method} ${p}`);
          await heartbeat();
        },
      ),
      { numRuns: RUNS },
    );
  }, 120_000);

  it('any other method and path is a 4xx', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'),
        fc.oneof(
          fc.webPath(),
          fc.string({ maxLength: 100 }).map((s) => `/${encodeURIComponent(s)}`),
          fc.constantFrom('/kit/callback/x', '/telegram/webhook/', '/media', '/media/', '/readyz/..', '//'),
        ),
        async (method, path) => {
          fc.pre(!['/healthz', '/readyz'].includes(path));
          expectRefused(await send(method, path || '/'), `${method} ${path}`);
          await heartbeat();
        },
      ),
      { numRuns: RUNS },
    );
  }, 60_000);

  it('malformed HTTP on a raw socket is refused and nothing stops', async () => {
    const garbage = [
      'GARBAGE\r\n\r\n',
      'GET / HTTP/9.9\r\n\r\n',
      `GET /media/${'a'.repeat(100_000)} HTTP/1.1\r\nHost: x\r\n\r\n`,
      'POST /kit/callback HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n',
      'POST /kit/callback HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
      'POST /telegram/webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{"a"',
      `GET / HTTP/1.1\r\n${'X-A: b\r\n'.repeat(5_000)}\r\n`,
    ];
    for (const raw of garbage) {
      const answer = await new Promise<string>((resolve) => {
        let got = '';
        const s = connect(Number(new URL(base).port), '127.0.0.1', () => s.write(raw));
        s.on('data', (d) => (got += d));
        s.setTimeout(500, () => s.destroy());
        s.on('close', () => resolve(got));
        s.on('error', () => {});
      });
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0);
      if (status) expect(status, raw.slice(0, 40)).toBeLessThan(500);
      expect(child.exitCode).toBeNull();
    }
    expect((await get('/healthz')).status).toBe(200);
  });

  it('afterwards: legit traffic arrived exactly once, nothing else reached Kit or Telegram, logs are clean', {
    timeout: 60_000,
  }, async () => {
    await until(() => kit.events.length >= legit.customer.length, 'legit customer messages to reach Kit');
    await until(
      () => tg.sent.filter((c) => c.method === 'sendMessage').length >= legit.agent.length,
      'legit agent messages to reach Telegram',
      40_000,
    );
    await new Promise((r) => setTimeout(r, 500));
    const texts = kit.events.map(
      (e) => (e as { event_data: { message: { text?: string } } }).event_data.message.text,
    );
    expect(texts).toEqual([undefined, ...legit.customer.slice(1)]);
    const sent = tg.sent.filter((c) => c.method.startsWith('send'));
    expect(sent.map((c) => c.params['text']).sort()).toEqual([...legit.agent].sort());
    expect(child.exitCode).toBeNull();

    const lines = logs.split('\n').filter(Boolean);
    expect(lines.length).toBeGreaterThan(10);
    for (const s of secrets()) expect(logs.includes(s), 'a secret in the logs').toBe(false);
    for (const line of lines) {
      expect(line.length, line.slice(0, 200)).toBeLessThan(8_000);
      const parsed = JSON.parse(line) as { level: number; msg: string };
      expect(parsed.level, line.slice(0, 300)).toBeLessThan(50);
    }
  });
});
