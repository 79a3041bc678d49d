/**
 * Slack errors -> the delivery errors core understands, each message secret-free.
 *
 * The Web API answers HTTP 200 with `{ok:false, error}` for most failures
 * (WebAPIPlatformError), 429 with Retry-After (WebAPIRateLimitedError, since
 * the client is told to reject rate-limited calls), other statuses as
 * WebAPIHTTPError, and network trouble as WebAPIRequestError.
 */
import { PermanentDeliveryError, RetryableDeliveryError } from '@kitbridge/core';
import {
  WebAPIHTTPError,
  WebAPIPlatformError,
  WebAPIRateLimitedError,
  WebAPIRequestError,
} from '@slack/web-api';

/** `{ok:false}` errors that no retry fixes: the place is gone, closed to the app, or the message can never go. */
export const PERMANENT_ERRORS = new Set([
  'channel_not_found',
  'is_archived',
  'not_in_channel',
  'user_not_found',
  'user_disabled',
  'user_not_visible',
  'cannot_dm_bot',
  'messages_tab_disabled',
  'restricted_action',
  'restricted_action_read_only_channel',
  'restricted_action_thread_only_channel',
  'restricted_action_non_threadable_channel',
  'team_access_not_granted',
  'ekm_access_denied',
  'channel_type_not_supported',
  'thread_reply_not_allowed',
  'msg_too_long',
  'no_text',
  'too_many_attachments',
  'invalid_blocks',
  'invalid_arguments',
  'invalid_thread_ts',
  'duplicate_channel_not_found',
]);

/** Errors about the token: the operator must act (a restart with a good token delivers what waits). */
export const TOKEN_ERRORS = new Set([
  'not_authed',
  'invalid_auth',
  'token_revoked',
  'token_expired',
  'account_inactive',
  'not_allowed_token_type',
  'no_permission',
  'org_login_required',
]);

/** The `{ok:false}` error code, when `err` is one. */
export function platformError(err: unknown): string | undefined {
  return err instanceof WebAPIPlatformError ? err.data.error : undefined;
}

/** The scope Slack said is missing (`missing_scope` answers carry `needed`). */
export function neededScope(err: unknown): string | undefined {
  if (!(err instanceof WebAPIPlatformError) || err.data.error !== 'missing_scope') return undefined;
  const needed = (err.data as { needed?: unknown }).needed;
  return typeof needed === 'string' && needed ? needed : undefined;
}

/** A Slack error as a short, secret-free message. */
export function describeSlackError(err: unknown, secrets: readonly string[] = []): string {
  let s: string;
  if (err instanceof WebAPIPlatformError) {
    const needed = neededScope(err);
    s = needed ? `missing_scope (needs ${needed})` : err.data.error;
  } else if (err instanceof WebAPIRateLimitedError) s = `rate limited (retry after ${err.retryAfter} s)`;
  else if (err instanceof WebAPIHTTPError) s = `HTTP ${err.statusCode} from Slack`;
  else if (err instanceof WebAPIRequestError)
    s = `Slack unreachable: ${err.original?.message ?? err.message}`;
  else if (err instanceof Error) s = err.message;
  else s = String(err);
  for (const secret of secrets) if (secret) s = s.split(secret).join('[secret]');
  return s;
}

/** True when the failure is Slack refusing the token (not the network). */
export function isTokenError(err: unknown): boolean {
  const code = platformError(err);
  return code !== undefined && TOKEN_ERRORS.has(code);
}

/**
 * Classifies a failed delivery call: permanent refusals, rate limits with the
 * wait, and everything else as a plain (retried) Error. An aborted call
 * rejects with the signal's reason.
 */
export function toDeliveryError(
  err: unknown,
  signal: AbortSignal | undefined,
  secrets: readonly string[],
): Error {
  if (err instanceof PermanentDeliveryError || err instanceof RetryableDeliveryError) return err;
  if (signal?.aborted) {
    const reason = signal.reason;
    return reason instanceof Error ? reason : new Error('delivery aborted');
  }
  if (err instanceof WebAPIRateLimitedError) {
    return new RetryableDeliveryError('Slack rate limit', Math.max(1, err.retryAfter) * 1000);
  }
  const code = platformError(err);
  if (code === 'ratelimited') return new RetryableDeliveryError('Slack rate limit', 1000);
  if (code && PERMANENT_ERRORS.has(code))
    return new PermanentDeliveryError(`Slack refused delivery: ${code}`);
  const e = new Error(`Slack call failed: ${describeSlackError(err, secrets)}`);
  if (err instanceof WebAPIHTTPError || err instanceof WebAPIRequestError) e.name = 'SlackUnavailable';
  return e;
}
