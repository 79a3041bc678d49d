#!/usr/bin/env node
// `npm run bench`: kitbridge against a bare relay, measured in the same run, both legs.
// Prints figures and the machine; asserts nothing (benchmarks are not tests).
// Within a leg the systems take turns for BENCH_ROUNDS rounds; figures are medians over the rounds.
//
// Inbound (Telegram webhook -> Kit), against bare-relay.js:
//   throughput   closed loop: C customers, each sending its messages back to back
//                (the next only after the webhook answered), until Kit has them all
//   CPU          the system under test's own CPU time per 1,000 events
//   latency      open loop at a fixed rate: Kit's arrival time minus the time the webhook was sent
//   idle RSS     IDLE_RUNS fresh processes with no load, 1.5 s after start-up: median and range
//   integrity    every event arrived exactly once, each customer's in order
// Outbound (signed Kit callback -> Telegram sendMessage), against bare-outbound.js:
//   throughput   closed loop: K callers (Kit's parallel callbacks) over 1,000 customers, each caller
//                sending back to back (the next only after the callback answered), until Telegram has them all
//   CPU          as inbound
//   latency      open loop at a fixed rate: Telegram's arrival time minus the time the callback was
//                sent, and separately how long the callback took to be answered
//   integrity    as inbound, at the fake Telegram
// media          RSS while a 200 MB file streams through the media proxy (bench/media-rss.js)
// PostgreSQL rows (BENCH_PG, default the local server's `test` database; skipped when it cannot be
// reached): one replica, and two replicas on one store taking requests in turn as behind a load
// balancer. Their CPU is the replicas' own, summed; the database server's is not counted.
import { fork } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { Pool } from 'undici';
import { startKitSink, startTelegramStub } from './fakes.js';

const here = new URL('.', import.meta.url).pathname;
const num = (name, dflt) => Number(process.env[name] ?? dflt);
const EVENTS = num('BENCH_EVENTS', 6000);
const CUSTOMERS = num('BENCH_CUSTOMERS', 32);
const OUT_EVENTS = num('BENCH_OUT_EVENTS', 6000);
const OUT_CUSTOMERS = num('BENCH_OUT_CUSTOMERS', 1000);
const OUT_CALLERS = num('BENCH_OUT_CALLERS', 32);
const RATE = num('BENCH_RATE', 500);
const RATE_SECONDS = num('BENCH_RATE_SECONDS', 6);
const IDLE_RUNS = num('BENCH_IDLE_RUNS', 5);
const ROUNDS = num('BENCH_ROUNDS', 5);
const LEG = process.env.BENCH_LEG ?? 'both'; // inbound | outbound | both
const only = process.env.BENCH_ONLY; // bare | memory | sqlite | pg1 | pg2: one system alone (for profiling)
const PG_URL = process.env.BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432/test';
if (!['inbound', 'outbound', 'both'].includes(LEG)) throw new Error('BENCH_LEG: inbound, outbound or both');

const kit = await startKitSink();
const tg = await startTelegramStub();
const tmp = mkdtempSync(join(os.tmpdir(), 'kitbridge-bench-'));
const SECRET = 'bench-webhook-secret';

/** Schemas of this run (one per PostgreSQL system), dropped at the end; undefined: no PostgreSQL. */
const pgSchemas = await pgReachable().then((ok) => (ok ? [] : undefined));
async function pgReachable() {
  const c = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 2000 });
  try {
    await c.connect();
    return true;
  } catch (err) {
    console.log(`PostgreSQL rows not run: ${PG_URL.replace(/:[^:@/]*@/, ':***@')}: ${err.message}`);
    return false;
  } finally {
    await c.end().catch(() => {});
  }
}
/** A fresh schema of the bench database, as a KITBRIDGE_STORE URL. */
function pgStore(name) {
  const schema = `bench_${process.pid}_${name}`;
  pgSchemas.push(schema);
  const u = new URL(PG_URL);
  u.searchParams.set('schema', schema);
  return u.href;
}
/** The PostgreSQL systems of a leg (none without a server): one replica, and two on one store. */
function pgSystems(label, env, chatBase, leg) {
  if (!pgSchemas) return [];
  return [
    [
      'pg1',
      `${label}, PostgreSQL, 1 replica`,
      'kitbridge-sut.js',
      { ...env, KITBRIDGE_STORE: pgStore(`${leg}1`) },
      chatBase,
      1,
    ],
    [
      'pg2',
      `${label}, PostgreSQL, 2 replicas`,
      'kitbridge-sut.js',
      { ...env, KITBRIDGE_STORE: pgStore(`${leg}2`) },
      chatBase + 500_000,
      2,
    ],
  ];
}

const baseEnv = {
  PATH: process.env.PATH,
  KIT_IM_URL: kit.url,
  KIT_ACCOUNT: 'bench',
  KIT_API_TOKEN: 'bench-api-token',
  KIT_CHANNEL_UUID: 'bench-channel-uuid',
  KIT_CHANNEL_SALT: 'bench-salt',
  KITBRIDGE_HOST: '127.0.0.1',
  KITBRIDGE_PORT: '0',
  KITBRIDGE_PUBLIC_URL: 'http://127.0.0.1:1',
  KITBRIDGE_MEDIA_SECRET: 'bench-media-secret-0123456789abcdef',
  KITBRIDGE_LOG_LEVEL: 'warn',
  KITBRIDGE_DRAIN: '0',
  TELEGRAM_BOT_TOKEN: '123456:BENCHbenchBENCHbenchBENCHbench1234',
  TELEGRAM_API_ROOT: tg.url,
  TELEGRAM_MODE: 'webhook',
  TELEGRAM_WEBHOOK_SECRET: SECRET,
  // kitbridge-sut.js scrapes its own GET /metrics this often (ms) when set.
  ...(process.env.BENCH_SCRAPE_MS ? { BENCH_SCRAPE_MS: process.env.BENCH_SCRAPE_MS } : {}),
};

/**
 * BENCH_AB=/path/to/other/checkout (built): the same system from that checkout's packages, taking
 * turns with this one's in each round, so that two commits compare on one machine at one time.
 */
function abSystem(name, env) {
  const dir = process.env.BENCH_AB;
  if (!dir) return [];
  return [
    [
      'ab',
      name,
      'kitbridge-sut.js',
      { ...baseEnv, ...env, BENCH_CLI: join(dir, 'packages/cli/dist/index.js') },
      4_000_000,
    ],
  ];
}

function startChild(script, env) {
  // BENCH_PROFILE=1 writes a .cpuprofile of each process under test into the working directory.
  // BENCH_TRACE_GC=1 prints each process under test's garbage collections.
  // BENCH_COUNT_SQL=1 counts the SQL statements of each kitbridge process (count-sql.cjs).
  const execArgv = [
    ...(process.env.BENCH_PROFILE ? ['--cpu-prof'] : []),
    ...(process.env.BENCH_TRACE_GC ? ['--trace-gc'] : []),
    ...(process.env.BENCH_COUNT_SQL && script === 'kitbridge-sut.js'
      ? ['-r', join(here, 'count-sql.cjs')]
      : []),
  ];
  const child = fork(join(here, script), { env, execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`${script} exited with ${code}`)));
    child.once('message', (m) => resolve({ child, port: m.port }));
  });
}

function ask(child) {
  return new Promise((resolve) => {
    child.once('message', resolve);
    child.send('stats');
  });
}

/** The stats of every process of a system (replicas), CPU and SQL counts summed. */
async function askAll(sys) {
  const all = await Promise.all(sys.procs.map((p) => ask(p.child)));
  const sum = (f) => all.reduce((a, x) => a + f(x), 0);
  return {
    cpu: { user: sum((x) => x.cpu.user), system: sum((x) => x.cpu.system) },
    ...(all[0].sql
      ? { sql: { statements: sum((x) => x.sql.statements), transactions: sum((x) => x.sql.transactions) } }
      : {}),
  };
}

/** Starts `replicas` processes of a system; `next()` hands out their pools in turn, as a load balancer. */
async function startProcs(script, env, replicas, connections) {
  const procs = [];
  for (let k = 0; k < replicas; k++) {
    const { child, port } = await startChild(script, env);
    procs.push({ child, pool: new Pool(`http://127.0.0.1:${port}`, { connections }) });
  }
  let i = 0;
  return { procs, next: () => procs[i++ % procs.length].pool };
}

let updateId = 0;
function update(chatId, messageId, text) {
  return JSON.stringify({
    update_id: ++updateId,
    message: {
      message_id: messageId,
      date: Math.floor(Date.now() / 1000),
      chat: { id: chatId, type: 'private', first_name: 'Ann' },
      from: { id: chatId, is_bot: false, first_name: 'Ann', language_code: 'en' },
      text,
    },
  });
}

async function post(pool, body) {
  const r = await pool.request({
    method: 'POST',
    path: '/telegram/webhook',
    headers: { 'content-type': 'application/json', 'x-telegram-bot-api-secret-token': SECRET },
    body,
  });
  await r.body.dump();
  if (r.statusCode !== 200) throw new Error(`webhook answered ${r.statusCode}`);
}

/** An agent's message as Kit calls it back (the shape of testkit's FakeKit.agentMessage), signed. */
function callback(chatId, text) {
  const eventId = randomUUID();
  const body = JSON.stringify({
    client_data: { client_id: `tg:${chatId}` },
    event_id: eventId,
    event_type: 'send_message',
    event_data: {
      sender_data: { sender_id: 7, sender_type: 'agent', is_bot: false },
      message: { message_id: randomUUID(), text, payload: [] },
    },
  });
  const signature = createHash('md5')
    .update(`${baseEnv.KIT_CHANNEL_SALT}:${baseEnv.KIT_API_TOKEN}:${eventId}`)
    .digest('hex');
  return { body, signature };
}

async function postCallback(pool, { body, signature }) {
  const r = await pool.request({
    method: 'POST',
    path: '/kit/callback',
    headers: { 'content-type': 'application/json', authorization: signature },
    body,
  });
  await r.body.dump();
  if (r.statusCode !== 200) throw new Error(`callback answered ${r.statusCode}`);
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Exactly once, and in order per customer (texts carry "<customer>:<seq>"). */
function integrity(arrivals, expected) {
  const seen = new Set();
  const last = new Map();
  let dupes = 0;
  let reordered = 0;
  for (const a of arrivals) {
    if (seen.has(a.text)) dupes++;
    seen.add(a.text);
    const [c, n] = a.text.split(':').map(Number);
    if ((last.get(c) ?? -1) >= n) reordered++;
    last.set(c, n);
  }
  return { lost: expected - seen.size, dupes, reordered };
}

/** SQL statements and transactions per event between two `stats` answers (BENCH_COUNT_SQL=1). */
function sqlPerEvent(before, after, events) {
  if (!before.sql || !after.sql) return {};
  return {
    sqlPerEvent: (after.sql.statements - before.sql.statements) / events,
    txPerEvent: (after.sql.transactions - before.sql.transactions) / events,
  };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const sleepMs = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * RSS of IDLE_RUNS fresh processes of one system, started together and never
 * loaded, 1.5 s after start-up. It varies by several MB from one start to the
 * next (malloc arenas of V8's and libuv's threads, heap page timing), so one
 * reading proves little: the median and the range.
 */
async function idleRss(script, env, n = IDLE_RUNS) {
  const children = await Promise.all(
    Array.from({ length: n }, (_, i) =>
      startChild(script, {
        ...env,
        ...(env.KITBRIDGE_STORE?.startsWith('sqlite:')
          ? { KITBRIDGE_STORE: `sqlite:${join(tmp, `idle-${i}-${env.KITBRIDGE_STORE.length}.db`)}` }
          : {}),
      }),
    ),
  );
  await sleepMs(1500);
  const rss = (await Promise.all(children.map(({ child }) => ask(child)))).map((x) => x.rss / 1024 / 1024);
  for (const { child } of children) {
    child.send('exit');
    await new Promise((r) => child.once('exit', r));
  }
  return { idleRssMb: median(rss), idleRssRange: [Math.min(...rss), Math.max(...rss)] };
}

/**
 * Sends `total` requests at RATE per second, each built by `make(i)` just before it goes out;
 * returns when all were answered. `sent(i, at)` and `answered(i, ms)` record the times.
 */
async function openLoop(total, make, send, sent, answered) {
  const start = performance.now() + 50;
  const sends = [];
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((res) => setTimeout(res, wait));
    const req = make(i);
    // From when it went out: a send early by under 1 ms must not count as negative latency.
    const at = performance.now();
    sent(i, at);
    sends.push(send(req).then(() => answered?.(i, performance.now() - at)));
  }
  await Promise.all(sends);
  return start;
}

function reportSlow(name, r, start, lat) {
  // Events slower than BENCH_SLOW ms, as "sent at ms into the run: latency ms": stalls show as runs.
  const slow = lat
    .filter((x) => x.ms > Number(process.env.BENCH_SLOW))
    .map((x) => `${(x.at - start).toFixed(0)}:${x.ms.toFixed(1)}`);
  console.log(`${name}, round ${r + 1}: slow events (sent at ms: latency ms): ${slow.join(' ') || 'none'}`);
}

// ---------------------------------------------------------------- inbound leg

/** A system under test, started once and measured in every round. */
async function startInbound(key, name, script, env, chatBase, replicas = 1) {
  const idle = replicas === 1 ? await idleRss(script, env) : {};
  const { procs, next } = await startProcs(script, env, replicas, CUSTOMERS);
  await sleepMs(500);
  // Warm-up, not measured: JIT, connections, first-seen customers (30 messages each).
  kit.reset();
  await Promise.all(
    Array.from({ length: CUSTOMERS }, async (_, c) => {
      for (let n = 0; n < 30; n++) await post(next(), update(chatBase + 5_000 + c, 1 + n, `${c}:${n}`));
    }),
  );
  await kit.waitFor(CUSTOMERS * 30);
  return { key, name, procs, next, chatBase, idle, rounds: [] };
}

/** One round against one system: throughput (closed loop), then latency at a fixed rate (open loop). */
async function inboundRound(sys, r) {
  const { next, name } = sys;
  // Fresh customers (and so fresh message ids) every round: nothing is a duplicate.
  const chatBase = sys.chatBase + (r + 1) * 10_000;

  kit.reset();
  const per = Math.ceil(EVENTS / CUSTOMERS);
  const before = await askAll(sys);
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CUSTOMERS }, async (_, c) => {
      for (let n = 1; n <= per; n++) await post(next(), update(chatBase + c, 1 + n, `${c}:${n}`));
    }),
  );
  await kit.waitFor(per * CUSTOMERS);
  const seconds = (performance.now() - t0) / 1000;
  const after = await askAll(sys);
  const cpuMs = (after.cpu.user + after.cpu.system - before.cpu.user - before.cpu.system) / 1000;
  const check = integrity(kit.arrivals, per * CUSTOMERS);
  const sql = sqlPerEvent(before, after, per * CUSTOMERS);

  kit.reset();
  const total = RATE * RATE_SECONDS;
  const sentAt = new Map();
  const text = (i) => `${i % CUSTOMERS}:${1_000_000 + i}`;
  const start = await openLoop(
    total,
    (i) => update(chatBase + 1000 + (i % CUSTOMERS), 100_000 + i, text(i)),
    (body) => post(next(), body),
    (i, at) => sentAt.set(text(i), at),
  );
  await kit.waitFor(total);
  const lat = kit.arrivals.map((a) => ({ at: sentAt.get(a.text), ms: a.at - sentAt.get(a.text) }));
  if (process.env.BENCH_SLOW) reportSlow(name, r, start, lat);
  const ms = lat.map((x) => x.ms).sort((a, b) => a - b);
  sys.rounds.push({
    eventsPerSec: (per * CUSTOMERS) / seconds,
    cpuMsPer1000: (cpuMs / (per * CUSTOMERS)) * 1000,
    p50: percentile(ms, 50),
    p99: percentile(ms, 99),
    ...sql,
    ...check,
  });
}

// ---------------------------------------------------------------- outbound leg

/** A system under test for the outbound leg: 1,000 customers, warmed up with two messages each. */
async function startOutbound(key, name, script, env, chatBase, replicas = 1) {
  const { procs, next } = await startProcs(script, env, replicas, OUT_CALLERS);
  await sleepMs(500);
  // Warm-up, not measured: JIT, connections, every customer's queue seen once (2 messages each).
  tg.reset();
  await closedLoopOut(next, chatBase, 2, (c, n) => `${c}:${n}`);
  await tg.waitFor(OUT_CUSTOMERS * 2);
  return { key, name, procs, next, chatBase, rounds: [] };
}

/**
 * OUT_CALLERS callers, caller k serving customers k, k+K, k+2K, ...: `per` messages to each of
 * its customers, one callback at a time (the next once the last was answered), so each
 * customer's messages leave in order.
 */
function closedLoopOut(next, chatBase, per, text) {
  return Promise.all(
    Array.from({ length: Math.min(OUT_CALLERS, OUT_CUSTOMERS) }, async (_, k) => {
      for (let n = 1; n <= per; n++)
        for (let c = k; c < OUT_CUSTOMERS; c += OUT_CALLERS)
          await postCallback(next(), callback(chatBase + c, text(c, n)));
    }),
  );
}

async function outboundRound(sys, r) {
  const { next, chatBase, name } = sys;
  const seq = (r + 1) * 1_000_000; // fresh texts every round (event ids are fresh UUIDs)

  tg.reset();
  const per = Math.ceil(OUT_EVENTS / OUT_CUSTOMERS);
  const before = await askAll(sys);
  const t0 = performance.now();
  await closedLoopOut(next, chatBase, per, (c, n) => `${c}:${seq + n}`);
  await tg.waitFor(per * OUT_CUSTOMERS);
  const seconds = (performance.now() - t0) / 1000;
  const after = await askAll(sys);
  const cpuMs = (after.cpu.user + after.cpu.system - before.cpu.user - before.cpu.system) / 1000;
  const check = integrity(tg.sent, per * OUT_CUSTOMERS);
  const sql = sqlPerEvent(before, after, per * OUT_CUSTOMERS);

  tg.reset();
  const total = RATE * RATE_SECONDS;
  const sentAt = new Map();
  const answerMs = [];
  const text = (i) => `${i % OUT_CUSTOMERS}:${seq + 500_000 + i}`;
  const start = await openLoop(
    total,
    (i) => callback(chatBase + (i % OUT_CUSTOMERS), text(i)),
    (cb) => postCallback(next(), cb),
    (i, at) => sentAt.set(text(i), at),
    (_i, ms) => answerMs.push(ms),
  );
  await tg.waitFor(total);
  const lat = tg.sent.map((a) => ({ at: sentAt.get(a.text), ms: a.at - sentAt.get(a.text) }));
  if (process.env.BENCH_SLOW) reportSlow(name, r, start, lat);
  const ms = lat.map((x) => x.ms).sort((a, b) => a - b);
  answerMs.sort((a, b) => a - b);
  const late = integrity(tg.sent, total);
  sys.rounds.push({
    eventsPerSec: (per * OUT_CUSTOMERS) / seconds,
    cpuMsPer1000: (cpuMs / (per * OUT_CUSTOMERS)) * 1000,
    p50: percentile(ms, 50),
    p99: percentile(ms, 99),
    ackP50: percentile(answerMs, 50),
    ackP99: percentile(answerMs, 99),
    ...sql,
    lost: check.lost + late.lost,
    dupes: check.dupes + late.dupes,
    reordered: check.reordered + late.reordered,
  });
}

// ---------------------------------------------------------------- both

async function stopSystem(sys) {
  for (const { child, pool } of sys.procs) {
    await pool.close();
    child.send('exit');
    await new Promise((r) => child.once('exit', r));
  }
}

/** Medians over the rounds (ranges for the headline figures); integrity summed. */
function summary(sys) {
  const of = (k) => sys.rounds.map((x) => x[k]);
  const range = (k) => [Math.min(...of(k)), Math.max(...of(k))];
  const sum = (k) => of(k).reduce((a, b) => a + b, 0);
  const has = (k) => sys.rounds[0]?.[k] !== undefined;
  return {
    key: sys.key,
    name: sys.name,
    eventsPerSec: median(of('eventsPerSec')),
    eventsRange: range('eventsPerSec'),
    cpuMsPer1000: median(of('cpuMsPer1000')),
    cpuRange: range('cpuMsPer1000'),
    p50: median(of('p50')),
    p99: median(of('p99')),
    p99Range: range('p99'),
    ...(has('ackP50')
      ? { ackP50: median(of('ackP50')), ackP99: median(of('ackP99')), ackP99Range: range('ackP99') }
      : {}),
    ...(has('sqlPerEvent')
      ? { sqlPerEvent: median(of('sqlPerEvent')), txPerEvent: median(of('txPerEvent')) }
      : {}),
    ...sys.idle,
    lost: sum('lost'),
    dupes: sum('dupes'),
    reordered: sum('reordered'),
  };
}

/** Start every system of a leg, warm each up, then let them take turns round after round. */
async function runLeg(systems, start, round) {
  // Shared machines drift over minutes: the systems take turns, round after round, and each
  // figure is a median over the rounds, so that every system sees the same conditions.
  const running = [];
  for (const s of systems) running.push(await start(...s));
  for (let r = 0; r < ROUNDS; r++) for (const sys of running) await round(sys, r);
  for (const sys of running) await stopSystem(sys);
  return running.map(summary);
}

const pad = (s, n) => String(s).padEnd(n);

function printSql(results) {
  for (const r of results.filter((x) => x.sqlPerEvent !== undefined))
    console.log(
      `  SQL (closed loop): ${r.name}: ${r.sqlPerEvent.toFixed(1)} statements and ${r.txPerEvent.toFixed(2)} transactions per event`,
    );
}
const span = ([a, b], d = 0) => `${a.toFixed(d)}-${b.toFixed(d)}`;
const ratio = (a, b) => (a / b).toFixed(2);

const cpu = os.cpus();
console.log(
  `kitbridge benchmark — ${cpu[0]?.model ?? 'unknown CPU'} x${cpu.length}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${os.platform()} ${os.release()}`,
);

if (LEG !== 'outbound') {
  console.log(
    `\nInbound (Telegram webhook -> Kit): ${EVENTS} events from ${CUSTOMERS} customers (each back to back); latency at ${RATE}/s for ${RATE_SECONDS} s`,
  );
  const systems = [
    ['bare', 'bare relay (node:http + undici)', 'bare-relay.js', baseEnv, 1_000],
    [
      'memory',
      'kitbridge, memory store',
      'kitbridge-sut.js',
      { ...baseEnv, KITBRIDGE_STORE: 'memory:' },
      2_000_000,
    ],
    [
      'sqlite',
      'kitbridge, SQLite outbox',
      'kitbridge-sut.js',
      { ...baseEnv, KITBRIDGE_STORE: `sqlite:${join(tmp, 'bench.db')}` },
      3_000_000,
    ],
    ...abSystem('kitbridge at BENCH_AB, SQLite', { KITBRIDGE_STORE: `sqlite:${join(tmp, 'bench-ab.db')}` }),
    ...pgSystems('kitbridge', baseEnv, 4_000_000, 'in'),
  ].filter(([key]) => !only || only.split(',').includes(key));
  const results = await runLeg(systems, startInbound, inboundRound);

  console.log(
    `${pad('', 34)}${pad('events/s', 10)}${pad('CPU ms/1k', 16)}${pad('p50 ms', 8)}${pad('p99 ms', 18)}${pad('idle RSS', 18)}lost/dup/reordered`,
  );
  for (const r of results) {
    console.log(
      `${pad(r.name, 34)}${pad(r.eventsPerSec.toFixed(0), 10)}${pad(`${r.cpuMsPer1000.toFixed(0)} (${span(r.cpuRange)})`, 16)}${pad(r.p50.toFixed(2), 8)}${pad(`${r.p99.toFixed(2)} (${span(r.p99Range, 1)})`, 18)}${pad(r.idleRssMb === undefined ? '-' : `${r.idleRssMb.toFixed(0)} MB (${span(r.idleRssRange)})`, 18)}${r.lost}/${r.dupes}/${r.reordered}`,
    );
  }
  console.log(
    `(medians of ${ROUNDS} rounds, the range in brackets; idle RSS: ${IDLE_RUNS} fresh processes, 1.5 s after start-up)`,
  );
  printSql(results);
  const bare = results.find((r) => r.key === 'bare');
  const sqlite = results.find((r) => r.key === 'sqlite');
  if (bare && sqlite) {
    console.log('\nInbound targets (SQLite outbox vs bare relay):');
    console.log(`  throughput  ${ratio(sqlite.eventsPerSec, bare.eventsPerSec)}x of bare (target >= 0.75)`);
    console.log(`  CPU/1k      ${ratio(sqlite.cpuMsPer1000, bare.cpuMsPer1000)}x of bare (target <= 1.5)`);
    console.log(`  p99 added   ${(sqlite.p99 - bare.p99).toFixed(2)} ms at ${RATE}/s (target <= 5)`);
  }
  if (sqlite) console.log(`  idle RSS    ${sqlite.idleRssMb.toFixed(0)} MB (target <= 80)`);
}

if (LEG !== 'inbound') {
  console.log(
    `\nOutbound (signed Kit callback -> Telegram sendMessage): ${OUT_EVENTS} events to ${OUT_CUSTOMERS} customers from ${OUT_CALLERS} callers (each back to back); latency at ${RATE}/s for ${RATE_SECONDS} s`,
  );
  const systems = [
    ['bare', 'bare outbound relay (node:http + undici)', 'bare-outbound.js', baseEnv, 1_000],
    [
      'sqlite',
      'kitbridge, SQLite outbox, unpaced',
      'kitbridge-sut.js',
      { ...baseEnv, KITBRIDGE_STORE: `sqlite:${join(tmp, 'bench-out.db')}`, TELEGRAM_MAX_PER_SECOND: '0' },
      3_000_000,
    ],
    ...abSystem('kitbridge at BENCH_AB, SQLite, unpaced', {
      KITBRIDGE_STORE: `sqlite:${join(tmp, 'bench-out-ab.db')}`,
      TELEGRAM_MAX_PER_SECOND: '0',
    }),
    ...pgSystems('kitbridge, unpaced', { ...baseEnv, TELEGRAM_MAX_PER_SECOND: '0' }, 4_000_000, 'out'),
  ].filter(([key]) => !only || only.split(',').includes(key));
  const results = await runLeg(systems, startOutbound, outboundRound);

  console.log(
    `${pad('', 42)}${pad('events/s', 10)}${pad('CPU ms/1k', 16)}${pad('p50 ms', 8)}${pad('p99 ms', 18)}${pad('answer p50', 12)}${pad('answer p99', 18)}lost/dup/reordered`,
  );
  for (const r of results) {
    console.log(
      `${pad(r.name, 42)}${pad(r.eventsPerSec.toFixed(0), 10)}${pad(`${r.cpuMsPer1000.toFixed(0)} (${span(r.cpuRange)})`, 16)}${pad(r.p50.toFixed(2), 8)}${pad(`${r.p99.toFixed(2)} (${span(r.p99Range, 1)})`, 18)}${pad(r.ackP50.toFixed(2), 12)}${pad(`${r.ackP99.toFixed(2)} (${span(r.ackP99Range, 1)})`, 18)}${r.lost}/${r.dupes}/${r.reordered}`,
    );
  }
  console.log(
    `(medians of ${ROUNDS} rounds, the range in brackets; p50/p99: callback sent -> Telegram got sendMessage; answer: callback sent -> answered)`,
  );
  printSql(results);
  const bare = results.find((r) => r.key === 'bare');
  const sqlite = results.find((r) => r.key === 'sqlite');
  if (bare && sqlite) {
    console.log('\nOutbound targets (SQLite outbox, unpaced, vs bare outbound relay):');
    console.log(`  throughput  ${ratio(sqlite.eventsPerSec, bare.eventsPerSec)}x of bare (target >= 0.8)`);
    console.log(`  CPU/1k      ${ratio(sqlite.cpuMsPer1000, bare.cpuMsPer1000)}x of bare (target <= 1.8)`);
    console.log(`  p99 added   ${(sqlite.p99 - bare.p99).toFixed(2)} ms at ${RATE}/s (target <= 5)`);
    console.log(
      `  answer p99  ${sqlite.ackP99.toFixed(2)} ms vs bare ${bare.ackP99.toFixed(2)} ms (target: no slower)`,
    );
  }
}

if (!only && LEG === 'both')
  try {
    const { runMediaBench } = await import('./media-rss.js');
    const m = await runMediaBench({ sizeMb: 200 });
    console.log(`\nmedia proxy: ${JSON.stringify(m)}`);
  } catch (err) {
    console.log(`\nmedia proxy bench not run: ${err.message}`);
  }

await kit.close();
await tg.close();
rmSync(tmp, { recursive: true, force: true });
if (pgSchemas?.length) {
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  for (const schema of pgSchemas) await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await c.end();
}
