/** The SLACK_* variables: validated by zod, every problem naming its variable, no secret echoed. */
import { ConfigError, parseEnv } from '@kitbridge/core';
import { fakeSlackAppToken, fakeSlackBotToken } from '@kitbridge/testkit';
import { describe, expect, it } from 'vitest';
import { DEFAULT_API_URL, slackEnvSchema } from '../src/config.js';
import { SlackConnector } from '../src/connector.js';
import { slackPlugin } from '../src/plugin.js';

const bot = fakeSlackBotToken();
const app = fakeSlackAppToken();
const secret = '8f742231b10e8888abcd99yyyzzz85a5'.replace(/[yz]/g, 'a');

function problems(env: Record<string, string>): string {
  try {
    parseEnv(slackEnvSchema, env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  return '';
}

describe('SLACK_* configuration', () => {
  it('Socket Mode: the bot and app tokens; defaults for the API URL', () => {
    const env = parseEnv(slackEnvSchema, { SLACK_BOT_TOKEN: bot, SLACK_APP_TOKEN: app });
    expect(env).toEqual({ SLACK_BOT_TOKEN: bot, SLACK_APP_TOKEN: app, SLACK_API_URL: DEFAULT_API_URL });
    expect(slackPlugin.secrets(env)).toEqual([bot, app]);
  });

  it('HTTP events: the signing secret; the API URL gets its trailing slash; the support channel', () => {
    const env = parseEnv(slackEnvSchema, {
      SLACK_BOT_TOKEN: bot,
      SLACK_SIGNING_SECRET: secret,
      SLACK_API_URL: 'https://slack-gov.com/api',
      SLACK_SUPPORT_CHANNEL_ID: 'C0SUPPORT1',
    });
    expect(env.SLACK_API_URL).toBe('https://slack-gov.com/api/');
    expect(env.SLACK_SUPPORT_CHANNEL_ID).toBe('C0SUPPORT1');
    expect(slackPlugin.secrets(env)).toEqual([bot, secret]);
  });

  it('each bad value is named, and no token is echoed', () => {
    const msg = problems({
      SLACK_BOT_TOKEN: 'xoxp-123-user-token-not-a-bot',
      SLACK_APP_TOKEN: 'not-an-app-token-secret',
      SLACK_API_URL: 'slack.com/api',
      SLACK_SUPPORT_CHANNEL_ID: 'D0123ABCD',
    });
    expect(msg).toMatch(/SLACK_BOT_TOKEN: does not look like a bot token/);
    expect(msg).toMatch(/SLACK_APP_TOKEN: does not look like an app-level token/);
    expect(msg).toMatch(/SLACK_API_URL: expected an http\(s\) URL/);
    expect(msg).toMatch(/SLACK_SUPPORT_CHANNEL_ID: expected a channel id/);
    expect(msg).not.toContain('xoxp-123');
    expect(msg).not.toContain('not-an-app-token-secret');
    expect(problems({ SLACK_APP_TOKEN: app })).toMatch(/SLACK_BOT_TOKEN: is not set/);
    expect(problems({ SLACK_BOT_TOKEN: bot, SLACK_SIGNING_SECRET: 'zz top' })).toMatch(
      /SLACK_SIGNING_SECRET: expected/,
    );
  });

  it('exactly one way in: Socket Mode or the HTTP Events API', () => {
    expect(problems({ SLACK_BOT_TOKEN: bot })).toMatch(
      /SLACK_APP_TOKEN: is not set, nor SLACK_SIGNING_SECRET/,
    );
    expect(problems({ SLACK_BOT_TOKEN: bot, SLACK_APP_TOKEN: app, SLACK_SIGNING_SECRET: secret })).toMatch(
      /SLACK_APP_TOKEN: and SLACK_SIGNING_SECRET are both set: choose Socket Mode/,
    );
  });

  it('validateConfig: Slack posts events to HTTPS request URLs only; Socket Mode needs no public URL', () => {
    const http = new SlackConnector({
      botToken: bot,
      signingSecret: secret,
      publicUrl: 'http://bridge.example.com',
    });
    expect(http.validateConfig()).toEqual([
      expect.stringMatching(/KITBRIDGE_PUBLIC_URL must start with https:\/\//),
    ]);
    expect(
      new SlackConnector({
        botToken: bot,
        signingSecret: secret,
        publicUrl: 'https://bridge.example.com',
      }).validateConfig(),
    ).toEqual([]);
    expect(
      new SlackConnector({
        botToken: bot,
        appToken: app,
        publicUrl: 'http://10.0.0.5:8080',
      }).validateConfig(),
    ).toEqual([]);
    // A test or GovSlack API URL: no opinion about the scheme.
    expect(
      new SlackConnector({
        botToken: bot,
        signingSecret: secret,
        apiUrl: 'http://127.0.0.1:9/api/',
        publicUrl: 'http://127.0.0.1:8080',
      }).validateConfig(),
    ).toEqual([]);
  });
});
