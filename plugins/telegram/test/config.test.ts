import { parseEnv, silentLogger } from '@kitbridge/core';
import { describe, expect, it } from 'vitest';
import { telegramPlugin } from '../src/plugin.js';

const TOKEN = '123456789:AAEabcdefghijklmnopqrstuvwxyz_-0123';

describe('telegramPlugin env', () => {
  it('applies defaults', () => {
    const env = parseEnv(telegramPlugin.env, { TELEGRAM_BOT_TOKEN: TOKEN });
    expect(env).toEqual({
      TELEGRAM_BOT_TOKEN: TOKEN,
      TELEGRAM_API_ROOT: 'https://api.telegram.org',
      TELEGRAM_MODE: 'polling',
      TELEGRAM_ALLOW_GROUPS: false,
      TELEGRAM_MAX_PER_SECOND: 30,
    });
  });

  it('reads every variable and trims the API root', () => {
    const env = parseEnv(telegramPlugin.env, {
      TELEGRAM_BOT_TOKEN: TOKEN,
      TELEGRAM_API_ROOT: 'http://127.0.0.1:8081/',
      TELEGRAM_MODE: 'webhook',
      TELEGRAM_WEBHOOK_SECRET: 's3cr3t_-X',
      TELEGRAM_ALLOW_GROUPS: 'true',
      TELEGRAM_MAX_PER_SECOND: '1000',
    });
    expect(env).toMatchObject({
      TELEGRAM_API_ROOT: 'http://127.0.0.1:8081',
      TELEGRAM_ALLOW_GROUPS: true,
      TELEGRAM_MAX_PER_SECOND: 1000,
    });
    expect(telegramPlugin.secrets(env)).toEqual([TOKEN, 's3cr3t_-X']);
  });

  it('rejects a malformed token by name without echoing it', () => {
    const bad = 'not-a-token-but-secret-looking-1234567890';
    const err = (() => {
      try {
        parseEnv(telegramPlugin.env, { TELEGRAM_BOT_TOKEN: bad });
      } catch (e) {
        return e as Error;
      }
    })();
    expect(err?.message).toContain('TELEGRAM_BOT_TOKEN');
    expect(err?.message).not.toContain(bad);
  });

  it('requires the token', () => {
    expect(() => parseEnv(telegramPlugin.env, {})).toThrow(/TELEGRAM_BOT_TOKEN/);
  });

  it('requires a well-formed webhook secret in webhook mode', () => {
    expect(() =>
      parseEnv(telegramPlugin.env, { TELEGRAM_BOT_TOKEN: TOKEN, TELEGRAM_MODE: 'webhook' }),
    ).toThrow(/^ {2}TELEGRAM_WEBHOOK_SECRET: is required when TELEGRAM_MODE=webhook/m);
    expect(() =>
      parseEnv(telegramPlugin.env, {
        TELEGRAM_BOT_TOKEN: TOKEN,
        TELEGRAM_MODE: 'webhook',
        TELEGRAM_WEBHOOK_SECRET: 'a b',
      }),
    ).toThrow(/1-256 characters/);
    expect(() => parseEnv(telegramPlugin.env, { TELEGRAM_BOT_TOKEN: TOKEN, TELEGRAM_MODE: 'hook' })).toThrow(
      /TELEGRAM_MODE/,
    );
  });

  it('takes TELEGRAM_MAX_PER_SECOND from 0 (no pacing) to 1000, and names it when it is wrong', () => {
    const perSecond = (v: string) =>
      parseEnv(telegramPlugin.env, { TELEGRAM_BOT_TOKEN: TOKEN, TELEGRAM_MAX_PER_SECOND: v })
        .TELEGRAM_MAX_PER_SECOND;
    expect(perSecond('0')).toBe(0);
    expect(perSecond('1')).toBe(1);
    expect(perSecond('1000')).toBe(1000);
    for (const bad of ['1001', '-1', '1.5', '30/s', 'fast', '1e3', ' 30', '0x10']) {
      expect(() => perSecond(bad), bad).toThrow(
        /^ {2}TELEGRAM_MAX_PER_SECOND: expected a whole number from 0 to 1000/m,
      );
    }
  });

  it('describes every variable', () => {
    const shape = (telegramPlugin.env as unknown as { shape: Record<string, { description?: string }> })
      .shape;
    for (const [name, schema] of Object.entries(shape)) expect(schema.description, name).toBeTruthy();
  });

  it('creates a connector', () => {
    const env = parseEnv(telegramPlugin.env, { TELEGRAM_BOT_TOKEN: TOKEN });
    const c = telegramPlugin.create(env, { publicUrl: 'https://bridge.example', logger: silentLogger });
    expect(c.name).toBe('telegram');
    expect(c.mediaLimits.photo.maxUploadBytes).toBe(10 * 1024 * 1024);
  });

  it('limits downloads to 20 MB on the cloud Bot API only', () => {
    const create = (extra: Record<string, string>) =>
      telegramPlugin.create(parseEnv(telegramPlugin.env, { TELEGRAM_BOT_TOKEN: TOKEN, ...extra }), {
        publicUrl: 'https://bridge.example',
        logger: silentLogger,
      });
    expect(create({}).mediaLimits.document.maxDownloadBytes).toBe(20 * 1024 * 1024);
    const local = create({ TELEGRAM_API_ROOT: 'http://127.0.0.1:8081' }).mediaLimits;
    expect(local.document.maxDownloadBytes).toBeUndefined();
    expect(local.document.maxUploadBytes).toBe(50 * 1024 * 1024);
  });
});
