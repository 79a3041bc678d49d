/**
 * What the conformance suite cannot show with one store object: several
 * stores (replicas) on one database, on the database's clock, with core's real
 * Outbox delivering; wake-ups across them; and the connections being cut.
 */
import { type Leg, Outbox, type OutboxItem, silentLogger } from '@kitbridge/core';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { PostgresStore } from '../src/index.js';
import { tempDatabase } from './helpers.js';

const db = tempDatabase();
let n = 0;
const open: PostgresStore[] = [];

async function replicas(count: number, schema = `r${n++}`): Promise<PostgresStore[]> {
  await db.ready;
  const stores: PostgresStore[] = [];
  for (let i = 0; i < count; i++) stores.push(await PostgresStore.open(db.url(schema), { poolSize: 4 }));
  open.push(...stores);
  return stores;
}

afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});

async function until(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 20_000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Ends the server processes of this database's connections that match `where` (SQL over pg_stat_activity). */
async function terminate(where: string): Promise<void> {
  const admin = new pg.Client({ connectionString: db.url() });
  await admin.connect();
  try {
    await admin.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND ${where}`,
      [db.name],
    );
  } finally {
    await admin.end();
  }
}

function outbox(store: PostgresStore, deliver: (item: OutboxItem) => Promise<void>, leg: Leg = 'inbound') {
  return new Outbox({
    leg,
    store,
    logger: silentLogger,
    dedupeTtlMs: 60_000,
    concurrency: 4,
    maxAttempts: 50,
    maxAgeMs: 60_000,
    backoff: { baseMs: 10, maxMs: 50 },
    // Polling is slow here: wake-ups (NOTIFY) and hand-ons must carry the work.
    syncIntervalMs: 2_000,
    lagLogIntervalMs: 0,
    leaseMs: 3_000,
    deliver: (item) => deliver(item),
    classify: (err) => ({ permanent: false, reason: (err as Error).message }),
  });
}

describe('PostgresStore replicas', () => {
  it('three outboxes on one database deliver every item once, in order per client', async () => {
    const stores = await replicas(3);
    const delivered: { by: number; client: string; seq: number }[] = [];
    const workers = stores.map((s, by) =>
      outbox(s, async (item) => {
        // Some work takes a while, so clients are held while others enqueue.
        if (item.id % 5 === 0) await new Promise((r) => setTimeout(r, 5));
        delivered.push({ by, client: item.clientId, seq: item.payload.seq as number });
      }),
    );
    await Promise.all(workers.map((w) => w.start()));
    const clients = Array.from({ length: 12 }, (_, c) => `c${c}`);
    const perClient = 15;
    // Each client's messages arrive one after another, at any replica; clients in parallel.
    await Promise.all(
      clients.map(async (clientId, c) => {
        for (let seq = 0; seq < perClient; seq++) {
          const w = workers[(c + seq) % workers.length]!;
          expect(
            await w.enqueue({ leg: 'inbound', clientId, key: `${clientId}:${seq}`, payload: { seq } }),
          ).toBe('accepted');
        }
      }),
    );
    await until(() => delivered.length >= clients.length * perClient, 'every delivery');
    await Promise.all(workers.map((w) => w.stop(1_000)));
    expect(delivered).toHaveLength(clients.length * perClient);
    for (const c of clients) {
      expect(delivered.filter((d) => d.client === c).map((d) => d.seq)).toEqual(
        Array.from({ length: perClient }, (_, i) => i),
      );
    }
    // The work was shared, not done by one replica alone.
    expect(new Set(delivered.map((d) => d.by)).size).toBeGreaterThan(1);
    expect(await stores[0]!.pending('inbound')).toEqual([]);
  });

  it('a replica that stops renewing loses its client after the lease; the next one delivers it, the old fence is refused', async () => {
    const [a, b] = await replicas(2);
    await a!.enqueue({ leg: 'outbound', clientId: 'x', key: 'k', payload: {} }, 60_000, Date.now());
    const [held] = await a!.claim('outbound', 'dead-replica', 10, 300);
    expect(held).toBeDefined();
    expect(await b!.claim('outbound', 'b', 10, 300)).toEqual([]);
    // The database clock decides: within a second the lease has run out for everyone.
    await until(
      async () => (await b!.claim('outbound', 'b', 10, 30_000)).length === 1,
      'the takeover',
      5_000,
    );
    await expect(a!.complete(held!.item.id, held!.fence)).rejects.toMatchObject({ name: 'LeaseLostError' });
    expect(await b!.get(held!.item.id)).toBeDefined();
  });

  it("wakes other replicas' listeners on work they did not claim, and on an operator's revive", async () => {
    const [a, b] = await replicas(2);
    let woken = 0;
    const off = a!.onWork('inbound', () => woken++);
    // The listener connects on first use; it tells its listeners once when it is up.
    await until(() => woken >= 1, 'the listener to be up');
    woken = 0;
    const stored = await b!.enqueue(
      { leg: 'inbound', clientId: 'c', key: 'k1', payload: {} },
      60_000,
      Date.now(),
    );
    await until(() => woken === 1, 'a wake-up for the enqueue');
    // Claimed in the same step: nobody else needs waking.
    await b!.enqueue({ leg: 'outbound', clientId: 'c', key: 'k2', payload: {} }, 60_000, Date.now(), {
      owner: 'b',
      leaseMs: 10_000,
    });
    const [claim] = await b!.claim('inbound', 'b', 1, 10_000);
    await b!.bury(claim!.item.id, claim!.fence, 1, 'no');
    expect(await b!.revive([stored!.id], Date.now())).toBe(1);
    await until(() => woken === 2, 'a wake-up for the revive');
    off();
    await b!.enqueue({ leg: 'inbound', clientId: 'd', key: 'k3', payload: {} }, 60_000, Date.now());
    // Unsubscribed: a later notification reaches nobody (another listener proves it was sent).
    let other = 0;
    a!.onWork('inbound', () => other++);
    await b!.enqueue({ leg: 'inbound', clientId: 'e', key: 'k4', payload: {} }, 60_000, Date.now());
    await until(() => other >= 1, 'the second listener');
    expect(woken).toBe(2);
  });

  it('concurrent opens of a new schema migrate it once', async () => {
    const stores = await Promise.all([replicas(1, 'fresh'), replicas(1, 'fresh'), replicas(1, 'fresh')]);
    expect(stores.flat()).toHaveLength(3);
    const c = new pg.Client({ connectionString: db.url() });
    await c.connect();
    try {
      const { rows } = await c.query('SELECT version FROM fresh.schema_version');
      expect(rows).toEqual([{ version: 1 }]);
    } finally {
      await c.end();
    }
  });

  it('keeps platform ids with the dedupe key until it is pruned', async () => {
    const [s] = await replicas(1);
    const now = Date.now();
    const item = await s!.enqueue({ leg: 'outbound', clientId: 'c', key: 'ev1', payload: {} }, 1_000, now, {
      owner: 'w',
      leaseMs: 10_000,
    });
    expect(await s!.deliveredIds('outbound', 'ev1')).toBeUndefined();
    await s!.complete(item!.id, item!.fence!, undefined, ['m1', 'm2']);
    expect(await s!.deliveredIds('outbound', 'ev1')).toEqual(['m1', 'm2']);
    expect(await s!.deliveredIds('inbound', 'ev1')).toBeUndefined();
    expect(await s!.prune(now + 1_000)).toBe(1);
    expect(await s!.deliveredIds('outbound', 'ev1')).toBeUndefined();
  });

  it('a connection cut between two statements of a transaction fails that call, not the process', async () => {
    const [s] = await replicas(1);
    // The store's own transaction runner (private): the cut must land while it holds the connection.
    const tx = Reflect.get(s!, 'tx').bind(s) as <T>(work: (db: pg.PoolClient) => Promise<T>) => Promise<T>;
    const call = tx(async (conn) => {
      const { rows } = await conn.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      await terminate(`pid = ${Number(rows[0]!.pid)}`);
      // The server's goodbye arrives while no statement runs: an 'error' on the connection.
      await new Promise((r) => setTimeout(r, 200));
      await conn.query('SELECT 1');
    });
    await expect(call).rejects.toThrow();
    await s!.setCheckpoint('still', 'works');
    expect(await s!.getCheckpoint('still')).toBe('works');
  });

  it('recovers from cut connections without being reopened, listener included', async () => {
    const [a, b] = await replicas(2);
    let woken = 0;
    a!.onWork('inbound', () => woken++);
    await until(() => woken >= 1, 'the listener to be up');
    await a!.setCheckpoint('k', 'before');
    // What a failover or a restart of PostgreSQL does to every connection of the replicas.
    await terminate("application_name = 'kitbridge'");
    // A call may fail once on a connection that was cut; the store itself stays usable.
    await until(
      () =>
        a!.setCheckpoint('k', 'after').then(
          () => true,
          () => false,
        ),
      'a write after the cut',
    );
    expect(await a!.getCheckpoint('k')).toBe('after');
    // The listener comes back by itself (and tells its listeners once).
    const before = woken;
    await until(() => woken > before, 'the listener to reconnect');
    const seen = woken;
    await b!.enqueue({ leg: 'inbound', clientId: 'c', key: 'after-cut', payload: {} }, 60_000, Date.now());
    await until(() => woken > seen, 'a wake-up after the cut');
  });
});
