/**
 * The composition root (tsyringe). Every part is registered under an explicit
 * token with a factory — no decorators, no emitted metadata (esbuild, which the
 * tests run on, does not emit it; see platform-notes). A child container per
 * Bridge keeps tests and several bridges in one process apart.
 */
import 'reflect-metadata';
import { type DependencyContainer, instanceCachingFactory, container as root } from 'tsyringe';
import type { CoreConfig } from './config.js';
import { OUTBOX_DEFAULTS } from './config.js';
import type { ChannelConnector } from './connector.js';
import { HttpServer } from './http/router.js';
import { KitClient, type KitClientOptions } from './kit/client.js';
import type { Logger } from './logger.js';
import { MediaFetcher } from './media/fetch.js';
import { MediaSigner } from './media/token.js';
import type { Metrics } from './metrics.js';
import { Relay } from './relay/relay.js';
import type { Store } from './store/store.js';

/**
 * A token that says what it holds: `resolve(TOKENS.Relay)` is a Relay to the
 * compiler too. (tsyringe's own InjectionToken is untyped for symbols.)
 */
export type Token<T> = symbol & { readonly __holds?: T };
const token = <T>(name: string) => Symbol(name) as Token<T>;

export const TOKENS = {
  Config: token<CoreConfig>('Config'),
  Logger: token<Logger>('Logger'),
  Store: token<Store>('Store'),
  Connector: token<ChannelConnector>('Connector'),
  KitClient: token<KitClient>('KitClient'),
  MediaSigner: token<MediaSigner>('MediaSigner'),
  MediaFetcher: token<MediaFetcher>('MediaFetcher'),
  HttpServer: token<HttpServer>('HttpServer'),
  Relay: token<Relay>('Relay'),
  Metrics: token<Metrics>('Metrics'),
} as const;

/** The composed parts of one bridge, typed by token; tsyringe stays behind it. */
export class Composition {
  constructor(private readonly c: DependencyContainer) {}

  resolve<T>(t: Token<T>): T {
    return this.c.resolve<T>(t);
  }
}

type Resolve = <T>(t: Token<T>) => T;

/** One instance per container, made on first use by `make`. */
function provide<T>(c: DependencyContainer, t: Token<T>, make: (get: Resolve) => T): void {
  c.register<T>(t, {
    useFactory: instanceCachingFactory<T>((d) => make(<U>(u: Token<U>) => d.resolve<U>(u))),
  });
}

export interface Parts {
  config: CoreConfig;
  logger: Logger;
  store: Store;
  connector: ChannelConnector;
  metrics: Metrics;
}

/** A KitClient for the configured channel (the bridge's, and `kitbridge check`'s). */
export function kitClientFor(
  kit: CoreConfig['kit'],
  extra: Omit<KitClientOptions, 'baseUrl' | 'account' | 'apiToken' | 'channelUuid'> = {},
): KitClient {
  return new KitClient({
    baseUrl: kit.baseUrl,
    account: kit.account,
    apiToken: kit.apiToken,
    channelUuid: kit.channelUuid,
    ...extra,
  });
}

export function createContainer(parts: Parts): Composition {
  const c = root.createChildContainer();
  c.register(TOKENS.Config, { useValue: parts.config });
  c.register(TOKENS.Logger, { useValue: parts.logger });
  c.register(TOKENS.Store, { useValue: parts.store });
  c.register(TOKENS.Connector, { useValue: parts.connector });
  c.register(TOKENS.Metrics, { useValue: parts.metrics });
  const log = (get: Resolve, part: string) => get(TOKENS.Logger).child({ part });
  provide(c, TOKENS.KitClient, (get) =>
    kitClientFor(get(TOKENS.Config).kit, { logger: log(get, 'kit'), metrics: get(TOKENS.Metrics).kit }),
  );
  provide(c, TOKENS.MediaSigner, (get) => {
    const { media } = get(TOKENS.Config);
    return new MediaSigner(media.secret, media.ttlMs);
  });
  provide(
    c,
    TOKENS.MediaFetcher,
    (get) =>
      new MediaFetcher({ allowPrivate: get(TOKENS.Config).media.allowPrivate, logger: log(get, 'media') }),
  );
  provide(
    c,
    TOKENS.HttpServer,
    (get) => new HttpServer({ ...get(TOKENS.Config).http, logger: log(get, 'http') }),
  );
  provide(c, TOKENS.Relay, (get) => {
    const config = get(TOKENS.Config);
    return new Relay({
      config,
      outbox: { ...OUTBOX_DEFAULTS, ...config.outbox },
      connector: get(TOKENS.Connector),
      store: get(TOKENS.Store),
      kit: get(TOKENS.KitClient),
      signer: get(TOKENS.MediaSigner),
      fetcher: get(TOKENS.MediaFetcher),
      logger: log(get, 'relay'),
      metrics: get(TOKENS.Metrics),
    });
  });
  return new Composition(c);
}
