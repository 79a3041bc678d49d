/**
 * The /admin routes over real HTTP, on core's HttpServer with a MemoryStore:
 * who gets in, what a refused request changes (nothing), what is rendered and
 * how. After every test: the token is in no answer and no log line (the logger
 * here has no secrets registered, so a leak would show).
 */
import { Writable } from 'node:stream';
import { request } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ADMIN_BODY_LIMIT_BYTES, addAdminRoutes } from '../src/admin/routes.js';
import type { AdminStatus } from '../src/admin/view.js';
import { EXCERPT_MAX } from '../src/admin/view.js';
import type { JsonObject } from '../src/connector.js';
import { HttpServer } from '../src/http/router.js';
import { createLogger } from '../src/logger.js';
import { MemoryStore } from '../src/store/memory.js';
import type { Leg } from '../src/store/store.js';

const TOKEN = 'admin-token-0123456789abcdef-0123456789';
const KIT_SECRET = 'kit-api-token-secret-value';
const PUBLIC = 'https://bridge.example.com';
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
const SAME_SITE = { origin: PUBLIC, 'sec-fetch-site': 'same-origin' };
const TTL = 60_000;

let server: HttpServer;
let base: string;
let store: MemoryStore;
let logs: string;
let answers: string[];
let wakeUps: number;
let clock: number;
let status: AdminStatus;
let keyN = 0;

beforeEach(async () => {
  store = new MemoryStore();
  logs = '';
  answers = [];
  wakeUps = 0;
  clock = Date.now();
  status = { ready: true, stopping: false, kit: true, connector: { state: 'connected' } };
  const logger = createLogger({
    level: 'debug',
    destination: new Writable({
      write(chunk, _enc, cb) {
        logs += chunk;
        cb();
      },
    }),
  });
  server = new HttpServer({ host: '127.0.0.1', port: 0, logger });
  addAdminRoutes(server.router, {
    token: TOKEN,
    store,
    status: () => status,
    wakeUp: () => void wakeUps++,
    publicUrl: PUBLIC,
    secrets: [KIT_SECRET],
    logger,
    sessionTtlMs: TTL,
    now: () => clock,
  });
  server.started();
  const { port } = await server.listen();
  base = `http://127.0.0.1:${port}`;
});

afterEach(async () => {
  await server.close(100);
  const everything = answers.join('\n') + logs;
  expect(everything).not.toContain(TOKEN);
  expect(everything).not.toContain(encodeURIComponent(TOKEN));
});

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

async function call(
  method: 'GET' | 'POST',
  path: string,
  opts: { headers?: Record<string, string>; body?: string } = {},
): Promise<Answer> {
  const r = await request(`${base}${path}`, {
    method,
    headers: opts.headers ?? {},
    ...(opts.body !== undefined ? { body: opts.body } : {}),
  });
  const text = await r.body.text();
  answers.push(`${JSON.stringify(r.headers)}\n${text}`);
  return { status: r.statusCode, headers: r.headers, text };
}

const form = (o: Record<string, string>) => new URLSearchParams(o).toString();

/** A session cookie ("name=value"), from a same-origin login. */
async function login(origin = PUBLIC): Promise<{ cookie: string; setCookie: string }> {
  const r = await call('POST', '/admin/login', {
    headers: { ...FORM, origin, 'sec-fetch-site': 'same-origin' },
    body: form({ token: TOKEN }),
  });
  expect(r.status).toBe(303);
  const setCookie = String(r.headers['set-cookie']);
  return { cookie: setCookie.split(';')[0]!, setCookie };
}

/** Posts a form as the logged-in browser would. */
function act(
  path: string,
  cookie: string,
  fields: Record<string, string>,
  extra: Record<string, string> = {},
) {
  return call('POST', path, { headers: { ...FORM, ...SAME_SITE, cookie, ...extra }, body: form(fields) });
}

async function deadLetter(
  reason: string,
  payload: JsonObject = { text: 'hi' },
  clientId = 'tg:1',
  leg: Leg = 'outbound',
) {
  await store.enqueue({ leg, clientId, key: `key-${++keyN}`, payload }, 60_000, Date.now());
  const [c] = await store.claim(leg, 'test', 1, 30_000);
  await store.bury(c!.item.id, c!.fence, 3, reason);
  return c!.item.id;
}

describe('admin: who gets in', () => {
  it('without a credential: the login form at /admin (no data), 401 everywhere else, actions change nothing', async () => {
    const id = await deadLetter('Telegram refused delivery: bot was blocked by the user');
    const page = await call('GET', '/admin');
    expect(page.status).toBe(200);
    expect(page.text).toContain('<form method="post" action="/admin/login">');
    expect(page.text).not.toContain('bot was blocked');
    for (const path of ['/admin/panel', '/admin/status.json', '/admin/admin.js', '/admin/admin.css']) {
      const r = await call('GET', path);
      expect(r.status, path).toBe(401);
      expect(r.text).not.toContain('bot was blocked');
    }
    const retry = await call('POST', '/admin/retry', {
      headers: { ...FORM, ...SAME_SITE },
      body: form({ id: String(id) }),
    });
    expect(retry.status).toBe(401);
    expect((await store.get(id))!.state).toBe('dead');
    expect(wakeUps).toBe(0);
  });

  it('a wrong token is 401, sets no cookie and is not shown back; a wrong Bearer is 401 even with a good session', async () => {
    const wrong = `${TOKEN.slice(0, -1)}X`;
    const r = await call('POST', '/admin/login', {
      headers: { ...FORM, ...SAME_SITE },
      body: form({ token: wrong }),
    });
    expect(r.status).toBe(401);
    expect(r.headers['set-cookie']).toBeUndefined();
    expect(r.text).toContain('That token is not the one in KITBRIDGE_ADMIN_TOKEN.');
    expect(r.text).not.toContain(wrong);
    expect(logs).toContain('admin: login refused');
    expect(logs).not.toContain(wrong);

    expect(
      (await call('GET', '/admin/status.json', { headers: { authorization: `Bearer ${wrong}` } })).status,
    ).toBe(401);
    expect((await call('GET', '/admin', { headers: { authorization: `Bearer ${wrong}` } })).status).toBe(401);
    const { cookie } = await login();
    const both = await call('GET', '/admin/status.json', {
      headers: { cookie, authorization: 'Bearer nope' },
    });
    expect(both.status).toBe(401);
    expect(
      (await call('GET', '/admin/panel', { headers: { cookie: 'kitbridge_admin=made-up' } })).status,
    ).toBe(401);
  });

  it('login: an HttpOnly, SameSite=Strict cookie for /admin with a fresh random session, Secure over https', async () => {
    const https = await login(PUBLIC);
    expect(https.setCookie).toMatch(
      /^kitbridge_admin=[A-Za-z0-9_-]{43}; Path=\/admin; Max-Age=60; HttpOnly; SameSite=Strict; Secure$/,
    );
    const host = new URL(base).host;
    const http = await login(`http://${host}`);
    expect(http.setCookie).not.toContain('Secure');
    expect(http.cookie).not.toBe(https.cookie);
    const page = await call('GET', '/admin', { headers: { cookie: http.cookie } });
    expect(page.status).toBe(200);
    expect(page.text).toContain('id="panel"');
    expect(logs).toContain('admin: logged in');
  });

  it('a session ends at its expiry and at logout', async () => {
    const a = await login();
    const b = await login();
    expect((await call('GET', '/admin/panel', { headers: { cookie: a.cookie } })).status).toBe(200);
    const out = await act('/admin/logout', a.cookie, {});
    expect(out.status).toBe(303);
    expect(String(out.headers['set-cookie'])).toMatch(/^kitbridge_admin=; Path=\/admin; Max-Age=0; HttpOnly/);
    expect((await call('GET', '/admin/panel', { headers: { cookie: a.cookie } })).status).toBe(401);
    expect((await call('GET', '/admin/panel', { headers: { cookie: b.cookie } })).status).toBe(200);
    clock += TTL;
    expect((await call('GET', '/admin/panel', { headers: { cookie: b.cookie } })).status).toBe(401);
    expect((await call('GET', '/admin', { headers: { cookie: b.cookie } })).text).toContain(
      'action="/admin/login"',
    );
  });

  it('refuses a cross-origin action with 403 and changes nothing, whatever the credential', async () => {
    const id = await deadLetter('refused');
    const { cookie } = await login();
    const attempts: Record<string, string>[] = [
      { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' },
      { origin: 'https://evil.example' },
      { 'sec-fetch-site': 'same-site' },
      { origin: 'null' },
      {}, // a cookie but neither header: not a browser's same-origin POST
    ];
    for (const headers of attempts) {
      const r = await call('POST', '/admin/retry', {
        headers: { ...FORM, cookie, ...headers },
        body: form({ id: String(id) }),
      });
      expect(r.status, JSON.stringify(headers)).toBe(403);
      const d = await call('POST', '/admin/drop', {
        headers: { ...FORM, cookie, ...headers },
        body: form({ id: String(id) }),
      });
      expect(d.status).toBe(403);
    }
    const bearer = await call('POST', '/admin/retry', {
      headers: { ...FORM, authorization: `Bearer ${TOKEN}`, origin: 'https://evil.example' },
      body: form({ id: String(id) }),
    });
    expect(bearer.status).toBe(403);
    const crossLogin = await call('POST', '/admin/login', {
      headers: { ...FORM, origin: 'https://evil.example' },
      body: form({ token: TOKEN }),
    });
    expect(crossLogin.status).toBe(403);
    expect(crossLogin.headers['set-cookie']).toBeUndefined();
    expect((await store.get(id))!.state).toBe('dead');
    expect(wakeUps).toBe(0);
    expect(logs).toContain('admin: cross-origin request refused');
  });
});

describe('admin: what it shows', () => {
  it('connection state, the backlog of each leg and the dead letters with their reasons', async () => {
    status = {
      ready: false,
      stopping: false,
      kit: true,
      connector: { state: 'reconnecting', reason: 'gateway closed' },
    };
    await store.enqueue(
      { leg: 'inbound', clientId: 'tg:9', key: 'waiting', payload: {} },
      60_000,
      clock - 90_000,
    );
    const id = await deadLetter('Telegram refused delivery: chat not found', { text: 'your order shipped' });
    const { cookie } = await login();
    const page = (await call('GET', '/admin', { headers: { cookie } })).text;
    expect(page).toContain('<dd id="ready" data-state="not-ready">no</dd>');
    expect(page).toContain('<dd id="connector" data-state="reconnecting">reconnecting: gateway closed</dd>');
    expect(page).toMatch(
      /<tr id="leg-inbound">\s*<th scope="row">inbound<\/th><td class="pending">1<\/td><td>1<\/td><td>90s<\/td><td class="dead">0<\/td>/,
    );
    expect(page).toMatch(/<tr id="leg-outbound">[\s\S]*?<td class="dead">1<\/td>/);
    expect(page).toContain('Dead letters (1)');
    expect(page).toContain(`<tr id="dead-${id}" data-id="${id}">`);
    expect(page).toContain('<td class="reason">Telegram refused delivery: chat not found</td>');
    expect(page).toContain('your order shipped');

    const json = JSON.parse(
      (await call('GET', '/admin/status.json', { headers: { authorization: `Bearer ${TOKEN}` } })).text,
    );
    expect(json.status.connector.state).toBe('reconnecting');
    expect(
      json.legs.map((l: { leg: string; pending: number; dead: number }) => [l.leg, l.pending, l.dead]),
    ).toEqual([
      ['inbound', 1, 0],
      ['outbound', 0, 1],
    ]);
    expect(json.dead[0]).toMatchObject({
      id,
      leg: 'outbound',
      clientId: 'tg:1',
      reason: 'Telegram refused delivery: chat not found',
    });
  });

  it('escapes every value it renders (reasons, client ids, keys and payloads are untrusted)', async () => {
    await deadLetter(
      '<script>alert("reason")</script> & more',
      { text: '"><img src=x onerror=alert(1)>' },
      'tg:<b>bold</b>',
    );
    const { cookie } = await login();
    for (const path of ['/admin', '/admin/panel']) {
      const page = (await call('GET', path, { headers: { cookie } })).text;
      expect(page).not.toContain('<script>alert');
      expect(page).not.toContain('<img');
      expect(page).not.toContain('<b>bold');
      expect(page).toContain('&lt;script&gt;alert(&quot;reason&quot;)&lt;/script&gt; &amp; more');
      expect(page).toContain('tg:&lt;b&gt;bold&lt;/b&gt;');
      expect(page).toContain('&quot;\\&quot;&gt;&lt;img src=x onerror=alert(1)&gt;&quot;');
    }
  });

  it('never renders a secret: secret-looking payload fields, the core secrets and the token are replaced', async () => {
    await deadLetter(`Kit said: bad token ${TOKEN} / ${KIT_SECRET}`, {
      token: 'payload-bot-token-1',
      nested: { password: 'payload-password-2', authorization: 'Bearer payload-3' },
      text: `the customer pasted ${KIT_SECRET}`,
    });
    const { cookie } = await login();
    for (const path of ['/admin', '/admin/panel', '/admin/status.json']) {
      const text = (await call('GET', path, { headers: { cookie } })).text;
      for (const s of ['payload-bot-token-1', 'payload-password-2', 'payload-3', KIT_SECRET])
        expect(text).not.toContain(s);
      expect(text).toContain('[redacted]');
    }
  });

  it("shows a message's type, text and file names, not its links; other payloads as JSON", async () => {
    const file = {
      type: 'document',
      file_name: 'invoice.pdf',
      file_url: 'https://files.example/signed-link-1',
    };
    await deadLetter('agent leg', {
      kind: 'send_message',
      event: {
        event_type: 'send_message',
        event_data: { message: { text: 'Your invoice', payload: [file] } },
      },
    });
    await deadLetter(
      'customer leg',
      { event_type: 'send_message', event_data: { message: { text: 'Hi <there>' } } },
      'tg:2',
      'inbound',
    );
    await deadLetter(
      'closing',
      { kind: 'close_conversation', event: { event_type: 'close_conversation' } },
      'tg:3',
    );
    const json = JSON.parse(
      (await call('GET', '/admin/status.json', { headers: { authorization: `Bearer ${TOKEN}` } })).text,
    );
    expect(json.dead.map((d: { excerpt: string }) => d.excerpt)).toEqual([
      'send_message: "Your invoice" [document invoice.pdf]',
      'send_message: "Hi <there>"',
      '{"kind":"close_conversation","event":{"event_type":"close_conversation"}}',
    ]);
    expect(JSON.stringify(json)).not.toContain('signed-link-1');
  });

  it('cuts a long payload to a short excerpt', async () => {
    await deadLetter('too big', { text: 'x'.repeat(10_000) });
    const { cookie } = await login();
    const json = JSON.parse((await call('GET', '/admin/status.json', { headers: { cookie } })).text);
    expect(json.dead[0].excerpt.length).toBeLessThanOrEqual(EXCERPT_MAX + 1);
    expect(json.dead[0].excerpt.endsWith('…')).toBe(true);
  });

  it('sends a CSP without inline script or style on every answer, and the page has none', async () => {
    await deadLetter('r');
    const { cookie } = await login();
    for (const [path, type] of [
      ['/admin', 'text/html'],
      ['/admin/panel', 'text/html'],
      ['/admin/admin.js', 'text/javascript'],
      ['/admin/admin.css', 'text/css'],
      ['/admin/status.json', 'application/json'],
    ] as const) {
      const r = await call('GET', path, { headers: { cookie } });
      expect(r.status, path).toBe(200);
      expect(String(r.headers['content-type'])).toContain(type);
      const csp = String(r.headers['content-security-policy']);
      expect(csp).toContain("script-src 'self'");
      expect(csp).toContain("frame-ancestors 'none'");
      expect(csp).not.toContain('unsafe');
      expect(r.headers['cache-control']).toBe('no-store');
      expect(r.headers['x-content-type-options']).toBe('nosniff');
    }
    expect((await call('GET', '/admin')).headers['content-security-policy']).toBeDefined();
    expect((await call('GET', '/admin/panel')).headers['content-security-policy']).toBeDefined();
    const page = (await call('GET', '/admin', { headers: { cookie } })).text;
    expect(page.match(/<script\b[^>]*>/g)).toEqual(['<script src="/admin/admin.js" defer>']);
    expect(page).toContain('<script src="/admin/admin.js" defer></script>');
    expect(page).not.toMatch(/<style|\sstyle=|\son[a-z]+=/i);
  });
});

describe('admin: actions', () => {
  it('retry and drop from the page: what kitbridge outbox retry/drop do, then back to the page; the outboxes are woken', async () => {
    const a = await deadLetter('first');
    const b = await deadLetter('second', { text: 'b' }, 'tg:2');
    const { cookie } = await login();
    const r = await act('/admin/retry', cookie, { id: String(a) });
    expect(r.status).toBe(303);
    expect(r.headers.location).toBe('/admin');
    expect(await store.get(a)).toMatchObject({ state: 'pending', attempts: 0 });
    expect(wakeUps).toBe(1);
    const d = await act('/admin/drop', cookie, { id: String(b) });
    expect(d.status).toBe(303);
    expect(await store.get(b)).toBeUndefined();
    expect(logs).toMatch(/"msg":"admin: retry"/);
    expect(logs).toMatch(/"msg":"admin: drop"/);
    // Gone already (another operator was quicker): back to the page, nothing else.
    expect((await act('/admin/drop', cookie, { id: String(b) })).status).toBe(303);
    expect(wakeUps).toBe(2);
  });

  it('scripts use Bearer: JSON answers, 404 for an id that is not there, all-dead revives every dead letter', async () => {
    const a = await deadLetter('one');
    const b = await deadLetter('two', {}, 'tg:2');
    const bearer = { ...FORM, authorization: `Bearer ${TOKEN}` };
    const none = await call('POST', '/admin/retry', { headers: bearer, body: form({ id: '999' }) });
    expect(none.status).toBe(404);
    expect(JSON.parse(none.text)).toEqual({ revived: 0 });
    expect(wakeUps).toBe(0);
    const all = await call('POST', '/admin/retry', { headers: bearer, body: form({ id: 'all-dead' }) });
    expect(all.status).toBe(200);
    expect(JSON.parse(all.text)).toEqual({ revived: 2 });
    expect((await store.get(a))!.state).toBe('pending');
    expect((await store.get(b))!.state).toBe('pending');
    const drop = await call('POST', '/admin/drop', { headers: bearer, body: form({ id: String(a) }) });
    expect(JSON.parse(drop.text)).toEqual({ dropped: true });
    expect(
      (await call('POST', '/admin/drop', { headers: bearer, body: form({ id: String(a) }) })).status,
    ).toBe(404);
  });

  it('bad input: 415 for a body that is not a form, 400 for a bad id, 413 for a large body; nothing changes', async () => {
    const id = await deadLetter('stays');
    const { cookie } = await login();
    const json = await call('POST', '/admin/retry', {
      headers: { ...SAME_SITE, cookie, 'content-type': 'application/json' },
      body: JSON.stringify({ id }),
    });
    expect(json.status).toBe(415);
    for (const bad of ['', 'abc', '-1', '0', '1.5', '1e3', '99999999999999999999']) {
      const r = await act('/admin/retry', cookie, { id: bad });
      expect(r.status, bad).toBe(400);
      expect(r.text).toContain('expected id');
    }
    expect((await act('/admin/drop', cookie, { id: 'all-dead' })).status).toBe(400);
    const big = await act('/admin/retry', cookie, {
      id: String(id),
      pad: 'x'.repeat(ADMIN_BODY_LIMIT_BYTES),
    });
    expect(big.status).toBe(413);
    const login413 = await call('POST', '/admin/login', {
      headers: { ...FORM, ...SAME_SITE },
      body: form({ token: 'y'.repeat(ADMIN_BODY_LIMIT_BYTES) }),
    });
    expect(login413.status).toBe(413);
    expect((await store.get(id))!.state).toBe('dead');
    expect(wakeUps).toBe(0);
    // The process is fine: it answers as before.
    expect((await call('GET', '/admin/panel', { headers: { cookie } })).status).toBe(200);
  });
});
