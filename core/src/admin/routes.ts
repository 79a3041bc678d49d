/**
 * The operator page at /admin, on the bridge's one HTTP server; registered only
 * when KITBRIDGE_ADMIN_TOKEN is set (else every /admin path is a 404).
 *
 *   GET  /admin              the page (the login form without a credential)
 *   GET  /admin/panel        its live part, as an HTML fragment (admin.js polls it)
 *   GET  /admin/status.json  the same as JSON, for scripts
 *   GET  /admin/admin.js, /admin/admin.css
 *   POST /admin/login        token=... -> session cookie
 *   POST /admin/logout
 *   POST /admin/retry        id=<n>|all-dead: what `kitbridge outbox retry` does
 *   POST /admin/drop         id=<n>: what `kitbridge outbox drop` does
 *
 * Every answer but the login form needs the token: a session cookie or
 * `Authorization: Bearer`. POSTs must also come from this origin (403), and
 * bodies are small forms (413, 415, 400). A refused request changes nothing.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpError, pathOf, type RouteHandler, type Router, readBody } from '../http/router.js';
import { type Logger, quote } from '../logger.js';
import type { Store } from '../store/store.js';
import { ADMIN_CSS, ADMIN_JS } from './assets.js';
import { AdminAuth, type Credential } from './auth.js';
import { dashboardPage, loginPage, panel } from './page.js';
import { type AdminStatus, readView } from './view.js';

/** Largest form body, bytes: an id or a token fits many times over. */
export const ADMIN_BODY_LIMIT_BYTES = 4 * 1024;

/**
 * Every admin answer carries these: no inline script or style, no framing, no
 * caching, no referrer to other sites. (`no-referrer` would not do: with it a
 * browser sends `Origin: null` on the page's own POSTs, and they fail the origin check.)
 */
const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'same-origin',
  'cache-control': 'no-store',
};

export interface AdminRouteOptions {
  /** KITBRIDGE_ADMIN_TOKEN. Must not be logged, rendered or put in a URL. */
  token: string;
  store: Store;
  /** The bridge's connection state (what `/readyz` reports). */
  status: () => AdminStatus;
  /** Tells the running outboxes that items were revived, so they are claimed now, not at the next poll. */
  wakeUp: () => void;
  /** KITBRIDGE_PUBLIC_URL: its origin is accepted as this page's own. */
  publicUrl: string;
  /** Values never rendered (payload excerpts and reasons are scrubbed of them). */
  secrets: readonly string[];
  logger: Logger;
  sessionTtlMs?: number;
  now?: () => number;
}

/**
 * Adds the /admin routes to the router. Call it once per router, and only with
 * a token that passed the config's validation: the routes are the whole guard.
 */
export function addAdminRoutes(router: Router, o: AdminRouteOptions): void {
  const now = o.now ?? Date.now;
  const auth = new AdminAuth({
    token: o.token,
    publicUrl: o.publicUrl,
    now,
    ...(o.sessionTtlMs !== undefined ? { sessionTtlMs: o.sessionTtlMs } : {}),
  });
  const view = () => readView({ store: o.store, status: o.status, secrets: [...o.secrets, o.token], now });
  const log = o.logger;

  /** A handler that answers errors itself, with the security headers. */
  const route = (handler: RouteHandler): RouteHandler => {
    return async (req, res) => {
      try {
        await handler(req, res);
      } catch (err) {
        if (!(err instanceof HttpError) || res.headersSent) throw err;
        send(res, err.status, 'text/plain; charset=utf-8', err.message);
      }
    };
  };
  const crossOrigin = (req: IncomingMessage): HttpError => {
    req.resume();
    log.warn(
      {
        path: pathOf(req.url),
        origin: quote(req.headers.origin ?? ''),
        site: quote(req.headers['sec-fetch-site'] ?? ''),
      },
      'admin: cross-origin request refused',
    );
    return new HttpError(403, 'Forbidden: not from this origin');
  };
  /** Reading needs a credential. */
  const reader = (handler: (req: IncomingMessage, res: ServerResponse) => Promise<void>) =>
    route(async (req, res) => {
      if (!auth.credential(req)) throw unauthorized();
      await handler(req, res);
    });
  /** Acting needs a credential, this origin, and a small form. */
  const action = (
    handler: (
      form: URLSearchParams,
      credential: Credential,
      req: IncomingMessage,
      res: ServerResponse,
    ) => Promise<void>,
  ) =>
    route(async (req, res) => {
      const credential = auth.credential(req);
      if (!auth.sameOrigin(req, credential)) throw crossOrigin(req);
      if (!credential) {
        req.resume();
        throw unauthorized();
      }
      await handler(await readForm(req), credential, req, res);
    });

  router.add(
    'GET',
    '/admin',
    route(async (req, res) => {
      if (!auth.credential(req)) {
        // A script whose Bearer token is wrong gets a 401, not a form it cannot fill in.
        if (req.headers.authorization !== undefined) throw unauthorized();
        return send(res, 200, HTML, loginPage(false));
      }
      send(res, 200, HTML, dashboardPage(await view()));
    }),
  );
  router.add(
    'GET',
    '/admin/panel',
    reader(async (_req, res) => send(res, 200, HTML, panel(await view()).text)),
  );
  router.add(
    'GET',
    '/admin/status.json',
    reader(async (_req, res) => send(res, 200, JSON_TYPE, JSON.stringify(await view()))),
  );
  router.add(
    'GET',
    '/admin/admin.js',
    reader(async (_req, res) => send(res, 200, 'text/javascript; charset=utf-8', ADMIN_JS)),
  );
  router.add(
    'GET',
    '/admin/admin.css',
    reader(async (_req, res) => send(res, 200, 'text/css; charset=utf-8', ADMIN_CSS)),
  );

  router.add(
    'POST',
    '/admin/login',
    route(async (req, res) => {
      if (!auth.sameOrigin(req, undefined)) throw crossOrigin(req);
      const token = (await readForm(req)).get('token') ?? '';
      if (!auth.isToken(token)) {
        log.warn({ source: req.socket.remoteAddress }, 'admin: login refused (wrong token)');
        return send(res, 401, HTML, loginPage(true));
      }
      log.info({ source: req.socket.remoteAddress }, 'admin: logged in');
      redirect(res, { 'set-cookie': auth.login(AdminAuth.isHttps(req)) });
    }),
  );
  router.add(
    'POST',
    '/admin/logout',
    action(async (_form, _credential, req, res) => {
      redirect(res, { 'set-cookie': auth.logout(req, AdminAuth.isHttps(req)) });
    }),
  );
  router.add(
    'POST',
    '/admin/retry',
    action(async (form, credential, req, res) => {
      const id = form.get('id');
      const ids = id === 'all-dead' ? 'all-dead' : [parseId(id)];
      const revived = await o.store.revive(ids, now());
      if (revived > 0) o.wakeUp();
      log.info({ ids, revived, source: req.socket.remoteAddress }, 'admin: retry');
      answer(res, credential, revived > 0 || ids === 'all-dead', { revived });
    }),
  );
  router.add(
    'POST',
    '/admin/drop',
    action(async (form, credential, req, res) => {
      const id = parseId(form.get('id'));
      const dropped = await o.store.drop(id);
      // A dropped head lets its client's next item go; the outbox learns of it now.
      if (dropped) o.wakeUp();
      log.info({ id, dropped, source: req.socket.remoteAddress }, 'admin: drop');
      answer(res, credential, dropped, { dropped });
    }),
  );
}

const HTML = 'text/html; charset=utf-8';
const JSON_TYPE = 'application/json';

function send(
  res: ServerResponse,
  status: number,
  type: string,
  body: string,
  extra: Record<string, string> = {},
) {
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    'content-type': type,
    'content-length': Buffer.byteLength(body),
    ...extra,
  });
  res.end(body);
}

/** Back to the page (the browser then shows what changed). */
function redirect(res: ServerResponse, extra: Record<string, string> = {}): void {
  send(res, 303, 'text/plain; charset=utf-8', 'See /admin', { location: '/admin', ...extra });
}

/** A browser goes back to the page; a script gets JSON, 404 when the item was not there. */
function answer(res: ServerResponse, credential: Credential, found: boolean, body: object): void {
  if (credential === 'session') redirect(res);
  else send(res, found ? 200 : 404, JSON_TYPE, JSON.stringify(body));
}

function unauthorized(): HttpError {
  return new HttpError(
    401,
    'Unauthorized: log in at /admin, or send Authorization: Bearer <KITBRIDGE_ADMIN_TOKEN>',
  );
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') {
    req.resume();
    throw new HttpError(415, 'expected a form body (application/x-www-form-urlencoded)');
  }
  const raw = await readBody(req, ADMIN_BODY_LIMIT_BYTES);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(raw);
  } catch {
    throw new HttpError(400, 'form body is not UTF-8');
  }
  return new URLSearchParams(text);
}

function parseId(v: string | null): number {
  const n = Number(v);
  if (!v || !/^\d+$/.test(v) || !Number.isSafeInteger(n) || n <= 0)
    throw new HttpError(400, 'expected id: an item id (a positive whole number) or all-dead');
  return n;
}
