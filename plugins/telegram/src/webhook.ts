/**
 * `POST /telegram/webhook`: Telegram's webhook calls, checked before anything is
 * read, answered 200 only once the update is handled (the message stored).
 *
 * Not grammy's `webhookCallback`: it reads any body size, answers a malformed
 * one with 500 (which Telegram retries forever) and routes every update
 * through a Context we do not use. Here, in order: 401 for a wrong or missing
 * secret (the body is not read), 413 past the size limit, 400 for a body that
 * is not an update; an update that fails to be stored gets 500, so Telegram
 * sends it again.
 */
import { timingSafeEqual } from 'node:crypto';
import { HttpError, type RouteHandler, readBody, sendText } from '@kitbridge/core';
import type { Update } from 'grammy/types';

/** Path of the webhook route on kitbridge's HTTP server. */
export const WEBHOOK_PATH = '/telegram/webhook';

/** Telegram's header carrying the secret_token given to setWebhook. */
const SECRET_HEADER = 'x-telegram-bot-api-secret-token';

/** Far above any real update (a 4096-character text with entities is a few KB). */
export const WEBHOOK_BODY_LIMIT_BYTES = 1024 * 1024;

export interface WebhookRouteOptions {
  secret: string;
  /** Resolves once the update is safely handled; rejects to have Telegram send it again. */
  handle(update: Update): Promise<void>;
  /** True while stopping: answer 503 and leave the update with Telegram. */
  stopping(): boolean;
}

export function createWebhookRoute(opts: WebhookRouteOptions): RouteHandler {
  const secret = Buffer.from(opts.secret, 'utf8');
  return async (req, res) => {
    if (opts.stopping()) {
      req.resume();
      return sendText(res, 503, 'Service Unavailable');
    }
    if (!secretMatches(req.headers[SECRET_HEADER], secret)) {
      req.resume();
      return sendText(res, 401, 'Unauthorized');
    }
    const raw = await readBody(req, WEBHOOK_BODY_LIMIT_BYTES);
    let update: unknown;
    try {
      update = JSON.parse(raw.toString('utf8'));
    } catch {
      throw new HttpError(400, 'body is not valid JSON');
    }
    if (!isUpdate(update)) throw new HttpError(400, 'body is not a Telegram update (no update_id)');
    await opts.handle(update);
    sendText(res, 200, 'OK');
  };
}

function secretMatches(header: string | string[] | undefined, secret: Buffer): boolean {
  const given = Buffer.from((Array.isArray(header) ? header[0] : header) ?? '', 'utf8');
  return given.length === secret.length && timingSafeEqual(given, secret);
}

function isUpdate(v: unknown): v is Update {
  return typeof v === 'object' && v !== null && Number.isSafeInteger((v as Update).update_id);
}
