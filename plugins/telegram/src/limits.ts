/**
 * Size limits of the cloud Bot API (https://core.telegram.org/bots/api#sending-files).
 * Core checks agent files against {@link TELEGRAM_MEDIA_LIMITS} before delivery and
 * turns what does not fit into a text notice for the customer.
 */
import type { MediaLimits } from '@kitbridge/core';

const MB = 1024 * 1024;

/**
 * Uploads (multipart): photos 10 MB, everything else 50 MB. By URL (Telegram
 * fetches the file itself): photos 5 MB, everything else 20 MB. kitbridge always
 * uploads, since Kit's URLs may not be reachable from Telegram.
 */
export const TELEGRAM_MEDIA_LIMITS: MediaLimits = {
  photo: { maxUploadBytes: 10 * MB, maxByUrlBytes: 5 * MB },
  video: { maxUploadBytes: 50 * MB, maxByUrlBytes: 20 * MB },
  audio: { maxUploadBytes: 50 * MB, maxByUrlBytes: 20 * MB },
  document: { maxUploadBytes: 50 * MB, maxByUrlBytes: 20 * MB },
};

/** The cloud Bot API serves files up to this size to bots (getFile); self-hosted servers have no limit. */
export const CLOUD_DOWNLOAD_LIMIT_BYTES = 20 * MB;

/** Longest text of one message, in UTF-16 code units as Telegram counts them. */
export const TEXT_LIMIT = 4096;

/** Longest caption of a file. */
export const CAPTION_LIMIT = 1024;
