/**
 * Size limits of the Bot API (https://core.telegram.org/bots/api#sending-files).
 * Core checks agent files against the connector's table before delivery and
 * turns what does not fit into a text notice for the customer; a customer file
 * over the download limit reaches Kit as a line of text instead of a link.
 */
import type { MediaKind, MediaLimit, MediaLimits } from '@kitbridge/core';

const MB = 1024 * 1024;

/** The cloud Bot API serves files up to this size to bots (getFile). */
export const CLOUD_DOWNLOAD_LIMIT_BYTES = 20 * MB;

/**
 * The cloud Bot API. Uploads (multipart): photos 10 MB, everything else 50 MB.
 * By URL (Telegram fetches the file itself): photos 5 MB, everything else 20 MB;
 * kitbridge always uploads, since Kit's URLs may not be reachable from Telegram.
 * Downloads: 20 MB.
 */
export const TELEGRAM_MEDIA_LIMITS: MediaLimits = {
  photo: { maxUploadBytes: 10 * MB, maxByUrlBytes: 5 * MB, maxDownloadBytes: CLOUD_DOWNLOAD_LIMIT_BYTES },
  video: { maxUploadBytes: 50 * MB, maxByUrlBytes: 20 * MB, maxDownloadBytes: CLOUD_DOWNLOAD_LIMIT_BYTES },
  audio: { maxUploadBytes: 50 * MB, maxByUrlBytes: 20 * MB, maxDownloadBytes: CLOUD_DOWNLOAD_LIMIT_BYTES },
  document: {
    maxUploadBytes: 50 * MB,
    maxByUrlBytes: 20 * MB,
    maxDownloadBytes: CLOUD_DOWNLOAD_LIMIT_BYTES,
  },
};

/**
 * A self-hosted Bot API server (TELEGRAM_API_ROOT): the cloud's upload limits,
 * kept to be safe, and no download limit (a `--local` server has none).
 */
export const SELF_HOSTED_MEDIA_LIMITS: MediaLimits = Object.fromEntries(
  Object.entries(TELEGRAM_MEDIA_LIMITS).map(([kind, { maxDownloadBytes: _d, ...rest }]) => [kind, rest]),
) as Record<MediaKind, MediaLimit>;

/** Longest text of one message, in UTF-16 code units as Telegram counts them. */
export const TEXT_LIMIT = 4096;

/** Longest caption of a file. */
export const CAPTION_LIMIT = 1024;
