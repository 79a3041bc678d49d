/**
 * A fake Voximplant Kit messaging API on 127.0.0.1, for tests and plugin authors:
 * login, refresh and the event endpoint with Kit's wire format, knobs for the
 * failures a connector must survive, and correctly (or wrongly) signed callbacks.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { request } from 'undici';

export interface FakeKitOptions {
  account: string;
  apiToken: string;
  channelUuid: string;
  salt: string;
  /** Access token life. Default 900 (Kit's 15 minutes). */
  accessTtlSeconds?: number;
  /** Refresh token life. Default 86400. */
  refreshTtlSeconds?: number;
  /** Put `exp` into the access JWT. Default true; false gives opaque tokens. */
  jwtExp?: boolean;
  /** HTTP status of a refused login (Kit may say success:false with 200). Default 200. */
  loginFailureStatus?: number;
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: IncomingMessage['headers'];
  body: string;
  at: number;
}

type Signature = 'valid' | 'bearer' | 'upper' | 'bad' | 'none';

interface Rejection {
  error: string;
  code: number;
  status?: number;
}

export class FakeKit {
  /** Customer events Kit accepted, in arrival order. */
  readonly events: unknown[] = [];
  /** Every request, in arrival order. */
  readonly requests: RecordedRequest[] = [];
  logins = 0;
  refreshes = 0;
  /** Added to every answer, ms. */
  latencyMs = 0;
  private server?: Server;
  private base = '';
  private readonly access = new Map<string, number>();
  private readonly refreshTokens = new Map<string, number>();
  private outageLeft = 0;
  private rateLimit?: { left: number; retryAfter: number };
  private rejections: Rejection[] = [];
  private waiters: (() => void)[] = [];

  constructor(readonly options: FakeKitOptions) {}

  get url(): string {
    if (!this.base) throw new Error('FakeKit is not started');
    return this.base;
  }

  async start(port = 0): Promise<{ url: string }> {
    const server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    this.server = server;
    this.base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    return { url: this.base };
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  // ---------------------------------------------------------------- knobs

  /** 503 to the next `n` requests, or to all until 'off'. */
  outage(n: number | 'on' | 'off'): void {
    this.outageLeft = n === 'on' ? Number.POSITIVE_INFINITY : n === 'off' ? 0 : n;
  }

  /** 429 with Retry-After to the next `n` requests. */
  rateLimited(n: number, retryAfterSeconds: number): void {
    this.rateLimit = { left: n, retryAfter: retryAfterSeconds };
  }

  /** The next `n` events are refused: success:false (HTTP 200 unless `status` is given). */
  rejectNext(n: number, r: Rejection): void {
    for (let i = 0; i < n; i++) this.rejections.push(r);
  }

  /** Every access token issued so far stops working (HTTP 401 on events). */
  expireAccessTokens(): void {
    this.access.clear();
  }

  /** Resolves once `n` events have been accepted in total. */
  waitForEvents(n: number, timeoutMs = 10_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.events.length < n) return false;
        clearTimeout(timer);
        resolve();
        return true;
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== watcher);
        reject(new Error(`FakeKit: ${this.events.length} of ${n} events after ${timeoutMs} ms`));
      }, timeoutMs);
      const watcher = () => {
        if (check()) this.waiters = this.waiters.filter((w) => w !== watcher);
      };
      if (!check()) this.waiters.push(watcher);
    });
  }

  // ---------------------------------------------------------------- callbacks to a connector

  /** The Authorization value Kit sends for this event (or for the test request). */
  signatureFor(eventId?: string): string {
    const { salt, apiToken } = this.options;
    const input = eventId === undefined ? `${salt}:${apiToken}` : `${salt}:${apiToken}:${eventId}`;
    return createHash('md5').update(input).digest('hex');
  }

  /** An agent's send_message callback with a fresh event_id. */
  agentMessage(
    clientId: string,
    m: { text?: string; payload?: unknown[]; sender?: Record<string, unknown> } = {},
  ): Record<string, unknown> {
    return {
      client_data: { client_id: clientId },
      event_id: randomUUID(),
      event_type: 'send_message',
      event_data: {
        sender_data: { sender_id: 7, sender_type: 'agent', is_bot: false, ...m.sender },
        message: { message_id: randomUUID(), ...(m.text !== undefined ? { text: m.text } : {}), payload: m.payload ?? [] },
      },
    };
  }

  /** A close_conversation callback with a fresh event_id. */
  closeConversation(clientId: string, reason = 'CLOSED_BY_AGENT'): Record<string, unknown> {
    return {
      client_data: { client_id: clientId },
      event_id: randomUUID(),
      event_type: 'close_conversation',
      event_data: { close_reason: reason, sender_data: reason === 'CLOSED_BY_AGENT' ? { sender_id: 7 } : null },
    };
  }

  /** POSTs a callback as Kit does, signed as asked (default: correctly). */
  async sendCallback(
    url: string,
    body: Record<string, unknown>,
    opts: { signature?: Signature } = {},
  ): Promise<{ status: number; body: string }> {
    const good = this.signatureFor(String(body.event_id));
    const auth = signatureHeader(opts.signature ?? 'valid', good);
    const r = await request(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(auth ? { authorization: auth } : {}) },
      body: JSON.stringify(body),
    });
    return { status: r.statusCode, body: await r.body.text() };
  }

  /** The request Kit sends when a channel's Callback URL is saved: signed MD5(salt:token), no event. */
  async sendTestRequest(url: string, method: 'GET' | 'POST' = 'POST'): Promise<{ status: number; body: string }> {
    const r = await request(url, {
      method,
      headers: { authorization: this.signatureFor(), ...(method === 'POST' ? { 'content-type': 'application/json' } : {}) },
      ...(method === 'POST' ? { body: '{}' } : {}),
    });
    return { status: r.statusCode, body: await r.body.text() };
  }

  // ---------------------------------------------------------------- the server

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const url = new URL(req.url ?? '/', 'http://x');
    const rec: RecordedRequest = {
      method: req.method ?? 'GET',
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers: req.headers,
      body: Buffer.concat(chunks).toString('utf8'),
      at: Date.now(),
    };
    this.requests.push(rec);
    if (this.latencyMs) await new Promise((r) => setTimeout(r, this.latencyMs));

    if (this.outageLeft > 0) {
      this.outageLeft--;
      return send(res, 503, { success: false, result: { error: 'Service Unavailable', code: 503 } });
    }
    if (this.rateLimit && this.rateLimit.left > 0) {
      this.rateLimit.left--;
      return send(res, 429, { success: false, result: { error: 'Too Many Requests', code: 429 } }, {
        'retry-after': String(this.rateLimit.retryAfter),
      });
    }
    if (rec.method !== 'POST') return send(res, 405, { success: false, result: { error: 'Method Not Allowed', code: 405 } });
    if (rec.path === '/api/v3/botService/login') return this.login(rec, res);
    if (rec.path === '/api/v3/botService/refreshToken') return this.refresh(rec, res);
    if (rec.path === `/${this.options.channelUuid}`) return this.event(rec, res);
    return send(res, 404, { success: false, result: { error: 'Not Found', code: 404 } });
  }

  private login(rec: RecordedRequest, res: ServerResponse): void {
    const form = new URLSearchParams(rec.body);
    const o = this.options;
    if (rec.query.domain !== o.account || rec.query.access_token !== o.apiToken || form.get('channel_uuid') !== o.channelUuid) {
      return send(res, o.loginFailureStatus ?? 200, { success: false, result: { error: 'Invalid credentials', code: 401 } });
    }
    this.logins++;
    send(res, 200, { success: true, result: this.issue() });
  }

  private refresh(rec: RecordedRequest, res: ServerResponse): void {
    const token = new URLSearchParams(rec.body).get('refresh_token') ?? '';
    const until = this.refreshTokens.get(token);
    if (until === undefined || until < Date.now()) {
      return send(res, 200, { success: false, result: { error: 'Invalid refresh token', code: 401 } });
    }
    this.refreshTokens.delete(token);
    this.refreshes++;
    send(res, 200, { success: true, result: this.issue() });
  }

  private event(rec: RecordedRequest, res: ServerResponse): void {
    const bearer = /^Bearer (.+)$/.exec(String(rec.headers.authorization ?? ''))?.[1] ?? '';
    const until = this.access.get(bearer);
    if (until === undefined || until < Date.now()) {
      return send(res, 401, { success: false, result: { error: 'Unauthorized', code: 401 } });
    }
    let body: unknown;
    try {
      body = JSON.parse(rec.body);
    } catch {
      return send(res, 400, { success: false, result: { error: 'Bad JSON', code: 400 } });
    }
    const r = this.rejections.shift();
    if (r) return send(res, r.status ?? 200, { success: false, result: { error: r.error, code: r.code } });
    this.events.push(body);
    send(res, 200, { success: true, result: true });
    for (const w of [...this.waiters]) w();
  }

  private issue(): { access_token: string; refresh_token: string } {
    const accessTtl = (this.options.accessTtlSeconds ?? 900) * 1000;
    const exp = Math.floor((Date.now() + accessTtl) / 1000);
    const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const access =
      this.options.jwtExp === false
        ? randomBytes(24).toString('hex')
        : `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ exp, jti: randomUUID() })}.${randomBytes(16).toString('base64url')}`;
    const refresh = randomBytes(24).toString('hex');
    this.access.set(access, Date.now() + accessTtl);
    this.refreshTokens.set(refresh, Date.now() + (this.options.refreshTtlSeconds ?? 86_400) * 1000);
    return { access_token: access, refresh_token: refresh };
  }
}

function signatureHeader(kind: Signature, good: string): string | undefined {
  switch (kind) {
    case 'valid':
      return good;
    case 'bearer':
      return `Bearer ${good}`;
    case 'upper':
      return good.toUpperCase();
    case 'bad':
      return createHash('md5').update('not-the-salt').digest('hex');
    case 'none':
      return undefined;
  }
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const s = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(s), ...headers });
  res.end(s);
}
