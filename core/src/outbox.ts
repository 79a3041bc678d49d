/**
 * The outbox worker of one leg. Items are persisted by the Store before their
 * source is acknowledged; this class delivers them:
 * - per-client FIFO: a client's next item waits until the one before it is
 *   delivered or dead-lettered, so one customer's burst arrives in order;
 * - bounded concurrency across clients: a slow or failing client holds one slot
 *   only while an attempt runs, never while it waits for its backoff;
 * - retries with exponential backoff and jitter, at least the wait the far side
 *   asked for; dead letters after too many attempts, too long, or at once for a
 *   permanent error.
 * Nothing is ever dropped on arrival: unlike a chat lock, a busy client queues.
 */

import type { OutboxSettings } from './config.js';
import type { Logger } from './logger.js';
import { backoffDelay } from './retry.js';
import type { Leg, NewOutboxItem, OutboxItem, Store } from './store/store.js';

/** How a delivery failure is to be treated. */
export type FailureKind =
  | { permanent: true; reason: string }
  | { permanent: false; reason: string; retryAfterMs?: number };

export interface OutboxOptions extends OutboxSettings {
  leg: Leg;
  store: Store;
  logger: Logger;
  dedupeTtlMs: number;
  /** Delivers one item; throws to fail the attempt. */
  deliver(item: OutboxItem): Promise<void>;
  classify(err: unknown): FailureKind;
  /** How often to re-read the store for items revived by operators. 0: never. */
  syncIntervalMs?: number;
  /** How often to log the backlog while there is one. 0: never. */
  lagLogIntervalMs?: number;
  now?: () => number;
}

interface ClientQueue {
  items: OutboxItem[];
  /** An attempt is running. */
  busy: boolean;
  /** Waiting for its backoff. */
  timer?: NodeJS.Timeout;
}

export class Outbox {
  private readonly queues = new Map<string, ClientQueue>();
  /** Clients whose head is due, in the order they became due. */
  private readonly ready: string[] = [];
  private readonly readySet = new Set<string>();
  private readonly known = new Set<number>();
  /** The store's revision when `pending` was last read. */
  private revision?: number;
  private running = 0;
  private stopped = true;
  private idleWaiters: (() => void)[] = [];
  private housekeeping: NodeJS.Timeout[] = [];
  private readonly now: () => number;

  constructor(private readonly opts: OutboxOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** Loads what a previous run left pending and starts delivering. */
  async start(): Promise<void> {
    this.stopped = false;
    await this.sync();
    const { syncIntervalMs = 30_000, lagLogIntervalMs = 60_000 } = this.opts;
    if (syncIntervalMs > 0)
      this.housekeeping.push(setInterval(() => void this.sync().catch(() => {}), syncIntervalMs));
    if (lagLogIntervalMs > 0) this.housekeeping.push(setInterval(() => this.logLag(), lagLogIntervalMs));
    for (const t of this.housekeeping) t.unref();
  }

  /**
   * Persists an item (with dedupe on its key) and schedules it. Resolves once
   * the store has it: only then may the source be acknowledged.
   */
  async enqueue(item: NewOutboxItem): Promise<'accepted' | 'duplicate'> {
    const stored = await this.opts.store.enqueue(item, this.opts.dedupeTtlMs, this.now());
    if (!stored) return 'duplicate';
    this.add(stored);
    return 'accepted';
  }

  /** Pending items and the age of the oldest, as this worker sees them. */
  backlog(): { pending: number; clients: number; oldestAgeMs: number } {
    let pending = 0;
    let oldest = Number.POSITIVE_INFINITY;
    for (const q of this.queues.values()) {
      pending += q.items.length;
      if (q.items[0]) oldest = Math.min(oldest, q.items[0].createdAt);
    }
    return { pending, clients: this.queues.size, oldestAgeMs: pending ? this.now() - oldest : 0 };
  }

  /** Resolves when nothing is pending or running (tests, demo, shutdown). */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Stops starting attempts; waits up to `graceMs` for running ones. What is
   * left stays in the store for the next start.
   */
  async stop(graceMs = 10_000): Promise<void> {
    this.stopped = true;
    for (const t of this.housekeeping) clearInterval(t);
    this.housekeeping = [];
    for (const q of this.queues.values()) if (q.timer) clearTimeout(q.timer);
    if (this.running === 0) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, graceMs);
      const check = setInterval(() => {
        if (this.running === 0) {
          clearTimeout(t);
          clearInterval(check);
          resolve();
        }
      }, 20);
    });
  }

  // ---------------------------------------------------------------- internals

  private add(item: OutboxItem): void {
    if (this.known.has(item.id)) return;
    this.known.add(item.id);
    let q = this.queues.get(item.clientId);
    if (!q) {
      q = { items: [], busy: false };
      this.queues.set(item.clientId, q);
    }
    // Revived items may be older than what is queued: keep id order.
    if (q.items.length && q.items[q.items.length - 1]!.id > item.id) {
      q.items.push(item);
      q.items.sort((a, b) => a.id - b.id);
    } else q.items.push(item);
    if (!q.busy && !q.timer) this.scheduleHead(item.clientId, q);
  }

  private scheduleHead(clientId: string, q: ClientQueue): void {
    const head = q.items[0];
    if (!head) {
      this.queues.delete(clientId);
      this.notifyIdle();
      return;
    }
    const wait = head.nextAttemptAt - this.now();
    if (wait > 0) {
      q.timer = setTimeout(() => {
        q.timer = undefined;
        this.markReady(clientId);
      }, wait);
      q.timer.unref();
    } else this.markReady(clientId);
  }

  private markReady(clientId: string): void {
    if (this.readySet.has(clientId)) return;
    this.readySet.add(clientId);
    this.ready.push(clientId);
    this.pump();
  }

  private pump(): void {
    while (!this.stopped && this.running < this.opts.concurrency && this.ready.length) {
      const clientId = this.ready.shift()!;
      this.readySet.delete(clientId);
      const q = this.queues.get(clientId);
      const head = q?.items[0];
      if (!q || !head || q.busy) continue;
      q.busy = true;
      this.running++;
      void this.attempt(clientId, q, head);
    }
  }

  private async attempt(clientId: string, q: ClientQueue, item: OutboxItem): Promise<void> {
    const { store, logger, leg } = this.opts;
    try {
      try {
        await this.opts.deliver(item);
        await store.complete(item.id);
        this.finish(q, item);
      } catch (err) {
        await this.fail(q, item, err);
      }
    } catch (err) {
      // The store itself failed: keep the item in memory and try again later.
      logger.error({ leg, clientId, id: item.id, err: (err as Error).message }, 'outbox store write failed');
      item.nextAttemptAt = this.now() + this.opts.backoff.baseMs;
    } finally {
      q.busy = false;
      this.running--;
      if (!this.stopped) this.scheduleHead(clientId, q);
      this.pump();
      this.notifyIdle();
    }
  }

  private async fail(q: ClientQueue, item: OutboxItem, err: unknown): Promise<void> {
    const { store, logger, leg } = this.opts;
    const f = this.opts.classify(err);
    const attempts = item.attempts + 1;
    const age = this.now() - item.createdAt;
    const giveUp = f.permanent
      ? f.reason
      : attempts >= this.opts.maxAttempts
        ? `gave up after ${attempts} attempts: ${f.reason}`
        : age >= this.opts.maxAgeMs
          ? `gave up after ${Math.round(age / 1000)} s: ${f.reason}`
          : undefined;
    if (giveUp !== undefined) {
      await store.bury(item.id, attempts, giveUp);
      this.finish(q, item);
      // Logged once, at error level: an operator has to look at it.
      logger.error(
        { leg, clientId: item.clientId, id: item.id, key: item.key, reason: giveUp },
        'dead letter',
      );
      return;
    }
    const delay = Math.max(
      backoffDelay(attempts, this.opts.backoff),
      f.permanent ? 0 : (f.retryAfterMs ?? 0),
    );
    item.attempts = attempts;
    item.nextAttemptAt = this.now() + delay;
    item.lastError = f.reason;
    await store.reschedule(item.id, attempts, item.nextAttemptAt, f.reason);
    logger.warn(
      { leg, clientId: item.clientId, id: item.id, attempts, retryInMs: delay, reason: f.reason },
      'delivery failed; will retry',
    );
  }

  private finish(q: ClientQueue, item: OutboxItem): void {
    if (q.items[0]?.id === item.id) q.items.shift();
    else q.items = q.items.filter((i) => i.id !== item.id);
    this.known.delete(item.id);
  }

  /** Picks up items revived or dropped by `kitbridge outbox` in another process. */
  private async sync(): Promise<void> {
    // Re-reading every pending item is costly after a long outage: only when an operator changed something.
    const revision = await this.opts.store.revision();
    if (revision === this.revision) return;
    this.revision = revision;
    const pending = await this.opts.store.pending(this.opts.leg);
    const live = new Set(pending.map((i) => i.id));
    for (const [clientId, q] of this.queues) {
      const keep = q.items.filter((i, n) => live.has(i.id) || (n === 0 && q.busy));
      if (keep.length !== q.items.length) {
        for (const i of q.items) if (!keep.includes(i)) this.known.delete(i.id);
        q.items = keep;
        if (!q.busy && !keep.length) {
          if (q.timer) clearTimeout(q.timer);
          this.queues.delete(clientId);
        }
      }
    }
    for (const item of pending) this.add(item);
    this.notifyIdle();
  }

  private logLag(): void {
    const b = this.backlog();
    if (b.pending > 0) this.opts.logger.info({ leg: this.opts.leg, ...b }, 'outbox backlog');
  }

  private isIdle(): boolean {
    return this.running === 0 && this.queues.size === 0;
  }

  private notifyIdle(): void {
    if (!this.isIdle() || this.idleWaiters.length === 0) return;
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const f of w) f();
  }
}
