/**
 * About one message per second per channel (Slack's rule for chat.postMessage),
 * with a short burst: a token bucket per channel, so a long text split in
 * pieces or a few files go out without a 429 most of the time. Slack's 429 and
 * its Retry-After remain the authority: they go back to core's outbox.
 */
import { sleep } from '@kitbridge/core';

export interface PacingOptions {
  /** Messages per second per channel; 0 turns pacing off (tests, benchmarks). Default 1. */
  perSecond?: number;
  /** Messages a quiet channel may send at once. Default 3. */
  burst?: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export class ChannelPacer {
  private readonly buckets = new Map<string, Bucket>();
  private readonly perSecond: number;
  private readonly burst: number;

  constructor(opts: PacingOptions = {}) {
    this.perSecond = opts.perSecond ?? 1;
    this.burst = Math.max(1, opts.burst ?? 3);
  }

  /** Waits until `channel` may get one more message; rejects when `signal` aborts first. */
  async take(channel: string, signal: AbortSignal): Promise<void> {
    if (this.perSecond <= 0) return;
    for (;;) {
      const now = Date.now();
      const b = this.buckets.get(channel) ?? { tokens: this.burst, at: now };
      b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.perSecond);
      b.at = now;
      this.buckets.set(channel, b);
      if (b.tokens >= 1) {
        b.tokens -= 1;
        this.prune(now);
        return;
      }
      await sleep(Math.ceil(((1 - b.tokens) / this.perSecond) * 1000), signal);
    }
  }

  /** Forgets channels that are full again, so the map does not grow with every customer. */
  private prune(now: number): void {
    if (this.buckets.size < 1_000) return;
    for (const [k, b] of this.buckets) {
      if (b.tokens + ((now - b.at) / 1000) * this.perSecond >= this.burst) this.buckets.delete(k);
    }
  }
}
