import type { Leg } from '@kitbridge/core';
import pg from 'pg';

const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 30_000;

/**
 * `LISTEN` on one channel over a connection of its own (a pooled one would be
 * handed to others), calling the listeners of the leg a notification names.
 * A lost connection is made again with backoff; meanwhile the outboxes' polls
 * find the work. Never throws into the caller.
 */
export class Listener {
  private readonly listeners: Record<Leg, Set<() => void>> = { inbound: new Set(), outbound: new Set() };
  private client?: pg.Client;
  private retryMs = RETRY_MIN_MS;
  private timer?: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly config: pg.ClientConfig,
    private readonly channel: string,
  ) {
    void this.connect();
  }

  add(leg: Leg, listener: () => void): () => void {
    this.listeners[leg].add(listener);
    return () => this.listeners[leg].delete(listener);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => {});
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    const client = new pg.Client({ ...this.config, query_timeout: undefined });
    this.client = client;
    let failed = false;
    const fail = () => {
      if (failed) return;
      failed = true;
      if (this.client === client) this.client = undefined;
      client.end().catch(() => {});
      this.retry();
    };
    client.on('error', fail);
    client.on('end', fail);
    client.on('notification', (n) => {
      if (n.channel !== this.channel) return;
      const leg = n.payload as Leg;
      for (const l of this.listeners[leg] ?? []) l();
    });
    try {
      await client.connect();
      await client.query(`LISTEN "${this.channel.replaceAll('"', '""')}"`);
      this.retryMs = RETRY_MIN_MS;
      // Work made while we were not listening: let every listener look once.
      for (const leg of ['inbound', 'outbound'] as const) for (const l of this.listeners[leg]) l();
    } catch {
      fail();
    }
  }

  private retry(): void {
    if (this.closed) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.connect(), this.retryMs);
    this.timer.unref();
    this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs * 2);
  }
}
