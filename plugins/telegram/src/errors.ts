/**
 * Telegram errors -> the delivery errors core understands, with every message
 * made safe to log: the bot token is part of each Bot API URL, and network
 * errors quote that URL.
 */
import { PermanentDeliveryError, RetryableDeliveryError } from '@kitbridge/core';
import { GrammyError, HttpError } from 'grammy';

/** 400 descriptions that no retry will fix: the chat is gone or closed to the bot. */
const PERMANENT_400 =
  /chat not found|user not found|PEER_ID_INVALID|user is deactivated|CHAT_WRITE_FORBIDDEN|not enough rights|have no rights|upgraded to a supergroup/i;

/** Replaces the token (and the whole `/bot<token>` path segment) in `text`. */
export function scrubToken(text: string, token: string): string {
  if (!token) return text;
  return text.split(token).join('[token]');
}

/** A plain Error with the token scrubbed from its message; the original (with its URLs) is dropped. */
export function safeError(err: unknown, token: string): Error {
  if (err instanceof GrammyError) return new Error(scrubToken(err.message, token));
  if (err instanceof HttpError) {
    const inner = err.error instanceof Error ? `: ${err.error.message}` : '';
    return new Error(scrubToken(`${err.message}${inner}`, token));
  }
  if (err instanceof Error) {
    const e = new Error(scrubToken(err.message, token));
    e.name = err.name;
    return e;
  }
  return new Error(scrubToken(String(err), token));
}

/**
 * Classifies a failed send: 403 (blocked, kicked, deactivated) and a gone chat
 * are permanent; 429 (after auto-retry gave up) is retryable after Telegram's
 * retry_after; anything else is returned as a safe Error that core retries with backoff.
 */
export function toDeliveryError(err: unknown, token: string): Error {
  if (err instanceof GrammyError) {
    const reason = err.description.replace(/^(Forbidden|Bad Request): /, '');
    if (err.error_code === 403 || (err.error_code === 400 && PERMANENT_400.test(err.description))) {
      return new PermanentDeliveryError(`Telegram refused delivery: ${reason}`);
    }
    if (err.error_code === 429) {
      const after = err.parameters.retry_after;
      return new RetryableDeliveryError(
        `Telegram rate limit: ${reason}`,
        typeof after === 'number' ? after * 1000 : undefined,
      );
    }
  }
  return safeError(err, token);
}
