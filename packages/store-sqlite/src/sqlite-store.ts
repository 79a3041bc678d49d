import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import {
  applyClientPatch,
  type Claim,
  type ClientPatch,
  type ClientRecord,
  type EnqueuedItem,
  type JsonObject,
  LeaseLostError,
  type LeaseRequest,
  type Leg,
  type NewOutboxItem,
  type OutboxItem,
  type OutboxStats,
  type Store,
} from '@kitbridge/core';
import Database from 'better-sqlite3';
import { Checkpointer } from './checkpointer.js';
import { StoreOpenError } from './errors.js';
import { StoreLock } from './lock.js';
import { MIGRATIONS, SCHEMA_VERSION } from './migrations.js';

/** Options of {@link SqliteStore.open}. */
export interface SqliteStoreOptions {
  /**
   * Open for reading only (operator tools): never creates the file or its
   * directory, never migrates; writes reject. Default false.
   */
  readonly?: boolean;
  /** How long a write waits for another process's lock before failing, ms. Default 5000. */
  busyTimeoutMs?: number;
  /**
   * `normal` (default) survives a crash of the process (kill -9, OOM kill);
   * `full` also survives power loss / OS crash, at the cost of an fsync per write.
   */
  synchronous?: 'normal' | 'full';
  /**
   * How often a worker thread checkpoints the WAL, ms; 0 leaves it to SQLite's
   * auto-checkpoint inside commits (which stalls the event loop). Default 1000.
   */
  checkpointIntervalMs?: number;
  /**
   * Checkpoints in a row with nothing new in the WAL before the worker ends
   * (the next write starts another). Default 30: an idle store holds no thread.
   */
  checkpointIdleTicks?: number;
  /**
   * Hold the store for this connection alone until {@link SqliteStore.close}
   * (`kitbridge run`): another exclusive open, in this process or another,
   * fails with StoreOpenError `in-use` naming the holder's pid and host.
   * Plain and read-only opens (operator tools) still work beside it. The lock
   * is an fcntl lock on `<path>-lock` that the OS drops when the process dies,
   * so a restart after kill -9 finds it free. Not with `readonly`. Default false.
   */
  exclusive?: boolean;
  /** The store's clock, for leases and due times (tests). Default Date.now. */
  clock?: () => number;
}

interface ClientRow {
  client_id: string;
  address: string | null;
  profile: string | null;
  first_seen: number;
  last_seen: number;
  conversation: 'open' | 'closed';
  close_reason: string | null;
}

interface OutboxRow {
  id: number;
  leg: Leg;
  client_id: string;
  key: string;
  payload: string;
  created_at: number;
  attempts: number;
  next_attempt_at: number;
  last_error: string | null;
  state: 'pending' | 'dead';
  progress: string | null;
}

/** The (leg, client) a lease covers. */
interface LeaseRow {
  leg: Leg;
  client_id: string;
}

/** A fenced write whose lease is not held: thrown after the transaction, which it does not fail. */
const LOST = Symbol('lease lost');

/** A write waiting for the group commit. */
interface Job {
  run: () => unknown;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

interface StatsRow {
  leg: Leg;
  state: 'pending' | 'dead';
  n: number;
}

interface HeadsRow {
  leg: Leg;
  clients: number;
  oldest: number | null;
}

const LEGS: readonly Leg[] = ['inbound', 'outbound'];
const DEFAULT_LIST_LIMIT = 100;

/**
 * The Store on a SQLite file (better-sqlite3): survives restarts and crashes,
 * and may be shared with operator tools (`kitbridge outbox ...`) running in
 * other processes at the same time.
 *
 * better-sqlite3 is synchronous; every method runs its statements to the end
 * before returning a settled promise, so each call is atomic on its own.
 */
export class SqliteStore implements Store {
  /** `sqlite:<absolute path>`. */
  readonly description: string;
  private readonly s;
  private readonly flushTx;
  private checkpointer?: Checkpointer;
  /** Held while open, with {@link SqliteStoreOptions.exclusive}. */
  private lock?: StoreLock;
  /** Writes waiting for the next group commit (see {@link SqliteStore.grouped}). */
  private batch: Job[] = [];
  /** Fences of the running transaction: the last one handed out, and whether fence_seq must be written. */
  private fences?: { last: number; dirty: boolean };
  private readonly clock: () => number;

  private constructor(
    private readonly db: Database.Database,
    /** Absolute path of the database file (or `:memory:`). */
    readonly path: string,
    clock: () => number = Date.now,
  ) {
    this.description = `sqlite:${path}`;
    this.clock = clock;
    // Prepared once; better-sqlite3 keeps them compiled for the life of the connection.
    this.s = {
      getClient: db.prepare<[string], ClientRow>('SELECT * FROM clients WHERE client_id = ?'),
      saveClient: db.prepare(
        `INSERT INTO clients (client_id, address, profile, first_seen, last_seen, conversation, close_reason)
         VALUES (@clientId, @address, @profile, @firstSeen, @lastSeen, @conversation, @closeReason)
         ON CONFLICT (client_id) DO UPDATE SET
           address = excluded.address, profile = excluded.profile, last_seen = excluded.last_seen,
           conversation = excluded.conversation, close_reason = excluded.close_reason`,
      ),
      claimKey: db.prepare<[Leg, string, number, number]>(
        `INSERT INTO dedupe (leg, key, expires_at) VALUES (?, ?, ?)
         ON CONFLICT (leg, key) DO UPDATE SET expires_at = excluded.expires_at WHERE dedupe.expires_at <= ?`,
      ),
      insertItem: db.prepare<[Leg, string, string, string, number, number]>(
        `INSERT INTO outbox (leg, client_id, key, payload, created_at, attempts, next_attempt_at, state)
         VALUES (?, ?, ?, ?, ?, 0, ?, 'pending')`,
      ),
      pending: db.prepare<[Leg], OutboxRow>(
        "SELECT * FROM outbox WHERE leg = ? AND state = 'pending' ORDER BY id",
      ),
      reschedule: db.prepare<[number, number, string, number]>(
        'UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_error = ? WHERE id = ?',
      ),
      delete: db.prepare<[number]>('DELETE FROM outbox WHERE id = ?'),
      bury: db.prepare<[number, string, number]>(
        "UPDATE outbox SET attempts = ?, last_error = ?, state = 'dead' WHERE id = ? AND state = 'pending'",
      ),
      saveProgress: db.prepare<[string, number]>('UPDATE outbox SET progress = ? WHERE id = ?'),
      itemOwner: db.prepare<[number], LeaseRow>('SELECT leg, client_id FROM outbox WHERE id = ?'),
      // The client's head: its lowest-id pending item (partial index outbox_client_pending).
      head: db.prepare<[Leg, string], OutboxRow>(
        "SELECT * FROM outbox WHERE leg = ? AND client_id = ? AND state = 'pending' ORDER BY id LIMIT 1",
      ),
      // A new item becomes the head of a client that had none (no row, or a leased row whose items were dropped).
      addHead: db.prepare<[Leg, string, number, number]>(
        `INSERT INTO queues (leg, client_id, head_id, head_due) VALUES (?, ?, ?, ?)
         ON CONFLICT (leg, client_id) DO UPDATE SET head_id = excluded.head_id, head_due = excluded.head_due
         WHERE queues.head_id IS NULL`,
      ),
      clearHead: db.prepare<[Leg, string]>(
        'UPDATE queues SET head_id = NULL, head_due = 0 WHERE leg = ? AND client_id = ?',
      ),
      // Head recomputed, lease kept (operators' revive/drop).
      setHead: db.prepare<[Leg, string, number, number]>(
        `INSERT INTO queues (leg, client_id, head_id, head_due) VALUES (?, ?, ?, ?)
         ON CONFLICT (leg, client_id) DO UPDATE SET head_id = excluded.head_id, head_due = excluded.head_due`,
      ),
      releaseTo: db.prepare<[number, number, Leg, string]>(
        `UPDATE queues SET head_id = ?, head_due = ?, owner = NULL, fence = NULL, lease_expires = 0
         WHERE leg = ? AND client_id = ?`,
      ),
      handOn: db.prepare<[number, number, number, Leg, string]>(
        'UPDATE queues SET head_id = ?, head_due = ?, lease_expires = ? WHERE leg = ? AND client_id = ?',
      ),
      dropQueue: db.prepare<[Leg, string]>('DELETE FROM queues WHERE leg = ? AND client_id = ?'),
      dropQueueIfFree: db.prepare<[Leg, string]>(
        'DELETE FROM queues WHERE leg = ? AND client_id = ? AND fence IS NULL',
      ),
      grant: db.prepare<[string, number, number, Leg, string, number]>(
        `UPDATE queues SET owner = ?, fence = ?, lease_expires = ?
         WHERE leg = ? AND client_id = ? AND lease_expires <= ?`,
      ),
      claimable: db.prepare<[Leg, number, number], OutboxRow>(
        `SELECT o.* FROM queues q JOIN outbox o ON o.id = q.head_id
         WHERE q.leg = ? AND q.head_id IS NOT NULL AND q.ready_at <= ?
         ORDER BY q.ready_at LIMIT ?`,
      ),
      leaseOf: db.prepare<[number], LeaseRow>('SELECT leg, client_id FROM queues WHERE fence = ?'),
      renew: db.prepare<[number, Leg, string, number]>(
        'UPDATE queues SET lease_expires = ? WHERE leg = ? AND client_id = ? AND fence = ?',
      ),
      nextDue: db
        .prepare<[Leg], number | null>(
          'SELECT MIN(ready_at) FROM queues WHERE leg = ? AND head_id IS NOT NULL',
        )
        .pluck(),
      voidLeases: db.prepare(
        'UPDATE queues SET owner = NULL, fence = NULL, lease_expires = 0 WHERE fence IS NOT NULL',
      ),
      fenceGet: db.prepare<[], number>('SELECT n FROM fence_seq').pluck(),
      fenceSet: db.prepare<[number]>('UPDATE fence_seq SET n = ?'),
      deadClients: db.prepare<[], LeaseRow>(
        "SELECT DISTINCT leg, client_id FROM outbox WHERE state = 'dead'",
      ),
      totalChanges: db.prepare<[], number>('SELECT total_changes()').pluck(),
      list: db.prepare<[{ leg: Leg | null; state: string | null; limit: number }], OutboxRow>(
        `SELECT * FROM outbox
         WHERE (@leg IS NULL OR leg = @leg) AND (@state IS NULL OR state = @state)
         ORDER BY id LIMIT @limit`,
      ),
      get: db.prepare<[number], OutboxRow>('SELECT * FROM outbox WHERE id = ?'),
      reviveId: db.prepare(
        "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ? WHERE id = ?",
      ),
      reviveDead: db.prepare(
        "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ? WHERE state = 'dead'",
      ),
      // Index-only counts; the oldest pending item is taken to be the oldest head (ids grow with time).
      stats: db.prepare<[], StatsRow>('SELECT leg, state, COUNT(*) AS n FROM outbox GROUP BY leg, state'),
      heads: db.prepare<[], HeadsRow>(
        `SELECT q.leg, COUNT(*) AS clients, MIN(o.created_at) AS oldest
         FROM queues q JOIN outbox o ON o.id = q.head_id GROUP BY q.leg`,
      ),
      prune: db.prepare('DELETE FROM dedupe WHERE expires_at <= ?'),
    };

    this.flushTx = db.transaction((jobs: readonly Job[]) => {
      this.fences = undefined;
      const values = jobs.map((j) => j.run());
      this.saveFences();
      return values;
    });
  }

  /**
   * Opens (creating the file and its directory when missing) and migrates the
   * store at `file`. Throws {@link StoreOpenError} naming the path and the
   * problem: cannot create/open, not a database, newer schema, migration failed.
   * `:memory:` gives a private in-memory database (tests).
   */
  static open(file: string, opts: SqliteStoreOptions = {}): SqliteStore {
    const memory = file === ':memory:';
    const path = memory ? file : resolve(file);
    const readonly = opts.readonly ?? false;
    if (!memory && !readonly) {
      try {
        mkdirSync(dirname(path), { recursive: true });
      } catch (err) {
        throw new StoreOpenError(path, 'cannot-open', `cannot create its directory: ${fsProblem(err)}`, {
          cause: err,
        });
      }
    }

    if (opts.exclusive && readonly) {
      throw new TypeError('SqliteStore.open: exclusive needs a read-write open, not a read-only one');
    }
    // Before the file is touched: a second process neither migrates nor writes anything.
    const lock = opts.exclusive && !memory ? StoreLock.acquire(path) : undefined;

    let db: Database.Database;
    try {
      db = new Database(path, { readonly, fileMustExist: readonly, timeout: opts.busyTimeoutMs ?? 5000 });
    } catch (err) {
      lock?.release();
      throw new StoreOpenError(path, 'cannot-open', openProblem(err, readonly), { cause: err });
    }
    try {
      configure(db, opts);
      migrate(db, path, readonly);
      if (!readonly) probeWrite(db, path);
      const store = new SqliteStore(db, path, opts.clock);
      store.lock = lock;
      // Only one exclusive holder at a time: leases in the file are a dead process's.
      if (lock) store.s.voidLeases.run();
      const interval = opts.checkpointIntervalMs ?? 1_000;
      if (!memory && !readonly && interval > 0) {
        db.pragma('wal_autocheckpoint = 0');
        store.checkpointer = new Checkpointer({
          path,
          intervalMs: interval,
          ...(opts.checkpointIdleTicks !== undefined ? { idleTicks: opts.checkpointIdleTicks } : {}),
          onError: () => {
            // The worker failed: SQLite checkpoints inside commits again, as by default.
            if (db.open) db.pragma('wal_autocheckpoint = 1000');
          },
        });
      }
      return store;
    } catch (err) {
      db.close();
      lock?.release();
      if (err instanceof StoreOpenError) throw err;
      const code = sqliteCode(err);
      if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') {
        throw new StoreOpenError(path, 'not-a-database', 'the file is not a SQLite database (corrupt?)', {
          cause: err,
        });
      }
      throw new StoreOpenError(path, 'cannot-open', openProblem(err, readonly), { cause: err });
    }
  }

  async getClient(clientId: string): Promise<ClientRecord | undefined> {
    const row = this.s.getClient.get(clientId);
    return row && toClient(row);
  }

  async saveClient(record: ClientRecord): Promise<void> {
    this.s.saveClient.run(clientParams(record));
    this.wrote(1);
  }

  /** Read, merge and write in one transaction of the group commit: no other writer comes between. */
  patchClient(clientId: string, patch: ClientPatch, now: number): Promise<ClientRecord> {
    return this.grouped(() => {
      const old = this.s.getClient.get(clientId);
      const record = applyClientPatch(old && toClient(old), clientId, patch, now);
      this.s.saveClient.run(clientParams(record));
      return record;
    });
  }

  /** Dedupe check, key claim, item insert (and the lease), in the group commit: together or not at all. */
  enqueue(
    item: NewOutboxItem,
    dedupeTtlMs: number,
    now: number,
    claim?: LeaseRequest,
  ): Promise<EnqueuedItem | undefined> {
    return this.grouped((): EnqueuedItem | undefined => {
      // One statement checks and claims the key: no change means a live duplicate.
      if (this.s.claimKey.run(item.leg, item.key, now + dedupeTtlMs, now).changes === 0) return undefined;
      const { lastInsertRowid } = this.s.insertItem.run(
        item.leg,
        item.clientId,
        item.key,
        JSON.stringify(item.payload),
        now,
        now,
      );
      const id = Number(lastInsertRowid);
      // Built here rather than read back: the row holds exactly these values. The payload is the
      // caller's object (the stored copy is the JSON text, which no caller can reach).
      const stored: EnqueuedItem = {
        id,
        leg: item.leg,
        clientId: item.clientId,
        key: item.key,
        payload: item.payload,
        createdAt: now,
        attempts: 0,
        nextAttemptAt: now,
        state: 'pending',
      };
      // Changed a row only when the client had no head: then this item is it, and due.
      const isHead = this.s.addHead.run(item.leg, item.clientId, id, now).changes > 0;
      if (claim && isHead) {
        const fence = this.nextFence();
        const at = this.clock();
        if (this.s.grant.run(claim.owner, fence, at + claim.leaseMs, item.leg, item.clientId, at).changes)
          stored.fence = fence;
      }
      return stored;
    });
  }

  claim(leg: Leg, owner: string, max: number, leaseMs: number): Promise<Claim[]> {
    if (max <= 0) return Promise.resolve([]);
    return this.grouped(() => {
      const at = this.clock();
      return this.s.claimable.all(leg, at, max).map((row) => {
        const fence = this.nextFence();
        this.s.grant.run(owner, fence, at + leaseMs, leg, row.client_id, at);
        return { item: toItem(row), fence };
      });
    });
  }

  async renew(leg: Leg, clientId: string, fence: number, leaseMs: number): Promise<void> {
    const changed = await this.grouped(
      () => this.s.renew.run(this.clock() + leaseMs, leg, clientId, fence).changes,
    );
    if (!changed) throw new LeaseLostError(fence, 'renew');
  }

  async nextDue(leg: Leg): Promise<number | undefined> {
    return this.s.nextDue.get(leg) ?? undefined;
  }

  async complete(id: number, fence: number, handOn?: { leaseMs: number }): Promise<Claim | undefined> {
    const r = await this.grouped(() => {
      const lease = this.leased(id, fence);
      if (!lease) return LOST;
      this.s.delete.run(id);
      const head = this.s.head.get(lease.leg, lease.client_id);
      if (!head) {
        this.s.dropQueue.run(lease.leg, lease.client_id);
        return undefined;
      }
      const at = this.clock();
      if (handOn && head.next_attempt_at <= at) {
        this.s.handOn.run(head.id, head.next_attempt_at, at + handOn.leaseMs, lease.leg, lease.client_id);
        return { item: toItem(head), fence };
      }
      this.s.releaseTo.run(head.id, head.next_attempt_at, lease.leg, lease.client_id);
      return undefined;
    });
    if (r === LOST) throw new LeaseLostError(fence, 'complete');
    return r;
  }

  async reschedule(
    id: number,
    fence: number,
    attempts: number,
    nextAttemptAt: number,
    lastError: string,
  ): Promise<void> {
    await this.fenced(fence, 'reschedule', () => {
      const lease = this.leased(id, fence);
      if (!lease) return LOST;
      this.s.reschedule.run(attempts, nextAttemptAt, lastError, id);
      this.release(lease);
    });
  }

  async bury(id: number, fence: number, attempts: number, reason: string): Promise<void> {
    await this.fenced(fence, 'bury', () => {
      const lease = this.leased(id, fence);
      if (!lease) return LOST;
      this.s.bury.run(attempts, reason, id);
      this.release(lease);
    });
  }

  async saveProgress(id: number, fence: number, progress: JsonObject): Promise<void> {
    const json = JSON.stringify(progress);
    await this.fenced(fence, 'saveProgress', () => {
      if (!this.leased(id, fence)) return LOST;
      this.s.saveProgress.run(json, id);
    });
  }

  /**
   * Group commit: writes that arrive in one turn of the event loop share one
   * transaction, committed in setImmediate. A commit costs far more than the
   * statements in it, so under load this divides the store's CPU; each write's
   * promise still settles only after its commit, so "resolved" keeps meaning
   * "on disk".
   */
  private grouped<T>(run: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (this.batch.length === 0) setImmediate(() => this.flush());
      this.batch.push({ run, resolve: resolve as (v: unknown) => void, reject });
    });
  }

  /** A fenced write in the group commit; LeaseLostError when `run` found the lease gone. */
  private async fenced(fence: number, what: string, run: () => typeof LOST | undefined): Promise<void> {
    if ((await this.grouped(run)) === LOST) throw new LeaseLostError(fence, what);
  }

  /** The (leg, client) of the lease `fence` holds, when it covers item `id` (or `id` is gone). */
  private leased(id: number, fence: number): LeaseRow | undefined {
    const lease = this.s.leaseOf.get(fence);
    if (!lease) return undefined;
    const item = this.s.itemOwner.get(id);
    if (item && (item.leg !== lease.leg || item.client_id !== lease.client_id)) return undefined;
    return lease;
  }

  /** Ends the client's lease; its row goes with its last pending item. */
  private release(lease: LeaseRow): void {
    const head = this.s.head.get(lease.leg, lease.client_id);
    if (head) this.s.releaseTo.run(head.id, head.next_attempt_at, lease.leg, lease.client_id);
    else this.s.dropQueue.run(lease.leg, lease.client_id);
  }

  /** Head recomputed after an operator's change; the lease stays as it is. */
  private refreshHead(leg: Leg, clientId: string): void {
    const head = this.s.head.get(leg, clientId);
    if (head) this.s.setHead.run(leg, clientId, head.id, head.next_attempt_at);
    // No pending item left: the row goes, unless a lease holds it (then it waits headless for the release).
    else if (this.s.dropQueueIfFree.run(leg, clientId).changes === 0) this.s.clearHead.run(leg, clientId);
  }

  /** At the end of a group-commit transaction: the last fence it handed out. */
  private saveFences(): void {
    if (this.fences?.dirty) this.s.fenceSet.run(this.fences.last);
  }

  /** The next fence, inside a group-commit transaction; fence_seq is written once, at its end. */
  private nextFence(): number {
    this.fences ??= { last: this.s.fenceGet.get()!, dirty: false };
    this.fences.dirty = true;
    return ++this.fences.last;
  }

  private flush(): void {
    const jobs = this.batch;
    this.batch = [];
    if (!this.db.open) {
      for (const j of jobs) j.reject(new Error(`store ${this.description} is closed`));
      return;
    }
    let values: unknown[];
    try {
      values = this.commit(jobs);
    } catch (err) {
      // A failed write takes the shared transaction with it. Unless the whole file is
      // locked (each would wait out the busy timeout again), run each in its own
      // transaction, so that only the write that fails, fails.
      if (jobs.length === 1 || isBusy(err)) {
        for (const j of jobs) j.reject(err);
        return;
      }
      for (const j of jobs) {
        try {
          j.resolve(this.commit([j])[0]);
        } catch (e) {
          j.reject(e);
        }
      }
      return;
    }
    jobs.forEach((j, i) => {
      j.resolve(values[i]);
    });
  }

  /**
   * One transaction for `jobs`. IMMEDIATE takes the write lock up front: a
   * read-then-write transaction in WAL mode could otherwise fail with
   * SQLITE_BUSY_SNAPSHOT when another process (an operator command) wrote in between.
   */
  private commit(jobs: readonly Job[]): unknown[] {
    const before = this.s.totalChanges.get()!;
    const values = this.flushTx.immediate(jobs);
    this.wrote(this.s.totalChanges.get()! - before);
    return values;
  }

  /** After a write that changed `changes` rows: the WAL grew, so a checkpoint worker is needed. */
  private wrote(changes: number): number {
    if (changes > 0) this.checkpointer?.wake();
    return changes;
  }

  async pending(leg: Leg): Promise<OutboxItem[]> {
    return this.s.pending.all(leg).map(toItem);
  }

  async list(filter: { leg?: Leg; state?: 'pending' | 'dead'; limit?: number }): Promise<OutboxItem[]> {
    return this.s.list
      .all({
        leg: filter.leg ?? null,
        state: filter.state ?? null,
        limit: Math.max(0, filter.limit ?? DEFAULT_LIST_LIMIT),
      })
      .map(toItem);
  }

  async get(id: number): Promise<OutboxItem | undefined> {
    const row = this.s.get.get(id);
    return row && toItem(row);
  }

  revive(ids: number[] | 'all-dead', now: number): Promise<number> {
    return this.grouped(() => {
      if (ids === 'all-dead') {
        const clients = this.s.deadClients.all();
        const n = this.s.reviveDead.run(now).changes;
        for (const c of clients) this.refreshHead(c.leg, c.client_id);
        return n;
      }
      let n = 0;
      for (const id of new Set(ids)) {
        if (!this.s.reviveId.run(now, id).changes) continue;
        n++;
        const item = this.s.itemOwner.get(id)!;
        this.refreshHead(item.leg, item.client_id);
      }
      return n;
    });
  }

  drop(id: number): Promise<boolean> {
    return this.grouped(() => {
      const item = this.s.itemOwner.get(id);
      if (!item) return false;
      this.s.delete.run(id);
      this.refreshHead(item.leg, item.client_id);
      return true;
    });
  }

  async stats(): Promise<OutboxStats[]> {
    const counts = this.s.stats.all();
    const heads = new Map(this.s.heads.all().map((r) => [r.leg, r]));
    return LEGS.map((leg) => {
      const n = (state: string) => counts.find((c) => c.leg === leg && c.state === state)?.n ?? 0;
      const h = heads.get(leg);
      const stats: OutboxStats = { leg, pending: n('pending'), dead: n('dead'), clients: h?.clients ?? 0 };
      if (h?.oldest != null) stats.oldestPendingAt = h.oldest;
      return stats;
    });
  }

  async prune(now: number): Promise<number> {
    return this.wrote(this.s.prune.run(now).changes);
  }

  /** Whether the checkpoint worker runs now: from the first write until the WAL has been idle a while. */
  get checkpointing(): boolean {
    return this.checkpointer?.running ?? false;
  }

  /** Closes the connection (checkpointing the WAL). Idempotent. */
  async close(): Promise<void> {
    if (this.batch.length) this.flush();
    await this.checkpointer?.stop();
    this.checkpointer = undefined;
    if (this.db.open) this.db.close();
    // Last: the next holder starts only once everything here is written.
    this.lock?.release();
    this.lock = undefined;
  }
}

/** Async form of {@link SqliteStore.open}, for symmetry with stores that need I/O to open. */
export async function openSqliteStore(file: string, opts?: SqliteStoreOptions): Promise<SqliteStore> {
  return SqliteStore.open(file, opts);
}

function configure(db: Database.Database, opts: SqliteStoreOptions): void {
  // The first statement reads the header: a corrupt file fails here with SQLITE_NOTADB.
  db.pragma(`busy_timeout = ${Math.max(0, Math.trunc(opts.busyTimeoutMs ?? 5000))}`);
  db.pragma('foreign_keys = ON');
  if (!db.readonly) {
    // WAL: readers (operator tools) never block the writer and vice versa.
    db.pragma('journal_mode = WAL');
    // In WAL mode, NORMAL writes each commit to the WAL file before returning
    // (no fsync). The OS page cache then holds it, so a crash of this process
    // (kill -9, OOM) loses nothing that was committed; only a power loss or OS
    // crash may lose the last commits, and never corrupts the file. Crash of the
    // process is our requirement; `synchronous: 'full'` covers power loss too.
    db.pragma(`synchronous = ${opts.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
  }
  // Surface "not a database" now rather than on the first query.
  db.pragma('schema_version');
}

/**
 * Writes once and rolls it back. SQLite quietly opens a file it may not write
 * read-only, and a WAL it cannot write fails only when written: without this,
 * start-up would succeed and every customer message fail.
 */
function probeWrite(db: Database.Database, path: string): void {
  try {
    db.exec(`BEGIN IMMEDIATE; PRAGMA user_version = ${SCHEMA_VERSION}; ROLLBACK`);
  } catch (err) {
    if (db.inTransaction) db.exec('ROLLBACK');
    const code = sqliteCode(err);
    const problem = code?.startsWith('SQLITE_READONLY')
      ? 'the file or its directory is read-only (check their permissions)'
      : `a test write failed: ${(err as Error).message}`;
    throw new StoreOpenError(path, 'cannot-open', problem, { cause: err });
  }
}

function migrate(db: Database.Database, path: string, readonly: boolean): void {
  const version = (): number => db.pragma('user_version', { simple: true }) as number;
  const check = (v: number) => {
    if (v > SCHEMA_VERSION) {
      throw new StoreOpenError(
        path,
        'newer-schema',
        `its schema version ${v} is newer than this build of @kitbridge/store-sqlite knows (${SCHEMA_VERSION}); ` +
          'upgrade kitbridge or use another file',
      );
    }
  };
  const seen = version();
  check(seen);
  if (seen === SCHEMA_VERSION) return;
  if (readonly) {
    throw new StoreOpenError(
      path,
      'needs-migration',
      `its schema version ${seen} is older than ${SCHEMA_VERSION} and it was opened read-only; ` +
        'open it read-write once to migrate',
    );
  }
  // IMMEDIATE, and the version read again inside: two processes opening a new
  // file at once migrate it once.
  db.transaction(() => {
    const from = version();
    check(from);
    for (let v = from; v < SCHEMA_VERSION; v++) {
      try {
        db.exec(MIGRATIONS[v]!);
      } catch (err) {
        throw new StoreOpenError(
          path,
          'migration-failed',
          `migration to schema version ${v + 1} failed (file left unchanged): ${(err as Error).message}`,
          { cause: err },
        );
      }
    }
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  }).immediate();
}

/** The file is locked by another connection past the busy timeout. */
function isBusy(err: unknown): boolean {
  const code = sqliteCode(err);
  return code !== undefined && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'));
}

function sqliteCode(err: unknown): string | undefined {
  return err instanceof Database.SqliteError ? err.code : undefined;
}

function openProblem(err: unknown, readonly: boolean): string {
  const code = sqliteCode(err);
  const message = (err as Error).message;
  if (/directory does not exist/i.test(message)) return 'its directory does not exist';
  if (code === 'SQLITE_CANTOPEN') {
    return readonly
      ? 'the file does not exist or cannot be read (read-only mode never creates it)'
      : 'the file cannot be created or opened (is it a directory? permissions?)';
  }
  if (code?.startsWith('SQLITE_READONLY')) return 'the file or its directory is read-only';
  if (code === 'SQLITE_PERM' || code === 'SQLITE_AUTH') return 'permission denied';
  return message;
}

function fsProblem(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  const what: Record<string, string> = {
    ENOTDIR: 'a component of the path is a file, not a directory',
    EEXIST: 'a component of the path is a file, not a directory',
    EACCES: 'permission denied',
    EPERM: 'permission denied',
    EROFS: 'read-only file system',
  };
  const known = e.code && what[e.code];
  return known ? `${known} (${e.message})` : e.message;
}

function clientParams(record: ClientRecord) {
  return {
    clientId: record.clientId,
    address: jsonOrNull(record.address),
    profile: jsonOrNull(record.profile),
    firstSeen: record.firstSeen,
    lastSeen: record.lastSeen,
    conversation: record.conversation,
    closeReason: record.closeReason ?? null,
  };
}

function jsonOrNull(v: JsonObject | undefined): string | null {
  return v === undefined ? null : JSON.stringify(v);
}

function toClient(r: ClientRow): ClientRecord {
  const c: ClientRecord = {
    clientId: r.client_id,
    firstSeen: r.first_seen,
    lastSeen: r.last_seen,
    conversation: r.conversation,
  };
  if (r.address !== null) c.address = JSON.parse(r.address) as JsonObject;
  if (r.profile !== null) c.profile = JSON.parse(r.profile) as JsonObject;
  if (r.close_reason !== null) c.closeReason = r.close_reason;
  return c;
}

function toItem(r: OutboxRow): OutboxItem {
  const i: OutboxItem = {
    id: r.id,
    leg: r.leg,
    clientId: r.client_id,
    key: r.key,
    payload: JSON.parse(r.payload) as JsonObject,
    createdAt: r.created_at,
    attempts: r.attempts,
    nextAttemptAt: r.next_attempt_at,
    state: r.state,
  };
  if (r.last_error !== null) i.lastError = r.last_error;
  if (r.progress !== null) i.progress = JSON.parse(r.progress) as JsonObject;
  return i;
}
