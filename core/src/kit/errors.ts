/** Base of every error KitClient throws. Carries Kit's own error text and code, never a token. */
export class KitError extends Error {
  override name = 'KitError';
  constructor(
    message: string,
    readonly details: { status?: number; kitError?: string; kitCode?: string | number } = {},
  ) {
    super(message);
  }
}
/** Kit refused our credentials (login or refresh failed with an auth error). */
export class KitAuthError extends KitError {
  override name = 'KitAuthError';
}
/** Kit refused this event (a 4xx other than 401/429, or success:false): retrying will not help. */
export class KitRejectedError extends KitError {
  override name = 'KitRejectedError';
}
/** Kit could not be reached or answered 5xx/429, after the client's own retries. */
export class KitUnavailableError extends KitError {
  override name = 'KitUnavailableError';
  retryAfterMs?: number;
}
