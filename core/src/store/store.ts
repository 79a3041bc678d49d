/**
 * The Store contract: small enough that memory, SQLite, PostgreSQL and Redis
 * all fit it. The store is persistence plus one rule it enforces itself, the
 * per-client lease: scheduling (FIFO, backoff, dead letters) lives in core's
 * Outbox, and several Outboxes, in one process or several, may share a store.
 *
 * Leases. Outbox rows are worked per (leg, client). A worker *claims* clients:
 * the store grants a lease on each claimed client until `now + leaseMs` (by the
 * store's own clock) with a fencing number, and hands back the client's head
 * item (its lowest-id pending item). While the lease is live no other claim
 * gets that client, so one customer's items go out one at a time and in order.
 * Every write about a claimed item carries the fence and is refused with
 * {@link LeaseLostError} once the lease has passed to someone else, so a worker
 * that stalled past its lease can never overwrite its successor's work.
 *
 * A lease is *held with a fence* while the store's lease of that client still
 * carries that fence: it ends when complete/reschedule/bury release it, or when
 * another claim takes it over after it expired. An expired lease nobody took
 * over is still held (the fence is what protects, not the clock).
 *
 * Every method may be called concurrently; implementations keep each call atomic.
 */
import type { JsonObject } from '../connector.js';

/** Which leg an outbox item travels: customer -> Kit, or agent -> platform. */
export type Leg = 'inbound' | 'outbound';

export interface ClientRecord {
  clientId: string;
  /** The plugin's last-known address (see ClientIdentity.address). */
  address?: JsonObject;
  /** Last profile snapshot the plugin reported, as JSON. */
  profile?: JsonObject;
  firstSeen: number;
  lastSeen: number;
  conversation: 'open' | 'closed';
  closeReason?: string;
}

/**
 * A change to one client record, applied atomically by {@link Store.patchClient}:
 * only what is given changes, so concurrent patches of different fields all land.
 */
export interface ClientPatch {
  /** Replaces the stored address. Absent: kept. */
  address?: JsonObject;
  /** Merged over the stored profile, field by field (top-level keys; a given field replaces the stored one). Absent: kept. */
  profile?: JsonObject;
  /** Profile fields to remove, after the merge (`utm` when Kit closes the conversation). */
  dropProfile?: string[];
  /** Opens or closes the conversation. Absent: kept (a new record is open). Opening clears the close reason. */
  conversation?: 'open' | 'closed';
  /** With `conversation: 'closed'`: why. */
  closeReason?: string;
}

export interface NewOutboxItem {
  leg: Leg;
  clientId: string;
  /** Idempotency key of the source (platform message id, Kit event_id). */
  key: string;
  /** Exactly what the worker needs to deliver; stored as JSON, replayed as is. */
  payload: JsonObject;
}

export interface OutboxItem extends NewOutboxItem {
  /** Monotonic per store: orders items of one client. */
  id: number;
  createdAt: number;
  attempts: number;
  nextAttemptAt: number;
  lastError?: string;
  state: 'pending' | 'dead';
  /**
   * What a delivery of several steps has done so far (which sends went out, the
   * platform's message ids), as the deliverer last saved it with
   * {@link Store.saveProgress}. Absent until something is saved.
   */
  progress?: JsonObject;
}

/** A client's head item under a lease: deliver it, then write the outcome with `fence`. */
export interface Claim {
  item: OutboxItem;
  /** The lease's fencing number: strictly increasing per store, never reused. */
  fence: number;
}

/** What {@link Store.health} reports. `reason` is for operators; it never carries credentials. */
export type StoreHealth = { ok: true } | { ok: false; reason: string };

/** Who asks for a lease, and for how long. */
export interface LeaseRequest {
  /** The claiming worker (host, pid, leg...): for diagnostics; leases are told apart by their fence. */
  owner: string;
  leaseMs: number;
}

/** What {@link Store.enqueue} stored; `fence` is set when it was asked to claim and got the lease. */
export interface EnqueuedItem extends OutboxItem {
  fence?: number;
}

export interface OutboxStats {
  leg: Leg;
  pending: number;
  dead: number;
  /** Clients with at least one pending item. */
  clients: number;
  /** createdAt of the oldest pending item (the oldest client head), if any. */
  oldestPendingAt?: number;
}

/**
 * A fenced write was refused: the lease of the item's client is no longer held
 * with that fence (another worker took the client over, or the lease was
 * released). The caller must forget the item: someone else delivers it now.
 */
export class LeaseLostError extends Error {
  override name = 'LeaseLostError';
  constructor(
    readonly fence: number,
    what = 'write',
  ) {
    super(`lease lost: ${what} with fence ${fence} refused, the client is no longer held with it`);
  }
}

export interface Store {
  /** For logs: `memory`, `sqlite:/path`. Never includes credentials. */
  readonly description: string;

  // -- clients ----------------------------------------------------------------
  getClient(clientId: string): Promise<ClientRecord | undefined>;
  /** Inserts or replaces a whole record; keeps firstSeen of an existing record (imports, tools). */
  saveClient(record: ClientRecord): Promise<void>;
  /**
   * Changes only the fields `patch` gives, in one atomic step, creating the
   * record (firstSeen = now, open) when there is none; lastSeen becomes `now`.
   * Resolves with the record as stored after the patch.
   */
  patchClient(clientId: string, patch: ClientPatch, now: number): Promise<ClientRecord>;

  // -- dedupe + outbox --------------------------------------------------------
  /**
   * Atomically: if `item.key` was seen within its TTL, returns undefined and
   * changes nothing; else remembers the key until now + dedupeTtlMs and appends
   * the item (pending, due at `now`). Resolving means the item survives a crash.
   *
   * With `claim`, in the same step: when the new item is its client's head (no
   * other pending item) and no live lease covers the client, grants the lease
   * as {@link Store.claim} would and returns its `fence`; otherwise no fence,
   * and the item waits for a claim.
   */
  enqueue(
    item: NewOutboxItem,
    dedupeTtlMs: number,
    now: number,
    claim?: LeaseRequest,
  ): Promise<EnqueuedItem | undefined>;
  /**
   * Atomically takes up to `max` clients of `leg` whose head item is due
   * (nextAttemptAt <= the store's clock) and whose lease is free (none, or
   * expired; a live lease is never granted again, not even to its own owner),
   * grants each a lease until now + leaseMs with a fresh fence, and returns
   * their head items, the longest-waiting first.
   */
  claim(leg: Leg, owner: string, max: number, leaseMs: number): Promise<Claim[]>;
  /** Extends a held lease to now + leaseMs. Rejects with {@link LeaseLostError} when it is not held with `fence`. */
  renew(leg: Leg, clientId: string, fence: number, leaseMs: number): Promise<void>;
  /**
   * When the next claim of this leg could return something: the earliest time
   * (store clock) at which a client with a pending item is due and unleased
   * (a past time: now). Undefined when the leg has no pending item at all.
   * Cheap: workers poll it to learn of work other writers made.
   */
  nextDue(leg: Leg): Promise<number | undefined>;
  /**
   * Delivered: removes the item (its dedupe key stays until its TTL; an item
   * an operator dropped meanwhile is no error) and releases the client's lease.
   * With `handOn`, when the client's next item is already due, the lease passes
   * to it instead (same fence, until now + handOn.leaseMs) and it is returned;
   * the caller delivers it next without another claim.
   * With `platformIds` (what the delivery returned, see DeliveryReceipt), the
   * store keeps them with the item's dedupe key, for as long as the key is kept:
   * {@link Store.deliveredIds} answers with them.
   * Rejects with {@link LeaseLostError} when the lease is not held with `fence`.
   */
  complete(
    id: number,
    fence: number,
    handOn?: { leaseMs: number },
    platformIds?: readonly string[],
  ): Promise<Claim | undefined>;
  /**
   * The platform's message ids of a delivered item, by its leg and dedupe key
   * (a Kit event_id): what `complete` was given. Undefined when none were given
   * or the key has been pruned. For edits, deletions and operators.
   */
  deliveredIds(leg: Leg, key: string): Promise<string[] | undefined>;
  /** Records a failed attempt and when to try next; releases the lease. Fenced like complete. */
  reschedule(
    id: number,
    fence: number,
    attempts: number,
    nextAttemptAt: number,
    lastError: string,
  ): Promise<void>;
  /** Moves the item to the dead letters with the reason; releases the lease. Fenced like complete. */
  bury(id: number, fence: number, attempts: number, reason: string): Promise<void>;
  /** Replaces the item's delivery progress (see {@link OutboxItem.progress}); the lease stays. Fenced like complete. */
  saveProgress(id: number, fence: number, progress: JsonObject): Promise<void>;

  // -- operators --------------------------------------------------------------
  /** Every pending item of a leg, by id ascending (tools and tests; the Outbox claims instead). */
  pending(leg: Leg): Promise<OutboxItem[]>;
  list(filter: { leg?: Leg; state?: 'pending' | 'dead'; limit?: number }): Promise<OutboxItem[]>;
  get(id: number): Promise<OutboxItem | undefined>;
  /**
   * Dead (or pending) items back to pending, due at `now`, attempts reset;
   * returns how many. A revived item takes its place among its client's items
   * by id; a lease on the client stays as it is.
   */
  revive(ids: number[] | 'all-dead', now: number): Promise<number>;
  /** Removes an item, pending or dead; a lease on its client stays as it is. */
  drop(id: number): Promise<boolean>;
  stats(): Promise<OutboxStats[]>;

  // -- connectors' cursors and singleton jobs --------------------------------
  /** A connector's durable cursor (ctx.checkpoints); undefined when never set. */
  getCheckpoint(key: string): Promise<string | undefined>;
  /** Stores a cursor; durable when it resolves. */
  setCheckpoint(key: string, value: string): Promise<void>;
  /**
   * Takes the named job lease when it is free or expired (store clock), for
   * `leaseMs`, with a fresh fence; undefined while another holder's lease is
   * live. A store for one process may grant it at once every time.
   */
  acquireJob(name: string, owner: string, leaseMs: number): Promise<number | undefined>;
  /** Extends a held job lease; rejects with {@link LeaseLostError} when it is no longer held with `fence`. */
  renewJob(name: string, fence: number, leaseMs: number): Promise<void>;
  /** Gives a held job lease up (no-op when it is not held with `fence`). */
  releaseJob(name: string, fence: number): Promise<void>;

  // -- wake-ups (optional) ----------------------------------------------------
  /**
   * Calls `listener` soon after another writer (a replica, an operator's
   * revive) made work on `leg` that its own worker did not take at once, so
   * that a worker need not wait for its next `nextDue` poll. Best effort: a
   * missed call must cost no more than a poll's delay, so callers keep polling.
   * Returns the unsubscribe. Must not throw, and must not call `listener`
   * synchronously. Stores that one process owns (memory, SQLite) leave it out.
   */
  onWork?(leg: Leg, listener: () => void): () => void;

  /**
   * Whether the store answers now, as its last calls found it (no I/O): a
   * store on a server reports an outage here so that `/readyz` can say why it
   * is not ready. Must not throw. Absent: always available (an embedded store).
   */
  health?(): StoreHealth;

  // -- housekeeping -----------------------------------------------------------
  /** Removes expired dedupe keys; returns how many. */
  prune(now: number): Promise<number>;
  close(): Promise<void>;
}
