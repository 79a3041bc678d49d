/**
 * A connector's surroundings in tests, for every plugin: a hand-written
 * ConnectorContext that records what the connector hands to core, the delivery
 * work (signal and durable progress) the outbox would give it, and an
 * AgentMessage builder. The file server for agent attachments is FileServer
 * (from @kitbridge/demo, re-exported).
 */
import { Writable } from 'node:stream';
import {
  type AgentMessage,
  type ClientIdentity,
  type ConnectionStatus,
  type ConnectorContext,
  createLogger,
  type DeliveryWork,
  HttpServer,
  type InboundMessage,
  type JsonObject,
  type Logger,
  type ReceiveResult,
  type RouteHandler,
  type Router,
  silentLogger,
} from '@kitbridge/core';

export interface TestContextOptions {
  publicUrl?: string;
  /** Routes added by the connector land here too (a real server: see {@link webhookHost}). */
  router?: Router;
  /** Capture log lines (JSON) in {@link TestContext.logLines}, scrubbing these secrets as core does. */
  captureLogs?: boolean;
  secrets?: string[];
}

/** Collects what the connector hands to core; `failNext` makes receive reject, `hold` makes it wait. */
export class TestContext {
  readonly received: InboundMessage[] = [];
  /** Every receive call, including rejected ones. */
  readonly attempts: InboundMessage[] = [];
  readonly statuses: ConnectionStatus[] = [];
  /** Every updateClient call. */
  readonly updates: ClientIdentity[] = [];
  readonly routes = new Map<string, RouteHandler>();
  /** What the connector stored with ctx.checkpoints. */
  readonly checkpoints = new Map<string, string>();
  /** Names of the exclusive jobs the connector runs, and whether each is running. */
  readonly jobs = new Map<string, { running: boolean; abort: AbortController }>();
  /** The waits of every `ctx.metrics.rateLimited` call, ms, in order. */
  readonly rateLimits: number[] = [];
  /** Log lines as written (only with `captureLogs`). */
  readonly logLines: string[] = [];
  readonly abort = new AbortController();
  readonly publicUrl: string;
  private failures = 0;
  private gate?: Promise<void>;
  private readonly seen = new Set<string>();
  private waiters: (() => void)[] = [];
  private readonly logger: Logger;

  constructor(
    publicUrlOrOptions: string | TestContextOptions = {},
    private readonly router?: Router,
  ) {
    const o = typeof publicUrlOrOptions === 'string' ? { publicUrl: publicUrlOrOptions } : publicUrlOrOptions;
    this.publicUrl = o.publicUrl ?? 'http://127.0.0.1:9';
    this.router ??= o.router;
    this.logger = o.captureLogs
      ? createLogger({
          level: 'trace',
          secrets: o.secrets ?? [],
          destination: new Writable({
            write: (chunk, _enc, cb) => {
              this.logLines.push(String(chunk));
              cb();
            },
          }),
        })
      : silentLogger;
  }

  /** The next `n` receive calls reject, as when the store is down. */
  failNext(n: number): void {
    this.failures += n;
  }

  /** Receive calls wait until the returned function is called (a slow store). */
  hold(): () => void {
    let release!: () => void;
    this.gate = new Promise<void>((r) => {
      release = r;
    });
    return () => {
      this.gate = undefined;
      release();
    };
  }

  get ctx(): ConnectorContext {
    return {
      receive: (m) => this.receive(m),
      updateClient: async (c) => {
        this.updates.push(c);
        this.notify();
      },
      setStatus: (s) => {
        this.statuses.push(s);
        this.notify();
      },
      route: (method, path, handler) => {
        this.routes.set(`${method} ${path}`, handler);
        this.router?.add(method, path, handler);
      },
      publicUrl: this.publicUrl,
      logger: this.logger,
      signal: this.abort.signal,
      checkpoints: {
        get: async (k) => this.checkpoints.get(k),
        set: async (k, v) => {
          this.checkpoints.set(k, v);
        },
      },
      // One process: the lease is always granted.
      exclusive: (name, job) => {
        const abort = new AbortController();
        const stop = () => abort.abort(new Error('stopping'));
        this.abort.signal.addEventListener('abort', stop, { once: true });
        const entry = { running: true, abort };
        this.jobs.set(name, entry);
        void job(abort.signal)
          .catch(() => {})
          .finally(() => {
            entry.running = false;
            this.notify();
          });
        return Promise.resolve('running' as const);
      },
      metrics: {
        rateLimited: (waitMs) => {
          this.rateLimits.push(waitMs);
          this.notify();
        },
      },
    };
  }

  private async receive(m: InboundMessage): Promise<ReceiveResult> {
    this.attempts.push(m);
    this.notify();
    if (this.gate) await this.gate;
    if (this.failures > 0) {
      this.failures--;
      this.notify();
      throw new Error('store unavailable');
    }
    const key = `${m.client.clientId}/${m.messageId}`;
    const dup = this.seen.has(key);
    this.seen.add(key);
    if (!dup) this.received.push(m);
    this.notify();
    return dup ? 'duplicate' : 'accepted';
  }

  /** Waits until `check` holds (checked after every receive and status change, and every 20 ms). */
  until(check: () => boolean, timeoutMs = 5_000, what = 'condition'): Promise<void> {
    return new Promise((resolve, reject) => {
      if (check()) return resolve();
      const poll = setInterval(() => w(), 20);
      const timer = setTimeout(() => {
        clearInterval(poll);
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new Error(`timed out waiting for ${what}`));
      }, timeoutMs);
      const w = () => {
        if (!check()) return;
        clearTimeout(timer);
        clearInterval(poll);
        this.waiters = this.waiters.filter((x) => x !== w);
        resolve();
      };
      this.waiters.push(w);
    });
  }

  waitForMessages(n: number, timeoutMs?: number): Promise<void> {
    return this.until(
      () => this.received.length >= n,
      timeoutMs,
      `${n} messages (have ${this.received.length})`,
    );
  }

  get state(): ConnectionStatus['state'] | undefined {
    return this.statuses.at(-1)?.state;
  }

  private notify(): void {
    for (const w of [...this.waiters]) w();
  }
}

/** core's own HTTP server on 127.0.0.1:0 (for webhooks), and a context whose routes land on it. */
export async function webhookHost(
  options: Omit<TestContextOptions, 'router' | 'publicUrl'> = {},
): Promise<{ tc: TestContext; url: string; close: () => Promise<void> }> {
  const server = new HttpServer({ host: '127.0.0.1', port: 0, logger: silentLogger });
  const addr = await server.listen();
  const url = `http://127.0.0.1:${addr.port}`;
  return {
    tc: new TestContext({ ...options, publicUrl: url, router: server.router }),
    url,
    close: () => server.close(0),
  };
}

/**
 * The delivery work the outbox hands a connector: a signal (aborted by `abort()`
 * or after `timeoutMs`) and a progress record that outlives the attempt, as the
 * store keeps it. Call `next()` for each new attempt of the same delivery.
 */
export class TestDelivery {
  done: JsonObject | undefined;
  readonly saves: JsonObject[] = [];
  private controller = new AbortController();

  constructor(private readonly timeoutMs?: number) {}

  /** A fresh attempt over the recorded progress. */
  next(): DeliveryWork {
    this.controller = new AbortController();
    const signal = this.timeoutMs
      ? AbortSignal.any([this.controller.signal, AbortSignal.timeout(this.timeoutMs)])
      : this.controller.signal;
    return {
      signal,
      progress: {
        done: this.done,
        save: async (p) => {
          this.saves.push(p);
          this.done = p;
        },
      },
    };
  }

  abort(reason: unknown = new Error('deadline')): void {
    this.controller.abort(reason);
  }
}

/** An AgentMessage with a fresh event id; `fields` override. */
export function agentMessage(fields: Partial<AgentMessage> = {}): AgentMessage {
  return {
    eventId: `ev-${Math.random().toString(36).slice(2)}`,
    attachments: [],
    locations: [],
    contacts: [],
    notices: [],
    ...fields,
  };
}
