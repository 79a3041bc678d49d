/**
 * `POST /slack/events`: the Events API over HTTP, on kitbridge's shared server.
 *
 * Not Bolt's HTTPReceiver: kitbridge already has its server and router, and the
 * route must answer 2xx only once core stored the message (Bolt does that only
 * with processBeforeResponse, behind an express-style stack kitbridge does not
 * need). In order:
 *
 * 1. 503 while stopping (Slack retries later);
 * 2. 401 before the body is read when the signature headers are missing or the
 *    timestamp is outside Slack's 5-minute window (a replay);
 * 3. 413 past the size limit;
 * 4. 401 when `v0=` HMAC-SHA256(signing secret, `v0:<ts>:<raw body>`) does not
 *    match, compared in constant time over the exact bytes received (Slack
 *    escapes `/` and non-ASCII in its JSON: re-serialising would not match);
 * 5. 400 for a body that is not a JSON object;
 * 6. `url_verification`: the challenge, answered at once;
 * 7. `event_callback`: handed to the connector; 200 only after it resolved. A
 *    rejection (the store cannot take it) propagates as a 500, so Slack sends
 *    the event again (`x-slack-retry-num`), and the repeat is a duplicate.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { HttpError, type RouteHandler, readBody, sendJson, sendText } from '@kitbridge/core';

/** Path of the Events API request URL on kitbridge's HTTP server. */
export const EVENTS_PATH = '/slack/events';

/** Far above any real event (a 40,000-character message with its blocks is well under it). */
export const EVENTS_BODY_LIMIT_BYTES = 1024 * 1024;

/** Slack's replay window: a request signed more than 5 minutes ago (or ahead) is refused. */
export const SIGNATURE_WINDOW_S = 5 * 60;

export interface EventDelivery {
  /** `x-slack-retry-num`: 0 for the first attempt. */
  retryNum: number;
  retryReason?: string;
}

export interface EventsRouteOptions {
  signingSecret: string;
  /**
   * Resolves once the event is safely handled, optionally with work to do after
   * the answer went out; rejects to have Slack send the event again.
   */
  handle(body: Record<string, unknown>, delivery: EventDelivery): Promise<(() => void) | undefined>;
  /** True while stopping: answer 503 and leave the event with Slack. */
  stopping(): boolean;
  /** False until the connector knows who it is (auth.test): events get 503 meanwhile, Slack retries. */
  ready(): boolean;
  /** Seconds since the epoch (tests). */
  now?: () => number;
}

export function createEventsRoute(opts: EventsRouteOptions): RouteHandler {
  const now = opts.now ?? (() => Math.floor(Date.now() / 1000));
  return async (req, res) => {
    if (opts.stopping()) {
      req.resume();
      return sendText(res, 503, 'Service Unavailable', { 'retry-after': '5' });
    }
    const signature = one(req.headers['x-slack-signature']);
    const tsHeader = one(req.headers['x-slack-request-timestamp']);
    if (!signature || !tsHeader || !/^\d{1,12}$/.test(tsHeader) || !/^v0=[0-9a-f]{64}$/.test(signature)) {
      req.resume();
      return sendText(res, 401, 'Unauthorized');
    }
    const ts = Number(tsHeader);
    if (Math.abs(now() - ts) > SIGNATURE_WINDOW_S) {
      req.resume();
      return sendText(res, 401, 'Unauthorized: stale timestamp');
    }
    const raw = await readBody(req, EVENTS_BODY_LIMIT_BYTES);
    if (!signatureMatches(opts.signingSecret, tsHeader, raw, signature)) {
      return sendText(res, 401, 'Unauthorized');
    }
    const body = parseBody(raw, req);
    if (body.type === 'url_verification') {
      const challenge = body.challenge;
      if (typeof challenge !== 'string' || !challenge || challenge.length > 1_000)
        throw new HttpError(400, 'url_verification without a challenge');
      return sendJson(res, 200, { challenge });
    }
    if (body.type !== 'event_callback') {
      // app_rate_limited and the like: signed, nothing to store.
      return sendText(res, 200, 'OK');
    }
    if (!body.event || typeof body.event !== 'object' || Array.isArray(body.event))
      throw new HttpError(400, 'event_callback without an event');
    if (!opts.ready()) return sendText(res, 503, 'Starting', { 'retry-after': '5' });
    const retry = one(req.headers['x-slack-retry-num']);
    const reason = one(req.headers['x-slack-retry-reason']);
    const after = await opts.handle(body, {
      retryNum: retry && /^\d{1,3}$/.test(retry) ? Number(retry) : 0,
      ...(reason ? { retryReason: reason.slice(0, 40) } : {}),
    });
    sendText(res, 200, 'OK');
    if (after) setImmediate(after);
  };
}

/** `v0=` + hex HMAC-SHA256 of `v0:<ts>:<body>`, compared in constant time. */
export function signatureMatches(secret: string, ts: string, raw: Buffer, signature: string): boolean {
  const expected = Buffer.from(
    `v0=${createHmac('sha256', secret).update(`v0:${ts}:`).update(raw).digest('hex')}`,
    'utf8',
  );
  const given = Buffer.from(signature, 'utf8');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

function parseBody(raw: Buffer, req: IncomingMessage): Record<string, unknown> {
  const type = one(req.headers['content-type']) ?? '';
  let text = raw.toString('utf8');
  if (/application\/x-www-form-urlencoded/i.test(type)) {
    // Interactivity and slash commands post `payload=<json>`: not subscribed to, but signed and Slack's.
    const payload = new URLSearchParams(text).get('payload');
    if (payload === null) throw new HttpError(400, 'form body without a payload');
    text = payload;
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new HttpError(400, 'body is not valid JSON');
  }
  if (!body || typeof body !== 'object' || Array.isArray(body))
    throw new HttpError(400, 'body is not a Slack event (not an object)');
  return body as Record<string, unknown>;
}

function one(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
