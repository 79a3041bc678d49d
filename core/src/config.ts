/**
 * Core configuration: the KIT_* and KITBRIDGE_* environment variables, validated
 * with zod before anything starts. A bad value fails with a message that names
 * the variable and says what is wrong, never echoing a secret.
 */
import type { StandardSchemaV1 } from '@standard-schema/spec';
import { z } from 'zod';
import { DEFAULT_MEDIA_TTL_MS, KIT_REGIONS, type KitRegion, kitBaseUrl } from './kit/decisions.js';

/** Core settings, as the bridge consumes them. */
export interface CoreConfig {
  kit: {
    baseUrl: string;
    region?: KitRegion;
    account: string;
    apiToken: string;
    channelUuid: string;
    salt: string;
  };
  http: { host: string; port: number };
  /** Without a trailing slash. */
  publicUrl: string;
  media: { secret: string; ttlMs: number; maxBytes: number; allowPrivate: boolean };
  /** KITBRIDGE_EDITS: an edited customer message is sent again marked as edited, or ignored. */
  edits: 'resend' | 'ignore';
  /** KITBRIDGE_SHOW_AGENT_NAME: prefix agent messages with the agent's display name. */
  showAgentName: boolean;
  /** KITBRIDGE_CLOSE_MESSAGE: told to the customer when Kit closes the conversation. */
  closeMessage?: string;
  /**
   * KITBRIDGE_NOTIFY_AGENT: tell the agent, in the Kit conversation, when a reply
   * did not reach the customer or went with files as links. Default true.
   */
  notifyAgent?: boolean;
  /** Delivery tuning; defaults in {@link OUTBOX_DEFAULTS}. */
  outbox?: Partial<OutboxSettings>;
  /** KITBRIDGE_KIT_ALLOWED_IPS: when set, callbacks from other addresses get 403. */
  callbackAllowedIps?: string[];
  /** KITBRIDGE_DRAIN: on stop, how long callbacks, webhooks and media are still served after /readyz turned 503 (ms). */
  drainMs?: number;
  /** KITBRIDGE_ADMIN_TOKEN: turns the operator page at /admin on; every request there must carry it (or its session). */
  adminToken?: string;
  /** KITBRIDGE_METRICS_TOKEN: when set, `GET /metrics` wants `Authorization: Bearer <token>`. */
  metricsToken?: string;
}

/** Shortest KITBRIDGE_ADMIN_TOKEN: long enough that guessing it over HTTP is hopeless. */
export const ADMIN_TOKEN_MIN_LENGTH = 32;

/** Default of {@link CoreConfig.drainMs}. */
export const DEFAULT_DRAIN_MS = 5_000;

export interface OutboxSettings {
  /** Clients delivered to at once, per leg. */
  concurrency: number;
  /** After this many failed attempts an item is dead-lettered. */
  maxAttempts: number;
  /** After this long in the outbox an item is dead-lettered. */
  maxAgeMs: number;
  /** Backoff between attempts. */
  backoff: { baseMs: number; maxMs: number };
  /**
   * Deadline of one attempt: then its AbortSignal aborts and the attempt counts
   * as a transient failure, retried with backoff like any other.
   */
  deliveryTimeoutMs: number;
  /**
   * KITBRIDGE_LEASE: how long a replica's hold on a client (and on a singleton
   * job, such as Telegram polling) outlives the replica: a killed replica's
   * work moves to another one after at most this long. Renewed every third of
   * it. Default: the Outbox's for clients (30 s), SingletonJobs' for jobs (15 s).
   */
  leaseMs?: number;
}

export const OUTBOX_DEFAULTS: OutboxSettings = {
  concurrency: 16,
  maxAttempts: 50,
  maxAgeMs: 24 * 60 * 60_000,
  backoff: { baseMs: 1_000, maxMs: 5 * 60_000 },
  // Long enough for a large file upload on a slow link; a hung far side holds a slot no longer.
  deliveryTimeoutMs: 10 * 60_000,
};

// ---------------------------------------------------------------- parsing helpers

const UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
/** "14d", "36h", "90s", "500ms" or a plain number of ms. */
export const duration = z.string().transform((v, ctx) => {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(v);
  if (!m) {
    ctx.addIssue({ code: 'custom', message: 'expected a duration such as 500ms, 90s, 15m, 36h or 14d' });
    return z.NEVER;
  }
  return Math.round(Number(m[1]) * (UNITS[m[2] ?? 'ms'] ?? 1));
});

const SIZE_UNITS: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 };
/** "100MB", "512kb" or a plain number of bytes. */
export const byteSize = z.string().transform((v, ctx) => {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?\s*$/i.exec(v);
  if (!m) {
    ctx.addIssue({ code: 'custom', message: 'expected a size such as 512kb, 100MB or 1GB' });
    return z.NEVER;
  }
  return Math.round(Number(m[1]) * (SIZE_UNITS[(m[2] ?? 'b').toLowerCase()] ?? 1));
});

export const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'expected true or false' })
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const secret = (what: string, min = 1) =>
  z
    .string({ message: `required: ${what}` })
    .min(min, { message: min > 1 ? `must be at least ${min} characters` : `required: ${what}` });

const httpUrl = z
  .string()
  .refine((v) => /^https?:\/\/[^/\s]+/i.test(v) && URL.canParse(v), { message: 'expected an http(s) URL' })
  .transform((v) => v.replace(/\/+$/, ''));

// ---------------------------------------------------------------- the schema

/** Every core variable. Keys are the variable names; `.describe()` is the help text. */
export const coreEnvSchema = z.object({
  KIT_REGION: z.enum(KIT_REGIONS).default('eu').describe('Kit region: eu, us, br, kz, ru or ru2'),
  KIT_IM_URL: httpUrl.optional().describe('Messaging API base URL; overrides KIT_REGION (fake Kit, proxies)'),
  KIT_ACCOUNT: z
    .string({ message: 'required: the Kit account name (domain)' })
    .min(1)
    .describe('Kit account name'),
  KIT_API_TOKEN: secret('the Kit API token (Administration > Security > API tokens)').describe(
    'Kit API token',
  ),
  KIT_CHANNEL_UUID: z
    .string({ message: "required: the Channel UUID from the custom channel's settings" })
    .regex(/^[A-Za-z0-9-]{8,}$/, { message: 'expected the Channel UUID (letters, digits and dashes)' })
    .describe('Custom channel UUID'),
  KIT_CHANNEL_SALT: secret("the channel's Security salt").describe('Custom channel Security salt'),
  KITBRIDGE_HOST: z.string().min(1).default('0.0.0.0').describe('Address the HTTP server binds'),
  KITBRIDGE_PORT: z.coerce
    .number({ message: 'expected a port number' })
    .int()
    .min(0)
    .max(65535)
    .default(8080)
    .describe('HTTP port'),
  KITBRIDGE_PUBLIC_URL: httpUrl.describe('Public base URL of this process, as Kit and platforms reach it'),
  KITBRIDGE_MEDIA_SECRET: secret(
    'a random secret that signs media links (openssl rand -hex 32)',
    32,
  ).describe('HMAC secret for media links'),
  KITBRIDGE_MEDIA_TTL: duration
    .default(DEFAULT_MEDIA_TTL_MS)
    .describe('How long media links handed to Kit stay valid'),
  KITBRIDGE_MEDIA_MAX_BYTES: byteSize
    .default(100 * 1024 ** 2)
    .describe('Largest file the media proxy streams'),
  KITBRIDGE_MEDIA_ALLOW_PRIVATE: bool
    .default(false)
    .describe('Let agent file URLs point at private addresses'),
  KITBRIDGE_EDITS: z.enum(['resend', 'ignore']).default('resend').describe('Edited customer messages'),
  KITBRIDGE_SHOW_AGENT_NAME: bool.default(false).describe("Prefix agent messages with the agent's name"),
  KITBRIDGE_NOTIFY_AGENT: bool
    .default(true)
    .describe('Tell the agent in Kit when a reply could not reach the customer (true/false)'),
  KITBRIDGE_CLOSE_MESSAGE: z
    .string()
    .optional()
    .describe('Sent to the customer when Kit closes the conversation'),
  KITBRIDGE_KIT_ALLOWED_IPS: z
    .string()
    .transform((v) =>
      v
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
    )
    .optional()
    .describe('Comma-separated source addresses allowed to call /kit/callback'),
  KITBRIDGE_OUTBOX_CONCURRENCY: z.coerce
    .number()
    .int()
    .min(1)
    .max(1000)
    .default(16)
    .describe('Clients delivered at once'),
  KITBRIDGE_OUTBOX_MAX_ATTEMPTS: z.coerce
    .number()
    .int()
    .min(1)
    .default(50)
    .describe('Attempts before dead-lettering'),
  KITBRIDGE_OUTBOX_MAX_AGE: duration.default(OUTBOX_DEFAULTS.maxAgeMs).describe('Age before dead-lettering'),
  KITBRIDGE_DELIVERY_TIMEOUT: duration
    .refine((ms) => ms >= 1_000, { message: 'expected at least 1s' })
    .default(OUTBOX_DEFAULTS.deliveryTimeoutMs)
    .describe('Deadline of one delivery attempt; a timed-out attempt is retried'),
  KITBRIDGE_LEASE: duration
    .refine((ms) => ms >= 1_000 && ms <= 5 * 60_000, { message: 'expected between 1s and 5m' })
    .optional()
    .describe(
      'Replicas sharing a store: how long a dead replica keeps its clients and jobs (Telegram polling) before another takes them over',
    ),
  KITBRIDGE_DRAIN: duration
    .refine((ms) => ms <= 5 * 60_000, { message: 'expected at most 5m' })
    .default(DEFAULT_DRAIN_MS)
    .describe('On stop: how long callbacks, webhooks and media are still served after /readyz turned 503'),
  KITBRIDGE_ADMIN_TOKEN: secret('a random token for the operator page', ADMIN_TOKEN_MIN_LENGTH)
    .refine((v) => v.trim() === v, { message: 'must not start or end with whitespace' })
    .optional()
    .describe('Turns the operator page at /admin on; the token it asks for (openssl rand -hex 32)'),
  KITBRIDGE_METRICS_TOKEN: z
    .string()
    .min(16, { message: 'must be at least 16 characters (openssl rand -hex 16)' })
    .regex(/^[\x21-\x7e]+$/, { message: 'must be printable ASCII without spaces (it goes in a header)' })
    .optional()
    .describe('Bearer token GET /metrics requires; unset: /metrics is open'),
});

export type CoreEnv = z.output<typeof coreEnvSchema>;

/** What an operator should look at when Kit refuses the login. */
export const KIT_LOGIN_HINT = 'check KIT_ACCOUNT, KIT_API_TOKEN and KIT_CHANNEL_UUID';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/**
 * Validates `env` against a schema of an object keyed by variable names: a zod
 * object, or any Standard Schema (see `ConnectorPlugin.env`). Empty strings
 * count as unset. Throws ConfigError listing every bad variable by name; must not
 * put a variable's value in the message.
 */
export function parseEnv<S extends StandardSchemaV1>(
  schema: S,
  env: Record<string, string | undefined>,
): StandardSchemaV1.InferOutput<S> {
  const clean: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && v !== '') clean[k] = v;
  const r = schema['~standard'].validate(clean);
  if (r instanceof Promise) throw new TypeError('an environment schema must validate synchronously');
  if (!r.issues) return r.value as StandardSchemaV1.InferOutput<S>;
  const lines = r.issues.map((i) => {
    const key = i.path?.[0];
    const name = String((typeof key === 'object' ? key.key : key) ?? '(config)');
    // Plugins may write "TELEGRAM_X is required: ..."; the line names the variable once.
    const text = i.message.startsWith(name) ? i.message.slice(name.length).replace(/^:?\s*/, '') : i.message;
    const generic = /^(Invalid input: )?expected \w+, received undefined$|^Required$/.test(text);
    // zod says why (`code`): only its "missing" is "not set"; other libraries give no code.
    const code = (i as { code?: unknown }).code;
    const unset =
      key !== undefined && clean[name] === undefined && (code ?? 'invalid_type') === 'invalid_type';
    const msg = unset ? `is not set${generic ? '' : ` (${text})`}` : text;
    return `  ${name}: ${msg.replace(/^Invalid input: /, '')}`;
  });
  throw new ConfigError(`Invalid configuration:\n${lines.join('\n')}`);
}

export function coreConfigFromEnv(env: CoreEnv): CoreConfig {
  return {
    kit: {
      baseUrl: env.KIT_IM_URL ?? kitBaseUrl(env.KIT_REGION),
      region: env.KIT_REGION,
      account: env.KIT_ACCOUNT,
      apiToken: env.KIT_API_TOKEN,
      channelUuid: env.KIT_CHANNEL_UUID,
      salt: env.KIT_CHANNEL_SALT,
    },
    http: { host: env.KITBRIDGE_HOST, port: env.KITBRIDGE_PORT },
    publicUrl: env.KITBRIDGE_PUBLIC_URL,
    media: {
      secret: env.KITBRIDGE_MEDIA_SECRET,
      ttlMs: env.KITBRIDGE_MEDIA_TTL,
      maxBytes: env.KITBRIDGE_MEDIA_MAX_BYTES,
      allowPrivate: env.KITBRIDGE_MEDIA_ALLOW_PRIVATE,
    },
    edits: env.KITBRIDGE_EDITS,
    showAgentName: env.KITBRIDGE_SHOW_AGENT_NAME,
    closeMessage: env.KITBRIDGE_CLOSE_MESSAGE,
    notifyAgent: env.KITBRIDGE_NOTIFY_AGENT,
    callbackAllowedIps: env.KITBRIDGE_KIT_ALLOWED_IPS,
    drainMs: env.KITBRIDGE_DRAIN,
    ...(env.KITBRIDGE_ADMIN_TOKEN ? { adminToken: env.KITBRIDGE_ADMIN_TOKEN } : {}),
    ...(env.KITBRIDGE_METRICS_TOKEN ? { metricsToken: env.KITBRIDGE_METRICS_TOKEN } : {}),
    outbox: {
      concurrency: env.KITBRIDGE_OUTBOX_CONCURRENCY,
      maxAttempts: env.KITBRIDGE_OUTBOX_MAX_ATTEMPTS,
      maxAgeMs: env.KITBRIDGE_OUTBOX_MAX_AGE,
      deliveryTimeoutMs: env.KITBRIDGE_DELIVERY_TIMEOUT,
      ...(env.KITBRIDGE_LEASE !== undefined ? { leaseMs: env.KITBRIDGE_LEASE } : {}),
    },
  };
}

/** Secrets of the core config, for the log scrubber. */
export function coreSecrets(c: CoreConfig): string[] {
  return [
    c.kit.apiToken,
    c.kit.salt,
    c.media.secret,
    ...(c.adminToken ? [c.adminToken] : []),
    ...(c.metricsToken ? [c.metricsToken] : []),
  ];
}
