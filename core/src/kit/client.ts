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
import { silentLogger } from '../logger.js';
import { type BackoffOptions, backoffDelay, parseRetryAfter, sleep } from '../retry.js';
import {
  ACCESS_TOKEN_FALLBACK_TTL_MS,
  REFRESH_AT_FRACTION,
  REFRESH_TOKEN_MAX_AGE_MS,
} from './decisions.js';
import { KitAuthError, KitError, KitRejectedError, KitUnavailableError } from './errors.js';
import { jwtExpiryMs } from './jwt.js';
import {
  type CustomerEvent,
  CustomerEventSchema,
  ErrorResponseSchema,
  LoginResponseSchema,
  SendResponseSchema,
  describeZodError,
} from './schemas.js';

export interface KitClientOptions {
  /** e.g. https://kit-im-eu.voximplant.com (no trailing slash) */
  baseUrl: string;
  account: string;
  apiToken: string;
  channelUuid: string;
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
  now?: () => number;
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
  private readonly logger: Logger;
  private readonly now: () => number;
  private session?: Session;
  private inFlight?: Promise<Session>;
  private authFailed = false;

  constructor(readonly options: KitClientOptions) {
    this.logger = options.logger ?? silentLogger;
    this.now = options.now ?? Date.now;
    this.pool = new Pool(options.baseUrl, {
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
    await this.single(() => this.doLogin(signal));
  }

  /** Posts one customer event. Resolves when Kit answered success. */
  async send(event: CustomerEvent, signal?: AbortSignal): Promise<void> {
    const checked = CustomerEventSchema.safeParse(event);
    if (!checked.success) throw new KitRejectedError(`event is not valid: ${describeZodError(checked.error)}`);
    const body = JSON.stringify(event);
    let session = await this.validSession(signal);
    let reauthed = false;
    for (;;) {
      const reply = await this.withRetries('send event', signal, () =>
        this.call('POST', `/${encodeURIComponent(this.options.channelUuid)}`, body, 'application/json', session.access),
      );
      if (reply.status === 401 && !reauthed) {
        // The token died early (revoked, clock skew): refresh once, retry once.
        reauthed = true;
        this.logger.debug('Kit answered 401 to an event; refreshing the token');
        session = await this.single(() => this.doRefreshOrLogin(session, signal));
        continue;
      }
      if (reply.status === 401) throw new KitAuthError('Kit refused the access token right after a refresh', { status: 401 });
      if (reply.status >= 400) throw rejected('Kit rejected the event', reply);
      if (SendResponseSchema.safeParse(reply.json).success) return;
      throw rejected('Kit rejected the event', reply);
    }
  }

  async close(): Promise<void> {
    await this.pool.close();
  }

  // ---------------------------------------------------------------- sessions

  private async validSession(signal?: AbortSignal): Promise<Session> {
    const s = this.session;
    if (s && this.now() < s.refreshAt) return s;
    return this.single(() => (s ? this.doRefreshOrLogin(s, signal) : this.doLogin(signal)));
  }

  /** Runs one login/refresh at a time; concurrent callers share it. */
  private single(task: () => Promise<Session>): Promise<Session> {
    this.inFlight ??= task().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  private async doRefreshOrLogin(old: Session, signal?: AbortSignal): Promise<Session> {
    // Someone else may have refreshed while we waited for our turn.
    if (this.session && this.session !== old && this.now() < this.session.refreshAt) return this.session;
    if (this.now() - old.refreshIssuedAt >= REFRESH_TOKEN_MAX_AGE_MS) return this.doLogin(signal);
    try {
      return await this.doRefresh(old, signal);
    } catch (err) {
      if (err instanceof KitUnavailableError) throw err;
      this.logger.info({ reason: (err as Error).message }, 'Kit token refresh failed; logging in again');
      return this.doLogin(signal);
    }
  }

  private async doLogin(signal?: AbortSignal): Promise<Session> {
    const { account, apiToken, channelUuid } = this.options;
    const path = `/api/v3/botService/login?domain=${encodeURIComponent(account)}&access_token=${encodeURIComponent(apiToken)}`;
    const body = new URLSearchParams({ channel_uuid: channelUuid }).toString();
    const reply = await this.withRetries('login', signal, () =>
      this.call('POST', path, body, 'application/x-www-form-urlencoded'),
    );
    const session = this.toSession(reply, 'login');
    this.logger.debug({ expiresInS: Math.round((session.expiresAt - this.now()) / 1000) }, 'logged in to Kit');
    return session;
  }

  private async doRefresh(old: Session, signal?: AbortSignal): Promise<Session> {
    const body = new URLSearchParams({ refresh_token: old.refresh }).toString();
    const reply = await this.withRetries('refresh', signal, () =>
      this.call('POST', '/api/v3/botService/refreshToken', body, 'application/x-www-form-urlencoded'),
    );
    const session = this.toSession(reply, 'refresh');
    this.logger.debug('refreshed the Kit token');
    return session;
  }

  private toSession(reply: Reply, what: 'login' | 'refresh'): Session {
    const ok = LoginResponseSchema.safeParse(reply.json);
    if (reply.status < 400 && ok.success) {
      const now = this.now();
      const access = ok.data.result.access_token;
      const expiresAt = jwtExpiryMs(access) ?? now + ACCESS_TOKEN_FALLBACK_TTL_MS;
      const session: Session = {
        access,
        refresh: ok.data.result.refresh_token,
        expiresAt,
        refreshAt: now + Math.max(0, expiresAt - now) * REFRESH_AT_FRACTION,
        refreshIssuedAt: now,
      };
      this.session = session;
      this.authFailed = false;
      return session;
    }
    if (what === 'login') this.authFailed = true;
    const err = rejected(what === 'login' ? 'Kit refused the login' : 'Kit refused the token refresh', reply);
    throw new KitAuthError(err.message, err.details);
  }

  // ---------------------------------------------------------------- HTTP

  /**
   * Retries network errors, timeouts, 5xx and 429 with backoff (at least the
   * Retry-After Kit asked for); returns any other answer to the caller.
   */
  private async withRetries(what: string, signal: AbortSignal | undefined, attempt: () => Promise<Reply>): Promise<Reply> {
    const max = this.options.maxAttempts ?? 3;
    const backoff = this.options.backoff ?? { baseMs: 300, maxMs: 10_000 };
    const maxRetryAfter = this.options.maxRetryAfterMs ?? 30_000;
    for (let n = 1; ; n++) {
      let failure: KitUnavailableError;
      try {
        const reply = await attempt();
        if (reply.status < 500 && reply.status !== 429) return reply;
        failure = unavailable(`Kit answered ${reply.status} to ${what}`, reply);
      } catch (err) {
        if (err instanceof KitError) throw err;
        failure = new KitUnavailableError(`Kit unreachable (${what}): ${networkReason(err)}`);
      }
      const wait = Math.max(backoffDelay(n, backoff), failure.retryAfterMs ?? 0);
      if (n >= max || wait > maxRetryAfter || signal?.aborted) throw failure;
      this.logger.warn({ attempt: n, retryInMs: wait, reason: failure.message }, 'Kit call failed; retrying');
      await sleep(wait, signal).catch(() => {
        throw failure;
      });
    }
  }

  private async call(method: 'POST', path: string, body: string, contentType: string, bearer?: string): Promise<Reply> {
    const headers: Record<string, string> = { 'content-type': contentType, accept: 'application/json' };
    if (bearer) headers.authorization = `Bearer ${bearer}`;
    const r = await this.pool.request({ method, path, body, headers });
    const text = await r.body.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status: r.statusCode, headers: r.headers, json };
  }
}

// ---------------------------------------------------------------- error helpers

function kitDetails(reply: Reply): { status: number; kitError?: string; kitCode?: string | number } {
  const e = ErrorResponseSchema.safeParse(reply.json);
  const result = e.success ? e.data.result : undefined;
  return {
    status: reply.status,
    ...(result?.error ? { kitError: result.error } : {}),
    ...(result?.code !== undefined ? { kitCode: result.code } : {}),
  };
}

function rejected(prefix: string, reply: Reply): KitRejectedError {
  const d = kitDetails(reply);
  const said = d.kitError ? `: ${d.kitError}${d.kitCode !== undefined ? ` (code ${d.kitCode})` : ''}` : '';
  return new KitRejectedError(`${prefix} (HTTP ${reply.status})${said}`, d);
}

function unavailable(message: string, reply: Reply): KitUnavailableError {
  const err = new KitUnavailableError(message, kitDetails(reply));
  const ra = parseRetryAfter(reply.headers['retry-after']);
  if (ra !== undefined) err.retryAfterMs = ra;
  return err;
}

/** undici errors carry the request URL in places; keep only what cannot hold a token. */
function networkReason(err: unknown): string {
  const e = err as { code?: string; name?: string };
  return e.code ?? e.name ?? 'network error';
}
