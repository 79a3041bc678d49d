/**
 * What the metrics cost an event on the hot paths, and what one scrape costs:
 * the calls an inbound or outbound item makes (received, delivered with its
 * latency observation) in a tight loop, and `Metrics.text()` (what GET /metrics
 * answers). Run after building core: `node bench/metrics-cost.js`. Not part of
 * `npm run bench`; compare the figures with its CPU ms per 1,000 events.
 */
import { Metrics } from '../core/dist/index.js';

const N = 2_000_000;
const metrics = new Metrics({
  platform: 'telegram',
  stats: async () => [
    { leg: 'inbound', pending: 3, dead: 1, clients: 2, oldestPendingAt: Date.now() - 5_000 },
    { leg: 'outbound', pending: 0, dead: 0, clients: 0 },
  ],
  state: () => 'connected',
  ready: () => true,
  kitLoggedIn: () => true,
});
const leg = metrics.leg('inbound');

const perEvent = [];
for (let round = 0; round < 7; round++) {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) {
    leg.received();
    leg.delivered(i % 400);
  }
  perEvent.push(Number(process.hrtime.bigint() - t0) / N);
}
perEvent.sort((a, b) => a - b);

const SCRAPES = 200;
await metrics.text();
const cpu0 = process.cpuUsage();
for (let i = 0; i < SCRAPES; i++) await metrics.text();
const cpu = process.cpuUsage(cpu0);

const median = perEvent[Math.floor(perEvent.length / 2)];
console.log(
  `per event (received + delivered + one histogram observation): ${(median / 1000).toFixed(2)} µs median ` +
    `(${(perEvent[0] / 1000).toFixed(2)}-${(perEvent.at(-1) / 1000).toFixed(2)}) = ${(median / 1000).toFixed(2)} CPU ms per 1,000 events`,
);
console.log(
  `per scrape (GET /metrics body, process metrics included): ${((cpu.user + cpu.system) / SCRAPES / 1000).toFixed(2)} ms CPU`,
);
