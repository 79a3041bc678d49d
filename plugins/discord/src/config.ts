/**
 * The DISCORD_* environment variables. Keys are the variable names and each
 * `.describe()` is the help text the CLI prints. A bad value fails with a
 * message naming the variable; the token itself is never echoed.
 */
import { z } from 'zod';
import { MAX_UPLOAD_LIMIT_MIB } from './limits.js';

/** Discord's REST base, without the version (discord.js appends `/v10`). */
export const DEFAULT_API_URL = 'https://discord.com/api';
/** Where avatars are served; attachment links carry their own host. */
export const DEFAULT_CDN_URL = 'https://cdn.discordapp.com';

/** base64(bot id) . timestamp . hmac, each URL-safe base64. */
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{24,}$/;
const SNOWFLAKE = /^\d{17,20}$/;

const url = (name: string, example: string) =>
  z
    .string()
    .refine((v) => /^https?:\/\/[^/\s]+/i.test(v) && URL.canParse(v), {
      message: `${name}: expected an http(s) URL such as ${example}`,
    })
    .transform((v) => v.replace(/\/+$/, ''));

const UPLOAD_MESSAGE = `DISCORD_MAX_UPLOAD_MB: expected a whole number of MiB from 1 to ${MAX_UPLOAD_LIMIT_MIB} (the largest file the bot may upload, for every target)`;

export const discordEnvSchema = z.object({
  DISCORD_BOT_TOKEN: z
    .string({
      message:
        'DISCORD_BOT_TOKEN is required: the bot token from the Developer Portal (Applications > your app > Bot > Reset Token)',
    })
    .transform((v) => v.trim().replace(/^Bot\s+/i, ''))
    .refine((v) => TOKEN_SHAPE.test(v), {
      message:
        'DISCORD_BOT_TOKEN does not look like a bot token (expected three dot-separated parts of letters, digits, _ and -, as the Developer Portal shows it)',
    })
    .describe('Bot token from the Discord Developer Portal (Bot > Reset Token)'),
  DISCORD_API_URL: url('DISCORD_API_URL', DEFAULT_API_URL)
    .refine((v) => !/\/v\d+$/.test(v), {
      message:
        'DISCORD_API_URL: give the REST base without the version, e.g. https://discord.com/api (discord.js appends /v10)',
    })
    .default(DEFAULT_API_URL)
    .describe(
      'Discord REST base without the version (proxies, tests); the gateway URL comes from its /gateway/bot',
    ),
  DISCORD_CDN_URL: url('DISCORD_CDN_URL', DEFAULT_CDN_URL)
    .default(DEFAULT_CDN_URL)
    .describe('Discord CDN base for avatars (proxies, tests); attachment links carry their own host'),
  DISCORD_SUPPORT_CHANNEL_ID: z
    .string()
    .trim()
    .refine((v) => SNOWFLAKE.test(v), {
      message:
        'DISCORD_SUPPORT_CHANNEL_ID: expected a channel id (17-20 digits; Developer Mode on, right-click the channel > Copy Channel ID)',
    })
    .optional()
    .describe(
      'A server text channel where customers write; each gets a private thread (needs the Message Content intent)',
    ),
  DISCORD_MAX_UPLOAD_MB: z
    .string()
    .trim()
    .regex(/^\d{1,4}$/, { message: UPLOAD_MESSAGE })
    .transform(Number)
    .refine((n) => n >= 1 && n <= MAX_UPLOAD_LIMIT_MIB, { message: UPLOAD_MESSAGE })
    .optional()
    .describe(
      'Largest file the bot uploads, in MiB, for every target (default: 10, more in boosted servers)',
    ),
});

/** The validated variables, as the plugin's `create` receives them. */
export type DiscordEnv = z.output<typeof discordEnvSchema>;

/** The bot's user id, read from the token's first part (undefined when it does not decode to one). */
export function botIdOfToken(token: string): string | undefined {
  const first = token.split('.')[0] ?? '';
  try {
    const id = Buffer.from(first, 'base64url').toString('utf8');
    return SNOWFLAKE.test(id) ? id : undefined;
  } catch {
    return undefined;
  }
}
