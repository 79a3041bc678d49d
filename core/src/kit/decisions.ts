/**
 * Every place where kitbridge decides what the Kit vendor docs leave open
 * (shared/kit-protocol.md, "Decision" lines). Kept together so they are easy to change.
 */

export const KIT_REGIONS = ['eu', 'us', 'br', 'kz', 'ru', 'ru2'] as const;
export type KitRegion = (typeof KIT_REGIONS)[number];

/** Messaging API base for a region, e.g. https://kit-im-eu.voximplant.com */
export function kitBaseUrl(region: KitRegion): string {
  return `https://kit-im-${region}.voximplant.com`;
}

/** Access token life when its JWT carries no readable `exp`. */
export const ACCESS_TOKEN_FALLBACK_TTL_MS = 15 * 60_000;
/** Refresh token life as documented (24 h); we log in again before it ends. */
export const REFRESH_TOKEN_TTL_MS = 24 * 60 * 60_000;
/** Log in again instead of refreshing once the refresh token is this old. */
export const REFRESH_TOKEN_MAX_AGE_MS = 23 * 60 * 60_000;
/** Refresh when this share of the access token's life has passed. */
export const REFRESH_AT_FRACTION = 0.8;

/** Callback bodies larger than this are refused with 413. */
export const CALLBACK_BODY_LIMIT_BYTES = 1024 * 1024;

/**
 * Deepest nesting a callback body may have. Kit's models nest four levels; a
 * body nested thousands deep parses, but overflows the stack when it is stored,
 * so it is refused with 400 up front rather than answered 503 for ever.
 */
export const CALLBACK_MAX_DEPTH = 32;

/** A media link must outlive the longest open Kit conversation (14 days). */
export const DEFAULT_MEDIA_TTL_MS = 14 * 24 * 60 * 60_000;

/** How long a seen inbound message id or callback event_id is remembered for dedupe. */
export const DEDUPE_TTL_MS = 7 * 24 * 60 * 60_000;

/**
 * Kit's event_id and message_id for a customer message: derived from the
 * platform's identity only, so every retry and every redelivery carries the same.
 */
export function customerEventId(clientId: string, platformMessageId: string): string {
  return `${clientId}/${platformMessageId}`;
}

/** Kit's source addresses per region (vendor docs); used only by the optional allow-list. */
export const KIT_CALLBACK_ADDRESSES: Record<string, readonly string[]> = {
  eu: ['18.198.159.51', '5.252.32.21', '18.116.210.223'],
  us: ['3.23.109.173', '193.84.88.130', '18.116.210.223'],
  br: ['54.232.199.60', '18.116.210.223'],
  kz: ['176.123.176.243', '188.0.150.130', '51.250.25.139', '5.35.107.114'],
};
