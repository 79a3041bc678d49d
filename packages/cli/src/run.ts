/** `kitbridge run <platform>`: validate everything, then start one connector process. */

import type { ChannelConnector, CoreConfig, Logger, LoggerOptions, Store } from '@kitbridge/core';
import {
  type Bridge,
  ConfigError,
  coreConfigFromEnv,
  coreEnvSchema,
  coreSecrets,
  createLogger,
  parseEnv,
  startBridge,
} from '@kitbridge/core';
import type { StandardSchemaV1 } from '@standard-schema/spec';
import { z } from 'zod';
import { loadPlatform } from './platforms.js';
import { openStore, storeEnvSchema, storeSecrets } from './store-url.js';

export const logEnvSchema = z.object({
  KITBRIDGE_LOG_LEVEL: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
    .default('info')
    .describe('Log level'),
});

/** Parses every schema and reports all bad variables at once. */
function parseAll<T extends unknown[]>(
  env: NodeJS.ProcessEnv,
  ...schemas: { [K in keyof T]: StandardSchemaV1<unknown, T[K]> }
): T {
  const problems: string[] = [];
  const out = schemas.map((s) => {
    try {
      return parseEnv(s, env);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      problems.push(...err.message.split('\n').slice(1));
      return undefined;
    }
  });
  if (problems.length) throw new ConfigError(`Invalid configuration:\n${problems.join('\n')}`);
  return out as T;
}

/** Everything `run` and `check` need, validated: configuration, logger, store, connector. */
export interface Prepared {
  config: CoreConfig;
  logger: Logger;
  store: Store;
  connector: ChannelConnector;
  platform: string;
}

/** `exclusive`: hold the store for this process alone (`run`; `check` shares it). */
export async function prepare(
  platformName: string | undefined,
  env: NodeJS.ProcessEnv,
  level?: LoggerOptions['level'],
  { exclusive = false }: { exclusive?: boolean } = {},
): Promise<Prepared> {
  const plugin = await loadPlatform(platformName);
  const [core, store, log, platform] = parseAll<
    [z.output<typeof coreEnvSchema>, z.output<typeof storeEnvSchema>, z.output<typeof logEnvSchema>, unknown]
  >(env, coreEnvSchema, storeEnvSchema, logEnvSchema, plugin.env);
  const config = coreConfigFromEnv(core);
  const logger = createLogger({
    level: level ?? (log.KITBRIDGE_LOG_LEVEL as LoggerOptions['level']),
    secrets: [...coreSecrets(config), ...plugin.secrets(platform), ...storeSecrets(store.KITBRIDGE_STORE)],
  });
  let storeHandle: Store;
  try {
    storeHandle = await openStore(store.KITBRIDGE_STORE, { exclusive });
  } catch (err) {
    throw new Error(`KITBRIDGE_STORE: ${(err as Error).message}`);
  }
  const connector = plugin.create(platform, {
    publicUrl: config.publicUrl,
    logger: logger.child({ part: plugin.name }),
  });
  return { config, logger, store: storeHandle, connector, platform: plugin.name };
}

export async function run(
  platformName: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Bridge> {
  // Two connectors on one store would deliver each other's items (and fight over the platform).
  const { config, logger, store, connector, platform } = await prepare(platformName, env, undefined, {
    exclusive: true,
  });
  const bridge = await startBridge({ config, connector, store, logger }).catch((err: unknown) => {
    throw listenError(err, config);
  });
  logger.info({ platform, url: config.publicUrl }, 'kitbridge running');
  return bridge;
}

/** A server that cannot listen names the variables that chose the address. */
function listenError(err: unknown, { http: { host, port } }: CoreConfig): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE')
    return new ConfigError(
      `KITBRIDGE_PORT: port ${port} on ${host} is already in use (another kitbridge, or another program); stop that one or set KITBRIDGE_PORT to a free port`,
    );
  if (code === 'EACCES')
    return new ConfigError(
      `KITBRIDGE_PORT: not allowed to listen on port ${port} (ports below 1024 need privileges); use a port such as 8080 behind the proxy`,
    );
  if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND')
    return new ConfigError(
      `KITBRIDGE_HOST: ${host} is not an address of this machine (0.0.0.0 listens on all)`,
    );
  return err;
}

/**
 * Stops on SIGTERM/SIGINT ({@link Bridge.stop}): not ready at once, callbacks and webhooks still
 * served for KITBRIDGE_DRAIN, then intake stops, in-flight work drained (bounded), exit 0. Give it
 * the bridge while it is still starting: a signal that comes during start-up (a process manager
 * stopping it at once) must not end the process undrained; it stops as soon as start-up is done.
 * Rejects with start-up's error, when start-up fails.
 */
export function stopOnSignals(bridge: Bridge | Promise<Bridge>): Promise<number> {
  const starting = Promise.resolve(bridge);
  return new Promise((resolve, reject) => {
    const off = () => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
    };
    const onSignal = (sig: NodeJS.Signals) => {
      off();
      process.stderr.write(`kitbridge: ${sig}, draining\n`);
      starting
        .then((b) => b.stop())
        .then(
          () => resolve(0),
          () => resolve(1),
        );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    starting.catch((err: unknown) => {
      off();
      reject(err);
    });
  });
}
