/** KitClient over real HTTP against FakeKit: wire format, token lifecycle, retries, errors. */
import { createHash } from 'node:crypto';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { PassThrough } from 'node:stream';
import {
  type CustomerEvent,
  createLogger,
  KitAuthError,
  KitClient,
  type KitClientOptions,
  KitRejectedError,
  KitUnavailableError,
} from '@kitbridge/core';
import { FakeKit } from '@kitbridge/testkit';
import { request } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

const CREDS = {
  account: 'acme',
  apiToken: 'API-TOKEN-must-not-leak-42',
  channelUuid: 'chan-uuid-0001',
  salt: 's',
};
let kit: FakeKit;
let clients: KitClient[] = [];

async function startKit(opts: Partial<ConstructorParameters<typeof FakeKit>[0]> = {}) {
  kit = new FakeKit({ ...CREDS, ...opts });
  await kit.start();
}

function client(over: Partial<KitClientOptions> = {}) {
  const c = new KitClient({
    baseUrl: kit.url,
    account: CREDS.account,
    apiToken: CREDS.apiToken,
    channelUuid: CREDS.channelUuid,
    backoff: { baseMs: 10, maxMs: 50 },
    ...over,
  });
  clients.push(c);
  return c;
}

const event = (n: number): CustomerEvent => ({
  client_data: { client_id: 'tg:1' },
  event_id: `tg:1/${n}`,
  event_type: 'send_message',
  event_data: { message: { message_id: `tg:1/${n}`, text: `hello ${n}` } },
});

beforeEach(() => startKit());
afterEach(async () => {
  await Promise.all(clients.map((c) => c.close()));
  clients = [];
  await kit.close();
});

describe('KitClient wire format', () => {
  it('logs in with domain and access_token in the query and channel_uuid in a form body', async () => {
    await client().login();
    const r = kit.requests[0]!;
    expect(r.method).toBe('POST');
    expect(r.path).toBe('/api/v3/botService/login');
    expect(r.query).toEqual({ domain: 'acme', access_token: CREDS.apiToken });
    expect(r.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(r.body).toBe('channel_uuid=chan-uuid-0001');
  });

  it('logs in lazily and posts the event as JSON with the Bearer token', async () => {
    await client().send(event(1));
    expect(kit.logins).toBe(1);
    const post = kit.requests.find((r) => r.path === '/chan-uuid-0001')!;
    expect(post.headers['content-type']).toBe('application/json');
    expect(post.headers.authorization).toMatch(/^Bearer [\w-]+\.[\w-]+\.[\w-]+$/);
    expect(JSON.parse(post.body)).toEqual(event(1));
    expect(kit.events).toEqual([event(1)]);
  });

  it('refreshes with a form body holding only refresh_token and no Authorization header', async () => {
    await kit.close();
    await startKit({ accessTtlSeconds: 2 });
    const c = client();
    await c.send(event(1));
    // exp has whole seconds, so the token's life is 1-2 s: 1.65 s is past 80 % of it, real clocks.
    await new Promise((r) => setTimeout(r, 1650));
    await c.send(event(2));
    expect(kit.refreshes).toBe(1);
    const r = kit.requests.find((q) => q.path === '/api/v3/botService/refreshToken')!;
    expect(r.headers.authorization).toBeUndefined();
    expect([...new URLSearchParams(r.body).keys()]).toEqual(['refresh_token']);
    expect(kit.logins).toBe(1);
  });
});

describe('KitClient token lifecycle', () => {
  it('reads expiry from the JWT exp: refreshes at 80 % of a 100 s life, not of 15 min', async () => {
    await kit.close();
    await startKit({ accessTtlSeconds: 100 });
    let now = Date.now();
    const c = client({ now: () => now });
    await c.send(event(1));
    now += 70_000; // under 80 % of 99-100 s
    await c.send(event(2));
    expect(kit.refreshes).toBe(0);
    now += 15_000; // 85 s: past 80 %, long before the 15 min fallback would say so
    await c.send(event(3));
    expect(kit.refreshes).toBe(1);
    expect(kit.logins).toBe(1);
  });

  it('assumes 15 minutes for an opaque token', async () => {
    await kit.close();
    await startKit({ jwtExp: false });
    let now = Date.now();
    const c = client({ now: () => now });
    await c.send(event(1));
    now += 11 * 60_000; // 73 % of 15 min: still fresh
    await c.send(event(2));
    expect(kit.refreshes).toBe(0);
    now += 2 * 60_000; // 87 %: refresh ahead of expiry
    await c.send(event(3));
    expect(kit.refreshes).toBe(1);
  });

  it('refreshes exactly once under 50 concurrent sends at expiry', async () => {
    let now = Date.now();
    const c = client({ now: () => now });
    await c.login();
    now += 14 * 60_000;
    kit.latencyMs = 50; // the refresh is still in flight while the other sends arrive
    await Promise.all(Array.from({ length: 50 }, (_, i) => c.send(event(i))));
    expect(kit.refreshes).toBe(1);
    expect(kit.logins).toBe(1);
    expect(kit.events).toHaveLength(50);
  });

  it('on a 401 from send: refreshes once and retries once', async () => {
    const c = client();
    await c.send(event(1));
    kit.expireAccessTokens();
    await c.send(event(2));
    expect(kit.refreshes).toBe(1);
    expect(kit.events).toHaveLength(2);
    const posts = kit.requests.filter((r) => r.path === '/chan-uuid-0001');
    expect(posts.map((p) => JSON.parse(p.body).event_id)).toEqual(['tg:1/1', 'tg:1/2', 'tg:1/2']);
  });

  it('logs in again when the refresh fails', async () => {
    let now = Date.now();
    const c = client({ now: () => now });
    await c.login();
    kit.expireRefreshTokens();
    now += 14 * 60_000;
    await c.send(event(1));
    expect(kit.logins).toBe(2);
    expect(kit.events).toHaveLength(1);
  });

  it('counts every login and refresh by outcome for the metrics, once per operation, not per HTTP try', async () => {
    const counted: string[] = [];
    const metrics = { auth: (op: string, outcome: string) => counted.push(`${op} ${outcome}`) };
    let now = Date.now();
    const c = client({ now: () => now, metrics });
    await c.login();
    now += 13 * 60_000;
    await c.send(event(1));
    kit.expireRefreshTokens();
    now += 13 * 60_000;
    await c.send(event(2));
    expect(counted).toEqual(['login success', 'refresh success', 'refresh failure', 'login success']);
    counted.length = 0;
    const wrong = client({ apiToken: 'WRONG-TOKEN-must-not-leak-77', metrics, maxAttempts: 2 });
    await wrong.login().catch(() => {});
    kit.outage('on');
    await client({ metrics, maxAttempts: 2 })
      .login()
      .catch(() => {});
    expect(counted).toEqual(['login failure', 'login failure']);
  });

  it('on a 401 whose refresh fails: logs in again and retries once', async () => {
    const c = client();
    await c.send(event(1));
    kit.expireAccessTokens();
    kit.expireRefreshTokens();
    await c.send(event(2));
    expect(kit.logins).toBe(2);
    expect(kit.refreshes).toBe(0);
    expect(kit.events).toHaveLength(2);
    expect(c.loggedIn).toBe(true);
  });

  it('logs in again instead of refreshing once the refresh token is ~23 h old', async () => {
    let now = Date.now();
    const c = client({ now: () => now });
    await c.login();
    now += 23 * 3600_000 + 1;
    await c.send(event(1));
    expect(kit.refreshes).toBe(0);
    expect(kit.logins).toBe(2);
  });
});

describe('KitClient failures', () => {
  it('backs off on 503 and succeeds when Kit comes back', async () => {
    const c = client();
    await c.login();
    kit.outage(2);
    await c.send(event(1));
    expect(kit.events).toHaveLength(1);
    expect(kit.requests.filter((r) => r.path === '/chan-uuid-0001')).toHaveLength(3);
  });

  it('honours Retry-After on 429', async () => {
    const c = client();
    await c.login();
    kit.rateLimit(1, 1);
    await c.send(event(1));
    const posts = kit.requests.filter((r) => r.path === '/chan-uuid-0001');
    expect(posts).toHaveLength(2);
    expect(posts[1]!.at - posts[0]!.at).toBeGreaterThanOrEqual(950);
  });

  it('hands a long Retry-After back to the caller instead of sleeping on it', async () => {
    const c = client({ maxRetryAfterMs: 500 });
    await c.login();
    kit.rateLimit(1, 120);
    const err = await c.send(event(1)).catch((e) => e);
    expect(err).toBeInstanceOf(KitUnavailableError);
    expect(err.retryAfterMs).toBe(120_000);
  });

  it('does not retry an event Kit rejected', async () => {
    const c = client();
    await c.login();
    kit.rejectNext(1, { error: 'message_id is too long', code: 422 });
    const err = await c.send(event(1)).catch((e) => e);
    expect(err).toBeInstanceOf(KitRejectedError);
    expect(err.message).toContain('message_id is too long (code 422)');
    expect(kit.requests.filter((r) => r.path === '/chan-uuid-0001')).toHaveLength(1);
  });

  it('does not retry a 400 either', async () => {
    const c = client();
    await c.login();
    kit.rejectNext(1, { error: 'bad', code: 400, status: 400 });
    await expect(c.send(event(1))).rejects.toBeInstanceOf(KitRejectedError);
    expect(kit.requests.filter((r) => r.path === '/chan-uuid-0001')).toHaveLength(1);
  });

  it('refuses to send an event that breaks the schema, without a request', async () => {
    const bad = { ...event(1), event_id: '' };
    await expect(client().send(bad)).rejects.toBeInstanceOf(KitRejectedError);
    expect(kit.requests).toHaveLength(0);
  });

  it('reports bad credentials as KitAuthError, with Kit text and without the token', async () => {
    const c = client({ apiToken: 'WRONG-TOKEN-must-not-leak-77' });
    const err = await c.login().catch((e) => e);
    expect(err).toBeInstanceOf(KitAuthError);
    expect(err.message).toContain('Invalid credentials');
    expect(JSON.stringify({ m: err.message, d: err.details, s: err.stack })).not.toContain('WRONG-TOKEN');
    expect(c.loggedIn).toBe(false);
  });

  it('gives up with KitUnavailableError after its attempts, and never shows a token', async () => {
    const c = client({ maxAttempts: 2 });
    kit.outage('on');
    const err = await c.send(event(1)).catch((e) => e);
    expect(err).toBeInstanceOf(KitUnavailableError);
    expect(err.message).toMatch(/503/);
    expect(`${err.message} ${err.stack} ${JSON.stringify(err)}`).not.toContain(CREDS.apiToken);
  });

  it('retries a headers timeout, then reports it by its code', async () => {
    const c = client({ headersTimeoutMs: 100, maxAttempts: 2 });
    kit.latencyMs = 3_000; // undici checks timeouts on a ~0.5 s tick: leave it room
    const err = await c.login().catch((e) => e);
    expect(err).toBeInstanceOf(KitUnavailableError);
    expect(err.message).toMatch(/login.*UND_ERR_HEADERS_TIMEOUT/);
    expect(kit.requests.filter((r) => r.path === '/api/v3/botService/login')).toHaveLength(2);
    expect(`${err.message} ${err.stack}`).not.toContain(CREDS.apiToken);
  });

  it('reports an unreachable Kit without the URL (which holds the API token)', async () => {
    const url = kit.url;
    await kit.close();
    const c = new KitClient({ baseUrl: url, ...CREDS, maxAttempts: 2, backoff: { baseMs: 5, maxMs: 5 } });
    clients.push(c);
    const err = await c.login().catch((e) => e);
    expect(err).toBeInstanceOf(KitUnavailableError);
    expect(err.message).toMatch(/ECONNREFUSED/);
    expect(`${err.message} ${err.stack}`).not.toContain(CREDS.apiToken);
    await startKit(); // for afterEach
  });
});

describe('KitClient input and options', () => {
  it('refuses missing credentials at construction, with a clear error', () => {
    expect(() => new KitClient({ baseUrl: kit.url, ...CREDS, apiToken: '' })).toThrow(/apiToken is required/);
    expect(() => new KitClient({ ...CREDS, baseUrl: 'not a url' })).toThrow(/baseUrl is not a valid URL/);
  });

  it('accepts a base URL with a trailing slash', async () => {
    await client({ baseUrl: `${kit.url}/` }).send(event(1));
    expect(kit.requests.map((r) => r.path)).toEqual(['/api/v3/botService/login', '/chan-uuid-0001']);
  });

  it('reports a login refused with HTTP 401 as KitAuthError too', async () => {
    await kit.close();
    await startKit({ loginFailureStatus: 401, channelUuid: 'another-channel' });
    const err = await client()
      .send(event(1))
      .catch((e) => e);
    expect(err).toBeInstanceOf(KitAuthError);
    expect(err.details).toMatchObject({ status: 401, kitError: 'Invalid credentials' });
    expect(kit.requests).toHaveLength(1);
  });

  it('stops waiting when the signal aborts', async () => {
    const c = client({ backoff: { baseMs: 60_000, maxMs: 60_000 }, maxRetryAfterMs: 120_000 });
    await c.login();
    kit.outage('on');
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    // Without the abort this would sleep 30-60 s and the test would time out.
    await expect(c.send(event(1), ac.signal)).rejects.toBeInstanceOf(KitUnavailableError);
    expect(kit.events).toHaveLength(0);
  });
});

describe('KitClient secrets', () => {
  it('never puts the API, access or refresh tokens into errors or log lines', async () => {
    const lines: string[] = [];
    const out = new PassThrough();
    out.on('data', (d: Buffer) => lines.push(d.toString()));
    let now = Date.now();
    const c = client({ logger: createLogger({ level: 'debug', destination: out }), now: () => now });
    const errors: unknown[] = [];
    await c.send(event(1));
    now += 14 * 60_000; // a refresh
    await c.send(event(2));
    kit.expireAccessTokens(); // a 401, then a refresh
    await c.send(event(3));
    kit.outage(1); // a retry warning
    await c.send(event(4));
    // Kit echoing the API token in its error text must not carry it into ours.
    kit.rejectNext(1, { error: `token ${CREDS.apiToken} is not allowed here`, code: 'E_TOKEN' });
    errors.push(await c.send(event(5)).catch((e) => e));
    kit.outage('on');
    errors.push(await c.send(event(6)).catch((e) => e));
    kit.outage('off');
    kit.expireAccessTokens();
    kit.rejectNext(1, { error: 'nope', code: 401, status: 401 }); // a 401 again after the refresh
    errors.push(await c.send(event(7)).catch((e) => e));

    const secrets = new Set<string>([CREDS.apiToken]);
    for (const r of kit.requests) {
      const bearer = /^Bearer (.+)$/.exec(String(r.headers.authorization ?? ''))?.[1];
      if (bearer) secrets.add(bearer);
      const refresh = new URLSearchParams(r.body).get('refresh_token');
      if (refresh) secrets.add(refresh);
    }
    expect(kit.refreshes).toBeGreaterThanOrEqual(2);
    expect(secrets.size).toBeGreaterThanOrEqual(5);
    expect(errors.map((e) => (e as Error).name)).toEqual([
      'KitRejectedError',
      'KitUnavailableError',
      'KitAuthError',
    ]);
    expect((errors[0] as Error).message).toContain('[redacted]');
    await new Promise((r) => setImmediate(r));
    const text = [
      ...errors.map((e) => `${(e as Error).message} ${(e as Error).stack} ${JSON.stringify(e)}`),
      ...lines,
    ].join('\n');
    expect(lines.join('')).toContain('logged in to Kit');
    expect(lines.join('')).toContain('Kit call failed; retrying');
    for (const s of secrets) expect(text).not.toContain(s);
  });
});

describe('FakeKit callbacks', () => {
  it('signs callbacks MD5(salt:token:event_id) in each variant, and the test request MD5(salt:token)', async () => {
    const seen: { method?: string; headers: IncomingHttpHeaders; body: string }[] = [];
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => {
        body += c.toString();
      });
      req.on('end', () => {
        seen.push({ method: req.method, headers: req.headers, body });
        res.end('OK');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/kit/callback`;
      const md5 = (s: string) => createHash('md5').update(s).digest('hex');
      const msg = kit.agentMessage('tg:1', { text: 'hi', sender: { sender_display_name: 'Ann' } });
      const good = md5(`${CREDS.salt}:${CREDS.apiToken}:${msg.event_id}`);
      for (const signature of ['valid', 'bearer', 'upper', 'bad', 'none'] as const) {
        expect(await kit.sendCallback(url, msg, { signature })).toEqual({ status: 200, body: 'OK' });
      }
      expect(seen.map((s) => s.headers.authorization)).toEqual([
        good,
        `Bearer ${good}`,
        good.toUpperCase(),
        expect.not.stringMatching(new RegExp(good, 'i')),
        undefined,
      ]);
      expect(JSON.parse(seen[0]!.body)).toMatchObject({
        client_data: { client_id: 'tg:1' },
        event_type: 'send_message',
        event_data: { message: { text: 'hi' }, sender_data: { sender_display_name: 'Ann' } },
      });
      const close = kit.closeConversation('tg:1', 'CLOSED_BY_CLIENT_TIMEOUT');
      expect(close.event_id).not.toBe(msg.event_id);
      await kit.sendTestRequest(url, 'GET');
      expect(seen.at(-1)).toMatchObject({
        method: 'GET',
        headers: { authorization: md5(`${CREDS.salt}:${CREDS.apiToken}`) },
      });
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it('refuses an event without the required fields, as Kit would', async () => {
    await client().send(event(1));
    const authorization = String(kit.requests.at(-1)!.headers.authorization);
    const r = await request(`${kit.url}/chan-uuid-0001`, {
      method: 'POST',
      headers: { authorization, 'content-type': 'application/json' },
      body: JSON.stringify({ event_id: 'x', event_type: 'send_message', event_data: { message: {} } }),
    });
    expect(r.statusCode).toBe(400);
    expect(await r.body.json()).toEqual({
      success: false,
      result: { error: 'client_id is required', code: 400 },
    });
    expect(kit.events).toHaveLength(1);
  });
});
