/** .env.example lists every variable kitbridge reads, and its values are valid as they stand. */
import { readFileSync } from 'node:fs';
import { parseEnv as parseDotenv } from 'node:util';
import { ConfigError, coreEnvSchema, parseEnv } from '@kitbridge/core';
import { discordPlugin } from '@kitbridge/discord';
import { slackPlugin } from '@kitbridge/slack';
import { telegramPlugin } from '@kitbridge/telegram';
import { describe, expect, it } from 'vitest';
import { logEnvSchema } from '../src/run.js';
import { storeEnvSchema } from '../src/store-url.js';

const text = readFileSync(new URL('../../../.env.example', import.meta.url), 'utf8');
const example = parseDotenv(text);
const COMPOSE_ONLY = ['KITBRIDGE_PLATFORM', 'POSTGRES_PASSWORD'];
const schemas = { core: coreEnvSchema, store: storeEnvSchema, log: logEnvSchema };
const platforms = { telegram: telegramPlugin.env, discord: discordPlugin.env, slack: slackPlugin.env };
const keysOf = (s: unknown): string[] => {
  const shape =
    (s as { shape?: object; in?: { shape?: object } }).shape ?? (s as { in?: { shape?: object } }).in?.shape;
  if (!shape) throw new Error('not a zod object');
  return Object.keys(shape);
};
const known = [...Object.values(schemas), ...Object.values(platforms)].flatMap(keysOf);

describe('.env.example', () => {
  it('lists every variable, and nothing else', () => {
    expect(known.length).toBeGreaterThan(30);
    expect(known.filter((k) => !(k in example))).toEqual([]);
    expect(Object.keys(example).filter((k) => !known.includes(k) && !COMPOSE_ONLY.includes(k))).toEqual([]);
  });

  it('with the required values filled in, every platform starts from it', () => {
    const filled = {
      ...example,
      KIT_ACCOUNT: 'acme',
      KIT_API_TOKEN: 'token',
      KIT_CHANNEL_UUID: 'chan-0001-uuid',
      KIT_CHANNEL_SALT: 'salt',
      KITBRIDGE_PUBLIC_URL: 'https://bridge.example.com',
      KITBRIDGE_MEDIA_SECRET: '0123456789abcdef0123456789abcdef',
    };
    for (const s of Object.values(schemas)) expect(() => parseEnv(s, filled)).not.toThrow();
    expect(() =>
      parseEnv(telegramPlugin.env, {
        ...filled,
        TELEGRAM_BOT_TOKEN: '123456:AAAAaaaaBBBBbbbbCCCCccccDDDDdddd_-12',
      }),
    ).not.toThrow();
    expect(() =>
      parseEnv(discordPlugin.env, {
        ...filled,
        DISCORD_BOT_TOKEN: 'MTIzNDU2Nzg5MDEyMzQ1Njc4.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456789ab',
      }),
    ).not.toThrow();
    expect(() =>
      parseEnv(slackPlugin.env, {
        ...filled,
        SLACK_BOT_TOKEN: 'xoxb-1234-5678-abcdefABCDEF',
        SLACK_SIGNING_SECRET: '0123456789abcdef0123456789abcdef',
      }),
    ).not.toThrow();
    // As it stands, the required ones are named.
    expect(() => parseEnv(coreEnvSchema, example)).toThrow(ConfigError);
  });
});
