/**
 * The outbox worker of one leg. Items are persisted by the Store before their
 * source is acknowledged; this class delivers them, on per-client leases the
 * store grants (so several workers, in this process or others, can share one
 * store):
 * - per-client FIFO: a worker claims a client's head item only; the next one
 *   waits until it is delivered or dead-lettered, so one customer's burst
 *   arrives in order;
 * - bounded concurrency across clients: a worker claims no more clients than it
 *   has free slots, and a client holds a slot only while an attempt runs, never
 *   while it waits for its backoff or for a store write;
 * - every attempt has a deadline, enforced through its AbortSignal; a timed-out
 *   attempt is a transient failure even when the work ignores the signal;
 * - retries with exponential backoff and jitter, at least the wait the far side
 *   asked for; dead letters after too many attempts, too long, or at once for a
 *   permanent error;
 * - the outcome of an attempt is decided once and written until the store takes
 *   it: a delivered item whose completion fails is completed again, never
 *   delivered again.
 * Nothing is ever dropped on arrival: unlike a chat lock, a busy client queues.
 *
 * Round trips: an item enqueued while a slot is free is claimed in the same
 * store write and started at once; a completion hands the lease on to the
 * client's next item in the same write. Work other writers make (an operator's
 * revive, a dead replica's lease running out) is found by polling `nextDue`,
 * and sooner when the store offers wake-ups ({@link Store.onWork}).
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { OUTBOX_DEFAULTS, type OutboxSettings } from './config.js';
import type { DeliveryReceipt, DeliveryWork, JsonObject } from './connector.js';
import type { Logger } from './logger.js';
import type { DeadLetterReason, FailureClass, LegMetrics } from './metrics.js';
import { backoffDelay, sleep } from './retry.js';
import {
  type Claim,
  LeaseLostError,
  type Leg,
  type NewOutboxItem,
  type OutboxItem,
  type Store,
} from './store/store.js';

/** How a delivery failure is to be treated. */
export type FailureKind =
  | { permanent: true; reason: string }
  | { permanent: false; reason: string; retryAfterMs?: number };

/** The reason an attempt's signal aborts when its deadline passes. */
export class DeliveryTimeoutError extends Error {
  override name = 'DeliveryTimeoutError';
  constructor(readonly timeoutMs: number) {
    super(`delivery attempt timed out after ${formatMs(timeoutMs)}`);
  }
}

/** The reason an attempt's signal aborts when the worker stops before it ended. */
export class OutboxStoppingError extends Error {
  override name = 'OutboxStoppingError';
  constructor() {
    super('interrupted: the outbox is stopping');
  }
}

export interface OutboxOptions extends Omit<OutboxSettings, 'deliveryTimeoutMs'> {
  leg: Leg;
  store: Store;
  logger: Logger;
  dedupeTtlMs: number;
  /**
   * Delivers one item; throws to fail the attempt. Hand `work.signal` to the
   * I/O: it aborts at the deadline and on stop. `work.progress` keeps what a
   * delivery of several steps has done, in the store, across attempts. The
   * platform message ids it resolves with (a DeliveryReceipt) are kept with the item's key.
   */
  deliver(item: OutboxItem, work: DeliveryWork): Promise<unknown>;
  classify(err: unknown): FailureKind;
  /**
   * Told when an item is given up on, before it is moved to the dead letters
   * (so a crash in between repeats the call, never skips it: make it
   * idempotent). Called under the item's lease; a rejection is logged and the
   * item is buried all the same. Must not deliver the item.
   */
  onGiveUp?(item: OutboxItem, reason: string): Promise<void>;
  /** This leg's counters (received, delivered, duplicates, failures, dead letters). */
  metrics?: LegMetrics;
  /** Deadline of one attempt, ms. Default {@link OUTBOX_DEFAULTS}.deliveryTimeoutMs (10 min). */
  deliveryTimeoutMs?: number;
  /**
   * How often to ask the store for work other writers made (items an operator
   * revived, a client whose lease another process let run out), ms. 0: never.
   * Default 1000.
   */
  syncIntervalMs?: number;
  /** How often to log the backlog while there is one. 0: never. */
  lagLogIntervalMs?: number;
  /** Lease on a claimed client, ms; renewed every third of it while the client is worked. Default 30 s. */
  leaseMs?: number;
  /** This worker's name in the store's leases. Default `<host>:<pid>:<leg>:<random>`. */
  owner?: string;
  now?: () => number;
}

/** How one attempt ended. */
type Outcome =
  | { kind: 'delivered'; platformIds?: readonly string[] }
  | { kind: 'failed'; failure: FailureKind; timedOut?: true }
  | { kind: 'stopped' }
  | { kind: 'lost'; reason: string };

/** A client this worker holds a lease on: an attempt runs, or its outcome is being written. */
interface Held {
  claim: Claim;
  /** Occupies a concurrency slot (from the claim until the outcome is written, or through hand-ons). */
  slot: boolean;
  /** Ends the running attempt now: aborts its signal, and the attempt stops waiting for its work. */
  abort?: (reason: Error) => void;
  lost: boolean;
  renewing: boolean;
  /** When the lease was last granted or renewed (this worker's clock). */
  renewedAt: number;
  /** Items handed on in this slot while other clients waited. */
  handOns: number;
  /** Its last item went to the dead letters (its next one, if any, is due). */
  buried?: boolean;
  /** The outcome being written is a dead letter. */
  buryNext?: boolean;
}

/** Past the grace: how long stop() waits for aborted work (which may still be finishing a store write) to settle. */
const ABANDON_WAIT_MS = 1_000;
/** Shortest wait of the wake-up timer: a store whose clock runs behind ours must not make us spin. */
const MIN_WAKE_MS = 5;
/** A client's items handed on in one slot, in a row, while other clients wait for a slot. */
const HAND_ONS_WHILE_OTHERS_WAIT = 4;
/** The backlog snapshot is read from the store at most this often after local changes. */
const BACKLOG_REFRESH_MS = 1_000;

export class Outbox {
  private readonly held = new Map<string, Held>();
  /** Concurrency slots in use: running attempts, and claims asked for but not answered yet. */
  private slots = 0;
  /** The store may have due clients we did not claim (an item enqueued while every slot was busy). */
  private maybeMore = false;
  /** Bumped whenever `maybeMore` is set, so that a claim answered meanwhile does not clear it. */
  private moreEpoch = 0;
  /** The claim in flight, if any (one at a time). */
  private refilling?: Promise<void>;
  private refillAgain = false;
  private wakeTimer?: NodeJS.Timeout;
  private wakeAt = Number.POSITIVE_INFINITY;
  private stopped = true;
  /** Aborted when stop's grace is over: outcome writes stop retrying. */
  private halt = new AbortController();
  /** Runs of held clients, and deliver() calls still unsettled (a work that ignored its signal). */
  private readonly runs = new Set<Promise<void>>();
  private readonly works = new Set<Promise<void>>();
  /** Claims that came back after stop began, being released. */
  private readonly releases = new Set<Promise<void>>();
  private idleWaiters: (() => void)[] = [];
  private checkingIdle = false;
  private housekeeping: NodeJS.Timeout[] = [];
  /** Ends the subscription to the store's wake-ups, while started. */
  private unsubscribe?: () => void;
  private snapshot: { pending: number; clients: number; oldestPendingAt?: number } = {
    pending: 0,
    clients: 0,
  };
  /** When a change last made us read the backlog (the reads at start and for the lag log do not count). */
  private backlogReadAt = 0;
  private backlogTimer?: NodeJS.Timeout;
  private readonly now: () => number;
  private readonly owner: string;
  private readonly leaseMs: number;
  private readonly timeoutMs: number;

  constructor(private readonly opts: OutboxOptions) {
    this.now = opts.now ?? Date.now;
    this.leaseMs = opts.leaseMs ?? 30_000;
    this.timeoutMs = opts.deliveryTimeoutMs ?? OUTBOX_DEFAULTS.deliveryTimeoutMs;
    this.owner = opts.owner ?? `${hostname()}:${process.pid}:${opts.leg}:${randomBytes(4).toString('hex')}`;
  }

  /** Starts delivering: claims what is due now (what a previous run left too) and watches the store for more. */
  async start(): Promise<void> {
    if (!this.stopped) return;
    this.stopped = false;
    this.halt = new AbortController();
    const { syncIntervalMs = 1_000, lagLogIntervalMs = 60_000 } = this.opts;
    if (syncIntervalMs > 0) this.housekeeping.push(setInterval(() => void this.probe(), syncIntervalMs));
    // One timer renews every lease this worker holds, a third of the way through it.
    const renewEvery = Math.max(1, Math.floor(this.leaseMs / 3));
    this.housekeeping.push(setInterval(() => this.renewAll(renewEvery), renewEvery));
    if (lagLogIntervalMs > 0)
      this.housekeeping.push(
        setInterval(() => {
          void this.readBacklog().then(() => this.logLag());
        }, lagLogIntervalMs),
      );
    for (const t of this.housekeeping) t.unref();
    this.unsubscribe = this.opts.store.onWork?.(this.opts.leg, () => this.wakeUp());
    this.maybeMore = true;
    await Promise.all([this.refill(true), this.probe(), this.readBacklog()]);
  }

  /**
   * Persists an item (with dedupe on its key) and schedules it. Resolves once
   * the store has it: only then may the source be acknowledged. With a free
   * slot, the same store write claims it, and it starts at once.
   */
  async enqueue(item: NewOutboxItem): Promise<'accepted' | 'duplicate'> {
    const { store, concurrency, dedupeTtlMs } = this.opts;
    const claiming = !this.stopped && this.slots < concurrency;
    if (claiming) this.slots++;
    let stored: Awaited<ReturnType<Store['enqueue']>>;
    try {
      stored = await store.enqueue(
        item,
        dedupeTtlMs,
        this.now(),
        claiming ? { owner: this.owner, leaseMs: this.leaseMs } : undefined,
      );
    } catch (err) {
      if (claiming) this.slots--;
      throw err;
    }
    if (!stored) {
      if (claiming) this.slots--;
      this.opts.metrics?.duplicate();
      return 'duplicate';
    }
    this.opts.metrics?.received();
    this.backlogChanged();
    const { fence, ...rest } = stored;
    if (fence !== undefined) {
      if (this.stopped) {
        this.slots--;
        this.release({ item: rest, fence });
      } else this.begin({ item: rest, fence });
      return 'accepted';
    }
    if (claiming) this.slots--;
    // Not claimed. A client this worker holds gets it by hand-on; else it waits for a claim.
    if (!this.held.has(item.clientId)) this.more();
    return 'accepted';
  }

  /** Pending items and the age of the oldest, as the store last told this worker (refreshed within a second of a change). */
  backlog(): { pending: number; clients: number; oldestAgeMs: number } {
    const { pending, clients, oldestPendingAt } = this.snapshot;
    return {
      pending,
      clients,
      oldestAgeMs: pending && oldestPendingAt !== undefined ? Math.max(0, this.now() - oldestPendingAt) : 0,
    };
  }

  /**
   * Someone else changed the store (an operator revived items): claim what is
   * due now instead of at the next `nextDue` poll. It only schedules a claim
   * (never delivers on the caller's turn, never throws); a stopped worker ignores it.
   */
  wakeUp(): void {
    if (!this.stopped) this.more();
  }

  /** Resolves when nothing runs here and the store has nothing pending on this leg (tests, demo, shutdown). */
  idle(): Promise<void> {
    return new Promise((resolve) => {
      this.idleWaiters.push(resolve);
      this.checkIdle();
    });
  }

  /**
   * Stops claiming; waits up to `graceMs` for running attempts. Then their
   * signals abort, and each records itself as interrupted (due again at once,
   * its attempt not counted). Resolves once no attempt can write to the store
   * any more: what is left stays there, for the next start or another worker.
   */
  async stop(graceMs = 10_000): Promise<void> {
    this.stopped = true;
    for (const t of this.housekeeping) clearInterval(t);
    this.housekeeping = [];
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    clearTimeout(this.wakeTimer);
    this.wakeTimer = undefined;
    this.wakeAt = Number.POSITIVE_INFINITY;
    clearTimeout(this.backlogTimer);
    this.backlogTimer = undefined;
    if (this.runs.size) await settledWithin([...this.runs], graceMs);
    if (this.runs.size) {
      this.halt.abort();
      for (const h of this.held.values()) h.abort?.(new OutboxStoppingError());
      // Each run writes its outcome once more (fenced) and ends; none retries now.
      await Promise.all(this.runs);
    }
    this.halt.abort();
    await this.refilling;
    await Promise.all(this.releases);
    if (this.works.size && !(await settledWithin([...this.works], ABANDON_WAIT_MS))) {
      this.opts.logger.warn(
        { leg: this.opts.leg, attempts: this.works.size },
        'delivery work still running after its signal aborted; it can no longer write to the store',
      );
    }
  }

  // ---------------------------------------------------------------- claiming

  /** Marks that the store may have due clients nobody claimed, and claims them if a slot is free. */
  private more(): void {
    this.maybeMore = true;
    this.moreEpoch++;
    if (this.slots < this.opts.concurrency) void this.refill();
  }

  /** Claims up to the free slots' worth of due clients. `rethrow`: let a store failure reach the caller (start). */
  private refill(rethrow = false): Promise<void> {
    if (this.stopped || !this.maybeMore) return Promise.resolve();
    if (this.refilling) {
      this.refillAgain = true;
      return Promise.resolve();
    }
    const want = this.opts.concurrency - this.slots;
    if (want <= 0) return Promise.resolve();
    this.slots += want;
    const p = this.claimSome(want, rethrow);
    this.refilling = p.catch(() => {});
    return p;
  }

  private async claimSome(want: number, rethrow: boolean): Promise<void> {
    const epoch = this.moreEpoch;
    let claims: Claim[] = [];
    try {
      claims = await this.opts.store.claim(this.opts.leg, this.owner, want, this.leaseMs);
    } catch (err) {
      this.opts.logger.error({ leg: this.opts.leg, err: (err as Error).message }, 'outbox claim failed');
      this.wake(this.now() + this.opts.backoff.baseMs);
      if (rethrow) throw err;
    } finally {
      this.refilling = undefined;
      this.slots -= want - claims.length;
    }
    // Fewer than asked: the store has no more due now (unless an item came in meanwhile).
    if (claims.length < want && epoch === this.moreEpoch) this.maybeMore = false;
    for (const c of claims) {
      if (this.stopped) {
        this.slots--;
        this.release(c);
      } else this.begin(c);
    }
    if (this.refillAgain) {
      this.refillAgain = false;
      void this.refill();
    }
    this.checkIdle();
  }

  /** Sets the wake-up timer for `at` (a due time), unless one is set for earlier. */
  private wake(at: number): void {
    if (this.stopped || at >= this.wakeAt) return;
    clearTimeout(this.wakeTimer);
    this.wakeAt = at;
    this.wakeTimer = setTimeout(
      () => {
        this.wakeTimer = undefined;
        this.wakeAt = Number.POSITIVE_INFINITY;
        this.more();
      },
      Math.max(MIN_WAKE_MS, at - this.now()),
    );
    this.wakeTimer.unref();
  }

  /** Asks the store when something is due next (others' work, what a previous run left) and wakes then. */
  private async probe(): Promise<void> {
    if (this.stopped) return;
    try {
      const at = await this.opts.store.nextDue(this.opts.leg);
      if (at !== undefined) this.wake(at);
    } catch (err) {
      this.opts.logger.warn({ leg: this.opts.leg, err: (err as Error).message }, 'outbox store poll failed');
    }
  }

  /** Gives back a claim this worker will not work (it came after stop began): due as it was, nothing counted. */
  private release({ item, fence }: Claim): void {
    const p = this.opts.store
      .reschedule(
        item.id,
        fence,
        item.attempts,
        item.nextAttemptAt,
        item.lastError ?? 'not attempted: stopping',
      )
      .catch(() => {})
      .finally(() => this.releases.delete(p));
    this.releases.add(p);
  }

  // ---------------------------------------------------------------- attempts

  /** Works a claimed client: its item, then each item the store hands on. The slot is already counted. */
  private begin(claim: Claim): void {
    const h: Held = { claim, slot: true, lost: false, renewing: false, renewedAt: this.now(), handOns: 0 };
    this.held.set(claim.item.clientId, h);
    const run = this.run(h).finally(() => {
      this.runs.delete(run);
      this.checkIdle();
    });
    this.runs.add(run);
  }

  private async run(h: Held): Promise<void> {
    const { leg, logger } = this.opts;
    const clientId = h.claim.item.clientId;
    try {
      for (;;) {
        const outcome = await this.attempt(h);
        if (outcome.kind === 'lost') {
          logger.warn(
            { leg, clientId, eventId: h.claim.item.key, id: h.claim.item.id, reason: outcome.reason },
            'lease lost: another worker has this client now; dropped here',
          );
          return;
        }
        // The client's next item goes on in this slot; while other clients wait for one, only a few
        // times in a row (then the lease is released and the next claim takes the longest-waiting
        // client, maybe this one again).
        const handOn =
          outcome.kind === 'delivered' &&
          !this.stopped &&
          (!this.maybeMore || h.handOns < HAND_ONS_WHILE_OTHERS_WAIT);
        if (handOn && this.maybeMore) h.handOns++;
        const next = await this.record(h, outcome, handOn);
        if (!next) {
          // Released with its next item due: a claim must take it (after the write, so it can).
          if ((outcome.kind === 'delivered' && !handOn) || h.buried) this.more();
          return;
        }
        if (this.stopped) {
          this.release(next);
          return;
        }
        h.claim = next;
        h.renewedAt = this.now();
      }
    } finally {
      this.freeSlot(h);
      this.held.delete(clientId);
      this.backlogChanged();
    }
  }

  private freeSlot(h: Held): void {
    if (!h.slot) return;
    h.slot = false;
    this.slots--;
    if (!this.stopped && this.maybeMore) void this.refill();
  }

  /** One attempt, raced against its deadline. Never throws. */
  private async attempt(h: Held): Promise<Outcome> {
    const { item, fence } = h.claim;
    if (h.lost) return { kind: 'lost', reason: 'lease renewal refused' };
    // The signal is made when the work first asks for it (an AbortSignal costs microseconds).
    let ac: AbortController | undefined;
    let abortedWith: Error | undefined;
    let giveUp!: (reason: Error) => void;
    const ended = new Promise<never>((_, reject) => {
      giveUp = reject;
    });
    h.abort = (reason) => {
      if (abortedWith) return;
      abortedWith = reason;
      ac?.abort(reason);
      giveUp(reason);
    };
    const deadline = setTimeout(() => h.abort?.(new DeliveryTimeoutError(this.timeoutMs)), this.timeoutMs);
    deadline.unref();
    const work: DeliveryWork = {
      get signal() {
        if (!ac) {
          ac = new AbortController();
          if (abortedWith) ac.abort(abortedWith);
        }
        return ac.signal;
      },
      progress: {
        done: item.progress,
        save: async (progress: JsonObject) => {
          await this.opts.store.saveProgress(item.id, fence, progress);
          item.progress = progress;
        },
      },
    };
    const delivering = (async () => this.opts.deliver(item, work))();
    try {
      const receipt = (await Promise.race([delivering, ended])) as DeliveryReceipt | undefined;
      const platformIds = receipt?.platformMessageIds;
      return platformIds?.length ? { kind: 'delivered', platformIds } : { kind: 'delivered' };
    } catch (err) {
      if (!abortedWith) return { kind: 'failed', failure: this.opts.classify(err) };
      const reason: Error = abortedWith;
      // Given up on while the work may go on: stop() waits a little for it to settle.
      const settled = delivering.then(
        () => {},
        () => {},
      );
      this.works.add(settled);
      void settled.then(() => this.works.delete(settled));
      if (reason instanceof LeaseLostError || h.lost) return { kind: 'lost', reason: String(reason) };
      if (reason instanceof OutboxStoppingError) return { kind: 'stopped' };
      if (reason instanceof DeliveryTimeoutError) {
        return { kind: 'failed', failure: { permanent: false, reason: reason.message }, timedOut: true };
      }
      return { kind: 'failed', failure: this.opts.classify(err) };
    } finally {
      clearTimeout(deadline);
      h.abort = undefined;
      ended.catch(() => {});
    }
  }

  /**
   * Writes an attempt's outcome, again and again until the store takes it (a
   * delivered item is never delivered again for a failed write), unless the
   * lease is lost or stop's grace is over. Returns the next item when the
   * store handed the lease on to it.
   */
  private async record(h: Held, outcome: Outcome, handOn: boolean): Promise<Claim | undefined> {
    const { store, logger, leg, metrics } = this.opts;
    const { item, fence } = h.claim;
    const log = { leg, clientId: item.clientId, eventId: item.key, id: item.id };
    let write: () => Promise<Claim | undefined>;
    let done: () => void = () => {};
    if (outcome.kind === 'delivered') {
      const { platformIds } = outcome;
      metrics?.delivered(this.now() - item.createdAt);
      write = () =>
        store.complete(item.id, fence, handOn ? { leaseMs: this.leaseMs } : undefined, platformIds);
    } else if (outcome.kind === 'stopped') {
      const reason = item.lastError ?? 'interrupted by a stop';
      write = async () => void (await store.reschedule(item.id, fence, item.attempts, this.now(), reason));
    } else if (outcome.kind === 'failed') {
      const f = outcome.failure;
      const attempts = item.attempts + 1;
      const age = this.now() - item.createdAt;
      metrics?.failed(failureClass(outcome.failure, outcome.timedOut));
      const giveUp = f.permanent
        ? f.reason
        : attempts >= this.opts.maxAttempts
          ? `gave up after ${attempts} attempts: ${f.reason}`
          : age >= this.opts.maxAgeMs
            ? `gave up after ${Math.round(age / 1000)} s: ${f.reason}`
            : undefined;
      if (giveUp !== undefined) {
        const deadReason: DeadLetterReason = f.permanent
          ? 'permanent'
          : attempts >= this.opts.maxAttempts
            ? 'max_attempts'
            : 'max_age';
        // Its next item, if any, is due as soon as this one is buried.
        h.buryNext = true;
        let told = !this.opts.onGiveUp;
        write = async () => {
          if (!told) {
            told = true;
            await this.opts
              .onGiveUp?.(item, giveUp)
              .catch((err: Error) =>
                logger.warn({ ...log, err: err.message }, 'dead letter: the give-up hook failed'),
              );
          }
          await store.bury(item.id, fence, attempts, giveUp);
          return undefined;
        };
        done = () => {
          h.buried = true;
          metrics?.dead(deadReason);
          // Logged once, at error level: an operator has to look at it.
          logger.error({ ...log, reason: giveUp }, 'dead letter');
        };
      } else {
        const delay = Math.max(
          backoffDelay(attempts, this.opts.backoff),
          f.permanent ? 0 : (f.retryAfterMs ?? 0),
        );
        const at = this.now() + delay;
        write = async () => void (await store.reschedule(item.id, fence, attempts, at, f.reason));
        done = () => {
          this.wake(at);
          logger.warn(
            { ...log, attempts, retryInMs: delay, reason: f.reason },
            'delivery failed; will retry',
          );
        };
      }
    } else return undefined;

    for (let n = 1; ; n++) {
      try {
        const writing = write();
        if (n === 1 && !handOn) {
          // The slot is free now: a claim made in this turn goes into the same store batch as this
          // write, after it (so it sees the client this write releases).
          if (h.buryNext) this.maybeMore = true;
          this.freeSlot(h);
        }
        const next = await writing;
        done();
        return next;
      } catch (err) {
        if (err instanceof LeaseLostError) {
          logger.warn(
            { ...log, outcome: outcome.kind },
            'lease lost: another worker has this client now; dropped here',
          );
          return undefined;
        }
        const message = (err as Error).message;
        if (this.halt.signal.aborted) {
          logger.warn(
            { ...log, outcome: outcome.kind, err: message },
            'outcome not recorded before stop; the item stays pending',
          );
          return undefined;
        }
        logger.error(
          { ...log, outcome: outcome.kind, err: message },
          outcome.kind === 'delivered'
            ? 'delivered, but the store did not record it; retrying the write, not the delivery'
            : 'outbox store write failed; retrying it',
        );
        await sleep(backoffDelay(n, this.opts.backoff), this.halt.signal).catch(() => {});
      }
    }
  }

  /** Renews the leases held longer than `age` since their last renewal. */
  private renewAll(age: number): void {
    const due = this.now() - age;
    for (const h of this.held.values()) if (h.renewedAt <= due) void this.renew(h);
  }

  private async renew(h: Held): Promise<void> {
    if (h.renewing || h.lost) return;
    h.renewing = true;
    const { item, fence } = h.claim;
    const at = this.now();
    try {
      await this.opts.store.renew(this.opts.leg, item.clientId, fence, this.leaseMs);
      h.renewedAt = at;
    } catch (err) {
      if (err instanceof LeaseLostError) {
        h.lost = true;
        h.abort?.(err);
      } else {
        this.opts.logger.warn(
          { leg: this.opts.leg, clientId: item.clientId, eventId: item.key, err: (err as Error).message },
          'lease renewal failed; trying again',
        );
      }
    } finally {
      h.renewing = false;
    }
  }

  // ---------------------------------------------------------------- backlog and idle

  /** Something changed the leg's backlog: re-read it now, or once the current second is over. */
  private backlogChanged(): void {
    if (this.backlogTimer) return;
    const wait = this.backlogReadAt + BACKLOG_REFRESH_MS - this.now();
    if (wait <= 0) {
      this.backlogReadAt = this.now();
      void this.readBacklog();
      return;
    }
    this.backlogTimer = setTimeout(() => {
      this.backlogTimer = undefined;
      this.backlogReadAt = this.now();
      void this.readBacklog();
    }, wait);
    this.backlogTimer.unref();
  }

  /** Reads the leg's backlog from the store (cheap: counts and the oldest head). */
  private async readBacklog(): Promise<void> {
    try {
      const s = (await this.opts.store.stats()).find((x) => x.leg === this.opts.leg);
      if (s) {
        this.snapshot = {
          pending: s.pending,
          clients: s.clients,
          ...(s.oldestPendingAt !== undefined ? { oldestPendingAt: s.oldestPendingAt } : {}),
        };
      }
    } catch (err) {
      this.opts.logger.debug({ leg: this.opts.leg, err: (err as Error).message }, 'outbox stats unavailable');
    }
  }

  private logLag(): void {
    const b = this.backlog();
    if (b.pending > 0) this.opts.logger.info({ leg: this.opts.leg, ...b }, 'outbox backlog');
  }

  /** Resolves the idle waiters once nothing runs here and the store has nothing pending for the leg. */
  private checkIdle(): void {
    if (!this.idleWaiters.length || this.checkingIdle || this.runs.size || this.slots) return;
    this.checkingIdle = true;
    void this.opts.store
      .nextDue(this.opts.leg)
      .then(
        (at) => {
          if (at === undefined) {
            if (this.runs.size || this.slots) return;
            const w = this.idleWaiters;
            this.idleWaiters = [];
            for (const f of w) f();
          } else this.wake(at);
        },
        () => this.wake(this.now() + this.opts.backoff.baseMs),
      )
      .finally(() => {
        this.checkingIdle = false;
      });
  }
}

/** The metrics class of a failed attempt. */
function failureClass(f: FailureKind, timedOut: boolean | undefined): FailureClass {
  if (f.permanent) return 'permanent';
  if (timedOut) return 'timeout';
  return f.retryAfterMs !== undefined ? 'rate_limited' : 'transient';
}

/** Resolves true once all of `ps` settled, false when `ms` passed first. */
async function settledWithin(ps: Promise<unknown>[], ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([Promise.allSettled(ps).then(() => true as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function formatMs(ms: number): string {
  return ms % 60_000 === 0 ? `${ms / 60_000} min` : ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}
