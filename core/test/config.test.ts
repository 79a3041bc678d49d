import { describe, expect, it } from 'vitest';
import { ConfigError, coreConfigFromEnv, coreEnvSchema, coreSecrets, parseEnv } from '../src/config.js';

const valid = {
  KIT_ACCOUNT: 'acme',
  KIT_API_TOKEN: 'tok-secret-value',
  KIT_CHANNEL_UUID: '0b5e6c1a-1111-2222-3333-444455556666',
  KIT_CHANNEL_SALT: 'salty-secret',
  KITBRIDGE_PUBLIC_URL: 'https://bridge.example.com/',
  KITBRIDGE_MEDIA_SECRET: 'x'.repeat(40),
};

function problems(env: Record<string, string | undefined>): string {
  try {
    parseEnv(coreEnvSchema, env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('core configuration', () => {
  it('applies the documented defaults', () => {
    const c = coreConfigFromEnv(parseEnv(coreEnvSchema, valid));
    expect(c.kit.baseUrl).toBe('https://kit-im-eu.voximplant.com');
    expect(c.http).toEqual({ host: '0.0.0.0', port: 8080 });
    expect(c.publicUrl).toBe('https://bridge.example.com');
    expect(c.media.ttlMs).toBe(14 * 24 * 3600 * 1000);
    expect(c.edits).toBe('resend');
    expect(c.showAgentName).toBe(false);
  });

  it('KIT_IM_URL overrides the region; durations and sizes parse', () => {
    const c = coreConfigFromEnv(
      parseEnv(coreEnvSchema, {
        ...valid,
        KIT_REGION: 'us',
        KIT_IM_URL: 'http://127.0.0.1:9999/',
        KITBRIDGE_MEDIA_TTL: '36h',
        KITBRIDGE_MEDIA_MAX_BYTES: '20MB',
        KITBRIDGE_SHOW_AGENT_NAME: 'true',
      }),
    );
    expect(c.kit.baseUrl).toBe('http://127.0.0.1:9999');
    expect(c.media.ttlMs).toBe(36 * 3600 * 1000);
    expect(c.media.maxBytes).toBe(20 * 1024 * 1024);
    expect(c.showAgentName).toBe(true);
  });

  it('KITBRIDGE_DELIVERY_TIMEOUT: a duration, 10 minutes by default, at least a second', () => {
    expect(coreConfigFromEnv(parseEnv(coreEnvSchema, valid)).outbox?.deliveryTimeoutMs).toBe(600_000);
    const c = coreConfigFromEnv(parseEnv(coreEnvSchema, { ...valid, KITBRIDGE_DELIVERY_TIMEOUT: '90s' }));
    expect(c.outbox?.deliveryTimeoutMs).toBe(90_000);
    expect(problems({ ...valid, KITBRIDGE_DELIVERY_TIMEOUT: '500ms' })).toMatch(
      /^ {2}KITBRIDGE_DELIVERY_TIMEOUT: expected at least 1s$/m,
    );
    expect(problems({ ...valid, KITBRIDGE_DELIVERY_TIMEOUT: 'soon' })).toMatch(
      /KITBRIDGE_DELIVERY_TIMEOUT: expected a duration/,
    );
  });

  it('names every missing variable at once', () => {
    const msg = problems({ KITBRIDGE_PUBLIC_URL: 'https://x.example' });
    for (const v of [
      'KIT_ACCOUNT',
      'KIT_API_TOKEN',
      'KIT_CHANNEL_UUID',
      'KIT_CHANNEL_SALT',
      'KITBRIDGE_MEDIA_SECRET',
    ]) {
      expect(msg).toMatch(new RegExp(`^  ${v}: is not set`, 'm'));
    }
  });

  it.each([
    ['KIT_REGION', 'mars', /KIT_REGION: .*eu/],
    ['KITBRIDGE_PORT', 'eighty', /KITBRIDGE_PORT: expected a port number/],
    ['KITBRIDGE_PORT', '70000', /KITBRIDGE_PORT: /],
    ['KITBRIDGE_PUBLIC_URL', 'bridge.example.com', /KITBRIDGE_PUBLIC_URL: expected an http\(s\) URL/],
    ['KITBRIDGE_MEDIA_SECRET', 'short', /KITBRIDGE_MEDIA_SECRET: must be at least 32 characters/],
    ['KITBRIDGE_MEDIA_TTL', 'a week', /KITBRIDGE_MEDIA_TTL: expected a duration/],
    ['KITBRIDGE_SHOW_AGENT_NAME', 'maybe', /KITBRIDGE_SHOW_AGENT_NAME: expected true or false/],
    ['KIT_CHANNEL_UUID', 'has spaces in it', /KIT_CHANNEL_UUID: expected the Channel UUID/],
  ])('%s=%s is refused with a message naming it', (name, value, pattern) => {
    expect(problems({ ...valid, [name]: value })).toMatch(pattern);
  });

  it('KITBRIDGE_DRAIN: 5 s by default, a duration, at most 5 minutes', () => {
    const drain = (v?: string) =>
      coreConfigFromEnv(parseEnv(coreEnvSchema, { ...valid, KITBRIDGE_DRAIN: v })).drainMs;
    expect(drain()).toBe(5_000);
    expect(drain('0')).toBe(0);
    expect(drain('15s')).toBe(15_000);
    expect(problems({ ...valid, KITBRIDGE_DRAIN: '10m' })).toMatch(/KITBRIDGE_DRAIN: expected at most 5m/);
    expect(problems({ ...valid, KITBRIDGE_DRAIN: 'soon' })).toMatch(/KITBRIDGE_DRAIN: expected a duration/);
  });

  it('KITBRIDGE_ADMIN_TOKEN: off when unset or empty, at least 32 characters, a secret of the log scrubber', () => {
    const token = (v?: string) =>
      coreConfigFromEnv(parseEnv(coreEnvSchema, { ...valid, KITBRIDGE_ADMIN_TOKEN: v })).adminToken;
    expect(token()).toBeUndefined();
    expect(token('')).toBeUndefined();
    const good = 'a'.repeat(32);
    expect(token(good)).toBe(good);
    const short = problems({ ...valid, KITBRIDGE_ADMIN_TOKEN: 'short-admin-token' });
    expect(short).toMatch(/^ {2}KITBRIDGE_ADMIN_TOKEN: must be at least 32 characters$/m);
    expect(short).not.toContain('short-admin-token');
    expect(problems({ ...valid, KITBRIDGE_ADMIN_TOKEN: ` ${good}` })).toMatch(
      /KITBRIDGE_ADMIN_TOKEN: must not start or end with whitespace/,
    );
    const c = coreConfigFromEnv(parseEnv(coreEnvSchema, { ...valid, KITBRIDGE_ADMIN_TOKEN: good }));
    expect(coreSecrets(c)).toContain(good);
  });

  it('KITBRIDGE_METRICS_TOKEN: optional, at least 16 printable characters, a secret', () => {
    const config = (v?: string) =>
      coreConfigFromEnv(parseEnv(coreEnvSchema, { ...valid, KITBRIDGE_METRICS_TOKEN: v }));
    expect(config().metricsToken).toBeUndefined();
    const c = config('metrics-token-0123456789');
    expect(c.metricsToken).toBe('metrics-token-0123456789');
    expect(coreSecrets(c)).toContain('metrics-token-0123456789');
    expect(coreSecrets(config())).toHaveLength(3);
    const short = problems({ ...valid, KITBRIDGE_METRICS_TOKEN: 'short-one' });
    expect(short).toMatch(/KITBRIDGE_METRICS_TOKEN: must be at least 16 characters/);
    expect(short).not.toContain('short-one');
    expect(problems({ ...valid, KITBRIDGE_METRICS_TOKEN: 'has a space in the middle' })).toMatch(
      /KITBRIDGE_METRICS_TOKEN: must be printable ASCII without spaces/,
    );
  });

  it('never echoes a secret value in its message', () => {
    const msg = problems({ ...valid, KITBRIDGE_MEDIA_SECRET: 'tiny-secret-9' });
    expect(msg).not.toContain('tiny-secret-9');
  });
});

describe('parseEnv with any Standard Schema (a plugin need not share core zod)', () => {
  // Hand-written, as valibot, arktype or another zod would present themselves.
  const schema = {
    '~standard': {
      version: 1 as const,
      vendor: 'hand-written',
      validate: (v: unknown) => {
        const env = v as Record<string, string>;
        return env.MY_TOKEN
          ? { value: { token: env.MY_TOKEN } }
          : { issues: [{ message: 'the bot token', path: ['MY_TOKEN'] }] };
      },
    },
  };

  it('returns the output, and names an unset variable', () => {
    expect(parseEnv(schema, { MY_TOKEN: 't' })).toEqual({ token: 't' });
    expect(() => parseEnv(schema, { MY_TOKEN: '' })).toThrow(/^ {2}MY_TOKEN: is not set \(the bot token\)$/m);
  });

  it('refuses an asynchronous schema', () => {
    const slow = { '~standard': { ...schema['~standard'], validate: async () => ({ value: {} }) } };
    expect(() => parseEnv(slow, {})).toThrow('must validate synchronously');
  });
});
