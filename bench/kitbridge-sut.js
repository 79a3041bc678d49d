// kitbridge as an operator runs it (`kitbridge run telegram`, webhook mode), in a child process.
// BENCH_AB: another checkout's build (an A/B in one run); this one's by default.
const { run } = await import(
  process.env.BENCH_CLI ? new URL(`file://${process.env.BENCH_CLI}`).href : '../packages/cli/dist/index.js'
);

const bridge = await run('telegram', process.env);
process.send({ ready: true, port: bridge.address.port });
// BENCH_SCRAPE_MS=1000: GET /metrics that often while the bench runs, as Prometheus would (it
// scrapes every 15 s or so), to show what collecting the metrics costs; the scrape's CPU counts.
const scrapeMs = Number(process.env.BENCH_SCRAPE_MS);
if (scrapeMs > 0)
  setInterval(() => {
    fetch(`${bridge.url}/metrics`)
      .then((r) => r.text())
      .catch(() => {});
  }, scrapeMs).unref();
process.on('message', async (m) => {
  if (m === 'stats')
    process.send({
      cpu: process.cpuUsage(),
      rss: process.memoryUsage().rss,
      mem: process.memoryUsage(),
      ...(globalThis.__benchSql ? { sql: { ...globalThis.__benchSql } } : {}),
    });
  if (m === 'exit') {
    await bridge.stop(1000);
    process.exit(0);
  }
});
