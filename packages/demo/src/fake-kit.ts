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
  /** Clock for token expiry and `exp`, ms since the epoch. Default Date.now. */
  now?: () => number;
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: IncomingMessage['headers'];
  /** Raw body as received. */
  body: string;
  /** Real arrival time (Date.now), also when a clock override is set. */
  at: number;
}

/** How {@link FakeKit.sendCallback} signs: correctly (raw lower hex), `Bearer `-prefixed, upper-case hex, wrongly, or not at all. */
export type CallbackSignature = 'valid' | 'bearer' | 'upper' | 'bad' | 'none';

/** A refusal of the next event(s): Kit's error shape, HTTP 200 unless `status` is given. */
export interface KitRejection {
  error: string;
  code: number | string;
  status?: number;
}

/** What a connector answered to a callback. */
export interface CallbackReply {
  status: number;
  body: string;
}

/**
 * The Kit messaging API (login, refresh, `POST /{channel_uuid}`) on 127.0.0.1,
 * recording every request, plus the callbacks Kit sends to a connector.
 */
export class FakeKit {
  /** Customer events Kit accepted (parsed bodies), in arrival order. */
  readonly events: unknown[] = [];
  /** Every request, in arrival order. */
  readonly requests: RecordedRequest[] = [];
  /** Successful logins. */
  logins = 0;
  /** Successful refreshes. */
  refreshes = 0;
  /** Added before every answer, ms. */
  latencyMs = 0;
  /** Clock for token expiry; replace it to age tokens without waiting. */
  now: () => number;
  private server?: Server;
  private base = '';
  private readonly access = new Map<string, number>();
  private readonly refreshTokens = new Map<string, number>();
  private outageLeft = 0;
  private limit?: { left: number; retryAfter: number };
  private rejections: KitRejection[] = [];
  private waiters: (() => void)[] = [];

  constructor(readonly options: FakeKitOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Base URL, e.g. http://127.0.0.1:PORT (after start). */
  get url(): string {
    if (!this.base) throw new Error('FakeKit is not started');
    return this.base;
  }

  /** Listens on 127.0.0.1 (port 0: a free one). */
  async start(port = 0): Promise<{ url: string }> {
    const server = createServer((req, res) => {
      this.handle(req, res).catch(() => {
        // The client went away mid-request: nothing to answer.
        res.destroy();
      });
    });
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

  /** 429 with `Retry-After: retryAfterSeconds` to the next `n` requests. */
  rateLimit(n: number, retryAfterSeconds: number): void {
    this.limit = { left: n, retryAfter: retryAfterSeconds };
  }

  /** @deprecated Use {@link rateLimit}. */
  rateLimited(n: number, retryAfterSeconds: number): void {
    this.rateLimit(n, retryAfterSeconds);
  }

  /** The next `n` events are refused: success:false (HTTP 200 unless `status` is given). */
  rejectNext(n: number, r: KitRejection): void {
    for (let i = 0; i < n; i++) this.rejections.push(r);
  }

  /** Every access token issued so far stops working (HTTP 401 on events). */
  expireAccessTokens(): void {
    this.access.clear();
  }

  /** Every refresh token issued so far stops working (refresh answers success:false). */
  expireRefreshTokens(): void {
    this.refreshTokens.clear();
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
        message: {
          message_id: randomUUID(),
          ...(m.text !== undefined ? { text: m.text } : {}),
          payload: m.payload ?? [],
        },
      },
    };
  }

  /** A close_conversation callback with a fresh event_id. */
  closeConversation(clientId: string, reason = 'CLOSED_BY_AGENT'): Record<string, unknown> {
    return {
      client_data: { client_id: clientId },
      event_id: randomUUID(),
      event_type: 'close_conversation',
      event_data: {
        close_reason: reason,
        sender_data: reason === 'CLOSED_BY_AGENT' ? { sender_id: 7 } : null,
      },
    };
  }

  /** POSTs a callback as Kit does, signed as asked (default: correctly). */
  async sendCallback(
    url: string,
    body: Record<string, unknown>,
    opts: { signature?: CallbackSignature } = {},
  ): Promise<CallbackReply> {
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
  async sendTestRequest(url: string, method: 'GET' | 'POST' = 'POST'): Promise<CallbackReply> {
    const r = await request(url, {
      method,
      headers: {
        authorization: this.signatureFor(),
        ...(method === 'POST' ? { 'content-type': 'application/json' } : {}),
      },
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
    if (this.limit && this.limit.left > 0) {
      this.limit.left--;
      return send(
        res,
        429,
        { success: false, result: { error: 'Too Many Requests', code: 429 } },
        {
          'retry-after': String(this.limit.retryAfter),
        },
      );
    }
    if (rec.method !== 'POST')
      return send(res, 405, { success: false, result: { error: 'Method Not Allowed', code: 405 } });
    if (rec.path === '/api/v3/botService/login') return this.login(rec, res);
    if (rec.path === '/api/v3/botService/refreshToken') return this.refresh(rec, res);
    if (rec.path === `/${this.options.channelUuid}`) return this.event(rec, res);
    return send(res, 404, { success: false, result: { error: 'Not Found', code: 404 } });
  }

  private login(rec: RecordedRequest, res: ServerResponse) {
    const form = new URLSearchParams(rec.body);
    const o = this.options;
    if (
      rec.query.domain !== o.account ||
      rec.query.access_token !== o.apiToken ||
      form.get('channel_uuid') !== o.channelUuid
    ) {
      return send(res, o.loginFailureStatus ?? 200, {
        success: false,
        result: { error: 'Invalid credentials', code: 401 },
      });
    }
    this.logins++;
    send(res, 200, { success: true, result: this.issue() });
  }

  private refresh(rec: RecordedRequest, res: ServerResponse) {
    const token = new URLSearchParams(rec.body).get('refresh_token') ?? '';
    const until = this.refreshTokens.get(token);
    if (until === undefined || until <= this.now()) {
      return send(res, 200, { success: false, result: { error: 'Invalid refresh token', code: 401 } });
    }
    this.refreshTokens.delete(token);
    this.refreshes++;
    send(res, 200, { success: true, result: this.issue() });
  }

  private event(rec: RecordedRequest, res: ServerResponse) {
    const bearer = /^Bearer (.+)$/.exec(String(rec.headers.authorization ?? ''))?.[1] ?? '';
    const until = this.access.get(bearer);
    if (until === undefined || until <= this.now()) {
      return send(res, 401, { success: false, result: { error: 'Unauthorized', code: 401 } });
    }
    let body: unknown;
    try {
      body = JSON.parse(rec.body);
    } catch {
      return send(res, 400, { success: false, result: { error: 'Bad JSON', code: 400 } });
    }
    const problem = eventProblem(body);
    if (problem) return send(res, 400, { success: false, result: { error: problem, code: 400 } });
    const r = this.rejections.shift();
    if (r) return send(res, r.status ?? 200, { success: false, result: { error: r.error, code: r.code } });
    this.events.push(body);
    send(res, 200, { success: true, result: true });
    for (const w of [...this.waiters]) w();
  }

  private issue(): { access_token: string; refresh_token: string } {
    const now = this.now();
    const accessTtl = (this.options.accessTtlSeconds ?? 900) * 1000;
    const exp = Math.floor((now + accessTtl) / 1000);
    const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const claims = { sub: this.options.account, iat: Math.floor(now / 1000), exp, jti: randomUUID() };
    const access =
      this.options.jwtExp === false
        ? randomBytes(24).toString('hex')
        : `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}.${randomBytes(32).toString('base64url')}`;
    const refresh = randomBytes(24).toString('hex');
    this.access.set(access, now + accessTtl);
    this.refreshTokens.set(refresh, now + (this.options.refreshTtlSeconds ?? 86_400) * 1000);
    return { access_token: access, refresh_token: refresh };
  }
}

/** What Kit would refuse in a customer event: the fields the protocol marks REQUIRED. */
function eventProblem(body: unknown): string | undefined {
  const b = body as {
    client_data?: { client_id?: unknown };
    event_id?: unknown;
    event_type?: unknown;
    event_data?: { message?: { message_id?: unknown } };
  } | null;
  if (typeof b !== 'object' || b === null) return 'body is not an object';
  if (typeof b.client_data?.client_id !== 'string' || !b.client_data.client_id)
    return 'client_id is required';
  if (typeof b.event_id !== 'string' || !b.event_id) return 'event_id is required';
  if (b.event_type !== 'send_message') return 'unknown event_type';
  if (typeof b.event_data?.message?.message_id !== 'string') return 'message_id is required';
  return undefined;
}

function signatureHeader(kind: CallbackSignature, good: string): string | undefined {
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

function send(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const s = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(s),
    ...headers,
  });
  res.end(s);
}
