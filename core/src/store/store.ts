/**
 * The Store contract: small enough that memory, SQLite and Redis all fit it.
 * The store is dumb persistence; scheduling (per-client FIFO, backoff, dead
 * letters) lives in core's Outbox, which is the only writer of outbox rows.
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
}

export interface OutboxStats {
  leg: Leg;
  pending: number;
  dead: number;
  /** createdAt of the oldest pending item, if any. */
  oldestPendingAt?: number;
}

export interface Store {
  /** For logs: `memory`, `sqlite:/path`. Never includes credentials. */
  readonly description: string;

  // -- clients ----------------------------------------------------------------
  getClient(clientId: string): Promise<ClientRecord | undefined>;
  /** Inserts or updates; keeps firstSeen of an existing record. */
  saveClient(record: ClientRecord): Promise<void>;

  // -- dedupe + outbox --------------------------------------------------------
  /**
   * Atomically: if `item.key` was seen within its TTL, returns undefined and
   * changes nothing; else remembers the key until now + dedupeTtlMs and appends
   * the item. Resolving means the item survives a crash.
   */
  enqueue(item: NewOutboxItem, dedupeTtlMs: number, now: number): Promise<OutboxItem | undefined>;
  /** Every pending item of a leg, by id ascending. Used once at start-up. */
  pending(leg: Leg): Promise<OutboxItem[]>;
  /** Records a failed attempt and when to try next. */
  reschedule(id: number, attempts: number, nextAttemptAt: number, lastError: string): Promise<void>;
  /** Delivered: remove it (its dedupe key stays until its TTL). */
  complete(id: number): Promise<void>;
  /** Moves it to the dead letters with the reason. */
  bury(id: number, attempts: number, reason: string): Promise<void>;

  // -- operators --------------------------------------------------------------
  list(filter: { leg?: Leg; state?: 'pending' | 'dead'; limit?: number }): Promise<OutboxItem[]>;
  get(id: number): Promise<OutboxItem | undefined>;
  /** Dead (or pending) item back to pending, due now, attempts reset. Returns how many. */
  revive(ids: number[] | 'all-dead', now: number): Promise<number>;
  drop(id: number): Promise<boolean>;
  stats(): Promise<OutboxStats[]>;

  /**
   * Changes whenever outbox rows are changed from outside this process's
   * Outbox (an operator's revive or drop). Cheap: the Outbox polls it and
   * re-reads `pending` only when it moved.
   */
  revision(): Promise<number>;

  // -- housekeeping -----------------------------------------------------------
  /** Removes expired dedupe keys; returns how many. */
  prune(now: number): Promise<number>;
  close(): Promise<void>;
}
