/**
 * How a platform package presents itself to the `kitbridge` command: its
 * environment variables (validated before anything starts), the secrets to keep
 * out of logs, and a factory for its connector.
 */
import type { z } from 'zod';
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
   * The variables it reads, as a zod object whose keys are the variable names
   * (`TELEGRAM_BOT_TOKEN`); give each a `.describe()` — it is the help text.
   */
  readonly env: z.ZodType<Config>;
  /** Values that must never reach a log line (tokens, signing secrets). */
  secrets(config: Config): string[];
  create(config: Config, ctx: PluginContext): ChannelConnector;
}
