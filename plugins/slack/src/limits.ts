/**
 * Slack's limits (https://docs.slack.dev/reference/methods/chat.postMessage,
 * https://docs.slack.dev/messaging/working-with-files). Core checks agent files
 * against the table before delivery and turns what does not fit into a text
 * notice for the customer.
 */
import type { MediaLimits } from '@kitbridge/core';

const GB = 1024 * 1024 * 1024;

/**
 * Uploads go through files.getUploadURLExternal, whose limit is 1 GB for every
 * kind; Slack never fetches a file by URL for the app, so `maxByUrlBytes` is 0.
 * Customer files (url_private) have no download limit of Slack's own.
 */
export const SLACK_MEDIA_LIMITS: MediaLimits = {
  photo: { maxUploadBytes: GB },
  video: { maxUploadBytes: GB },
  audio: { maxUploadBytes: GB },
  document: { maxUploadBytes: GB },
};

/**
 * Longest text of one message kitbridge sends. Slack truncates past 40,000
 * characters and advises keeping messages under 4,000; a longer agent text is
 * split (at paragraph, line, sentence or word boundaries), never cut. Counted
 * before escaping (`&` becomes `&amp;`), which Slack does not count.
 */
export const TEXT_LIMIT = 4_000;

/** Slack's chat.postMessage allows about one message per second per channel, with short bursts. */
export const CHANNEL_RATE = { perSecond: 1, burst: 3 } as const;
