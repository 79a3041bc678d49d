/** `kitbridge check telegram` against FakeKit and FakeTelegram, as a real child process. */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import {
  FakeDiscord,
  FakeKit,
  FakeTelegram,
  fakeBotToken,
  fakeDiscordToken,
  PRIVILEGED_INTENTS,
} from '@kitbridge/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const bin = new URL('../bin/kitbridge.js', import.meta.url).pathname;
const CREDS = {
  account: 'acme',
  apiToken: 'check-api-token-SECRET',
  channelUuid: 'check-channel-01',
  salt: 'salt-SECRET',
};
let kit: FakeKit;
let tg: FakeTelegram;
let discord: FakeDiscord;
let token: string;
const tmp = mkdtempSync(join(os.tmpdir(), 'kitbridge-check-'));

beforeAll(async () => {
  kit = new FakeKit(CREDS);
  await kit.start();
  token = fakeBotToken();
  tg = new FakeTelegram({ token, bot: { username: 'acme_support_bot' } });
  await tg.start();
  discord = new FakeDiscord({ bot: { username: 'acme-support' } });
  await discord.start();
  discord.guild({ id: '333333333333333333', channels: [{ id: '444444444444444444', name: 'support' }] });
});
afterAll(async () => {
  await discord.close();
  await tg.close();
  await kit.close();
  rmSync(tmp, { recursive: true, force: true });
});

function env(over: Record<string, string> = {}) {
  return {
    PATH: process.env.PATH ?? '',
    KIT_IM_URL: kit.url,
    KIT_ACCOUNT: CREDS.account,
    KIT_API_TOKEN: CREDS.apiToken,
    KIT_CHANNEL_UUID: CREDS.channelUuid,
    KIT_CHANNEL_SALT: CREDS.salt,
    KITBRIDGE_PUBLIC_URL: 'https://bridge.example.com',
    KITBRIDGE_MEDIA_SECRET: 'check-media-SECRET-0123456789abcdef0123',
    KITBRIDGE_STORE: `sqlite:${join(tmp, 'check.db')}`,
    TELEGRAM_BOT_TOKEN: token,
    TELEGRAM_API_ROOT: tg.apiRoot,
    ...over,
  };
}

/** Async, so the fakes in this process keep answering while the child runs. */
function kitbridge(args: string[], e: Record<string, string>): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], { env: e });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('exit', (code) => resolve({ code, out }));
  });
}

describe('kitbridge check', () => {
  it('passes with good credentials and starts nothing', async () => {
    const r = await kitbridge(['check', 'telegram'], env());
    expect(r.out).toContain('ok    configuration (telegram), store sqlite:');
    expect(r.out).toContain(`ok    Kit login: account acme, channel check-channel-01 at ${kit.url}`);
    expect(r.out).toContain('ok    telegram: bot @acme_support_bot (polling)');
    expect(r.code).toBe(0);
    expect(tg.callsOf('getUpdates')).toHaveLength(0);
    expect(tg.callsOf('deleteWebhook')).toHaveLength(0);
  });

  it('names what to fix when Kit refuses the login, and never prints a secret', async () => {
    const r = await kitbridge(['check', 'telegram'], env({ KIT_API_TOKEN: 'wrong-token-SECRET' }));
    expect(r.code).toBe(1);
    expect(r.out).toMatch(
      /FAIL {2}Kit login: Kit refused the login .*check KIT_ACCOUNT, KIT_API_TOKEN and KIT_CHANNEL_UUID/,
    );
    expect(r.out).toContain('ok    telegram:');
    expect(r.out).not.toContain('SECRET');
  });

  it('says so when Telegram rejects the bot token', async () => {
    const r = await kitbridge(['check', 'telegram'], env({ TELEGRAM_BOT_TOKEN: fakeBotToken() }));
    expect(r.code).toBe(1);
    expect(r.out).toContain('FAIL  telegram: Telegram rejected TELEGRAM_BOT_TOKEN (revoked or wrong)');
  });

  it('reports webhook mode settings that cannot work', async () => {
    const r = await kitbridge(
      ['check', 'telegram'],
      env({
        TELEGRAM_MODE: 'webhook',
        TELEGRAM_WEBHOOK_SECRET: 'hook_secret',
        TELEGRAM_API_ROOT: 'https://api.telegram.org',
        KITBRIDGE_PUBLIC_URL: 'http://bridge.example.com',
      }),
    );
    expect(r.code).toBe(1);
    expect(r.out).toContain('FAIL  telegram settings: Telegram delivers webhooks over HTTPS only');
    // The platform is not asked with settings that cannot work (and here it would be the real API).
    expect(r.out).toContain('skip  telegram: fix its settings first');
  });
});

describe('kitbridge check discord', () => {
  const discordEnv = (over: Record<string, string> = {}) => {
    const { TELEGRAM_BOT_TOKEN: _t, TELEGRAM_API_ROOT: _r, ...rest } = env();
    return {
      ...rest,
      DISCORD_BOT_TOKEN: discord.token,
      DISCORD_API_URL: discord.apiUrl,
      DISCORD_CDN_URL: discord.cdnUrl,
      ...over,
    };
  };

  it('checks the bot, the gateway quota, the support channel and prints the invite; opens no gateway session', async () => {
    const r = await kitbridge(
      ['check', 'discord'],
      discordEnv({ DISCORD_SUPPORT_CHANNEL_ID: '444444444444444444' }),
    );
    expect(r.out).toContain('ok    configuration (discord), store sqlite:');
    expect(r.out).toMatch(
      /ok {4}discord: bot @acme-support \(\d+\); 1000\/1000 gateway sessions left today; support channel #support \(server 333333333333333333\); invite: https:\/\/discord\.com\/oauth2\/authorize\?client_id=\d+&scope=bot&permissions=360777354240/,
    );
    expect(r.code).toBe(0);
    expect(discord.identifies).toHaveLength(0);
    expect(r.out).not.toContain(discord.token);
  });

  it('says so when Discord rejects the token, or the Message Content intent is off', async () => {
    const bad = await kitbridge(['check', 'discord'], discordEnv({ DISCORD_BOT_TOKEN: fakeDiscordToken() }));
    expect(bad.code).toBe(1);
    expect(bad.out).toContain('FAIL  discord: Discord rejected DISCORD_BOT_TOKEN (revoked or wrong)');
    discord.privilegedIntents = 0;
    try {
      const off = await kitbridge(
        ['check', 'discord'],
        discordEnv({ DISCORD_SUPPORT_CHANNEL_ID: '444444444444444444' }),
      );
      expect(off.code).toBe(1);
      expect(off.out).toMatch(/FAIL {2}discord: .*the Message Content intent is off/);
    } finally {
      discord.privilegedIntents = PRIVILEGED_INTENTS;
    }
  });
});
