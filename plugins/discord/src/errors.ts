/**
 * Discord errors -> the delivery errors core understands, every message made
 * safe to log. @discordjs/rest never puts the token in a URL, but an error may
 * quote a request; the token is scrubbed wherever it could appear.
 */
import { PermanentDeliveryError, RetryableDeliveryError } from '@kitbridge/core';
import { DiscordAPIError, HTTPError, RateLimitError } from 'discord.js';

/** JSON error codes of Discord that no retry fixes, with what they mean for an operator. */
export const PERMANENT_CODES: Record<number, string> = {
  10003: 'the channel or thread is gone',
  10013: 'the user is unknown to Discord',
  50001: 'the bot has no access to the channel (View Channel)',
  50006: 'the message was empty',
  50007:
    'the customer does not accept DMs from the bot (closed DMs, blocked it, or left every shared server)',
  50013: 'the bot lacks a permission in the channel (Send Messages, Attach Files, Send Messages in Threads)',
  50035: 'Discord found the message malformed',
  10007: 'the customer is no longer a member of the server',
  50083: 'the thread is archived and the bot cannot reopen it (Manage Threads)',
  160005: 'the thread is locked',
};

export function scrubToken(text: string, token: string): string {
  return token ? text.split(token).join('[token]') : text;
}

/** A plain Error with a secret-free message; the original (with its request data) is dropped. */
export function safeError(err: unknown, token: string): Error {
  if (err instanceof DiscordAPIError) {
    return new Error(
      scrubToken(
        `Discord ${err.method.toUpperCase()} ${pathOf(err.url)}: ${err.status} ${err.message} (code ${err.code})`,
        token,
      ),
    );
  }
  if (err instanceof HTTPError) {
    return new Error(
      scrubToken(`Discord ${err.method.toUpperCase()} ${pathOf(err.url)}: HTTP ${err.status}`, token),
    );
  }
  if (err instanceof Error) {
    const e = new Error(scrubToken(err.message, token));
    e.name = err.name;
    return e;
  }
  return new Error(scrubToken(String(err), token));
}

/** A Discord JSON error code, when the error carries one. */
export function apiCode(err: unknown): number | undefined {
  return err instanceof DiscordAPIError && typeof err.code === 'number' ? err.code : undefined;
}

export function isUnauthorized(err: unknown): boolean {
  return (
    (err instanceof DiscordAPIError && err.status === 401) ||
    (err as { code?: unknown })?.code === 'TokenInvalid'
  );
}

export function isAbort(err: unknown): boolean {
  return (err as { name?: unknown })?.name === 'AbortError';
}

/**
 * Classifies a failed send: the codes in {@link PERMANENT_CODES} are permanent
 * (dead-lettered with the reason); a rate limit longer than the connector waits
 * inside a call is retryable after Discord's wait; anything else (5xx after
 * @discordjs/rest's own retries, network, a deadline) is a safe Error that
 * core retries with backoff.
 */
export function toDeliveryError(err: unknown, token: string): Error {
  if (err instanceof PermanentDeliveryError || err instanceof RetryableDeliveryError) return err;
  if (err instanceof RateLimitError) {
    const wait = Math.max(err.retryAfter, err.timeToReset, 0);
    return new RetryableDeliveryError(
      `Discord rate limit${err.global ? ' (global)' : ''} on ${err.route}: retry in ${Math.ceil(wait / 1000)} s`,
      wait > 0 ? wait : undefined,
    );
  }
  const code = apiCode(err);
  if (code !== undefined && PERMANENT_CODES[code]) {
    const e = err as DiscordAPIError;
    return new PermanentDeliveryError(
      `Discord refused delivery: ${e.message} (${code}): ${PERMANENT_CODES[code]}`,
    );
  }
  if (err instanceof DiscordAPIError && err.status === 401) {
    return new Error(
      'Discord rejected DISCORD_BOT_TOKEN (revoked or wrong); deliveries wait until it is fixed',
    );
  }
  if (isAbort(err))
    return new Error('Discord call aborted (the attempt reached its deadline, or the process is stopping)');
  return safeError(err, token);
}

function pathOf(url: string): string {
  try {
    return new URL(url).pathname.replace(/^\/api/, '');
  } catch {
    return url;
  }
}
