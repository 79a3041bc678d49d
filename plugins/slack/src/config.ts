/**
 * The SLACK_* environment variables. Keys are the variable names and each
 * `.describe()` is the help text the CLI prints. A bad value fails with a
 * message naming the variable; a token or secret is never echoed.
 */
import { z } from 'zod';

/** Slack's Web API; GovSlack and tests set SLACK_API_URL. Always with the trailing slash. */
export const DEFAULT_API_URL = 'https://slack.com/api/';

const BOT_TOKEN_SHAPE = /^xoxb-[A-Za-z0-9-]{10,}$/;
const APP_TOKEN_SHAPE = /^xapp-[A-Za-z0-9-]{10,}$/;
/** Slack shows a 32-character hex string; be lenient about the length. */
const SIGNING_SECRET_SHAPE = /^[0-9a-f]{16,128}$/i;
/** Public (C…) and legacy private (G…) channel ids; DMs (D…) are not support channels. */
const CHANNEL_SHAPE = /^[CG][A-Z0-9]{6,}$/;

export const slackEnvSchema = z
  .object({
    SLACK_BOT_TOKEN: z
      .string({
        message:
          'SLACK_BOT_TOKEN is required: the Bot User OAuth Token (OAuth & Permissions > xoxb-…) of the installed app',
      })
      .transform((v) => v.trim())
      .refine((v) => BOT_TOKEN_SHAPE.test(v), {
        message:
          'SLACK_BOT_TOKEN does not look like a bot token (expected xoxb- and letters, digits or -; a user token xoxp- or an app token xapp- does not work here)',
      })
      .describe('Bot User OAuth Token (xoxb-…) from OAuth & Permissions'),
    SLACK_SIGNING_SECRET: z
      .string()
      .transform((v) => v.trim())
      .refine((v) => SIGNING_SECRET_SHAPE.test(v), {
        message:
          'SLACK_SIGNING_SECRET: expected the Signing Secret from Basic Information > App Credentials (hex characters)',
      })
      .optional()
      .describe('Signing Secret: events arrive over HTTP at KITBRIDGE_PUBLIC_URL/slack/events'),
    SLACK_APP_TOKEN: z
      .string()
      .transform((v) => v.trim())
      .refine((v) => APP_TOKEN_SHAPE.test(v), {
        message:
          'SLACK_APP_TOKEN does not look like an app-level token (expected xapp-…, made under Basic Information > App-Level Tokens with connections:write)',
      })
      .optional()
      .describe('App-level token (xapp-…, connections:write): events arrive over Socket Mode, no public URL'),
    SLACK_API_URL: z
      .string()
      .transform((v) => v.trim())
      .refine((v) => /^https?:\/\/[^/\s]+/i.test(v) && URL.canParse(v), {
        message: 'SLACK_API_URL: expected an http(s) URL such as https://slack.com/api/',
      })
      .transform((v) => (v.endsWith('/') ? v : `${v}/`))
      .default(DEFAULT_API_URL)
      .describe('Web API base with the trailing slash (GovSlack: https://slack-gov.com/api/; tests)'),
    SLACK_SUPPORT_CHANNEL_ID: z
      .string()
      .transform((v) => v.trim())
      .refine((v) => CHANNEL_SHAPE.test(v), {
        message:
          'SLACK_SUPPORT_CHANNEL_ID: expected a channel id such as C0123ABCD (channel details > About, at the bottom)',
      })
      .optional()
      .describe(
        'A channel (e.g. Slack Connect, shared with customers): each top-level message starts a conversation, replies go to its thread',
      ),
  })
  .superRefine((env, ctx) => {
    if (env.SLACK_SIGNING_SECRET && env.SLACK_APP_TOKEN) {
      ctx.addIssue({
        code: 'custom',
        path: ['SLACK_APP_TOKEN'],
        message:
          'SLACK_APP_TOKEN and SLACK_SIGNING_SECRET are both set: choose Socket Mode (SLACK_APP_TOKEN) or the HTTP Events API (SLACK_SIGNING_SECRET)',
      });
    } else if (!env.SLACK_SIGNING_SECRET && !env.SLACK_APP_TOKEN) {
      ctx.addIssue({
        code: 'custom',
        path: ['SLACK_APP_TOKEN'],
        message:
          'SLACK_APP_TOKEN is not set, nor SLACK_SIGNING_SECRET: set SLACK_APP_TOKEN (xapp-…) for Socket Mode, or SLACK_SIGNING_SECRET for events over HTTP',
      });
    }
  });

/** The validated variables, as the plugin's `create` receives them. */
export type SlackEnv = z.output<typeof slackEnvSchema>;
