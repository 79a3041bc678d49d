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
  type StoreHealth,
} from '@kitbridge/core';
import pg from 'pg';
import {
  describePgError,
  isConnectionError,
  isRetryable,
  isServerError,
  PostgresStoreOpenError,
} from './errors.js';
import { Listener } from './listener.js';
import { MIGRATIONS, SCHEMA_VERSION } from './migrations.js';
import { decodeText, encodeText, scrubText } from './text.js';
import { parsePostgresUrl } from './url.js';

/** Options of {@link openPostgresStore}. */
export interface PostgresStoreOptions {
  /** Connections at most in the pool. Default 10. */
  poolSize?: number;
  /** How long to wait for a connection (new, or free in the pool) before a call fails, ms. Default 5000. */
  connectTimeoutMs?: number;
  /** Longest a query may take before it fails (the connection is then dropped), ms. Default 15000. */
  queryTimeoutMs?: number;
  /**
   * The store's clock for leases and due times (tests). Default: the
   * database's (`clock_timestamp()`), so that every replica judges leases alike.
   */
  clock?: () => number;
}

interface ClientRow {
  client_id: string;
  address: JsonObject | null;
  profile: JsonObject | null;
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
  payload: JsonObject;
  created_at: number;
  attempts: number;
  next_attempt_at: number;
  last_error: string | null;
  state: 'pending' | 'dead';
  progress: JsonObject | null;
}

/** The lease a fence holds, and where the item of a fenced write lives (if it still exists). */
interface FenceRow {
  leg: Leg;
  client_id: string;
  item_leg: Leg | null;
  item_client: string | null;
  item_state: 'pending' | 'dead' | null;
}

type Db = pg.PoolClient | pg.Pool;

const LEGS: readonly Leg[] = ['inbound', 'outbound'];
const DEFAULT_LIST_LIMIT = 100;
/** Attempts of a transaction that hit a deadlock or a serialization failure. */
const TX_ATTEMPTS = 3;

/** int8 and numeric as JS numbers: ids, fences and epoch ms all fit in a double. */
const TYPES = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === 20 || oid === 1700) return (v: string) => Number(v);
    return pg.types.getTypeParser(oid, format);
  },
} as pg.CustomTypesConfig;

/**
 * The Store on PostgreSQL (node-postgres, a bounded pool), shared by every
 * replica of a connector and by operator tools. Everything a replica must
 * agree on lives in the database: dedupe keys, outbox rows, the per-client
 * leases with their fences, connectors' cursors and job leases. Each method is
 * one transaction; leases are judged by the database's clock.
 *
 * Claims lock the lease rows they grant (`INSERT ... ON CONFLICT DO UPDATE
 * ... WHERE expired`): a racing claimant waits for the row, sees it live and
 * passes on, so no client is ever granted twice. Fenced writes lock their
 * lease row first, so a takeover waits for a write in progress and the write
 * of a stale holder finds another fence and is refused.
 *
 * Wake-ups: an enqueue that was not claimed at once (and a revive) sends
 * `NOTIFY` on the schema's channel; {@link PostgresStore.onWork} listeners hear
 * it on a dedicated connection, re-established after a failure. Polling
 * `nextDue` stays the fallback.
 */
export class PostgresStore implements Store {
  /** `postgres://user@host:port/db?schema=...`: the URL without its password. */
  readonly description: string;
  private readonly t;
  private readonly nowSql: string;
  private readonly channel: string;
  private listener?: Listener;
  private closed = false;
  /** Why the database cannot be reached, since the last call that found so (see health). */
  private outage?: string;

  private constructor(
    private readonly pool: pg.Pool,
    private readonly connection: pg.ClientConfig,
    description: string,
    readonly schema: string,
    private readonly clock: (() => number) | undefined,
  ) {
    this.description = description;
    const s = quoteIdent(schema);
    this.t = {
      clients: `${s}.clients`,
      dedupe: `${s}.dedupe`,
      outbox: `${s}.outbox`,
      leases: `${s}.leases`,
      checkpoints: `${s}.checkpoints`,
      jobs: `${s}.jobs`,
      fences: `nextval('${s}.fences')`,
    };
    // The store clock: the test clock when given (as a parameter, $1 of every query using it), else the database's.
    this.nowSql = 'COALESCE($1::bigint, floor(extract(epoch from clock_timestamp()) * 1000)::bigint)';
    this.channel = `kitbridge:${schema}`;
  }

  /** Opens the pool, checks the database can be reached and written, and migrates (see {@link openPostgresStore}). */
  static async open(url: string, opts: PostgresStoreOptions = {}): Promise<PostgresStore> {
    let parsed: ReturnType<typeof parsePostgresUrl>;
    try {
      parsed = parsePostgresUrl(url);
    } catch (err) {
      throw new PostgresStoreOpenError('(the KITBRIDGE_STORE URL)', (err as Error).message, { cause: err });
    }
    const connection: pg.ClientConfig = {
      connectionString: parsed.connectionString,
      application_name: 'kitbridge',
      connectionTimeoutMillis: opts.connectTimeoutMs ?? 5_000,
      query_timeout: opts.queryTimeoutMs ?? 15_000,
      keepAlive: true,
      types: TYPES,
    };
    const pool = new pg.Pool({ ...connection, max: opts.poolSize ?? 10, idleTimeoutMillis: 30_000 });
    // An idle connection the server cut (restart, failover) errors here; the next query gets a new one.
    pool.on('error', () => {});
    const store = new PostgresStore(pool, connection, parsed.redacted, parsed.schema, opts.clock);
    try {
      await store.migrate();
      await store.probeWrite();
    } catch (err) {
      await pool.end().catch(() => {});
      if (err instanceof PostgresStoreOpenError) throw err;
      throw new PostgresStoreOpenError(parsed.redacted, describePgError(err), { cause: err });
    }
    return store;
  }

  // ---------------------------------------------------------------- clients

  async getClient(clientId: string): Promise<ClientRecord | undefined> {
    const { rows } = await this.query<ClientRow>(`SELECT * FROM ${this.t.clients} WHERE client_id = $1`, [
      encodeText(clientId),
    ]);
    return rows[0] && toClient(rows[0]);
  }

  async saveClient(record: ClientRecord): Promise<void> {
    await this.observe(this.writeClient(this.pool, record));
  }

  /** Read, merge and write under the row's lock: concurrent patches of different fields all land. */
  patchClient(clientId: string, patch: ClientPatch, now: number): Promise<ClientRecord> {
    return this.tx(async (db) => {
      const id = encodeText(clientId);
      await db.query(
        `INSERT INTO ${this.t.clients} (client_id, first_seen, last_seen, conversation)
         VALUES ($1, $2, $2, 'open') ON CONFLICT (client_id) DO NOTHING`,
        [id, now],
      );
      const { rows } = await db.query<ClientRow>(
        `SELECT * FROM ${this.t.clients} WHERE client_id = $1 FOR UPDATE`,
        [id],
      );
      const record = applyClientPatch(toClient(rows[0]!), clientId, patch, now);
      await this.writeClient(db, record);
      return record;
    });
  }

  private async writeClient(db: Db, record: ClientRecord): Promise<void> {
    await db.query(
      `INSERT INTO ${this.t.clients} (client_id, address, profile, first_seen, last_seen, conversation, close_reason)
       VALUES ($1, $2, $3, $4, $5, $6, $7)
       ON CONFLICT (client_id) DO UPDATE SET
         address = excluded.address, profile = excluded.profile, last_seen = excluded.last_seen,
         conversation = excluded.conversation, close_reason = excluded.close_reason`,
      [
        encodeText(record.clientId),
        jsonOrNull(record.address),
        jsonOrNull(record.profile),
        record.firstSeen,
        record.lastSeen,
        record.conversation,
        record.closeReason === undefined ? null : scrubText(record.closeReason),
      ],
    );
  }

  // ---------------------------------------------------------------- dedupe + outbox

  /**
   * Under the client's advisory lock (so that one client's ids grow in commit
   * order), one statement: claims the key unless it is live, appends the item,
   * and with `claim` takes the lease when the item is the head and the client
   * free. Not claimed: a NOTIFY wakes the replicas' outboxes.
   */
  enqueue(
    item: NewOutboxItem,
    dedupeTtlMs: number,
    now: number,
    claim?: LeaseRequest,
  ): Promise<EnqueuedItem | undefined> {
    const clientId = encodeText(item.clientId);
    const key = encodeText(item.key);
    const payload = JSON.stringify(item.payload);
    return this.tx(async (db) => {
      await db.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [
        `${this.channel}:${item.leg}:${clientId}`,
      ]);
      const { rows } = await db.query<{ id: number; fence: number | null }>(
        `WITH t AS (SELECT ${this.nowSql} AS now),
         d AS (
           INSERT INTO ${this.t.dedupe} AS d (leg, key, expires_at) VALUES ($2, $3, $4::bigint + $5::bigint)
           ON CONFLICT (leg, key) DO UPDATE SET expires_at = excluded.expires_at, platform_ids = NULL
             WHERE d.expires_at <= $4
           RETURNING 1
         ),
         o AS (
           INSERT INTO ${this.t.outbox} (leg, client_id, key, payload, created_at, attempts, next_attempt_at, state)
           SELECT $2, $6, $3, $7, $4, 0, $4, 'pending' FROM d
           RETURNING id
         ),
         l AS (
           INSERT INTO ${this.t.leases} AS l (leg, client_id, fence, owner, expires_at)
           SELECT $2, $6, ${this.t.fences}, $8, t.now + $9::bigint FROM o, t
           WHERE $8::text IS NOT NULL AND NOT EXISTS (
             SELECT 1 FROM ${this.t.outbox} p WHERE p.leg = $2 AND p.client_id = $6 AND p.state = 'pending')
           ON CONFLICT (leg, client_id) DO UPDATE
             SET fence = excluded.fence, owner = excluded.owner, expires_at = excluded.expires_at
             WHERE l.expires_at <= excluded.expires_at - $9::bigint
           RETURNING fence
         ),
         n AS (SELECT pg_notify($10, $2) FROM o WHERE NOT EXISTS (SELECT 1 FROM l))
         SELECT o.id, (SELECT fence FROM l) AS fence, (SELECT count(*) FROM n) AS notified FROM o`,
        [
          this.clockParam(),
          item.leg,
          key,
          now,
          dedupeTtlMs,
          clientId,
          payload,
          claim ? scrubText(claim.owner) : null,
          claim?.leaseMs ?? 0,
          this.channel,
        ],
      );
      const row = rows[0];
      if (!row) return undefined;
      const stored: EnqueuedItem = {
        id: row.id,
        leg: item.leg,
        clientId: item.clientId,
        key: item.key,
        payload: JSON.parse(payload) as JsonObject,
        createdAt: now,
        attempts: 0,
        nextAttemptAt: now,
        state: 'pending',
      };
      if (row.fence !== null) stored.fence = row.fence;
      return stored;
    });
  }

  /**
   * Locks the due heads of free clients (`FOR UPDATE SKIP LOCKED`: concurrent
   * claimants take different clients), grants their leases (locking the lease
   * rows: a live one is never taken over), then reads the heads again in a new
   * snapshot: a client whose head was delivered meanwhile by a holder that just
   * let go is released again rather than handed out twice.
   */
  async claim(leg: Leg, owner: string, max: number, leaseMs: number): Promise<Claim[]> {
    if (max <= 0) return [];
    return this.tx(async (db) => {
      const granted = await db.query<{ client_id: string; fence: number; now: number }>(
        `WITH t AS (SELECT ${this.nowSql} AS now),
         heads AS (
           SELECT DISTINCT ON (client_id) client_id, id, next_attempt_at FROM ${this.t.outbox}
           WHERE leg = $2 AND state = 'pending' ORDER BY client_id, id
         ),
         free AS (
           SELECT h.id FROM heads h, t
           WHERE h.next_attempt_at <= t.now AND NOT EXISTS (
             SELECT 1 FROM ${this.t.leases} l WHERE l.leg = $2 AND l.client_id = h.client_id AND l.expires_at > t.now)
         ),
         cand AS (
           SELECT o.client_id FROM ${this.t.outbox} o WHERE o.id IN (SELECT id FROM free)
           ORDER BY o.next_attempt_at, o.id LIMIT $3 FOR UPDATE SKIP LOCKED
         )
         INSERT INTO ${this.t.leases} AS l (leg, client_id, fence, owner, expires_at)
         SELECT $2, c.client_id, ${this.t.fences}, $4, t.now + $5::bigint FROM (SELECT * FROM cand ORDER BY client_id) c, t
         ON CONFLICT (leg, client_id) DO UPDATE
           SET fence = excluded.fence, owner = excluded.owner, expires_at = excluded.expires_at
           WHERE l.expires_at <= excluded.expires_at - $5::bigint
         RETURNING l.client_id, l.fence, l.expires_at - $5::bigint AS now`,
        [this.clockParam(), leg, max, scrubText(owner), leaseMs],
      );
      if (!granted.rows.length) return [];
      const now = granted.rows[0]!.now;
      const { rows } = await db.query<OutboxRow>(
        `SELECT DISTINCT ON (client_id) * FROM ${this.t.outbox}
         WHERE leg = $1 AND state = 'pending' AND client_id = ANY($2::text[]) ORDER BY client_id, id`,
        [leg, granted.rows.map((g) => g.client_id)],
      );
      const heads = new Map(rows.map((r) => [r.client_id, r]));
      const claims: Claim[] = [];
      const stale: number[] = [];
      for (const g of granted.rows) {
        const head = heads.get(g.client_id);
        if (head && head.next_attempt_at <= now) claims.push({ item: toItem(head), fence: g.fence });
        else stale.push(g.fence);
      }
      if (stale.length)
        await db.query(`DELETE FROM ${this.t.leases} WHERE fence = ANY($1::bigint[])`, [stale]);
      return claims.sort((a, b) => a.item.nextAttemptAt - b.item.nextAttemptAt || a.item.id - b.item.id);
    });
  }

  async renew(leg: Leg, clientId: string, fence: number, leaseMs: number): Promise<void> {
    const { rowCount } = await this.query(
      `UPDATE ${this.t.leases} SET expires_at = ${this.nowSql} + $5::bigint
       WHERE leg = $2 AND client_id = $3 AND fence = $4`,
      [this.clockParam(), leg, encodeText(clientId), fence, leaseMs],
    );
    if (!rowCount) throw new LeaseLostError(fence, 'renew');
  }

  async nextDue(leg: Leg): Promise<number | undefined> {
    const { rows } = await this.query<{ at: number | null }>(
      `WITH heads AS (
         SELECT DISTINCT ON (client_id) client_id, next_attempt_at FROM ${this.t.outbox}
         WHERE leg = $1 AND state = 'pending' ORDER BY client_id, id
       )
       SELECT min(GREATEST(h.next_attempt_at, COALESCE(l.expires_at, 0))) AS at
       FROM heads h LEFT JOIN ${this.t.leases} l ON l.leg = $1 AND l.client_id = h.client_id`,
      [leg],
    );
    return rows[0]?.at ?? undefined;
  }

  /**
   * With `platformIds`, they are kept on the item's dedupe key (see
   * {@link PostgresStore.deliveredIds}); an item an operator dropped meanwhile keeps none.
   */
  complete(
    id: number,
    fence: number,
    handOn?: { leaseMs: number },
    platformIds?: readonly string[],
  ): Promise<Claim | undefined> {
    return this.fenced(id, fence, 'complete', async (db, lease) => {
      const { rows } = await db.query<{ leg: Leg; key: string }>(
        `DELETE FROM ${this.t.outbox} WHERE id = $1 RETURNING leg, key`,
        [id],
      );
      if (platformIds && rows[0]) {
        await db.query(`UPDATE ${this.t.dedupe} SET platform_ids = $3 WHERE leg = $1 AND key = $2`, [
          rows[0].leg,
          rows[0].key,
          JSON.stringify(platformIds),
        ]);
      }
      if (handOn) {
        const next = await db.query<OutboxRow>(
          `WITH t AS (SELECT ${this.nowSql} AS now),
           next AS (
             SELECT o.* FROM ${this.t.outbox} o
             WHERE o.leg = $2 AND o.client_id = $3 AND o.state = 'pending' ORDER BY o.id LIMIT 1
           ),
           renewed AS (
             UPDATE ${this.t.leases} SET expires_at = t.now + $5::bigint FROM next, t
             WHERE fence = $4 AND next.next_attempt_at <= t.now
             RETURNING 1
           )
           SELECT next.* FROM next WHERE EXISTS (SELECT 1 FROM renewed)`,
          [this.clockParam(), lease.leg, lease.client_id, fence, handOn.leaseMs],
        );
        if (next.rows[0]) return { item: toItem(next.rows[0]), fence };
      }
      await this.release(db, fence);
      return undefined;
    });
  }

  async reschedule(
    id: number,
    fence: number,
    attempts: number,
    nextAttemptAt: number,
    lastError: string,
  ): Promise<void> {
    await this.fenced(id, fence, 'reschedule', async (db) => {
      await db.query(
        `UPDATE ${this.t.outbox} SET attempts = $2, next_attempt_at = $3, last_error = $4 WHERE id = $1`,
        [id, attempts, nextAttemptAt, scrubText(lastError)],
      );
      await this.release(db, fence);
    });
  }

  async bury(id: number, fence: number, attempts: number, reason: string): Promise<void> {
    await this.fenced(id, fence, 'bury', async (db) => {
      await db.query(
        `UPDATE ${this.t.outbox} SET attempts = $2, last_error = $3, state = 'dead' WHERE id = $1 AND state = 'pending'`,
        [id, attempts, scrubText(reason)],
      );
      await this.release(db, fence);
    });
  }

  async saveProgress(id: number, fence: number, progress: JsonObject): Promise<void> {
    await this.fenced(id, fence, 'saveProgress', async (db) => {
      await db.query(`UPDATE ${this.t.outbox} SET progress = $2 WHERE id = $1`, [
        id,
        JSON.stringify(progress),
      ]);
    });
  }

  /** The platform message ids {@link PostgresStore.complete} kept with the dedupe key of `key`, while the key is kept. */
  async deliveredIds(leg: Leg, key: string): Promise<string[] | undefined> {
    const { rows } = await this.query<{ platform_ids: string[] | null }>(
      `SELECT platform_ids FROM ${this.t.dedupe} WHERE leg = $1 AND key = $2`,
      [leg, encodeText(key)],
    );
    return rows[0]?.platform_ids ?? undefined;
  }

  // ---------------------------------------------------------------- operators

  async pending(leg: Leg): Promise<OutboxItem[]> {
    const { rows } = await this.query<OutboxRow>(
      `SELECT * FROM ${this.t.outbox} WHERE leg = $1 AND state = 'pending' ORDER BY id`,
      [leg],
    );
    return rows.map(toItem);
  }

  async list(filter: { leg?: Leg; state?: 'pending' | 'dead'; limit?: number }): Promise<OutboxItem[]> {
    const { rows } = await this.query<OutboxRow>(
      `SELECT * FROM ${this.t.outbox}
       WHERE ($1::text IS NULL OR leg = $1) AND ($2::text IS NULL OR state = $2)
       ORDER BY id LIMIT $3`,
      [filter.leg ?? null, filter.state ?? null, Math.max(0, filter.limit ?? DEFAULT_LIST_LIMIT)],
    );
    return rows.map(toItem);
  }

  async get(id: number): Promise<OutboxItem | undefined> {
    if (!Number.isSafeInteger(id)) return undefined;
    const { rows } = await this.query<OutboxRow>(`SELECT * FROM ${this.t.outbox} WHERE id = $1`, [id]);
    return rows[0] && toItem(rows[0]);
  }

  /** Revived items wake the replicas' outboxes (NOTIFY), so an operator's revive is worked at once. */
  revive(ids: number[] | 'all-dead', now: number): Promise<number> {
    return this.tx(async (db) => {
      const { rows } = await db.query<{ leg: Leg }>(
        ids === 'all-dead'
          ? `UPDATE ${this.t.outbox} SET state = 'pending', attempts = 0, next_attempt_at = $1 WHERE state = 'dead' RETURNING leg`
          : `UPDATE ${this.t.outbox} SET state = 'pending', attempts = 0, next_attempt_at = $1 WHERE id = ANY($2::bigint[]) RETURNING leg`,
        ids === 'all-dead' ? [now] : [now, ids.filter(Number.isSafeInteger)],
      );
      for (const leg of new Set(rows.map((r) => r.leg))) await this.notify(db, leg);
      return rows.length;
    });
  }

  async drop(id: number): Promise<boolean> {
    if (!Number.isSafeInteger(id)) return false;
    const { rowCount } = await this.query(`DELETE FROM ${this.t.outbox} WHERE id = $1`, [id]);
    return (rowCount ?? 0) > 0;
  }

  async stats(): Promise<OutboxStats[]> {
    const { rows } = await this.query<{
      leg: Leg;
      pending: number;
      dead: number;
      clients: number;
      oldest: number | null;
    }>(
      `SELECT leg,
         count(*) FILTER (WHERE state = 'pending') AS pending,
         count(*) FILTER (WHERE state = 'dead') AS dead,
         count(DISTINCT client_id) FILTER (WHERE state = 'pending') AS clients,
         min(created_at) FILTER (WHERE state = 'pending') AS oldest
       FROM ${this.t.outbox} GROUP BY leg`,
    );
    return LEGS.map((leg) => {
      const r = rows.find((x) => x.leg === leg);
      const stats: OutboxStats = {
        leg,
        pending: r?.pending ?? 0,
        dead: r?.dead ?? 0,
        clients: r?.clients ?? 0,
      };
      if (r && r.oldest !== null) stats.oldestPendingAt = r.oldest;
      return stats;
    });
  }

  // ---------------------------------------------------------------- cursors and singleton jobs

  async getCheckpoint(key: string): Promise<string | undefined> {
    const { rows } = await this.query<{ value: string }>(
      `SELECT value FROM ${this.t.checkpoints} WHERE key = $1`,
      [encodeText(key)],
    );
    return rows[0] && decodeText(rows[0].value);
  }

  async setCheckpoint(key: string, value: string): Promise<void> {
    await this.query(
      `INSERT INTO ${this.t.checkpoints} (key, value) VALUES ($1, $2)
       ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
      [encodeText(key), encodeText(value)],
    );
  }

  async acquireJob(name: string, owner: string, leaseMs: number): Promise<number | undefined> {
    const { rows } = await this.query<{ fence: number }>(
      `INSERT INTO ${this.t.jobs} AS j (name, fence, owner, expires_at)
       VALUES ($2, ${this.t.fences}, $3, ${this.nowSql} + $4::bigint)
       ON CONFLICT (name) DO UPDATE SET fence = excluded.fence, owner = excluded.owner, expires_at = excluded.expires_at
         WHERE j.expires_at <= excluded.expires_at - $4::bigint
       RETURNING fence`,
      [this.clockParam(), encodeText(name), scrubText(owner), leaseMs],
    );
    return rows[0]?.fence;
  }

  async renewJob(name: string, fence: number, leaseMs: number): Promise<void> {
    const { rowCount } = await this.query(
      `UPDATE ${this.t.jobs} SET expires_at = ${this.nowSql} + $4::bigint WHERE name = $2 AND fence = $3`,
      [this.clockParam(), encodeText(name), fence, leaseMs],
    );
    if (!rowCount) throw new LeaseLostError(fence, `renewal of job ${name}`);
  }

  async releaseJob(name: string, fence: number): Promise<void> {
    await this.query(`DELETE FROM ${this.t.jobs} WHERE name = $1 AND fence = $2`, [encodeText(name), fence]);
  }

  // ---------------------------------------------------------------- wake-ups and housekeeping

  /**
   * Calls `listener` when another writer (any replica, an operator) made work
   * on `leg` that its own worker did not take at once. Best effort: a lost
   * notification is found by polling `nextDue`. Returns the unsubscribe.
   */
  onWork(leg: Leg, listener: () => void): () => void {
    if (this.closed) return () => {};
    this.listener ??= new Listener(this.connection, this.channel);
    return this.listener.add(leg, listener);
  }

  async prune(now: number): Promise<number> {
    const { rowCount } = await this.query(`DELETE FROM ${this.t.dedupe} WHERE expires_at <= $1`, [now]);
    return rowCount ?? 0;
  }

  /** Ends the listener and the pool, waiting for queries in flight. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.listener?.close();
    await this.pool.end();
  }

  /** Unavailable since the last call that could not reach the database, until one succeeds (no I/O). */
  health(): StoreHealth {
    return this.outage ? { ok: false, reason: this.outage } : { ok: true };
  }

  // ---------------------------------------------------------------- internals

  /** A statement on any pooled connection, its outcome noted for {@link PostgresStore.health}. */
  private query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string,
    values?: unknown[],
  ): Promise<pg.QueryResult<R>> {
    return this.observe(this.pool.query<R>(text, values));
  }

  private async observe<T>(p: Promise<T>): Promise<T> {
    try {
      const r = await p;
      this.outage = undefined;
      return r;
    } catch (err) {
      if (isConnectionError(err)) this.outage = `PostgreSQL unreachable: ${describePgError(err)}`;
      throw err;
    }
  }

  /** The test clock's now for `$1`, or null: the database's clock then. */
  private clockParam(): number | null {
    return this.clock ? this.clock() : null;
  }

  private async notify(db: Db, leg: Leg): Promise<void> {
    await db.query('SELECT pg_notify($1, $2)', [this.channel, leg]);
  }

  private async release(db: Db, fence: number): Promise<void> {
    await db.query(`DELETE FROM ${this.t.leases} WHERE fence = $1`, [fence]);
  }

  /**
   * A write of item `id` under `fence`, in one transaction that first locks the
   * lease row: LeaseLostError unless the fence still holds a lease, and that
   * lease is the item's client's (an item gone or dead is covered by any held fence).
   */
  private async fenced<T>(
    id: number,
    fence: number,
    what: string,
    run: (db: pg.PoolClient, lease: FenceRow) => Promise<T>,
  ): Promise<T> {
    const LOST = Symbol('lost');
    const r = await this.tx(async (db) => {
      const { rows } = await db.query<FenceRow>(
        `SELECT l.leg, l.client_id, o.leg AS item_leg, o.client_id AS item_client, o.state AS item_state
         FROM ${this.t.leases} l LEFT JOIN ${this.t.outbox} o ON o.id = $2
         WHERE l.fence = $1 FOR UPDATE OF l`,
        [Number.isSafeInteger(fence) ? fence : -1, Number.isSafeInteger(id) ? id : -1],
      );
      const lease = rows[0];
      if (!lease) return LOST;
      if (
        lease.item_state === 'pending' &&
        (lease.item_leg !== lease.leg || lease.item_client !== lease.client_id)
      ) {
        return LOST;
      }
      return run(db, lease);
    });
    if (r === LOST) throw new LeaseLostError(fence, what);
    return r as T;
  }

  /**
   * Runs `work` in a transaction on one pooled connection; again after a
   * deadlock or serialization failure. A connection that failed (not a server
   * error) is dropped from the pool, not reused.
   */
  private tx<T>(work: (db: pg.PoolClient) => Promise<T>): Promise<T> {
    return this.observe(this.transaction(work));
  }

  private async transaction<T>(work: (db: pg.PoolClient) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const db = await this.checkout();
      try {
        await db.query('BEGIN');
        const result = await work(db);
        await db.query('COMMIT');
        this.checkin(db);
        return result;
      } catch (err) {
        let broken = !isServerError(err);
        if (!broken) await db.query('ROLLBACK').catch(() => (broken = true));
        this.checkin(db, broken ? (err as Error) : undefined);
        if (isRetryable(err) && attempt < TX_ATTEMPTS) continue;
        throw err;
      }
    }
  }

  /**
   * Creates the schema when missing and runs the migrations it lacks, under a
   * transaction-scoped advisory lock of this schema: replicas starting together
   * migrate once, the others wait and find it done.
   */
  private async migrate(): Promise<void> {
    const s = quoteIdent(this.schema);
    const versionTable = `${s}.schema_version`;
    const check = (v: number) => {
      if (v > SCHEMA_VERSION) {
        throw new PostgresStoreOpenError(
          this.description,
          `its schema version ${v} is newer than this build of @kitbridge/store-postgres knows (${SCHEMA_VERSION}); upgrade kitbridge or use another schema`,
        );
      }
    };
    const read = async (db: Db): Promise<number> => {
      const exists = await db.query<{ t: string | null }>('SELECT to_regclass($1) AS t', [versionTable]);
      if (!exists.rows[0]?.t) return 0;
      const { rows } = await db.query<{ version: number }>(`SELECT version FROM ${versionTable}`);
      return rows[0]?.version ?? 0;
    };
    const seen = await read(this.pool);
    check(seen);
    if (seen === SCHEMA_VERSION) return;
    await this.tx(async (db) => {
      await db.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [
        `kitbridge:migrate:${this.schema}`,
      ]);
      await db.query(`CREATE SCHEMA IF NOT EXISTS ${s}`);
      await db.query(`CREATE TABLE IF NOT EXISTS ${versionTable} (version integer NOT NULL)`);
      const from = await read(db);
      check(from);
      for (let v = from; v < SCHEMA_VERSION; v++) {
        try {
          await db.query(MIGRATIONS[v]!(s));
        } catch (err) {
          throw new PostgresStoreOpenError(
            this.description,
            `migration to schema version ${v + 1} failed (nothing was changed): ${describePgError(err)}`,
            { cause: err },
          );
        }
      }
      await db.query(`DELETE FROM ${versionTable}`);
      await db.query(`INSERT INTO ${versionTable} (version) VALUES ($1)`, [SCHEMA_VERSION]);
    });
  }

  /** Writes once and rolls it back: a read-only database or user fails start-up, not every customer message. */
  private async probeWrite(): Promise<void> {
    const db = await this.checkout();
    try {
      await db.query('BEGIN');
      await db.query(
        `INSERT INTO ${this.t.checkpoints} (key, value) VALUES ('kitbridge:probe', '') ON CONFLICT (key) DO NOTHING`,
      );
    } catch (err) {
      throw new PostgresStoreOpenError(this.description, `a test write failed: ${describePgError(err)}`, {
        cause: err,
      });
    } finally {
      await db.query('ROLLBACK').catch(() => {});
      this.checkin(db);
    }
  }

  /**
   * A connection of the pool, for a transaction. The pool minds the errors of
   * its idle connections only: one cut between two statements of ours would
   * emit an 'error' nobody hears (and end the process). Heard here, it fails
   * the next statement instead.
   */
  private async checkout(): Promise<pg.PoolClient> {
    const db = await this.pool.connect();
    db.on('error', ignore);
    return db;
  }

  /** Back to the pool; with `err`, the connection is dropped instead. */
  private checkin(db: pg.PoolClient, err?: Error): void {
    db.off('error', ignore);
    db.release(err);
  }
}

/**
 * Opens the PostgreSQL store at `url` (`postgres://` or `postgresql://`, with
 * `?sslmode=` and `?schema=`): connects, creates the schema when missing,
 * migrates under an advisory lock, and checks it can write. Throws
 * {@link PostgresStoreOpenError} naming the store (password masked) and the problem.
 */
export function openPostgresStore(url: string, opts?: PostgresStoreOptions): Promise<PostgresStore> {
  return PostgresStore.open(url, opts);
}

/** For the connection errors {@link PostgresStore.checkout} takes in (the next statement reports them). */
function ignore(): void {}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

function jsonOrNull(v: JsonObject | undefined): string | null {
  return v === undefined ? null : JSON.stringify(v);
}

function toClient(r: ClientRow): ClientRecord {
  const c: ClientRecord = {
    clientId: decodeText(r.client_id),
    firstSeen: r.first_seen,
    lastSeen: r.last_seen,
    conversation: r.conversation,
  };
  if (r.address !== null) c.address = r.address;
  if (r.profile !== null) c.profile = r.profile;
  if (r.close_reason !== null) c.closeReason = r.close_reason;
  return c;
}

function toItem(r: OutboxRow): OutboxItem {
  const i: OutboxItem = {
    id: r.id,
    leg: r.leg,
    clientId: decodeText(r.client_id),
    key: decodeText(r.key),
    payload: r.payload,
    createdAt: r.created_at,
    attempts: r.attempts,
    nextAttemptAt: r.next_attempt_at,
    state: r.state,
  };
  if (r.last_error !== null) i.lastError = r.last_error;
  if (r.progress !== null) i.progress = r.progress;
  return i;
}
