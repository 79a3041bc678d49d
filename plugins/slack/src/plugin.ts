/** How the `kitbridge` command finds the Slack connector: `kitbridge run slack`. */
import type { ConnectorPlugin } from '@kitbridge/core';
import { type SlackEnv, slackEnvSchema } from './config.js';
import { SlackConnector } from './connector.js';

export const slackPlugin: ConnectorPlugin<SlackEnv> = {
  name: 'slack',
  env: slackEnvSchema,
  secrets: (env) =>
    [env.SLACK_BOT_TOKEN, env.SLACK_SIGNING_SECRET, env.SLACK_APP_TOKEN].filter((s): s is string => !!s),
  create: (env, ctx) =>
    new SlackConnector({
      botToken: env.SLACK_BOT_TOKEN,
      ...(env.SLACK_SIGNING_SECRET ? { signingSecret: env.SLACK_SIGNING_SECRET } : {}),
      ...(env.SLACK_APP_TOKEN ? { appToken: env.SLACK_APP_TOKEN } : {}),
      apiUrl: env.SLACK_API_URL,
      ...(env.SLACK_SUPPORT_CHANNEL_ID ? { supportChannelId: env.SLACK_SUPPORT_CHANNEL_ID } : {}),
      publicUrl: ctx.publicUrl,
      logger: ctx.logger,
    }),
};
