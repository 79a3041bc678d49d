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
import { Relay } from './relay/relay.js';
import type { Store } from './store/store.js';

export const TOKENS = {
  Config: Symbol('Config'),
  Logger: Symbol('Logger'),
  Store: Symbol('Store'),
  Connector: Symbol('Connector'),
  KitClient: Symbol('KitClient'),
  MediaSigner: Symbol('MediaSigner'),
  MediaFetcher: Symbol('MediaFetcher'),
  HttpServer: Symbol('HttpServer'),
  Relay: Symbol('Relay'),
} as const;

export interface Parts {
  config: CoreConfig;
  logger: Logger;
  store: Store;
  connector: ChannelConnector;
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

export function createContainer(parts: Parts): DependencyContainer {
  const c = root.createChildContainer();
  c.register(TOKENS.Config, { useValue: parts.config });
  c.register(TOKENS.Logger, { useValue: parts.logger });
  c.register(TOKENS.Store, { useValue: parts.store });
  c.register(TOKENS.Connector, { useValue: parts.connector });
  c.register(TOKENS.KitClient, {
    useFactory: instanceCachingFactory((d) => {
      const { kit } = d.resolve<CoreConfig>(TOKENS.Config);
      return kitClientFor(kit, { logger: d.resolve<Logger>(TOKENS.Logger).child({ part: 'kit' }) });
    }),
  });
  c.register(TOKENS.MediaSigner, {
    useFactory: instanceCachingFactory((d) => {
      const { media } = d.resolve<CoreConfig>(TOKENS.Config);
      return new MediaSigner(media.secret, media.ttlMs);
    }),
  });
  c.register(TOKENS.MediaFetcher, {
    useFactory: instanceCachingFactory((d) => {
      const { media } = d.resolve<CoreConfig>(TOKENS.Config);
      return new MediaFetcher({
        allowPrivate: media.allowPrivate,
        logger: d.resolve<Logger>(TOKENS.Logger).child({ part: 'media' }),
      });
    }),
  });
  c.register(TOKENS.HttpServer, {
    useFactory: instanceCachingFactory((d) => {
      const { http } = d.resolve<CoreConfig>(TOKENS.Config);
      return new HttpServer({ ...http, logger: d.resolve<Logger>(TOKENS.Logger).child({ part: 'http' }) });
    }),
  });
  c.register(TOKENS.Relay, {
    useFactory: instanceCachingFactory((d) => {
      const config = d.resolve<CoreConfig>(TOKENS.Config);
      return new Relay({
        config,
        outbox: { ...OUTBOX_DEFAULTS, ...config.outbox },
        connector: d.resolve(TOKENS.Connector),
        store: d.resolve(TOKENS.Store),
        kit: d.resolve(TOKENS.KitClient),
        signer: d.resolve(TOKENS.MediaSigner),
        fetcher: d.resolve(TOKENS.MediaFetcher),
        logger: d.resolve<Logger>(TOKENS.Logger).child({ part: 'relay' }),
      });
    }),
  });
  return c;
}
