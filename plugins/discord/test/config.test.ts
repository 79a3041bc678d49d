import { parseEnv, silentLogger } from '@kitbridge/core';
import { fakeDiscordToken } from '@kitbridge/testkit';
import { describe, expect, it } from 'vitest';
import { botIdOfToken, discordEnvSchema } from '../src/config.js';
import { DiscordConnector } from '../src/connector.js';
import { Intents, intentsFor, invitePermissions, inviteUrl } from '../src/limits.js';
import { discordPlugin } from '../src/plugin.js';

const TOKEN = fakeDiscordToken('111111111111111111');

const problem = (env: Record<string, string>): string => {
  try {
    parseEnv(discordPlugin.env, env);
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected a configuration error');
};

describe('discordPlugin env', () => {
  it('applies defaults', () => {
    expect(parseEnv(discordPlugin.env, { DISCORD_BOT_TOKEN: TOKEN })).toEqual({
      DISCORD_BOT_TOKEN: TOKEN,
      DISCORD_API_URL: 'https://discord.com/api',
      DISCORD_CDN_URL: 'https://cdn.discordapp.com',
    });
  });

  it('reads every variable, trims URLs and a "Bot " prefix', () => {
    const env = parseEnv(discordPlugin.env, {
      DISCORD_BOT_TOKEN: `Bot ${TOKEN}`,
      DISCORD_API_URL: 'http://127.0.0.1:9000/api/',
      DISCORD_CDN_URL: 'http://127.0.0.1:9000/cdn/',
      DISCORD_SUPPORT_CHANNEL_ID: '444444444444444444',
      DISCORD_MAX_UPLOAD_MB: '25',
    });
    expect(env).toEqual({
      DISCORD_BOT_TOKEN: TOKEN,
      DISCORD_API_URL: 'http://127.0.0.1:9000/api',
      DISCORD_CDN_URL: 'http://127.0.0.1:9000/cdn',
      DISCORD_SUPPORT_CHANNEL_ID: '444444444444444444',
      DISCORD_MAX_UPLOAD_MB: 25,
    });
    expect(discordPlugin.secrets(env)).toEqual([TOKEN]);
    const c = discordPlugin.create(env, { publicUrl: 'https://bridge.example.com', logger: silentLogger });
    expect(c).toBeInstanceOf(DiscordConnector);
    expect(c.name).toBe('discord');
    expect(c.mediaLimits.document.maxUploadBytes).toBe(25 * 1024 * 1024);
    expect(c.ownsClient('dc:111111111111111111')).toBe(true);
    expect(c.ownsClient('dcs:1:2')).toBe(true);
    expect(c.ownsClient('tg:1')).toBe(false);
  });

  it('requires the token, and rejects a malformed one by name without echoing it', () => {
    expect(problem({})).toMatch(/DISCORD_BOT_TOKEN: is not set .*Developer Portal/);
    const bad = 'not-a-token-but-SECRET-looking-1234567890';
    const msg = problem({ DISCORD_BOT_TOKEN: bad });
    expect(msg).toContain('DISCORD_BOT_TOKEN');
    expect(msg).not.toContain(bad);
  });

  it('names each bad variable', () => {
    expect(problem({ DISCORD_BOT_TOKEN: TOKEN, DISCORD_API_URL: 'discord.com' })).toMatch(
      /DISCORD_API_URL: expected an http\(s\) URL/,
    );
    expect(problem({ DISCORD_BOT_TOKEN: TOKEN, DISCORD_API_URL: 'https://discord.com/api/v10' })).toMatch(
      /DISCORD_API_URL: give the REST base without the version/,
    );
    expect(problem({ DISCORD_BOT_TOKEN: TOKEN, DISCORD_CDN_URL: 'ftp://x' })).toMatch(/DISCORD_CDN_URL/);
    expect(problem({ DISCORD_BOT_TOKEN: TOKEN, DISCORD_SUPPORT_CHANNEL_ID: '#support' })).toMatch(
      /DISCORD_SUPPORT_CHANNEL_ID: expected a channel id/,
    );
    for (const v of ['0', '501', '2.5', 'ten'])
      expect(problem({ DISCORD_BOT_TOKEN: TOKEN, DISCORD_MAX_UPLOAD_MB: v })).toMatch(
        /DISCORD_MAX_UPLOAD_MB: expected/,
      );
  });

  it('every variable has help text', () => {
    for (const [k, v] of Object.entries(discordEnvSchema.shape)) expect(v.description, k).toBeTruthy();
  });
});

describe('intents and the invite', () => {
  it('DMs only: DirectMessages; the support channel adds Guilds, GuildMessages and the privileged MessageContent', () => {
    expect(intentsFor(false)).toBe(Intents.DirectMessages);
    expect(intentsFor(true)).toBe(
      Intents.DirectMessages | Intents.Guilds | Intents.GuildMessages | Intents.MessageContent,
    );
  });

  it('the invite asks for view, send, attach, history; threads in support mode', () => {
    expect(invitePermissions(false)).toBe(101376n);
    expect(invitePermissions(true)).toBe(360777354240n);
    expect(inviteUrl('111111111111111111', true)).toBe(
      'https://discord.com/oauth2/authorize?client_id=111111111111111111&scope=bot&permissions=360777354240',
    );
  });

  it("reads the bot's id from its token", () => {
    expect(botIdOfToken(TOKEN)).toBe('111111111111111111');
    expect(botIdOfToken('abc.def.ghi')).toBeUndefined();
  });
});
