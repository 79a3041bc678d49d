/**
 * Counts Discord's 429 answers for core's metrics: a `makeRequest` for
 * @discordjs/rest around its default one, so it sees every HTTP answer, the
 * 429s the library waits out and retries by itself included (its own bucket
 * waits before a request are pacing, not answers, and are not counted).
 */
import type { PlatformMetrics } from '@kitbridge/core';
import { DefaultRestOptions } from 'discord.js';

type MakeRequest = typeof DefaultRestOptions.makeRequest;

/** `metrics` is read per answer: the connector has its context only once started. */
export function countingMakeRequest(metrics: () => PlatformMetrics | undefined): MakeRequest {
  return async (url, init) => {
    const res = await DefaultRestOptions.makeRequest(url, init);
    if (res.status === 429) {
      const after = Number(res.headers.get('retry-after'));
      metrics()?.rateLimited(Number.isFinite(after) && after > 0 ? after * 1000 : 0);
    }
    return res;
  };
}
