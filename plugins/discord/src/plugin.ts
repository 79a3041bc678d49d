/** How the `kitbridge` command finds the Discord connector: `kitbridge run discord`. */
import type { ConnectorPlugin } from '@kitbridge/core';
import { type DiscordEnv, discordEnvSchema } from './config.js';
import { DiscordConnector } from './connector.js';

const MiB = 1024 * 1024;

export const discordPlugin: ConnectorPlugin<DiscordEnv> = {
  name: 'discord',
  env: discordEnvSchema,
  secrets: (env) => [env.DISCORD_BOT_TOKEN],
  create: (env, ctx) =>
    new DiscordConnector({
      token: env.DISCORD_BOT_TOKEN,
      apiUrl: env.DISCORD_API_URL,
      cdnUrl: env.DISCORD_CDN_URL,
      ...(env.DISCORD_SUPPORT_CHANNEL_ID ? { supportChannelId: env.DISCORD_SUPPORT_CHANNEL_ID } : {}),
      ...(env.DISCORD_MAX_UPLOAD_MB ? { maxUploadBytes: env.DISCORD_MAX_UPLOAD_MB * MiB } : {}),
      logger: ctx.logger,
    }),
};
