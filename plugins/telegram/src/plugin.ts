/** How the `kitbridge` command finds the Telegram connector: `kitbridge run telegram`. */
import type { ConnectorPlugin } from '@kitbridge/core';
import { type TelegramEnv, telegramEnvSchema } from './config.js';
import { TelegramConnector } from './connector.js';
import { pacingFor } from './pacing.js';

export const telegramPlugin: ConnectorPlugin<TelegramEnv> = {
  name: 'telegram',
  env: telegramEnvSchema,
  secrets: (env) => [env.TELEGRAM_BOT_TOKEN, env.TELEGRAM_WEBHOOK_SECRET].filter((s): s is string => !!s),
  create: (env, ctx) =>
    new TelegramConnector({
      token: env.TELEGRAM_BOT_TOKEN,
      apiRoot: env.TELEGRAM_API_ROOT,
      mode: env.TELEGRAM_MODE,
      ...(env.TELEGRAM_WEBHOOK_SECRET ? { webhookSecret: env.TELEGRAM_WEBHOOK_SECRET } : {}),
      allowGroups: env.TELEGRAM_ALLOW_GROUPS,
      pacing: pacingFor(env.TELEGRAM_MAX_PER_SECOND),
      publicUrl: ctx.publicUrl,
      logger: ctx.logger,
    }),
};
