/**
 * The TELEGRAM_* environment variables. Keys are the variable names and each
 * `.describe()` is the help text the CLI prints. A bad value fails with a
 * message naming the variable; the token itself is never echoed.
 */
import { z } from 'zod';
import { DEFAULT_MAX_PER_SECOND, MAX_PER_SECOND_LIMIT } from './pacing.js';

/** The cloud Bot API; self-hosted servers (telegram-bot-api) set TELEGRAM_API_ROOT. */
export const DEFAULT_API_ROOT = 'https://api.telegram.org';

const TOKEN_SHAPE = /^\d+:[A-Za-z0-9_-]{30,}$/;
const SECRET_SHAPE = /^[A-Za-z0-9_-]{1,256}$/;

const PER_SECOND_MESSAGE = `TELEGRAM_MAX_PER_SECOND: expected a whole number from 0 to ${MAX_PER_SECOND_LIMIT} (messages per second overall; 0 turns pacing off, for benchmarks only)`;

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'expected true or false' })
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

export const telegramEnvSchema = z
  .object({
    TELEGRAM_BOT_TOKEN: z
      .string({ message: 'TELEGRAM_BOT_TOKEN is required: the token BotFather gave for the bot' })
      .refine((v) => TOKEN_SHAPE.test(v), {
        message:
          'TELEGRAM_BOT_TOKEN does not look like a bot token (expected digits, a colon, then 30+ letters, digits, _ or -)',
      })
      .describe('Bot token from @BotFather'),
    TELEGRAM_API_ROOT: z
      .string()
      .refine((v) => /^https?:\/\/[^/\s]+/i.test(v) && URL.canParse(v), {
        message: 'TELEGRAM_API_ROOT: expected an http(s) URL such as https://api.telegram.org',
      })
      .transform((v) => v.replace(/\/+$/, ''))
      .default(DEFAULT_API_ROOT)
      .describe('Bot API server; set it for a self-hosted telegram-bot-api'),
    TELEGRAM_MODE: z
      .enum(['polling', 'webhook'], { message: 'TELEGRAM_MODE: expected polling or webhook' })
      .default('polling')
      .describe('How updates arrive: long polling (no public URL needed) or webhook'),
    TELEGRAM_WEBHOOK_SECRET: z
      .string()
      .refine((v) => SECRET_SHAPE.test(v), {
        message: 'TELEGRAM_WEBHOOK_SECRET: expected 1-256 characters of A-Z, a-z, 0-9, _ and -',
      })
      .optional()
      .describe('Secret Telegram sends with each webhook call (required in webhook mode)'),
    TELEGRAM_ALLOW_GROUPS: bool
      .default(false)
      .describe('Serve group chats too: each group is one client (default: private chats only)'),
    TELEGRAM_MAX_PER_SECOND: z
      .string()
      .regex(/^\d{1,4}$/, { message: PER_SECOND_MESSAGE })
      .transform(Number)
      .refine((n) => n <= MAX_PER_SECOND_LIMIT, { message: PER_SECOND_MESSAGE })
      .default(DEFAULT_MAX_PER_SECOND)
      .describe(
        'Messages per second overall, up to 1000 with paid broadcasts (0: no pacing, benchmarks only)',
      ),
  })
  .superRefine((env, ctx) => {
    if (env.TELEGRAM_MODE === 'webhook' && !env.TELEGRAM_WEBHOOK_SECRET) {
      ctx.addIssue({
        code: 'custom',
        path: ['TELEGRAM_WEBHOOK_SECRET'],
        message: 'TELEGRAM_WEBHOOK_SECRET is required when TELEGRAM_MODE=webhook (e.g. openssl rand -hex 32)',
      });
    }
  });

/** The validated variables, as the plugin's `create` receives them. */
export type TelegramEnv = z.output<typeof telegramEnvSchema>;
