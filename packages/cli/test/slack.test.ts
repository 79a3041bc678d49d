/**
 * The `kitbridge` binary on Slack, as a real child process against FakeKit and
 * FakeSlack: `check slack` (every check on one line, what fails named),
 * `run slack` configuration errors by variable, and `demo slack`.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { FakeKit, FakeSlack } from '@kitbridge/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const bin = new URL('../bin/kitbridge.js', import.meta.url).pathname;
const CREDS = {
  account: 'acme',
  apiToken: 'slack-check-api-token-SECRET',
  channelUuid: 'slack-check-channel-01',
  salt: 'salt-SECRET',
};
let kit: FakeKit;
let slack: FakeSlack;
const tmp = mkdtempSync(join(os.tmpdir(), 'kitbridge-slack-cli-'));

beforeAll(async () => {
  kit = new FakeKit(CREDS);
  await kit.start();
  slack = await new FakeSlack({ botName: 'acme_support' }).start();
});
afterAll(async () => {
  await slack.close();
  await kit.close();
  rmSync(tmp, { recursive: true, force: true });
});

function env(over: Record<string, string> = {}): Record<string, string> {
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
    SLACK_BOT_TOKEN: slack.botToken,
    SLACK_APP_TOKEN: slack.appToken,
    SLACK_API_URL: slack.apiUrl,
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

describe('kitbridge check slack', () => {
  it('passes with good tokens (Socket Mode) and starts nothing', async () => {
    const r = await kitbridge(['check', 'slack'], env());
    expect(r.out).toContain('ok    configuration (slack), store sqlite:');
    expect(r.out).toContain('ok    slack settings: consistent');
    expect(r.out).toMatch(
      /ok {4}slack: bot @acme_support in Fake Workspace \(T[A-Z0-9]+\), Socket Mode, DMs to the app/,
    );
    expect(r.code).toBe(0);
    expect(slack.socketConnections).toHaveLength(0);
    for (const s of [slack.botToken, slack.appToken, 'SECRET']) expect(r.out).not.toContain(s);
  });

  it('names the token Slack refuses, and the scope that is missing', async () => {
    slack.failNext('auth.test', { error: 'invalid_auth' });
    const bad = await kitbridge(['check', 'slack'], env());
    expect(bad.code).toBe(1);
    expect(bad.out).toContain('FAIL  slack: Slack rejected SLACK_BOT_TOKEN (invalid_auth)');
    slack.scopes.delete('im:history');
    try {
      const scope = await kitbridge(['check', 'slack'], env());
      expect(scope.code).toBe(1);
      expect(scope.out).toContain('FAIL  slack: the Slack bot token lacks the im:history scope');
    } finally {
      slack.scopes.add('im:history');
    }
  });

  it('HTTP events: an http:// public URL is refused before Slack is asked', async () => {
    const { SLACK_APP_TOKEN: _a, ...http } = env({
      SLACK_SIGNING_SECRET: slack.signingSecret,
      SLACK_API_URL: 'https://slack.com/api/',
      KITBRIDGE_PUBLIC_URL: 'http://bridge.example.com',
    });
    const r = await kitbridge(['check', 'slack'], http);
    expect(r.code).toBe(1);
    expect(r.out).toContain('FAIL  slack settings: Slack sends events to HTTPS request URLs only');
    expect(r.out).toContain('skip  slack: fix its settings first');
  });
});

describe('kitbridge run slack: configuration', () => {
  it('names the missing and the bad Slack variables, without echoing them', async () => {
    const { SLACK_BOT_TOKEN: _b, SLACK_APP_TOKEN: _a, ...core } = env();
    const missing = await kitbridge(['run', 'slack'], core);
    expect(missing.code).toBe(2);
    expect(missing.out).toContain('SLACK_BOT_TOKEN: is not set');
    const noMode = await kitbridge(['run', 'slack'], { ...core, SLACK_BOT_TOKEN: slack.botToken });
    expect(noMode.code).toBe(2);
    expect(noMode.out).toContain('SLACK_APP_TOKEN: is not set, nor SLACK_SIGNING_SECRET');
    expect(noMode.out).not.toContain(slack.botToken);
    const bad = await kitbridge(['run', 'slack'], {
      ...core,
      SLACK_BOT_TOKEN: 'xoxp-hunter2-user-token',
      SLACK_SIGNING_SECRET: 'hunter2 not hex',
      SLACK_SUPPORT_CHANNEL_ID: '#support',
    });
    expect(bad.code).toBe(2);
    expect(bad.out).toMatch(/SLACK_BOT_TOKEN: does not look like a bot token/);
    expect(bad.out).toMatch(/SLACK_SIGNING_SECRET: expected the Signing Secret/);
    expect(bad.out).toMatch(/SLACK_SUPPORT_CHANNEL_ID: expected a channel id/);
    expect(bad.out).not.toContain('hunter2');
  });
});

describe('kitbridge demo slack', () => {
  it('runs both legs offline on Slack and exits 0, without printing a secret', async () => {
    const r = await kitbridge(['demo', 'slack'], { PATH: process.env.PATH ?? '' });
    expect(r.code).toBe(0);
    expect(r.out).toContain('"client_id": "sl:');
    expect(r.out).toContain('"client_display_name": "Ann"');
    expect(r.out).toContain('"client_language": "en-GB"');
    expect(r.out).toContain('POST /slack/events -> 200, 200');
    expect(r.out).toMatch(/-> 200 image\/png, \d+ bytes, same as sent: true/);
    expect(r.out).toContain('"username": "Bob"');
    expect(r.out).toContain('files.getUploadURLExternal -> upload -> files.completeUploadExternal');
    expect(r.out).toContain('POST /slack/events with a bad signature -> 401');
    expect(r.out).toContain('Both legs worked.');
    expect(r.out).not.toMatch(/xox[bp]-|xapp-/);
  }, 60_000);
});
