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
  LocalJobLeases,
  LocalLeases,
  type NewOutboxItem,
  type OutboxItem,
  type OutboxStats,
  type PendingRef,
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

/** Where an item belongs. */
interface OwnerRow {
  leg: Leg;
  client_id: string;
}

interface PendingRow extends OwnerRow {
  id: number;
  next_attempt_at: number;
}

/** A fenced write whose lease is not held: thrown after the transaction, which it does not fail. */
const LOST = Symbol('lease lost');

/** A write waiting for the group commit. */
interface Job {
  run: () => unknown;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  /** Writes nothing to the file (a claim): a batch of only these needs no transaction. */
  readonly?: boolean;
}

interface StatsRow {
  leg: Leg;
  state: 'pending' | 'dead';
  n: number;
}

interface ClientsRow {
  leg: Leg;
  clients: number;
}

const LEGS: readonly Leg[] = ['inbound', 'outbound'];
/** Payload JSON kept in memory for claims and hand-ons without a read (see SqliteStore.recent). */
const ITEM_CACHE_BYTES = 32 * 1024 * 1024;
const DEFAULT_LIST_LIMIT = 100;

/**
 * The Store on a SQLite file (better-sqlite3): survives restarts and crashes,
 * and may be shared with operator tools (`kitbridge outbox ...`) running in
 * other processes at the same time.
 *
 * better-sqlite3 is synchronous; every method runs its statements to the end
 * before returning a settled promise, so each call is atomic on its own.
 *
 * Leases: one process runs the outbox on a file (the exclusive open), so the
 * per-client queues, leases and fences live in that process's memory
 * ({@link LocalLeases}), indexed from the rows at the first outbox call; claims,
 * renewals and `nextDue` cost no SQL. Rows other connections change (an
 * operator's revive or drop) are read again when `PRAGMA data_version` says so.
 * Leases end with the process: a restart claims every client at once.
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
  /** The outbox index and its leases, from the first outbox call on (see the class comment). */
  private index?: LocalLeases;
  /** data_version when the index was last read from the rows. */
  private indexedVersion = -1;
  /**
   * Pending items this connection enqueued, as stored, so that a claim or a hand-on does not read
   * back and parse a row it wrote; up to ITEM_CACHE_BYTES of payload JSON, cleared when the index is
   * read again. Kept exact: every write of an item here updates or drops its entry.
   */
  private readonly recent = new Map<number, { item: OutboxItem; bytes: number }>();
  private recentBytes = 0;
  private readonly clock: () => number;
  /** Job leases: in memory, as one process holds the store (exclusive open for `kitbridge run`). */
  private readonly jobs: LocalJobLeases;

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
         ON CONFLICT (leg, key) DO UPDATE SET expires_at = excluded.expires_at, platform_ids = NULL
         WHERE dedupe.expires_at <= ?`,
      ),
      saveSentIds: db.prepare<[string, number]>(
        `UPDATE dedupe SET platform_ids = ?
         WHERE (leg, key) = (SELECT leg, key FROM outbox WHERE id = ?)`,
      ),
      sentIds: db
        .prepare<[Leg, string], string | null>('SELECT platform_ids FROM dedupe WHERE leg = ? AND key = ?')
        .pluck(),
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
      itemOwner: db.prepare<[number], OwnerRow>('SELECT leg, client_id FROM outbox WHERE id = ?'),
      pendingRefs: db.prepare<[], PendingRow>(
        "SELECT id, leg, client_id, next_attempt_at FROM outbox WHERE state = 'pending' ORDER BY id",
      ),
      deadRefs: db.prepare<[], PendingRow>(
        "SELECT id, leg, client_id, next_attempt_at FROM outbox WHERE state = 'dead'",
      ),
      // Moves when another connection (an operator's `kitbridge outbox`) commits; never for our own writes.
      dataVersion: db.prepare<[], number>('PRAGMA data_version').pluck(),
      // A block of fences never handed out before (the first is the result minus the size, plus one).
      reserveFences: db
        .prepare<[number, number], number>('UPDATE fence_seq SET n = MAX(n, ?) + ? RETURNING n')
        .pluck(),
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
      // Index-only counts; the oldest pending item is taken to be the lowest pending id (ids grow with time).
      stats: db.prepare<[], StatsRow>('SELECT leg, state, COUNT(*) AS n FROM outbox GROUP BY leg, state'),
      oldestPending: db
        .prepare<[Leg], number>(
          "SELECT created_at FROM outbox WHERE leg = ? AND state = 'pending' ORDER BY id LIMIT 1",
        )
        .pluck(),
      deadCounts: db.prepare<[], { leg: Leg; n: number }>(
        "SELECT leg, COUNT(*) AS n FROM outbox WHERE state = 'dead' GROUP BY leg",
      ),
      createdAt: db.prepare<[number], number>('SELECT created_at FROM outbox WHERE id = ?').pluck(),
      clients: db.prepare<[], ClientsRow>(
        "SELECT leg, COUNT(DISTINCT client_id) AS clients FROM outbox WHERE state = 'pending' GROUP BY leg",
      ),
      prune: db.prepare('DELETE FROM dedupe WHERE expires_at <= ?'),
      getCheckpoint: db.prepare<[string], string>('SELECT value FROM checkpoints WHERE key = ?').pluck(),
      setCheckpoint: db.prepare<[string, string]>(
        'INSERT INTO checkpoints (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
      ),
    };
    this.jobs = new LocalJobLeases(clock);

    this.flushTx = db.transaction((jobs: readonly Job[]) => {
      // Inside the write lock: what other connections committed is in the index before any job runs.
      this.syncIndex();
      this.index?.begin();
      return jobs.map((j) => j.run());
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
    if (claim) this.openIndex();
    return this.grouped((): EnqueuedItem | undefined => {
      // One statement checks and claims the key: no change means a live duplicate.
      if (this.s.claimKey.run(item.leg, item.key, now + dedupeTtlMs, now).changes === 0) return undefined;
      const json = JSON.stringify(item.payload);
      const { lastInsertRowid } = this.s.insertItem.run(item.leg, item.clientId, item.key, json, now, now);
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
      const index = this.index;
      if (index) {
        // A copy: the caller may change what enqueue returned (the payload is the caller's, as before).
        this.remember({ ...stored }, json.length);
        const { fence } = index.add(item.leg, item.clientId, id, now, claim);
        if (fence !== undefined) stored.fence = fence;
      }
      return stored;
    });
  }

  /**
   * From the in-memory index, in the group commit: after the writes queued before it (a completion
   * that released a client), and its row reads inside the transaction, where they cost no read lock.
   */
  claim(leg: Leg, owner: string, max: number, leaseMs: number): Promise<Claim[]> {
    if (max <= 0) return Promise.resolve([]);
    this.openIndex();
    return this.grouped(
      () =>
        this.index!.claim(leg, owner, max, leaseMs).map(({ fence, headId }) => ({
          item: this.item(headId),
          fence,
        })),
      true,
    );
  }

  async renew(leg: Leg, clientId: string, fence: number, leaseMs: number): Promise<void> {
    if (!this.openIndex().renew(leg, clientId, fence, leaseMs)) throw new LeaseLostError(fence, 'renew');
  }

  async nextDue(leg: Leg): Promise<number | undefined> {
    return this.ensureIndex().nextDue(leg);
  }

  async complete(
    id: number,
    fence: number,
    handOn?: { leaseMs: number },
    platformIds?: readonly string[],
  ): Promise<Claim | undefined> {
    this.openIndex();
    const r = await this.grouped(() => {
      const index = this.index!;
      if (!index.covers(fence, id)) return LOST;
      if (platformIds?.length) this.s.saveSentIds.run(JSON.stringify(platformIds), id);
      this.s.delete.run(id);
      this.forget(id);
      index.remove(id);
      const next = index.handOn(fence, handOn?.leaseMs);
      return next === undefined ? undefined : { item: this.item(next), fence };
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
    await this.fenced(id, fence, 'reschedule', (index) => {
      this.s.reschedule.run(attempts, nextAttemptAt, lastError, id);
      const cached = this.recent.get(id)?.item;
      if (cached) Object.assign(cached, { attempts, nextAttemptAt, lastError });
      const where = index.clientOf(id);
      if (where) index.setDue(where.leg, where.clientId, id, nextAttemptAt);
      index.release(fence);
    });
  }

  async bury(id: number, fence: number, attempts: number, reason: string): Promise<void> {
    await this.fenced(id, fence, 'bury', (index) => {
      this.s.bury.run(attempts, reason, id);
      this.forget(id);
      index.remove(id);
      index.release(fence);
    });
  }

  async saveProgress(id: number, fence: number, progress: JsonObject): Promise<void> {
    const json = JSON.stringify(progress);
    await this.fenced(id, fence, 'saveProgress', () => {
      this.s.saveProgress.run(json, id);
      const cached = this.recent.get(id)?.item;
      if (cached) cached.progress = JSON.parse(json) as JsonObject;
    });
  }

  /**
   * Group commit: writes that arrive in one turn of the event loop share one
   * transaction, committed in setImmediate. A commit costs far more than the
   * statements in it, so under load this divides the store's CPU; each write's
   * promise still settles only after its commit, so "resolved" keeps meaning
   * "on disk".
   */
  private grouped<T>(run: () => T, readonly = false): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (this.batch.length === 0) setImmediate(() => this.flush());
      this.batch.push({ run, resolve: resolve as (v: unknown) => void, reject, readonly });
    });
  }

  /** A write of item `id` under `fence`, in the group commit; LeaseLostError when the lease does not cover it. */
  private async fenced(
    id: number,
    fence: number,
    what: string,
    run: (index: LocalLeases) => void,
  ): Promise<void> {
    this.openIndex();
    const r = await this.grouped(() => {
      const index = this.index!;
      if (!index.covers(fence, id)) return LOST;
      run(index);
      return undefined;
    });
    if (r === LOST) throw new LeaseLostError(fence, what);
  }

  /** The outbox index, made on first use; each group commit brings it up to date first (syncIndex). */
  private openIndex(): LocalLeases {
    this.index ??= new LocalLeases(this.clock, (size) => this.s.reserveFences.get(0, size)! - size + 1);
    return this.index;
  }

  /** The outbox index, up to date with what other connections committed (for reads outside a group commit). */
  private ensureIndex(): LocalLeases {
    const index = this.openIndex();
    this.syncIndex();
    return index;
  }

  /** Re-reads the pending rows into the index when another connection committed since (leases stay). */
  private syncIndex(): void {
    if (!this.index) return;
    const version = this.s.dataVersion.get()!;
    if (version === this.indexedVersion) return;
    this.indexedVersion = version;
    this.clearRecent();
    this.index.load(this.s.pendingRefs.all().map(pendingRef));
  }

  /** A pending item, from the cache of what this connection enqueued or from its row. */
  private item(id: number): OutboxItem {
    const cached = this.recent.get(id)?.item;
    return cached ? { ...cached } : toItem(this.s.get.get(id)!);
  }

  /** Cached while there is room: the oldest pending items are the ones claimed next. */
  private remember(item: OutboxItem, bytes: number): void {
    if (this.recentBytes + bytes > ITEM_CACHE_BYTES) return;
    this.recent.set(item.id, { item, bytes });
    this.recentBytes += bytes;
  }

  private forget(id: number): void {
    const e = this.recent.get(id);
    if (!e) return;
    this.recent.delete(id);
    this.recentBytes -= e.bytes;
  }

  private clearRecent(): void {
    this.recent.clear();
    this.recentBytes = 0;
  }

  private flush(): void {
    const jobs = this.batch;
    this.batch = [];
    if (!this.db.open) {
      for (const j of jobs) j.reject(new Error(`store ${this.description} is closed`));
      return;
    }
    // Claims only: in-memory leases and row reads, no transaction (fences are reserved on their own).
    if (jobs.every((j) => j.readonly)) {
      this.syncIndex();
      for (const j of jobs) {
        try {
          j.resolve(j.run());
        } catch (e) {
          j.reject(e);
        }
      }
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
    let values: unknown[];
    try {
      values = this.flushTx.immediate(jobs);
    } catch (err) {
      // Rolled back: so are the leases and queue changes its jobs made (and the cache forgets).
      this.index?.rollback();
      this.clearRecent();
      throw err;
    }
    this.index?.commit();
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
      const revived: PendingRow[] = [];
      if (ids === 'all-dead') {
        revived.push(...this.s.deadRefs.all());
        this.s.reviveDead.run(now);
      } else {
        for (const id of new Set(ids)) {
          if (!this.s.reviveId.run(now, id).changes) continue;
          const where = this.s.itemOwner.get(id)!;
          revived.push({ id, leg: where.leg, client_id: where.client_id, next_attempt_at: now });
        }
      }
      for (const r of revived) {
        this.forget(r.id);
        this.index?.setDue(r.leg, r.client_id, r.id, now);
      }
      return revived.length;
    });
  }

  drop(id: number): Promise<boolean> {
    return this.grouped(() => {
      if (!this.s.delete.run(id).changes) return false;
      this.forget(id);
      this.index?.remove(id);
      return true;
    });
  }

  /**
   * With the outbox index (the process that runs the outbox), pending counts come from it and only
   * dead letters are counted in SQL; an operator's connection counts everything in SQL.
   */
  async stats(): Promise<OutboxStats[]> {
    if (this.index) {
      this.syncIndex();
      const index = this.index;
      const dead = new Map(this.s.deadCounts.all().map((r) => [r.leg, r.n]));
      return LEGS.map((leg) => {
        const { clients, pending, oldestId } = index.counts(leg);
        const stats: OutboxStats = { leg, pending, dead: dead.get(leg) ?? 0, clients };
        const oldest = oldestId === undefined ? undefined : this.s.createdAt.get(oldestId);
        if (oldest !== undefined) stats.oldestPendingAt = oldest;
        return stats;
      });
    }
    const counts = this.s.stats.all();
    const clients = new Map(this.s.clients.all().map((r) => [r.leg, r.clients]));
    return LEGS.map((leg) => {
      const n = (state: string) => counts.find((c) => c.leg === leg && c.state === state)?.n ?? 0;
      const stats: OutboxStats = {
        leg,
        pending: n('pending'),
        dead: n('dead'),
        clients: clients.get(leg) ?? 0,
      };
      const oldest = stats.pending ? this.s.oldestPending.get(leg) : undefined;
      if (oldest !== undefined) stats.oldestPendingAt = oldest;
      return stats;
    });
  }

  async deliveredIds(leg: Leg, key: string): Promise<string[] | undefined> {
    const ids = this.s.sentIds.get(leg, key);
    return ids ? (JSON.parse(ids) as string[]) : undefined;
  }

  async prune(now: number): Promise<number> {
    return this.wrote(this.s.prune.run(now).changes);
  }

  async getCheckpoint(key: string): Promise<string | undefined> {
    return this.s.getCheckpoint.get(key);
  }

  /** In the group commit: durable when it resolves. */
  async setCheckpoint(key: string, value: string): Promise<void> {
    await this.grouped(() => {
      this.s.setCheckpoint.run(key, value);
    });
  }

  async acquireJob(name: string, owner: string, leaseMs: number): Promise<number | undefined> {
    return this.jobs.acquire(name, owner, leaseMs);
  }

  async renewJob(name: string, fence: number, leaseMs: number): Promise<void> {
    this.jobs.renew(name, fence, leaseMs);
  }

  async releaseJob(name: string, fence: number): Promise<void> {
    this.jobs.release(name, fence);
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

function pendingRef(r: PendingRow): PendingRef {
  return { id: r.id, leg: r.leg, clientId: r.client_id, due: r.next_attempt_at };
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
