/**
 * One running kitbridge process: the HTTP server (callback, health, media and
 * plugin routes), the Kit client, the relay with its two outboxes, and the
 * connector. Start order makes every route exist before anyone is told about it;
 * stop order stops intake first and leaves unfinished work in the store.
 */
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import { addAdminRoutes } from './admin/routes.js';
import { type CoreConfig, coreSecrets, DEFAULT_DRAIN_MS, KIT_LOGIN_HINT } from './config.js';
import {
  type ChannelConnector,
  type Checkpoints,
  type ConnectionStatus,
  isConfigValidating,
  isReadyState,
} from './connector.js';
import { type Composition, createContainer, TOKENS } from './container.js';
import { type HttpServer, sendJson, sendText } from './http/router.js';
import { SingletonJobs } from './jobs.js';
import { createCallbackRoute } from './kit/callback-route.js';
import type { KitClient } from './kit/client.js';
import { CALLBACK_BODY_LIMIT_BYTES } from './kit/decisions.js';
import { KitAuthError } from './kit/errors.js';
import { type Logger, silentLogger } from './logger.js';
import { createMediaRoute } from './media/proxy.js';
import { createMetricsRoute, Metrics } from './metrics.js';
import type { Relay } from './relay/relay.js';
import { backoffDelay, sleep } from './retry.js';
import { MemoryStore } from './store/memory.js';
import type { Store, StoreHealth } from './store/store.js';

const PRUNE_INTERVAL_MS = 60 * 60_000;
/** The checkpoint naming the connector whose store it is (connectors' own keys are `<name>:<key>`). */
const STORE_CONNECTOR_KEY = 'kitbridge:connector';

/** Options of {@link Bridge.stop}. */
export interface StopOptions {
  /**
   * The drain window, ms: `/readyz` answers 503 at once (a load balancer takes
   * the process out of rotation), but callbacks, platform webhooks and media
   * links are still served and stored for this long, so what Kit or the
   * platform sent just before the signal is answered, not refused. Default:
   * `config.drainMs`, else {@link DEFAULT_DRAIN_MS}.
   */
  drainMs?: number;
  /**
   * After intake stopped: how long open requests (at most 5 s of it) and then
   * running deliveries may take to finish, ms. Default 10 000.
   */
  graceMs?: number;
}

export interface BridgeOptions {
  config: CoreConfig;
  connector: ChannelConnector;
  /** Default: a MemoryStore. The bridge closes it on stop. */
  store?: Store;
  logger?: Logger;
}

export class Bridge {
  address?: AddressInfo;
  /** The composed parts, typed by token (tsyringe stays inside container.ts). */
  private readonly parts: Composition;
  readonly relay: Relay;
  readonly kit: KitClient;
  readonly store: Store;
  /** This bridge's Prometheus metrics (`GET /metrics`). */
  readonly metrics: Metrics;
  private readonly http: HttpServer;
  private readonly logger: Logger;
  private readonly abort = new AbortController();
  private kitReady = false;
  /** Set at the first {@link Bridge.stop}: /readyz answers 503 from then on. */
  private stopRequested = false;
  private stopping?: Promise<void>;
  private pruneTimer?: NodeJS.Timeout;
  private readonly jobs: SingletonJobs;

  constructor(readonly options: BridgeOptions) {
    this.logger = options.logger ?? silentLogger;
    this.store = options.store ?? new MemoryStore();
    this.jobs = new SingletonJobs({
      store: this.store,
      owner: `${hostname()}:${process.pid}`,
      ...(options.config.outbox?.leaseMs ? { leaseMs: options.config.outbox.leaseMs } : {}),
      logger: this.logger.child({ part: 'jobs' }),
    });
    const store = this.store;
    const connector = options.connector;
    // Read at scrape time only; `this.kit` exists by the first scrape.
    this.metrics = new Metrics({
      platform: connector.name,
      stats: () => store.stats(),
      state: () => connector.status().state,
      ready: () => this.ready().ready,
      kitLoggedIn: () => this.kit.loggedIn,
      logger: this.logger.child({ part: 'metrics' }),
    });
    this.parts = createContainer({
      config: options.config,
      logger: this.logger,
      store,
      connector,
      metrics: this.metrics,
    });
    this.relay = this.parts.resolve(TOKENS.Relay);
    this.kit = this.parts.resolve(TOKENS.KitClient);
    this.http = this.parts.resolve(TOKENS.HttpServer);
  }

  /** `http://host:port` of the running server (127.0.0.1 when bound to all addresses). */
  get url(): string {
    const a = this.address;
    if (!a) throw new Error('bridge is not started');
    const host = a.address === '0.0.0.0' || a.address === '::' ? '127.0.0.1' : a.address;
    return `http://${host.includes(':') ? `[${host}]` : host}:${a.port}`;
  }

  async start(): Promise<AddressInfo> {
    const { config, connector } = this.options;
    if (isConfigValidating(connector)) {
      const problems = connector.validateConfig();
      if (problems.length)
        throw new Error(`Invalid ${connector.name} configuration:\n  ${problems.join('\n  ')}`);
    }
    await this.claimStore(connector.name);
    this.addCoreRoutes();
    this.address = await this.http.listen();
    this.logger.info({ address: this.url, store: this.store.description }, 'listening');

    await this.relay.inbound.start();
    await this.loginToKit();

    let lastState: ConnectionStatus['state'] | undefined;
    await connector.start({
      receive: this.relay.receive,
      updateClient: this.relay.updateClient,
      setStatus: (s) => {
        if (s.state !== lastState)
          this.logger[s.state === 'failed' ? 'error' : 'info'](
            { connector: connector.name, ...s },
            'connector state',
          );
        lastState = s.state;
      },
      route: (method, path, handler) => this.http.router.add(method, path, handler),
      publicUrl: config.publicUrl,
      logger: this.logger.child({ part: connector.name }),
      signal: this.abort.signal,
      checkpoints: this.checkpoints(connector.name),
      exclusive: (name, job) => this.jobs.run(`${connector.name}:${name}`, job),
      metrics: this.metrics.platform,
    });
    // The connector's routes are in place: an unknown path is a 404 now, not "starting".
    this.http.started();
    await this.relay.outbound.start();
    this.schedulePrune();
    return this.address;
  }

  /**
   * Stops without losing what was acknowledged, in this order: `/readyz` turns
   * 503; for the drain window callbacks, webhooks and media are still served
   * (and stored); then intake stops (the connector); the HTTP server closes,
   * waiting for open requests; running deliveries finish (bounded) and the rest
   * stays in the store; the store closes last. Idempotent: later calls return
   * the first one's promise. A number is `graceMs` (see {@link StopOptions}).
   */
  stop(options: StopOptions | number = {}): Promise<void> {
    const { graceMs = 10_000, drainMs = this.options.config.drainMs ?? DEFAULT_DRAIN_MS } =
      typeof options === 'number' ? { graceMs: options } : options;
    this.stopping ??= (async () => {
      this.stopRequested = true;
      clearInterval(this.pruneTimer);
      if (this.address && drainMs > 0) {
        this.logger.info({ drainMs }, 'stopping: not ready, still serving callbacks, webhooks and media');
        await sleep(drainMs);
      }
      this.abort.abort(new Error('stopping'));
      await this.options.connector
        .stop()
        .catch((err: Error) => this.logger.warn({ err: err.message }, 'connector stop failed'));
      // Singleton jobs end with the connector; their leases are given up for a standby replica.
      await this.jobs.close();
      await this.http.close(Math.min(graceMs, 5_000));
      await this.relay.stop(graceMs);
      await this.kit.close();
      await this.parts.resolve(TOKENS.MediaFetcher).close();
      await this.store.close();
      this.logger.info('stopped');
    })();
    return this.stopping;
  }

  /**
   * Ready: Kit accepted our credentials once, the store answers, the connector is connected or on
   * standby (another replica holds its singleton job), and the bridge is not stopping. Kit outages later do not unready: the outbox absorbs them.
   */
  ready(): {
    ready: boolean;
    stopping: boolean;
    kit: boolean;
    store: StoreHealth;
    connector: ConnectionStatus;
  } {
    const connector = this.options.connector.status();
    // A store outage unreadies: intake answers 503 meanwhile, and /readyz says so.
    const store = this.store.health?.() ?? { ok: true };
    return {
      ready: !this.stopRequested && this.kitReady && store.ok && isReadyState(connector.state),
      stopping: this.stopRequested,
      kit: this.kitReady,
      store,
      connector,
    };
  }

  /**
   * One connector per store: its replicas share it, but another connector on
   * it (a second `run` on the same database schema) would take this one's
   * items. The first start records the connector's name; a start with another
   * name is refused before anything is served.
   */
  private async claimStore(name: string): Promise<void> {
    const holder = await this.store.getCheckpoint(STORE_CONNECTOR_KEY);
    if (holder === undefined) await this.store.setCheckpoint(STORE_CONNECTOR_KEY, name);
    else if (holder !== name)
      throw new Error(
        `the store ${this.store.description} holds the ${holder} connector's items; give the ${name} connector a store of its own`,
      );
  }

  /** ctx.checkpoints: the store's, one key space per connector. */
  private checkpoints(prefix: string): Checkpoints {
    const store = this.store;
    return {
      get: (k) => store.getCheckpoint(`${prefix}:${k}`),
      set: (k, v) => store.setCheckpoint(`${prefix}:${k}`, v),
    };
  }

  private addCoreRoutes(): void {
    const { config, connector } = this.options;
    const r = this.http.router;
    r.add('GET', '/healthz', (_req, res) => sendText(res, 200, 'OK'));
    r.add('GET', '/metrics', createMetricsRoute({ metrics: this.metrics, token: config.metricsToken }));
    r.add('GET', '/readyz', (_req, res) => {
      const state = this.ready();
      sendJson(res, state.ready ? 200 : 503, {
        ...state,
        outbox: { inbound: this.relay.inbound.backlog(), outbound: this.relay.outbound.backlog() },
      });
    });
    const callback = createCallbackRoute({
      salt: config.kit.salt,
      token: config.kit.apiToken,
      bodyLimit: CALLBACK_BODY_LIMIT_BYTES,
      handle: this.relay.handleCallback,
      logger: this.logger.child({ part: 'callback' }),
      ...(config.callbackAllowedIps ? { allowedIps: config.callbackAllowedIps } : {}),
    });
    r.add('POST', '/kit/callback', callback);
    r.add('GET', '/kit/callback', callback);
    r.add(
      'GET',
      '/media/*',
      createMediaRoute({
        signer: this.parts.resolve(TOKENS.MediaSigner),
        resolve: (claims) => connector.resolveAttachment(claims.file),
        maxBytes: config.media.maxBytes,
        logger: this.logger.child({ part: 'media' }),
        metrics: this.metrics.media,
      }),
    );
    if (config.adminToken)
      addAdminRoutes(r, {
        token: config.adminToken,
        store: this.store,
        status: () => this.ready(),
        wakeUp: () => {
          this.relay.inbound.wakeUp();
          this.relay.outbound.wakeUp();
        },
        publicUrl: config.publicUrl,
        secrets: coreSecrets(config),
        logger: this.logger.child({ part: 'admin' }),
      });
  }

  /** Expired dedupe keys are removed at start and then hourly. */
  private schedulePrune(): void {
    const prune = () =>
      this.store.prune(Date.now()).then(
        (n) => n > 0 && this.logger.debug({ removed: n }, 'expired dedupe keys pruned'),
        (err: Error) => this.logger.warn({ err: err.message }, 'dedupe prune failed'),
      );
    void prune();
    this.pruneTimer = setInterval(prune, PRUNE_INTERVAL_MS);
    this.pruneTimer.unref();
  }

  /**
   * Logs in once at start. Rejected credentials stop start-up; an unreachable Kit
   * does not: logging in goes on in the background and /readyz waits for it.
   */
  private async loginToKit(): Promise<void> {
    try {
      await this.login();
    } catch (err) {
      if (err instanceof KitAuthError)
        throw new Error(`Kit refused the login; ${KIT_LOGIN_HINT} (${err.message})`);
      this.logger.warn(
        { err: (err as Error).message },
        'Kit unreachable at start; retrying in the background',
      );
      void this.retryLogin();
    }
  }

  private async login(): Promise<void> {
    await this.kit.login();
    this.kitReady = true;
    this.logger.info('logged in to Kit');
  }

  private async retryLogin(): Promise<void> {
    for (let attempt = 1; !this.abort.signal.aborted; attempt++) {
      try {
        await sleep(backoffDelay(attempt, { baseMs: 1_000, maxMs: 60_000 }), this.abort.signal);
        await this.login();
        return;
      } catch (err) {
        if (this.abort.signal.aborted) return;
        this.logger.warn({ err: (err as Error).message, attempt }, 'Kit login failed; retrying');
      }
    }
  }
}

export async function startBridge(options: BridgeOptions): Promise<Bridge> {
  const b = new Bridge(options);
  try {
    await b.start();
  } catch (err) {
    await b.stop({ graceMs: 0, drainMs: 0 }).catch(() => {});
    throw err;
  }
  return b;
}
