/**
 * The bad-input suite, Slack section: hostile and odd requests against
 * `POST /slack/events` of a running `kitbridge run slack` (the Events API over
 * HTTP, SQLite store, a child process, FakeSlack for Slack), generated with
 * fast-check, plus the known cases as fixed examples. Legit traffic (signed DMs
 * in, agent replies out) flows beside them. As in bad-input.test.ts:
 * - the process stays up and `/healthz` answers;
 * - every bad request gets a 4xx, never a 5xx; a signed body that is not a
 *   customer message may be acknowledged (200) and dropped;
 * - an unsigned, wrongly signed or stale request is a 401, whatever its body;
 * - nothing reaches Kit or Slack but the legit traffic, each message once;
 * - no secret in any response or log line, no log line longer than a few KB,
 *   and no error-level line at all.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { type EventCallback, mapEventCallback } from '@kitbridge/slack';
import { FakeKit, FakeSlack, freePort, type SlackUser, slackJson } from '@kitbridge/testkit';
import fc from 'fast-check';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const bin = new URL('../../packages/cli/bin/kitbridge.js', import.meta.url).pathname;
const CREDS = {
  account: 'acme',
  apiToken: 'badinput-slack-api-token-01',
  channelUuid: 'badinput-slack-chan-01',
  salt: 'badinput-slack-salt-01',
};
const MEDIA_SECRET = 'badinput-slack-media-secret-0123456789abcdef';
const RUNS = Number(process.env.BAD_INPUT_RUNS ?? 150);
const PATH = '/slack/events';

let kit: FakeKit;
let slack: FakeSlack;
let tmp: string;
let base: string;
let child: ChildProcess;
let logs = '';
let mediaLink: string;
const dispatcher = new Agent({ connections: 8 });
const secrets = () => [slack.botToken, slack.signingSecret, CREDS.apiToken, CREDS.salt, MEDIA_SECRET];

/** Legit traffic sent so far: each must arrive exactly once. */
const legit = { customer: [] as string[], agent: [] as string[] };
let customer: SlackUser;
const agents: SlackUser[] = [];

beforeAll(async () => {
  kit = new FakeKit(CREDS);
  await kit.start();
  slack = await new FakeSlack().start();
  customer = slack.user({ name: 'legit', real_name: 'Legit Customer' });
  for (let i = 0; i < 10; i++) agents.push(slack.user({ name: `reader${i}` }));
  tmp = mkdtempSync(join(os.tmpdir(), 'kitbridge-badinput-slack-'));
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  child = spawn(process.execPath, [bin, 'run', 'slack'], {
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
      SLACK_BOT_TOKEN: slack.botToken,
      SLACK_SIGNING_SECRET: slack.signingSecret,
      SLACK_API_URL: slack.apiUrl,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d) => (logs += d));
  child.stderr!.on('data', (d) => (logs += d));
  await until(async () => (await get('/readyz')).status === 200, 'the connector to be ready');

  // A real customer file gives a real media link.
  const photo = randomBytes(200_000);
  const sent = await slack.sendEvent(
    `${base}${PATH}`,
    slack.dm(customer, { files: [{ name: 'photo.png', bytes: photo, mimetype: 'image/png' }] }),
  );
  expect(sent.status).toBe(200);
  legit.customer.push('(photo)');
  await kit.waitForEvents(1, 15_000);
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
  await slack?.close();
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

function expectRefused(r: Reply, what: string, allowed: number[] = []): void {
  if (!allowed.includes(r.status)) expect(r.status, what).toBeGreaterThanOrEqual(400);
  expect(r.status, what).toBeLessThan(500);
  expectNoSecret(r, what);
}

function expectNoSecret(r: Reply, what: string): void {
  const all = JSON.stringify(r.headers) + r.body;
  for (const s of secrets()) expect(all.includes(s), `${what}: a secret in the answer`).toBe(false);
}

type Signing = 'none' | 'garbage' | 'valid' | 'stale' | 'future' | 'wrong-secret' | 'other-body';

/** Slack's signature headers for `body`, good or bad in one of several ways. */
function signatureHeaders(body: string | Buffer, how: Signing): Record<string, string> {
  const now = Math.floor(Date.now() / 1000);
  const ts = how === 'stale' ? now - 6 * 60 : how === 'future' ? now + 6 * 60 : now;
  const secret = how === 'wrong-secret' ? `${slack.signingSecret}0` : slack.signingSecret;
  const signed =
    how === 'other-body' ? Buffer.concat([Buffer.from(body), Buffer.from(' ')]) : Buffer.from(body);
  const sig = `v0=${createHmac('sha256', secret).update(`v0:${ts}:`).update(signed).digest('hex')}`;
  if (how === 'none') return {};
  if (how === 'garbage')
    return { 'x-slack-request-timestamp': String(ts), 'x-slack-signature': 'v0=deadbeef' };
  return { 'x-slack-request-timestamp': String(ts), 'x-slack-signature': sig };
}

const post = (body: string | Buffer, how: Signing, extra: Record<string, string> = {}) =>
  send('POST', PATH, { 'content-type': 'application/json', ...signatureHeaders(body, how), ...extra }, body);

/** Would the route store this body as a customer message (a legit side effect, so not a bad request)? */
function isRealEvent(body: unknown): boolean {
  if (!body || typeof body !== 'object' || Array.isArray(body)) return false;
  const b = body as Record<string, unknown>;
  if (b['type'] !== 'event_callback' || !b['event'] || typeof b['event'] !== 'object') return false;
  try {
    return (
      mapEventCallback(b as EventCallback, { botUserId: slack.botUserId, ownTeams: [slack.teamId] }).kind ===
      'message'
    );
  } catch {
    return false;
  }
}

/** Writes raw bytes to the server and collects what comes back within half a second. */
function rawRequest(raw: string): Promise<string> {
  return new Promise<string>((resolve) => {
    let got = '';
    const s = connect(Number(new URL(base).port), '127.0.0.1', () => s.write(raw));
    s.on('data', (d) => (got += d));
    s.setTimeout(500, () => s.destroy());
    s.on('close', () => resolve(got));
    s.on('error', () => {});
  });
}

let sinceHealth = 0;
/** Every few requests: the process is up, and a legit message goes through each way beside the noise. */
async function heartbeat(): Promise<void> {
  if (++sinceHealth % 25 !== 0) return;
  expect(child.exitCode, 'the connector is running').toBeNull();
  expect((await get('/healthz')).status).toBe(200);
  const text = `legit customer ${legit.customer.length}`;
  expect((await slack.sendEvent(`${base}${PATH}`, slack.dm(customer, text))).status).toBe(200);
  legit.customer.push(text);
  const reply = `legit agent ${legit.agent.length}`;
  // Spread over DMs: Slack allows about one message a second per channel.
  const to = agents[legit.agent.length % agents.length]!;
  expect(
    (
      await kit.sendCallback(
        `${base}/kit/callback`,
        kit.agentMessage(`sl:${slack.teamId}:${to.id}`, { text: reply }),
      )
    ).status,
  ).toBe(200);
  legit.agent.push(reply);
}

/** Bodies as sent: arbitrary JSON, sometimes very deep or very long, kept as text. */
const hostileBody = fc.oneof(
  fc.jsonValue().map((v) => JSON.stringify(v) ?? 'null'),
  fc.object().map((v) => JSON.stringify(v) ?? 'null'),
  fc.integer({ min: 50, max: 20_000 }).map((d) => `${'['.repeat(d)}${']'.repeat(d)}`),
  fc
    .integer({ min: 50, max: 20_000 })
    .map(
      (d) => `{"type":"event_callback","event":{"type":"message","x":${'{"a":'.repeat(d)}1${'}'.repeat(d)}}}`,
    ),
  fc
    .integer({ min: 1_000, max: 900_000 })
    .map((n) => JSON.stringify({ type: 'event_callback', event_id: 'e'.repeat(n) })),
  fc
    .record({
      type: fc.constantFrom('url_verification', 'event_callback', 'app_rate_limited'),
      challenge: fc.jsonValue(),
    })
    .map((v) => JSON.stringify(v)),
  fc.string({ maxLength: 300 }),
);

// ---------------------------------------------------------------- the suite

describe('bad input against a running Slack connector', () => {
  it('fixed cases: 401 before the body for a missing, malformed, stale or future signature; 413 past the limit', async () => {
    const body = slackJson(slack.eventCallback(slack.dm(customer, 'never forwarded')));
    for (const how of ['none', 'garbage', 'stale', 'future', 'wrong-secret', 'other-body'] as const) {
      expectRefused(await post(body, how), how);
      expect((await post(body, how)).status, how).toBe(401);
    }
    const badHeaders: Record<string, string>[] = [
      { 'x-slack-request-timestamp': 'now', 'x-slack-signature': 'v0=00' },
      { 'x-slack-request-timestamp': '-1', 'x-slack-signature': `v0=${'0'.repeat(64)}` },
      { 'x-slack-request-timestamp': '1e9', 'x-slack-signature': `v0=${'0'.repeat(64)}` },
      { 'x-slack-signature': `v0=${'0'.repeat(64)}` },
      {
        ...signatureHeaders(body, 'valid'),
        'x-slack-signature': signatureHeaders(body, 'valid')['x-slack-signature']!.toUpperCase(),
      },
      {
        ...signatureHeaders(body, 'valid'),
        'x-slack-signature': signatureHeaders(body, 'valid')['x-slack-signature']!.replace('v0=', 'v1='),
      },
    ];
    for (const headers of badHeaders) {
      const r = await send('POST', PATH, { 'content-type': 'application/json', ...headers }, body);
      expect(r.status, JSON.stringify(headers)).toBe(401);
    }
    // A declared 50 MB body with plausible signature headers: refused from its headers, never read.
    const ts = Math.floor(Date.now() / 1000);
    const declared = await rawRequest(
      `POST ${PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Slack-Request-Timestamp: ${ts}\r\nX-Slack-Signature: v0=${'a'.repeat(64)}\r\nContent-Length: ${50 * 1024 * 1024}\r\n\r\n{"type":`,
    );
    expect(declared).toMatch(/^HTTP\/1\.1 413 /);
    const huge = Buffer.alloc(1024 * 1024 + 1, 0x20);
    expect((await post(huge, 'valid')).status).toBe(413);
    expect((await post(huge, 'none')).status).toBe(401);
    expect(child.exitCode).toBeNull();
  });

  it('fixed cases: signed but not a customer message: 400 for what is not an event, 200 and dropped for the rest', async () => {
    for (const body of [
      '',
      'not json',
      '[]',
      '"x"',
      '{"type":"url_verification"}',
      '{"type":"event_callback"}',
    ]) {
      const r = await post(body, 'valid');
      expect(r.status, body).toBe(400);
      expectNoSecret(r, body);
    }
    const deep = `{"type":"event_callback","event":{"type":"message","x":${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}}}`;
    expectRefused(await post(deep, 'valid'), 'deep', [200]);
    const form = 'payload=%7B%22type%22%3A%22block_actions%22%7D';
    expect((await post(form, 'valid', { 'content-type': 'application/x-www-form-urlencoded' })).status).toBe(
      200,
    );
    // The app's own message and another bot's, signed and well-formed: acknowledged, never forwarded.
    const dm = slack.dmChannelId(customer.id);
    expect((await slack.sendEvent(`${base}${PATH}`, slack.ownMessage(dm, 'echo'))).status).toBe(200);
    expect((await slack.sendEvent(`${base}${PATH}`, slack.botMessage(dm, { text: 'beep' }))).status).toBe(
      200,
    );
    const verify = await slack.sendUrlVerification(`${base}${PATH}`);
    expect(verify.status).toBe(200);
    expect(JSON.parse(verify.body)).toEqual({ challenge: verify.challenge });
  });

  it('the events route refuses generated bad requests (401 unless correctly signed)', async () => {
    await fc.assert(
      fc.asyncProperty(
        hostileBody,
        fc.constantFrom<Signing>('none', 'garbage', 'valid', 'stale', 'future', 'wrong-secret', 'other-body'),
        fc.constantFrom('POST', 'POST', 'POST', 'GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'),
        fc.boolean(),
        async (text, how, method, rawBytes) => {
          const payload = rawBytes ? randomBytes(64) : text;
          let parsed: unknown;
          try {
            parsed = JSON.parse(text);
          } catch {}
          fc.pre(!(how === 'valid' && !rawBytes && isRealEvent(parsed)));
          const r = await send(
            method,
            PATH,
            { 'content-type': 'application/json', ...signatureHeaders(payload, how) },
            payload,
          );
          if (method !== 'POST') expect(r.status).toBe(405);
          else if (how !== 'valid') expect(r.status, how).toBe(401);
          expectRefused(r, `${method} ${how}`, [200]);
          if (r.status === 200) expect(how).toBe('valid');
          await heartbeat();
        },
      ),
      { numRuns: RUNS },
    );
  }, 180_000);

  it('type-confused message events, correctly signed: refused or acknowledged, none forwarded', async () => {
    const wrongType = fc.oneof(
      fc.integer(),
      fc.boolean(),
      fc.constant(null),
      fc.array(fc.integer()),
      fc.object(),
      fc.string({ maxLength: 40 }),
    );
    const eventFields = [
      'type',
      'subtype',
      'channel',
      'channel_type',
      'user',
      'ts',
      'text',
      'files',
      'thread_ts',
      'bot_id',
      'team',
      'user_team',
      'user_profile',
      'edited',
      'message',
      'previous_message',
      'blocks',
    ];
    const envelopeFields = [
      'type',
      'event',
      'team_id',
      'enterprise_id',
      'authorizations',
      'event_id',
      'api_app_id',
    ];
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.tuple(fc.constant('event' as const), fc.constantFrom(...eventFields), wrongType),
          fc.tuple(fc.constant('envelope' as const), fc.constantFrom(...envelopeFields), wrongType),
        ),
        fc.boolean(),
        async ([where, field, value], asFile) => {
          const event: Record<string, unknown> = {
            ...slack.dm(
              customer,
              asFile ? { text: 'confused', files: [{ name: 'c.txt', bytes: Buffer.from('c') }] } : 'confused',
            ),
          };
          const envelope: Record<string, unknown> = { ...slack.eventCallback(event) };
          const v = JSON.parse(JSON.stringify(value) ?? 'null') as unknown;
          if (where === 'event') envelope['event'] = { ...event, [field]: v };
          else envelope[field] = v;
          // A value that happens to fit makes a real message: not a bad request.
          fc.pre(!isRealEvent(envelope));
          const body = slackJson(envelope);
          const r = await post(body, 'valid');
          expectRefused(r, `${where}.${field}`, [200]);
          await heartbeat();
        },
      ),
      { numRuns: RUNS },
    );
  }, 180_000);

  it('the Slack paths around the route are 4xx; the media link of a Slack file still works', async () => {
    for (const [method, path] of [
      ['GET', PATH],
      ['HEAD', PATH],
      ['PUT', PATH],
      ['POST', `${PATH}/`],
      ['POST', '/slack'],
      ['POST', '/slack/events/x'],
      ['GET', '/slack/'],
    ] as const) {
      expectRefused(await send(method, path), `${method} ${path}`);
    }
    const media = await send('GET', new URL(mediaLink).pathname);
    expect(media.status).toBe(200);
    expect(media.body.length).toBe(200_000);
    expectNoSecret(media, 'media');
  });

  it('malformed HTTP on a raw socket against the route is refused and nothing stops', async () => {
    const garbage = [
      'POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n',
      'POST /slack/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
      `POST /slack/events HTTP/1.1\r\nHost: x\r\nX-Slack-Request-Timestamp: ${Math.floor(Date.now() / 1000)}\r\nX-Slack-Signature: v0=${'a'.repeat(64)}\r\nContent-Length: 100\r\n\r\n{"a"`,
      `POST /slack/events HTTP/1.1\r\nHost: x\r\n${'X-Slack-Signature: v0=1\r\n'.repeat(3_000)}\r\n`,
    ];
    for (const raw of garbage) {
      const answer = await rawRequest(raw);
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0);
      if (status) expect(status, raw.slice(0, 40)).toBeLessThan(500);
      expect(child.exitCode).toBeNull();
    }
    expect((await get('/healthz')).status).toBe(200);
  });

  it('afterwards: legit traffic arrived exactly once, nothing else reached Kit or Slack, logs are clean', {
    timeout: 90_000,
  }, async () => {
    await until(
      () => kit.events.length >= legit.customer.length,
      'legit customer messages to reach Kit',
      40_000,
    );
    await until(
      () => slack.sent.filter((c) => c.status === 200).length >= legit.agent.length,
      'legit agent messages to reach Slack',
      60_000,
    );
    await new Promise((r) => setTimeout(r, 500));
    const texts = kit.events.map(
      (e) => (e as { event_data: { message: { text?: string } } }).event_data.message.text,
    );
    expect(texts).toEqual([undefined, ...legit.customer.slice(1)]);
    const posted = slack.sent.filter((c) => c.status === 200).map((c) => c.params['text']);
    expect([...posted].sort()).toEqual([...legit.agent].sort());
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
