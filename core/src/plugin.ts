/**
 * How a platform package presents itself to the `kitbridge` command: its
 * environment variables (validated before anything starts), the secrets to keep
 * out of logs, and a factory for its connector.
 */
import type { StandardSchemaV1 } from '@standard-schema/spec';
import type { ChannelConnector } from './connector.js';
import type { Logger } from './logger.js';

export interface PluginContext {
  /** KITBRIDGE_PUBLIC_URL without a trailing slash. */
  publicUrl: string;
  logger: Logger;
}

export interface ConnectorPlugin<Config = unknown> {
  /** What follows `kitbridge run`: `telegram`. */
  readonly name: string;
  /**
   * The variables it reads, as a schema of an object whose keys are the variable
   * names (`TELEGRAM_BOT_TOKEN`). Any Standard Schema (https://standardschema.dev)
   * will do: zod 3.24+ or 4, valibot, arktype, so a plugin's zod need not be
   * core's. It must validate synchronously and must not read `process.env`
   * itself: it gets the environment, with empty values left out.
   */
  readonly env: StandardSchemaV1<unknown, Config>;
  /** Values that must never reach a log line (tokens, signing secrets). */
  secrets(config: Config): string[];
  create(config: Config, ctx: PluginContext): ChannelConnector;
}
