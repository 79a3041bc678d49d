/**
 * Prometheus metrics (prom-client): one {@link Metrics} per Bridge, on its own
 * Registry (tests run several bridges in one process), and `GET /metrics`.
 *
 * Cost on the hot paths (webhook -> outbox, callback -> send): label children
 * are bound once, here, so an event costs a few increments and one histogram
 * observation. What is read from elsewhere (the store's backlog, the
 * connector's state, readiness) is read at scrape time, never per event; the
 * store is asked at most once per {@link STATS_CACHE_MS} however often
 * Prometheus scrapes.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { ConnectionState, PlatformMetrics } from './connector.js';
import { type RouteHandler, sendText } from './http/router.js';
import type { Logger } from './logger.js';
import type { Leg, OutboxStats } from './store/store.js';

/** Why an attempt failed, as a bounded label. */
export type FailureClass =
  /** No retry will fix it (Kit rejected the event, the customer blocked the bot). */
  | 'permanent'
  /** The far side asked us to wait (429, Retry-After). */
  | 'rate_limited'
  /** The attempt passed KITBRIDGE_DELIVERY_TIMEOUT. */
  | 'timeout'
  /** Anything else retried with backoff (network, 5xx). */
  | 'transient';

/** Why an item went to the dead letters, as a bounded label. */
export type DeadLetterReason = 'permanent' | 'max_attempts' | 'max_age';

/** What one leg's outbox counts. Every call is a few increments: no I/O, no allocation worth naming. */
export interface LegMetrics {
  /** An item was stored (a customer message, a Kit callback). */
  received(): void;
  /** A duplicate (same key within its TTL) was dropped. */
  duplicate(): void;
  /** An item was delivered, `sinceIntakeMs` after it was stored. */
  delivered(sinceIntakeMs: number): void;
  failed(cls: FailureClass): void;
  dead(reason: DeadLetterReason): void;
}

export interface KitMetrics {
  /** One login or token refresh ended (after the client's own retries). */
  auth(operation: 'login' | 'refresh', outcome: 'success' | 'failure'): void;
}

export interface MediaMetrics {
  /** The media proxy answered `status`. */
  answered(status: number): void;
  /** Bytes of a file body written to Kit. */
  streamed(bytes: number): void;
}

/** What the scrape-time gauges read. Each must be cheap and must not throw (stats may reject). */
export interface MetricsSources {
  /** The connector's name: the `platform` label. */
  platform: string;
  /** The store's backlog per leg (read at most once per {@link STATS_CACHE_MS}). */
  stats(): Promise<OutboxStats[]>;
  state(): ConnectionState;
  ready(): boolean;
  kitLoggedIn(): boolean;
  /** Told when the store's stats cannot be read (the backlog gauges are then absent). */
  logger?: Logger;
  /** Clock of the stats cache and the oldest age (tests). Default Date.now. */
  now?: () => number;
}

/** How long one read of the store's stats serves scrapes, ms. */
export const STATS_CACHE_MS = 2_000;

const LEGS: readonly Leg[] = ['inbound', 'outbound'];
const STATES: readonly ConnectionState[] = [
  'starting',
  'connected',
  'standby',
  'reconnecting',
  'failed',
  'stopped',
];
const FAILURE_CLASSES: readonly FailureClass[] = ['permanent', 'rate_limited', 'timeout', 'transient'];
const DEAD_REASONS: readonly DeadLetterReason[] = ['permanent', 'max_attempts', 'max_age'];

/** Intake to delivery, seconds: a hot path answers in milliseconds, a backlog in minutes or hours. */
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];

/** Process metrics (CPU, memory, event loop, GC) are the process's, not a bridge's: one registry for all. */
let processRegistry: Registry | undefined;
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

export class Metrics {
  /** This bridge's metrics (the process metrics are added by {@link Metrics.text}). */
  readonly registry = new Registry();
  private readonly legs = new Map<Leg, LegMetrics>();
  /** One in-flight or recent read of the store's stats, shared by the backlog gauges. */
  private statsRead?: { at: number; value: Promise<OutboxStats[] | undefined> };
  readonly kit: KitMetrics;
  readonly media: MediaMetrics;
  readonly platform: PlatformMetrics;
  private readonly now: () => number;

  constructor(private readonly sources: MetricsSources) {
    this.now = sources.now ?? Date.now;
    const { platform } = sources;
    const registers = [this.registry];
    const legLabels = ['leg', 'platform'] as const;

    const received = new Counter({
      name: 'kitbridge_messages_received_total',
      help: 'Items stored in the outbox: customer messages (inbound) and Kit callbacks (outbound).',
      labelNames: legLabels,
      registers,
    });
    const delivered = new Counter({
      name: 'kitbridge_messages_delivered_total',
      help: 'Items delivered: to Kit (inbound) or to the platform (outbound).',
      labelNames: legLabels,
      registers,
    });
    const duplicates = new Counter({
      name: 'kitbridge_duplicates_dropped_total',
      help: 'Items dropped on arrival as duplicates of one seen within the dedupe TTL.',
      labelNames: legLabels,
      registers,
    });
    const failures = new Counter({
      name: 'kitbridge_delivery_failures_total',
      help: 'Failed delivery attempts, by class: permanent, rate_limited, timeout, transient.',
      labelNames: [...legLabels, 'class'],
      registers,
    });
    const dead = new Counter({
      name: 'kitbridge_dead_letters_total',
      help: 'Items moved to the dead letters, by reason: permanent, max_attempts, max_age.',
      labelNames: [...legLabels, 'reason'],
      registers,
    });
    const latency = new Histogram({
      name: 'kitbridge_delivery_latency_seconds',
      help: 'Time from intake (the item stored in the outbox) to its delivery.',
      labelNames: legLabels,
      buckets: LATENCY_BUCKETS,
      registers,
    });
    for (const leg of LEGS) {
      const r = zeroed(received.labels(leg, platform));
      const d = zeroed(delivered.labels(leg, platform));
      const dup = zeroed(duplicates.labels(leg, platform));
      latency.zero({ leg, platform });
      const lat = latency.labels(leg, platform);
      const byClass = new Map(FAILURE_CLASSES.map((c) => [c, zeroed(failures.labels(leg, platform, c))]));
      const byReason = new Map(DEAD_REASONS.map((x) => [x, zeroed(dead.labels(leg, platform, x))]));
      this.legs.set(leg, {
        received: () => r.inc(),
        duplicate: () => dup.inc(),
        delivered: (ms) => {
          d.inc();
          lat.observe(ms / 1000);
        },
        failed: (c) => byClass.get(c)?.inc(),
        dead: (x) => byReason.get(x)?.inc(),
      });
    }

    const self = this;
    const backlog = (name: string, help: string, pick: (s: OutboxStats, now: number) => number | undefined) =>
      new Gauge({
        name,
        help,
        labelNames: legLabels,
        registers,
        async collect() {
          const stats = await self.stats();
          this.reset();
          if (!stats) return;
          const now = self.now();
          for (const s of stats) {
            const v = pick(s, now);
            if (v !== undefined) this.labels(s.leg, platform).set(v);
          }
        },
      });
    backlog('kitbridge_outbox_pending', 'Pending outbox items.', (s) => s.pending);
    backlog('kitbridge_outbox_pending_clients', 'Clients with at least one pending item.', (s) => s.clients);
    backlog('kitbridge_outbox_dead', 'Items in the dead letters now.', (s) => s.dead);
    backlog(
      'kitbridge_outbox_oldest_pending_age_seconds',
      'Age of the oldest pending item (0 when none is pending).',
      (s, now) => (s.oldestPendingAt === undefined ? 0 : Math.max(0, (now - s.oldestPendingAt) / 1000)),
    );

    new Gauge({
      name: 'kitbridge_connector_state',
      help: "1 for the connector's current connection state, 0 for the others.",
      labelNames: ['platform', 'state'],
      registers,
      collect() {
        const current = sources.state();
        for (const s of STATES) this.labels(platform, s).set(s === current ? 1 : 0);
      },
    });
    new Gauge({
      name: 'kitbridge_ready',
      help: '1 while /readyz answers 200.',
      labelNames: ['platform'],
      registers,
      collect() {
        this.labels(platform).set(sources.ready() ? 1 : 0);
      },
    });
    new Gauge({
      name: 'kitbridge_kit_logged_in',
      help: '1 while the Kit client holds a session no auth failure has ended.',
      registers,
      collect() {
        this.set(sources.kitLoggedIn() ? 1 : 0);
      },
    });

    const auth = new Counter({
      name: 'kitbridge_kit_auth_total',
      help: 'Kit logins and token refreshes, by outcome (after the client retried).',
      labelNames: ['operation', 'outcome'],
      registers,
    });
    for (const op of ['login', 'refresh'] as const)
      for (const outcome of ['success', 'failure'] as const) zeroed(auth.labels(op, outcome));
    this.kit = { auth: (op, outcome) => auth.labels(op, outcome).inc() };

    const rateLimits = zeroed(
      new Counter({
        name: 'kitbridge_platform_rate_limits_total',
        help: 'Rate-limit answers (429) from the platform, whoever waited them out.',
        labelNames: ['platform'],
        registers,
      }).labels(platform),
    );
    const rateLimitWait = zeroed(
      new Counter({
        name: 'kitbridge_platform_rate_limit_wait_seconds_total',
        help: 'Waits the platform asked for in its rate-limit answers, summed.',
        labelNames: ['platform'],
        registers,
      }).labels(platform),
    );
    this.platform = {
      rateLimited: (waitMs) => {
        rateLimits.inc();
        if (Number.isFinite(waitMs) && waitMs > 0) rateLimitWait.inc(waitMs / 1000);
      },
    };

    const mediaRequests = new Counter({
      name: 'kitbridge_media_requests_total',
      help: 'Media proxy answers, by HTTP status.',
      labelNames: ['status'],
      registers,
    });
    const mediaBytes = new Counter({
      name: 'kitbridge_media_streamed_bytes_total',
      help: 'File bytes the media proxy streamed to Kit.',
      registers,
    });
    mediaBytes.inc(0);
    this.media = {
      answered: (status) => mediaRequests.labels(String(status)).inc(),
      streamed: (bytes) => mediaBytes.inc(bytes),
    };
  }

  /** The pre-bound counters of one leg, for its Outbox. */
  leg(leg: Leg): LegMetrics {
    return this.legs.get(leg)!;
  }

  /** The Prometheus text exposition: this bridge's metrics and the process's. */
  async text(): Promise<{ contentType: string; body: string }> {
    const merged = Registry.merge([processMetrics(), this.registry]);
    return { contentType: merged.contentType, body: await merged.metrics() };
  }

  /** The store's stats, cached briefly; undefined when they cannot be read. */
  private stats(): Promise<OutboxStats[] | undefined> {
    const now = this.now();
    const last = this.statsRead;
    if (last && now - last.at < STATS_CACHE_MS) return last.value;
    const value = this.sources.stats().catch((err: Error) => {
      this.sources.logger?.warn({ err: err.message }, 'outbox stats unavailable for /metrics');
      return undefined;
    });
    this.statsRead = { at: now, value };
    return value;
  }
}

/** A series exported as 0 from the start: `rate()` and alerts see its first increment. */
function zeroed<T extends { inc(value?: number): void }>(child: T): T {
  child.inc(0);
  return child;
}

export interface MetricsRouteOptions {
  metrics: Metrics;
  /** KITBRIDGE_METRICS_TOKEN: when set, a scrape must carry `Authorization: Bearer <token>`. */
  token?: string;
}

/** Handler of `GET /metrics`: 401 without the bearer token when one is configured. */
export function createMetricsRoute(opts: MetricsRouteOptions): RouteHandler {
  const expected = opts.token === undefined ? undefined : digest(opts.token);
  return async (req, res) => {
    if (expected && !bearerMatches(req.headers.authorization, expected)) {
      sendText(res, 401, 'Unauthorized', { 'www-authenticate': 'Bearer realm="metrics"' });
      return;
    }
    const { contentType, body } = await opts.metrics.text();
    sendText(res, 200, body, { 'content-type': contentType, 'cache-control': 'no-store' });
  };
}

/** Compares digests, so the time taken says nothing of the token, not even its length. */
function bearerMatches(header: string | undefined, expected: Buffer): boolean {
  const m = header ? /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header) : null;
  return m !== null && timingSafeEqual(digest(m[1]!), expected);
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}
