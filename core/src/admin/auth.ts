/**
 * Who may use the operator page: the holder of KITBRIDGE_ADMIN_TOKEN, by an
 * `Authorization: Bearer` header (scripts) or by a session cookie a login form
 * handed out (browsers). The token itself never travels in a URL or a cookie,
 * and actions from a browser must come from this origin.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/** The session cookie's name; scoped to /admin. */
export const SESSION_COOKIE = 'kitbridge_admin';
/** How long a session lasts from its login, ms. */
export const SESSION_TTL_MS = 8 * 60 * 60_000;
/** Sessions kept at once; the oldest goes first (only a token holder can make one). */
const MAX_SESSIONS = 100;

/** How a request proved it holds the token. */
export type Credential = 'bearer' | 'session';

export interface AdminAuthOptions {
  token: string;
  /** KITBRIDGE_PUBLIC_URL: its origin is always this page's own. */
  publicUrl: string;
  sessionTtlMs?: number;
  now?: () => number;
}

export class AdminAuth {
  private readonly digest: Buffer;
  /** Session id -> when it expires. In memory: a restart logs everyone out. */
  private readonly sessions = new Map<string, number>();
  private readonly publicOrigin: string;
  private readonly ttlMs: number;
  private readonly now: () => number;

  constructor(o: AdminAuthOptions) {
    this.digest = sha256(o.token);
    this.publicOrigin = new URL(o.publicUrl).origin;
    this.ttlMs = o.sessionTtlMs ?? SESSION_TTL_MS;
    this.now = o.now ?? Date.now;
  }

  /**
   * Constant-time comparison with the token (of equal-length digests, so the
   * length of a guess tells nothing either). Must not be given anything but
   * what the client sent: no trimming, no decoding.
   */
  isToken(candidate: string): boolean {
    return timingSafeEqual(sha256(candidate), this.digest);
  }

  /**
   * Which credential the request carries, if a valid one. A wrong Bearer token
   * is no credential even with a good cookie (a script's mistake must not ride
   * on a browser session). Must not be taken as a same-origin check.
   */
  credential(req: IncomingMessage): Credential | undefined {
    const auth = req.headers.authorization;
    if (auth !== undefined) {
      const m = /^Bearer (.+)$/i.exec(auth);
      return m && this.isToken(m[1]!) ? 'bearer' : undefined;
    }
    const id = cookieValue(req.headers.cookie, SESSION_COOKIE);
    if (id === undefined) return undefined;
    const expires = this.sessions.get(id);
    if (expires === undefined) return undefined;
    if (expires <= this.now()) {
      this.sessions.delete(id);
      return undefined;
    }
    return 'session';
  }

  /** A new session; returns its Set-Cookie header. Must not be called before {@link isToken} accepted the login. */
  login(secure: boolean): string {
    const now = this.now();
    for (const [id, expires] of this.sessions) if (expires <= now) this.sessions.delete(id);
    while (this.sessions.size >= MAX_SESSIONS) {
      const oldest = this.sessions.keys().next().value;
      if (oldest === undefined) break;
      this.sessions.delete(oldest);
    }
    const id = randomBytes(32).toString('base64url');
    this.sessions.set(id, now + this.ttlMs);
    return cookie(id, Math.floor(this.ttlMs / 1000), secure);
  }

  /** Ends the request's session, if any; returns the Set-Cookie header that clears it. */
  logout(req: IncomingMessage, secure: boolean): string {
    const id = cookieValue(req.headers.cookie, SESSION_COOKIE);
    if (id !== undefined) this.sessions.delete(id);
    return cookie('', 0, secure);
  }

  /**
   * Whether a state-changing request comes from this page, not from another
   * site: `Sec-Fetch-Site`, when sent, must be `same-origin`, and `Origin`,
   * when sent, must be this origin (as the Host header or KITBRIDGE_PUBLIC_URL
   * names it). A browser sends at least one of them with every POST, so a
   * cookie-carrying request without either is refused; a Bearer script sends none.
   */
  sameOrigin(req: IncomingMessage, credential: Credential | undefined): boolean {
    const site = req.headers['sec-fetch-site'];
    const origin = req.headers.origin;
    if (site === undefined && origin === undefined) return credential === 'bearer';
    if (site !== undefined && site !== 'same-origin') return false;
    if (origin === undefined) return true;
    return origin === this.publicOrigin || this.hostOrigins(req).includes(origin);
  }

  /** Whether the browser reached us over https (directly, or as a proxy in front says): cookies are Secure then. */
  static isHttps(req: IncomingMessage): boolean {
    const origin = req.headers.origin;
    if (origin?.startsWith('https://')) return true;
    const proto = req.headers['x-forwarded-proto'];
    const first = (Array.isArray(proto) ? proto[0] : proto)?.split(',')[0]?.trim();
    return first === 'https' || (req.socket as { encrypted?: boolean }).encrypted === true;
  }

  private hostOrigins(req: IncomingMessage): string[] {
    const host = req.headers.host;
    return host ? [`http://${host}`, `https://${host}`] : [];
  }
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

function cookie(value: string, maxAgeS: number, secure: boolean): string {
  return `${SESSION_COOKIE}=${value}; Path=/admin; Max-Age=${maxAgeS}; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`;
}

/** One cookie's value from a Cookie header: the first of that name (browsers send the most specific path first). */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
