/** KitClient over real HTTP against FakeKit: wire format, token lifecycle, retries, errors. */
import { KitAuthError, KitClient, type KitClientOptions, KitRejectedError, KitUnavailableError, type CustomerEvent } from '@kitbridge/core';
import { FakeKit } from '@kitbridge/testkit';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

const CREDS = { account: 'acme', apiToken: 'API-TOKEN-must-not-leak-42', channelUuid: 'chan-uuid-0001', salt: 's' };
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
    await startKit({ accessTtlSeconds: 1 });
    const c = client();
    await c.send(event(1));
    await new Promise((r) => setTimeout(r, 900)); // past 80 % of a 1 s life
    await c.send(event(2));
    expect(kit.refreshes).toBe(1);
    const r = kit.requests.find((q) => q.path === '/api/v3/botService/refreshToken')!;
    expect(r.headers.authorization).toBeUndefined();
    expect([...new URLSearchParams(r.body).keys()]).toEqual(['refresh_token']);
    expect(kit.logins).toBe(1);
  });
});

describe('KitClient token lifecycle', () => {
  it('reads expiry from the JWT exp: no refresh while it is young', async () => {
    const c = client();
    for (let i = 0; i < 5; i++) await c.send(event(i));
    expect(kit.logins).toBe(1);
    expect(kit.refreshes).toBe(0);
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
    // Forget every refresh token the fake issued, then age the access token.
    (kit as unknown as { refreshTokens: Map<string, number> }).refreshTokens.clear();
    now += 14 * 60_000;
    await c.send(event(1));
    expect(kit.logins).toBe(2);
    expect(kit.events).toHaveLength(1);
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
    kit.rateLimited(1, 1);
    await c.send(event(1));
    const posts = kit.requests.filter((r) => r.path === '/chan-uuid-0001');
    expect(posts).toHaveLength(2);
    expect(posts[1]!.at - posts[0]!.at).toBeGreaterThanOrEqual(950);
  });

  it('hands a long Retry-After back to the caller instead of sleeping on it', async () => {
    const c = client({ maxRetryAfterMs: 500 });
    await c.login();
    kit.rateLimited(1, 120);
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
