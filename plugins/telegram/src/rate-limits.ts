/**
 * Counts the Bot API's 429 answers for core's metrics. An API transformer
 * installed inside auto-retry, so it sees every attempt: the 429s auto-retry
 * waits out and the one it finally gives up on alike.
 */
import type { PlatformMetrics } from '@kitbridge/core';
import type { Transformer } from 'grammy';

/** `metrics` is read per answer: the connector has its context only once started. */
export function countRateLimits(metrics: () => PlatformMetrics | undefined): Transformer {
  return async (prev, method, payload, signal) => {
    const res = await prev(method, payload, signal);
    if (!res.ok && res.error_code === 429) metrics()?.rateLimited((res.parameters?.retry_after ?? 0) * 1000);
    return res;
  };
}
