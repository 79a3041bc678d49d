/**
 * The channel's Callback URL: `POST /kit/callback` (and the test request Kit
 * sends when the channel is saved, GET or POST without event_id).
 *
 * Order of checks, each answering before anything is stored: source allow-list
 * (403), body size (413), JSON and nesting depth (400), signature (401), schema
 * (400). A valid event is answered 200 only after the relay has persisted it (or
 * recognised it as a duplicate). A store outage answers 503 so Kit tries again;
 * an event that can never be stored (it fails the same way every time) is a 400,
 * so Kit does not retry it for ever.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpError, type RouteHandler, readBody, sendText } from '../http/router.js';
import { type Logger, quote } from '../logger.js';
import { CALLBACK_MAX_DEPTH } from './decisions.js';
import { type KitCallback, parseCallback } from './schemas.js';
import { verifySignature } from './signature.js';

export type CallbackOutcome = 'accepted' | 'duplicate' | 'ignored';

export interface CallbackRouteOptions {
  salt: string;
  /** The API token selected in the channel (the one kitbridge logs in with). */
  token: string;
  bodyLimit: number;
  /** Persists the event; resolves once it is safe to answer 200. */
  handle(callback: KitCallback): Promise<CallbackOutcome>;
  logger: Logger;
  /** When set, only these source addresses may call. */
  allowedIps?: readonly string[];
}

export function createCallbackRoute(opts: CallbackRouteOptions): RouteHandler {
  const allowed = opts.allowedIps?.length ? new Set(opts.allowedIps) : undefined;
  return async (req: IncomingMessage, res: ServerResponse) => {
    if (allowed && !allowed.has(normalizeIp(req.socket.remoteAddress))) {
      opts.logger.warn(
        { source: req.socket.remoteAddress },
        'kit callback from an address not in KITBRIDGE_KIT_ALLOWED_IPS',
      );
      return sendText(res, 403, 'Forbidden');
    }
    const auth = headerValue(req.headers.authorization);
    const raw = req.method === 'GET' ? Buffer.alloc(0) : await readBody(req, opts.bodyLimit);

    let body: unknown;
    if (raw.length > 0) {
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        // The test request's body is undocumented: a signed one is accepted whatever it holds.
        if (verifySignature(auth, opts.salt, opts.token)) return sendText(res, 200, 'OK');
        throw new HttpError(400, 'body is not valid JSON');
      }
      if (nestedDeeperThan(body, CALLBACK_MAX_DEPTH)) {
        opts.logger.warn({ maxDepth: CALLBACK_MAX_DEPTH }, 'kit callback nests too deep; refused');
        throw new HttpError(400, `body nests deeper than ${CALLBACK_MAX_DEPTH} levels`);
      }
    }
    const eventId = eventIdOf(body);
    if (eventId === undefined) {
      // The channel's test request: signed without an event id.
      if (!verifySignature(auth, opts.salt, opts.token)) {
        opts.logger.warn('kit test request with a bad or missing signature');
        return sendText(res, 401, 'Unauthorized');
      }
      opts.logger.info('kit test request verified');
      return sendText(res, 200, 'OK');
    }
    if (!verifySignature(auth, opts.salt, opts.token, eventId)) {
      opts.logger.warn({ eventId: quote(eventId) }, 'kit callback with a bad or missing signature');
      return sendText(res, 401, 'Unauthorized');
    }
    const parsed = parseCallback(body);
    if (!parsed.ok) {
      opts.logger.warn(
        { eventId: quote(eventId), problem: quote(parsed.error) },
        'kit callback does not match the schema',
      );
      throw new HttpError(400, `invalid callback: ${parsed.error}`);
    }
    let outcome: CallbackOutcome;
    try {
      outcome = await opts.handle(parsed.value);
    } catch (err) {
      if (neverStorable(err)) {
        // The same bytes fail the same way on every retry: refuse them for good.
        opts.logger.warn(
          { eventId: quote(eventId), err: quote((err as Error).message) },
          'kit callback cannot be stored; refused',
        );
        return sendText(res, 400, 'Bad Request: the event cannot be stored');
      }
      opts.logger.error(
        { eventId: quote(eventId), err: quote((err as Error).message) },
        'could not persist kit callback',
      );
      return sendText(res, 503, 'Service Unavailable', { 'retry-after': '5' });
    }
    opts.logger.debug({ eventId: quote(eventId), outcome, type: parsed.value.kind }, 'kit callback');
    sendText(res, 200, 'OK');
  };
}

/** True when a value nests deeper than `max` (iterative: a hostile body must not overflow the stack here). */
export function nestedDeeperThan(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth >= max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) {
      if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
    }
  }
  return false;
}

/**
 * Errors that come from the event itself, not from the store being down:
 * serialising it overflowed the stack or a string grew past what V8 allows.
 * (Not TypeError: better-sqlite3 throws one for a closed database, an outage.)
 */
function neverStorable(err: unknown): boolean {
  return err instanceof RangeError;
}

function eventIdOf(body: unknown): string | undefined {
  if (!body || typeof body !== 'object') return undefined;
  const id = (body as { event_id?: unknown }).event_id;
  if (typeof id === 'string' && id.length > 0) return id;
  if (typeof id === 'number') {
    // Tolerate a numeric id: sign and dedupe on its decimal form.
    (body as { event_id: unknown }).event_id = String(id);
    return String(id);
  }
  return undefined;
}

function headerValue(h: string | string[] | undefined): string | undefined {
  return Array.isArray(h) ? h[0] : h;
}

/** `::ffff:1.2.3.4` -> `1.2.3.4` */
function normalizeIp(ip: string | undefined): string {
  if (!ip) return '';
  return ip.startsWith('::ffff:') ? ip.slice(7) : ip;
}
