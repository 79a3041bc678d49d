#!/usr/bin/env node
// The PostgreSQL store alone, without HTTP: enqueue (claimed at once) + complete (handing the lease on)
// per event, from one process, at 1, 8 and 32 events in flight (BENCH_PG as run.js; a schema of its
// own, dropped at the end). What a replica's store costs, apart from kitbridge's HTTP and the fakes.
// `node bench/pg-store.js` after `npm run build`; prints figures, asserts nothing.
import os from 'node:os';
import pg from 'pg';
import { PostgresStore } from '../packages/store-postgres/dist/index.js';

const PG_URL = process.env.BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432/test';
const EVENTS = Number(process.env.BENCH_EVENTS ?? 3000);
const schema = `bench_store_${process.pid}`;
const url = new URL(PG_URL);
url.searchParams.set('schema', schema);

const cpu = os.cpus();
console.log(`PostgreSQL store — ${cpu[0]?.model ?? 'unknown CPU'} x${cpu.length}, Node ${process.version}`);
const store = await PostgresStore.open(url.href);
try {
  for (const inFlight of [1, 8, 32]) {
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    await Promise.all(
      Array.from({ length: inFlight }, async (_, w) => {
        for (let i = w; i < EVENTS; i += inFlight) {
          const item = {
            leg: 'inbound',
            clientId: `c${w}`,
            key: `${inFlight}:${i}`,
            payload: { text: 'hello' },
          };
          const e = await store.enqueue(item, 60_000, Date.now(), { owner: 'bench', leaseMs: 30_000 });
          if (e?.fence !== undefined) await store.complete(e.id, e.fence, { leaseMs: 30_000 });
        }
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    const used = process.cpuUsage(c0);
    console.log(
      `${String(inFlight).padStart(2)} in flight: ${(EVENTS / seconds).toFixed(0)} events/s, ${((used.user + used.system) / EVENTS).toFixed(0)} µs of this process's CPU per event`,
    );
  }
} finally {
  await store.close();
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await c.end();
}
