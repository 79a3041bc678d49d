import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import type { ConnectionState } from '../src/connector.js';
import { HttpServer } from '../src/http/router.js';
import { silentLogger } from '../src/logger.js';
import { createMetricsRoute, Metrics, type MetricsSources, STATS_CACHE_MS } from '../src/metrics.js';
import { type FailureKind, Outbox, type OutboxOptions } from '../src/outbox.js';
import { MemoryStore } from '../src/store/memory.js';
import type { OutboxStats } from '../src/store/store.js';

function metricsWith(over: Partial<MetricsSources> = {}): Metrics {
  return new Metrics({
    platform: 'telegram',
    stats: async () => [],
    state: () => 'connected',
    ready: () => true,
    kitLoggedIn: () => true,
    ...over,
  });
}

/** The value of one series, undefined when the series is absent. */
async function value(
  m: Metrics,
  name: string,
  labels: Record<string, string> = {},
): Promise<number | undefined> {
  const metric = m.registry.getSingleMetric(name.replace(/_(count|sum|bucket)$/, ''));
  if (!metric) throw new Error(`no metric ${name}`);
  const { values } = await metric.get();
  const hit = values.find(
    (v) =>
      ((v as { metricName?: string }).metricName ?? name) === name &&
      Object.entries(labels).every(([k, x]) => String((v.labels as Record<string, unknown>)[k]) === x),
  );
  return hit?.value;
}

describe('Metrics', () => {
  it('counts per leg and platform on children bound once', async () => {
    const m = metricsWith();
    const inbound = m.leg('inbound');
    inbound.received();
    inbound.received();
    inbound.duplicate();
    inbound.delivered(250);
    inbound.failed('rate_limited');
    inbound.dead('max_attempts');
    m.leg('outbound').received();
    const leg = { leg: 'inbound', platform: 'telegram' };
    expect(await value(m, 'kitbridge_messages_received_total', leg)).toBe(2);
    expect(await value(m, 'kitbridge_duplicates_dropped_total', leg)).toBe(1);
    expect(await value(m, 'kitbridge_messages_delivered_total', leg)).toBe(1);
    expect(await value(m, 'kitbridge_delivery_latency_seconds_count', leg)).toBe(1);
    expect(await value(m, 'kitbridge_delivery_latency_seconds_sum', leg)).toBe(0.25);
    expect(await value(m, 'kitbridge_delivery_failures_total', { ...leg, class: 'rate_limited' })).toBe(1);
    expect(await value(m, 'kitbridge_delivery_failures_total', { ...leg, class: 'transient' })).toBe(0);
    expect(await value(m, 'kitbridge_dead_letters_total', { ...leg, reason: 'max_attempts' })).toBe(1);
    expect(
      await value(m, 'kitbridge_messages_received_total', { leg: 'outbound', platform: 'telegram' }),
    ).toBe(1);
  });

  it('reads the backlog from the store at scrape time, once per cache window however often it is scraped', async () => {
    let now = 1_000_000;
    let reads = 0;
    const stats: OutboxStats[] = [
      { leg: 'inbound', pending: 3, dead: 1, clients: 2, oldestPendingAt: now - 90_000 },
      { leg: 'outbound', pending: 0, dead: 0, clients: 0 },
    ];
    const m = metricsWith({
      now: () => now,
      stats: async () => {
        reads++;
        return stats;
      },
    });
    expect(reads).toBe(0);
    const first = (await m.text()).body;
    await m.text();
    await m.text();
    expect(reads).toBe(1);
    expect(first).toContain('kitbridge_outbox_pending{leg="inbound",platform="telegram"} 3');
    expect(first).toContain('kitbridge_outbox_dead{leg="inbound",platform="telegram"} 1');
    expect(first).toContain('kitbridge_outbox_pending_clients{leg="inbound",platform="telegram"} 2');
    expect(first).toContain(
      'kitbridge_outbox_oldest_pending_age_seconds{leg="inbound",platform="telegram"} 90',
    );
    expect(first).toContain(
      'kitbridge_outbox_oldest_pending_age_seconds{leg="outbound",platform="telegram"} 0',
    );
    now += STATS_CACHE_MS;
    stats[0] = { leg: 'inbound', pending: 0, dead: 1, clients: 0 };
    const later = (await m.text()).body;
    expect(reads).toBe(2);
    expect(later).toContain('kitbridge_outbox_pending{leg="inbound",platform="telegram"} 0');
  });

  it('leaves the backlog out when the store cannot answer, and still answers the scrape', async () => {
    const warnings: string[] = [];
    const logger = { ...silentLogger, warn: (_o: unknown, msg: string) => warnings.push(msg) };
    const m = metricsWith({
      stats: async () => {
        throw new Error('database is locked');
      },
      logger: logger as unknown as typeof silentLogger,
    });
    const { body } = await m.text();
    expect(body).not.toMatch(/^kitbridge_outbox_pending\{/m);
    expect(body).toContain('kitbridge_ready{platform="telegram"} 1');
    expect(warnings).toEqual(['outbox stats unavailable for /metrics']);
  });

  it('shows the connection state as one series per state, 1 for the current one', async () => {
    let state: ConnectionState = 'starting';
    let ready = false;
    const m = metricsWith({ state: () => state, ready: () => ready, kitLoggedIn: () => ready });
    let { body } = await m.text();
    expect(body).toContain('kitbridge_connector_state{platform="telegram",state="starting"} 1');
    expect(body).toContain('kitbridge_connector_state{platform="telegram",state="connected"} 0');
    expect(body).toContain('kitbridge_ready{platform="telegram"} 0');
    expect(body).toContain('kitbridge_kit_logged_in 0');
    state = 'reconnecting';
    ready = true;
    ({ body } = await m.text());
    expect(body).toContain('kitbridge_connector_state{platform="telegram",state="reconnecting"} 1');
    expect(body).toContain('kitbridge_connector_state{platform="telegram",state="starting"} 0');
    expect(body.match(/^kitbridge_connector_state\{.*\} 1$/gm)).toHaveLength(1);
    expect(body).toContain('kitbridge_ready{platform="telegram"} 1');
    expect(body).toContain('kitbridge_kit_logged_in 1');
  });

  it("counts the platform's rate limits and the waits it asked for, in seconds", async () => {
    const m = metricsWith();
    m.platform.rateLimited(1_500);
    m.platform.rateLimited(0);
    m.platform.rateLimited(Number.NaN);
    expect(await value(m, 'kitbridge_platform_rate_limits_total', { platform: 'telegram' })).toBe(3);
    expect(await value(m, 'kitbridge_platform_rate_limit_wait_seconds_total', { platform: 'telegram' })).toBe(
      1.5,
    );
  });

  it('counts Kit logins and refreshes by outcome, and media answers by status with the bytes', async () => {
    const m = metricsWith();
    m.kit.auth('login', 'success');
    m.kit.auth('refresh', 'failure');
    m.media.answered(200);
    m.media.answered(403);
    m.media.streamed(1024);
    const { body } = await m.text();
    expect(body).toContain('kitbridge_kit_auth_total{operation="login",outcome="success"} 1');
    expect(body).toContain('kitbridge_kit_auth_total{operation="login",outcome="failure"} 0');
    expect(body).toContain('kitbridge_kit_auth_total{operation="refresh",outcome="failure"} 1');
    expect(body).toContain('kitbridge_media_requests_total{status="200"} 1');
    expect(body).toContain('kitbridge_media_requests_total{status="403"} 1');
    expect(body).toContain('kitbridge_media_streamed_bytes_total 1024');
  });

  it("keeps two bridges' counters apart in one process, each with the process metrics", async () => {
    const a = metricsWith();
    const b = metricsWith({ platform: 'discord' });
    a.leg('inbound').received();
    expect(await value(b, 'kitbridge_messages_received_total', { leg: 'inbound' })).toBe(0);
    const [ta, tb] = [(await a.text()).body, (await b.text()).body];
    for (const t of [ta, tb]) {
      expect(t).toMatch(/^process_cpu_user_seconds_total /m);
      expect(t).toMatch(/^nodejs_eventloop_lag_seconds /m);
    }
    expect(ta).toContain('kitbridge_messages_received_total{leg="inbound",platform="telegram"} 1');
    expect(tb).toContain('kitbridge_messages_received_total{leg="inbound",platform="discord"} 0');
  });

  it('names every kitbridge metric by the conventions: prefix, _total counters, base units', async () => {
    const m = metricsWith();
    for (const metric of await m.registry.getMetricsAsJSON()) {
      expect(metric.name).toMatch(/^kitbridge_[a-z0-9_]+$/);
      if (String(metric.type) === 'counter') expect(metric.name).toMatch(/_total$/);
      else expect(metric.name).not.toMatch(/_total$/);
      expect(metric.name).not.toMatch(/_(ms|milliseconds|minutes|kb|mb)(_|$)/);
      // Bounded labels only: never a client id, an event id or a free text.
      for (const label of (metric as { labelNames?: string[] }).labelNames ?? [])
        expect(['leg', 'platform', 'class', 'reason', 'state', 'operation', 'outcome', 'status']).toContain(
          label,
        );
    }
  });
});

describe('GET /metrics', () => {
  let server: HttpServer | undefined;
  afterEach(async () => {
    await server?.close(100);
    server = undefined;
  });

  async function serve(token?: string): Promise<{ url: string; metrics: Metrics }> {
    const metrics = metricsWith();
    server = new HttpServer({ host: '127.0.0.1', port: 0, logger: silentLogger });
    server.router.add('GET', '/metrics', createMetricsRoute({ metrics, ...(token ? { token } : {}) }));
    server.started();
    const a = await server.listen();
    return { url: `http://127.0.0.1:${a.port}/metrics`, metrics };
  }

  it("answers Prometheus' text format with its content type", async () => {
    const { url, metrics } = await serve();
    metrics.leg('outbound').delivered(10);
    const r = await request(url);
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    const body = await r.body.text();
    expect(body).toContain('# TYPE kitbridge_messages_delivered_total counter');
    expect(body).toContain('kitbridge_messages_delivered_total{leg="outbound",platform="telegram"} 1');
    expect(body).toContain('# TYPE kitbridge_delivery_latency_seconds histogram');
  });

  it('wants the bearer token when one is configured: 401 without it or with another, 200 with it', async () => {
    const token = 'metrics-token-0123456789';
    const { url } = await serve(token);
    const cases: [Record<string, string>, number][] = [
      [{}, 401],
      [{ authorization: 'Bearer wrong' }, 401],
      [{ authorization: `Bearer ${token}x` }, 401],
      [{ authorization: `Basic ${Buffer.from(`u:${token}`).toString('base64')}` }, 401],
      [{ authorization: token }, 401],
      [{ authorization: `Bearer ${token}` }, 200],
      [{ authorization: `bearer ${token}` }, 200],
    ];
    for (const [headers, status] of cases) {
      const r = await request(url, { headers });
      const body = await r.body.text();
      expect({ headers, status: r.statusCode }).toEqual({ headers, status });
      if (status === 401) {
        expect(r.headers['www-authenticate']).toBe('Bearer realm="metrics"');
        expect(body).toBe('Unauthorized');
        expect(body).not.toContain(token);
      } else expect(body).toContain('kitbridge_ready');
    }
  });
});

describe('the outbox counts what happens to its items', () => {
  class Permanent extends Error {}
  const outboxes: Outbox[] = [];
  afterEach(async () => {
    await Promise.all(outboxes.splice(0).map((o) => o.stop(100)));
  });

  function make(deliver: OutboxOptions['deliver'], over: Partial<OutboxOptions> = {}) {
    const metrics = metricsWith();
    const outbox = new Outbox({
      leg: 'outbound',
      store: new MemoryStore(),
      logger: silentLogger,
      dedupeTtlMs: 60_000,
      concurrency: 4,
      maxAttempts: 3,
      maxAgeMs: 60_000,
      backoff: { baseMs: 1, maxMs: 5 },
      syncIntervalMs: 0,
      lagLogIntervalMs: 0,
      deliver,
      classify: (err): FailureKind =>
        err instanceof Permanent
          ? { permanent: true, reason: err.message }
          : err instanceof Error && err.message === 'slow down'
            ? { permanent: false, reason: err.message, retryAfterMs: 1 }
            : { permanent: false, reason: String(err) },
      metrics: metrics.leg('outbound'),
      ...over,
    });
    outboxes.push(outbox);
    return { outbox, metrics };
  }
  const item = (clientId: string, key: string) => ({ leg: 'outbound' as const, clientId, key, payload: {} });
  const leg = { leg: 'outbound', platform: 'telegram' };

  it('received, duplicates, delivered with the time since intake', async () => {
    const { outbox, metrics } = make(async () => {});
    await outbox.start();
    expect(await outbox.enqueue(item('a', 'k1'))).toBe('accepted');
    expect(await outbox.enqueue(item('a', 'k1'))).toBe('duplicate');
    expect(await outbox.enqueue(item('b', 'k2'))).toBe('accepted');
    await outbox.idle();
    expect(await value(metrics, 'kitbridge_messages_received_total', leg)).toBe(2);
    expect(await value(metrics, 'kitbridge_duplicates_dropped_total', leg)).toBe(1);
    expect(await value(metrics, 'kitbridge_messages_delivered_total', leg)).toBe(2);
    expect(await value(metrics, 'kitbridge_delivery_latency_seconds_count', leg)).toBe(2);
  });

  it('failed attempts by class and dead letters by reason', async () => {
    const tries = new Map<string, number>();
    const { outbox, metrics } = make(async (i) => {
      const n = (tries.get(i.key) ?? 0) + 1;
      tries.set(i.key, n);
      if (i.key === 'blocked') throw new Permanent('the customer blocked the bot');
      if (i.key === 'flaky' && n === 1) throw new Error('slow down');
      if (i.key === 'flaky' && n === 2) throw new Error('ECONNRESET');
      if (i.key === 'down') throw new Error('ECONNREFUSED');
    });
    await outbox.start();
    for (const k of ['blocked', 'flaky', 'down']) await outbox.enqueue(item(k, k));
    await outbox.idle();
    const failed = (c: string) => value(metrics, 'kitbridge_delivery_failures_total', { ...leg, class: c });
    const dead = (r: string) => value(metrics, 'kitbridge_dead_letters_total', { ...leg, reason: r });
    expect(await failed('permanent')).toBe(1);
    expect(await failed('rate_limited')).toBe(1);
    // flaky once, down three times
    expect(await failed('transient')).toBe(4);
    expect(await dead('permanent')).toBe(1);
    expect(await dead('max_attempts')).toBe(1);
    expect(await dead('max_age')).toBe(0);
    expect(await value(metrics, 'kitbridge_messages_delivered_total', leg)).toBe(1);
  });

  it('an attempt past its deadline counts as a timeout', async () => {
    let first = true;
    const { outbox, metrics } = make(
      (_i, work) =>
        first
          ? new Promise((_, reject) => {
              first = false;
              work.signal.addEventListener('abort', () => reject(work.signal.reason));
            })
          : Promise.resolve(),
      { deliveryTimeoutMs: 50 },
    );
    await outbox.start();
    await outbox.enqueue(item('a', 'slow'));
    await outbox.idle();
    expect(await value(metrics, 'kitbridge_delivery_failures_total', { ...leg, class: 'timeout' })).toBe(1);
    expect(await value(metrics, 'kitbridge_messages_delivered_total', leg)).toBe(1);
  });
});
