/**
 * KitClient: login, refresh and customer events, on one keep-alive undici Pool.
 *
 * Token lifecycle (kit-protocol.md §1-2): the access token's expiry comes from
 * its JWT `exp`, else 15 minutes; it is refreshed once REFRESH_AT_FRACTION of its
 * life has passed; one login or refresh is in flight at a time however many
 * sends wait on it; a failed refresh, or a refresh token near its 24 h, means a
 * new login; a 401 on send means one refresh and one retry.
 *
 * Errors never carry a token: the login URL has the API token in its query, so
 * undici's own errors are reduced to their code before they leave this file.
 */
import { Pool } from 'undici';
import type { Logger } from '../logger.js';
import { makeScrubber, silentLogger } from '../logger.js';
import type { KitMetrics } from '../metrics.js';
import { type BackoffOptions, backoffDelay, parseRetryAfter, sleep } from '../retry.js';
import { ACCESS_TOKEN_FALLBACK_TTL_MS, REFRESH_AT_FRACTION, REFRESH_TOKEN_MAX_AGE_MS } from './decisions.js';
import { KitAuthError, KitError, KitRejectedError, KitUnavailableError } from './errors.js';
import { jwtExpiryMs } from './jwt.js';
import {
  type CustomerEvent,
  CustomerEventSchema,
  describeZodError,
  ErrorResponseSchema,
  LoginResponseSchema,
  SendResponseSchema,
} from './schemas.js';

export interface KitClientOptions {
  /** Messaging API base, e.g. https://kit-im-eu.voximplant.com (a path prefix is kept). */
  baseUrl: string;
  /** Kit account name (the login's `domain`). */
  account: string;
  /** Kit API token; sent only in the login query, never logged or put into errors. */
  apiToken: string;
  /** The custom channel's UUID. */
  channelUuid: string;
  /** Debug lines for login/refresh, warnings on retries. Default: silent. */
  logger?: Logger;
  /** Default 5 s. */
  connectTimeoutMs?: number;
  /** Default 10 s. */
  headersTimeoutMs?: number;
  /** Default 10 s. */
  bodyTimeoutMs?: number;
  /** Attempts per call for retryable failures, including the first. Default 3. */
  maxAttempts?: number;
  /** Default 300 ms doubling up to 10 s, with jitter. */
  backoff?: BackoffOptions;
  /** Longest Retry-After we wait inside one call; a longer one goes back to the outbox. Default 30 s. */
  maxRetryAfterMs?: number;
  /** Keep-alive connections to Kit. Default 16. */
  connections?: number;
  /** Clock for the token lifecycle (tests). Default Date.now. */
  now?: () => number;
  /** Counts logins and refreshes by outcome. */
  metrics?: KitMetrics;
}

interface Session {
  access: string;
  refresh: string;
  /** When the access token stops working. */
  expiresAt: number;
  /** When to refresh it. */
  refreshAt: number;
  /** When the refresh token was issued. */
  refreshIssuedAt: number;
}

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  json: unknown;
}

export class KitClient {
  private readonly pool: Pool;
  /** Path of the base URL (normally empty), put before every request path. */
  private readonly prefix: string;
  private readonly logger: Logger;
  private readonly now: () => number;
  private session?: Session;
  private inFlight?: Promise<Session>;
  private authFailed = false;
  private closed = false;

  constructor(readonly options: KitClientOptions) {
    for (const key of ['baseUrl', 'account', 'apiToken', 'channelUuid'] as const) {
      if (typeof options[key] !== 'string' || !options[key].trim())
        throw new TypeError(`KitClient: option ${key} is required`);
    }
    let base: URL;
    try {
      base = new URL(options.baseUrl);
    } catch {
      throw new TypeError('KitClient: baseUrl is not a valid URL');
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:')
      throw new TypeError('KitClient: baseUrl must be http(s)');
    this.prefix = base.pathname.replace(/\/+$/, '');
    this.logger = options.logger ?? silentLogger;
    this.now = options.now ?? Date.now;
    this.pool = new Pool(base.origin, {
      connections: options.connections ?? 16,
      connect: { timeout: options.connectTimeoutMs ?? 5_000 },
      headersTimeout: options.headersTimeoutMs ?? 10_000,
      bodyTimeout: options.bodyTimeoutMs ?? 10_000,
      keepAliveTimeout: 30_000,
    });
  }

  /** True once a login succeeded and no auth failure has happened since. */
  get loggedIn(): boolean {
    return this.session !== undefined && !this.authFailed;
  }

  /** Logs in now (start-up check of the credentials). */
  async login(signal?: AbortSignal): Promise<void> {
    this.assertOpen();
    await this.single(() => this.doLogin(), signal);
  }

  /**
   * Posts one customer event, logging in or refreshing first when needed.
   * Resolves when Kit answered success; throws KitRejectedError (do not retry),
   * KitAuthError or KitUnavailableError (retry later, after `retryAfterMs` if set).
   *
   * `signal` (the outbox attempt's deadline, or stop) ends the waits and retries
   * here: a login or refresh in flight, a backoff sleep, the next retry. One HTTP
   * request is bounded by `headersTimeoutMs` and `bodyTimeoutMs` instead of being
   * handed the signal: undici's abort wiring costs tens of microseconds per
   * request, a large share of an event's cost on the hot path.
   */
  async send(event: CustomerEvent, signal?: AbortSignal): Promise<void> {
    const checked = CustomerEventSchema.safeParse(event);
    if (!checked.success)
      throw new KitRejectedError(`event is not valid: ${describeZodError(checked.error)}`);
    this.assertOpen();
    const body = JSON.stringify(event);
    const path = `${this.prefix}/${encodeURIComponent(this.options.channelUuid)}`;
    let session = await this.validSession(signal);
    let reauthed = false;
    for (;;) {
      const access = session.access;
      const reply = await this.withRetries(
        'send event',
        signal,
        () => this.call(path, body, 'application/json', undefined, access),
        { leg: 'inbound', clientId: event.client_data.client_id, eventId: event.event_id },
      );
      if (reply.status === 401 && !reauthed) {
        // The token died early (revoked, clock skew): refresh once, retry once.
        reauthed = true;
        this.logger.debug('Kit answered 401 to an event; refreshing the token');
        const old = session;
        session = await this.single(() => this.doRefreshOrLogin(old), signal);
        continue;
      }
      if (reply.status === 401)
        throw new KitAuthError('Kit refused the access token right after a refresh', { status: 401 });
      if (reply.status < 400 && SendResponseSchema.safeParse(reply.json).success) return;
      throw this.rejected('Kit rejected the event', reply);
    }
  }

  /** Closes the connection pool; later calls fail with KitUnavailableError. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.close();
  }

  private assertOpen(): void {
    if (this.closed) throw new KitUnavailableError('KitClient is closed');
  }

  // ---------------------------------------------------------------- sessions

  private async validSession(signal?: AbortSignal): Promise<Session> {
    const s = this.session;
    if (s && this.now() < s.refreshAt) return s;
    return this.single(() => (s ? this.doRefreshOrLogin(s) : this.doLogin()), signal);
  }

  /**
   * Runs one login/refresh at a time; concurrent callers share it. The shared
   * task ignores any one caller's signal (others still wait on it); each caller
   * stops waiting when its own signal aborts.
   */
  private single(task: () => Promise<Session>, signal?: AbortSignal): Promise<Session> {
    this.inFlight ??= task().finally(() => {
      this.inFlight = undefined;
    });
    return signal ? abortable(this.inFlight, signal) : this.inFlight;
  }

  private async doRefreshOrLogin(old: Session): Promise<Session> {
    // Someone else may have refreshed while we waited for our turn.
    if (this.session && this.session !== old && this.now() < this.session.refreshAt) return this.session;
    if (this.now() - old.refreshIssuedAt >= REFRESH_TOKEN_MAX_AGE_MS) {
      this.logger.debug('Kit refresh token is near its end of life; logging in again');
      return this.doLogin();
    }
    try {
      return await this.doRefresh(old);
    } catch (err) {
      if (err instanceof KitUnavailableError) throw err;
      this.logger.info({ reason: (err as Error).message }, 'Kit token refresh failed; logging in again');
      return this.doLogin();
    }
  }

  private async doLogin(): Promise<Session> {
    const { account, apiToken, channelUuid } = this.options;
    const path = `${this.prefix}/api/v3/botService/login?domain=${encodeURIComponent(account)}&access_token=${encodeURIComponent(apiToken)}`;
    const body = new URLSearchParams({ channel_uuid: channelUuid }).toString();
    this.logger.debug({ account }, 'logging in to Kit');
    const session = await this.counted('login', async () => {
      const reply = await this.withRetries('login', undefined, () =>
        this.call(path, body, 'application/x-www-form-urlencoded'),
      );
      return this.toSession(reply, 'login');
    });
    this.logger.debug(
      { expiresInS: Math.round((session.expiresAt - this.now()) / 1000) },
      'logged in to Kit',
    );
    return session;
  }

  private async doRefresh(old: Session): Promise<Session> {
    const body = new URLSearchParams({ refresh_token: old.refresh }).toString();
    const session = await this.counted('refresh', async () => {
      const reply = await this.withRetries('refresh', undefined, () =>
        this.call(`${this.prefix}/api/v3/botService/refreshToken`, body, 'application/x-www-form-urlencoded'),
      );
      return this.toSession(reply, 'refresh');
    });
    this.logger.debug(
      { expiresInS: Math.round((session.expiresAt - this.now()) / 1000) },
      'refreshed the Kit token',
    );
    return session;
  }

  /** Runs one login or refresh and counts how it ended. */
  private async counted(operation: 'login' | 'refresh', run: () => Promise<Session>): Promise<Session> {
    try {
      const session = await run();
      this.options.metrics?.auth(operation, 'success');
      return session;
    } catch (err) {
      this.options.metrics?.auth(operation, 'failure');
      throw err;
    }
  }

  private toSession(reply: Reply, what: 'login' | 'refresh'): Session {
    const ok = LoginResponseSchema.safeParse(reply.json);
    if (reply.status < 400 && ok.success) {
      const now = this.now();
      const access = ok.data.result.access_token;
      // A past or unreadable exp (clock skew, opaque token) falls back to Kit's documented 15 min.
      const exp = jwtExpiryMs(access);
      const expiresAt = exp !== undefined && exp > now ? exp : now + ACCESS_TOKEN_FALLBACK_TTL_MS;
      const session: Session = {
        access,
        refresh: ok.data.result.refresh_token,
        expiresAt,
        refreshAt: now + (expiresAt - now) * REFRESH_AT_FRACTION,
        refreshIssuedAt: now,
      };
      this.session = session;
      this.authFailed = false;
      return session;
    }
    if (what === 'login') this.authFailed = true;
    const err = this.rejected(
      what === 'login' ? 'Kit refused the login' : 'Kit refused the token refresh',
      reply,
    );
    throw new KitAuthError(err.message, err.details);
  }

  // ---------------------------------------------------------------- HTTP

  /**
   * Retries network errors, timeouts, 5xx and 429 with backoff (at least the
   * Retry-After Kit asked for); returns any other answer to the caller.
   */
  private async withRetries(
    what: string,
    signal: AbortSignal | undefined,
    attempt: () => Promise<Reply>,
    /** Put in the retry lines: which event this is (leg, clientId, eventId). */
    logFields?: Record<string, string>,
  ): Promise<Reply> {
    const max = this.options.maxAttempts ?? 3;
    const backoff = this.options.backoff ?? { baseMs: 300, maxMs: 10_000 };
    const maxRetryAfter = this.options.maxRetryAfterMs ?? 30_000;
    for (let n = 1; ; n++) {
      let failure: KitUnavailableError;
      try {
        const reply = await attempt();
        if (reply.status < 500 && reply.status !== 429) return reply;
        failure = this.unavailable(`Kit answered HTTP ${reply.status} to ${what}`, reply);
      } catch (err) {
        if (err instanceof KitError) throw err;
        const why = signal?.aborted ? 'aborted' : networkReason(err);
        failure = new KitUnavailableError(`Kit unreachable (${what}): ${why}`);
      }
      const wait = Math.max(backoffDelay(n, backoff), failure.retryAfterMs ?? 0);
      if (n >= max || wait > maxRetryAfter || signal?.aborted || this.closed) throw failure;
      this.logger.warn(
        { ...logFields, attempt: n, of: max, retryInMs: wait, reason: failure.message },
        'Kit call failed; retrying',
      );
      await sleep(wait, signal).catch(() => {
        throw failure;
      });
    }
  }

  private async call(
    path: string,
    body: string,
    contentType: string,
    signal?: AbortSignal,
    bearer?: string,
  ): Promise<Reply> {
    const headers: Record<string, string> = { 'content-type': contentType, accept: 'application/json' };
    if (bearer) headers.authorization = `Bearer ${bearer}`;
    const r = await this.pool.request({ method: 'POST', path, body, headers, signal });
    const text = await r.body.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status: r.statusCode, headers: r.headers, json };
  }

  // ---------------------------------------------------------------- errors

  /** Kit's own error text and code, with any of our secrets cut out in case Kit echoes one. */
  private kitDetails(reply: Reply): KitError['details'] {
    const e = ErrorResponseSchema.safeParse(reply.json);
    const result = e.success ? e.data.result : undefined;
    const scrub = makeScrubber([this.options.apiToken, this.session?.access, this.session?.refresh]);
    return {
      status: reply.status,
      ...(result?.error ? { kitError: scrub(result.error) } : {}),
      ...(result?.code !== undefined
        ? { kitCode: typeof result.code === 'string' ? scrub(result.code) : result.code }
        : {}),
    };
  }

  private rejected(prefix: string, reply: Reply): KitRejectedError {
    const d = this.kitDetails(reply);
    const code = d.kitCode !== undefined ? ` (code ${d.kitCode})` : '';
    const said = d.kitError ? `: ${d.kitError}${code}` : '';
    return new KitRejectedError(`${prefix} (HTTP ${reply.status})${said}`, d);
  }

  private unavailable(message: string, reply: Reply): KitUnavailableError {
    const d = this.kitDetails(reply);
    const err = new KitUnavailableError(d.kitError ? `${message}: ${d.kitError}` : message, d);
    const ra = parseRetryAfter(reply.headers['retry-after']);
    if (ra !== undefined) err.retryAfterMs = ra;
    return err;
  }
}

/** undici errors can quote the request URL (the login URL holds the API token): keep only the code. */
function networkReason(err: unknown): string {
  const e = err as { code?: unknown; name?: unknown };
  if (typeof e?.code === 'string') return e.code;
  return typeof e?.name === 'string' ? e.name : 'network error';
}

/** Waits for `p` unless `signal` aborts first; then rejects with KitUnavailableError. */
function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  const aborted = () => new KitUnavailableError('Kit login/refresh wait aborted');
  if (signal.aborted) return Promise.reject(aborted());
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(aborted());
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
