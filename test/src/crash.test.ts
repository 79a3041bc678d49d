/**
 * Crash safety: `kitbridge run telegram` in a child process with a SQLite store
 * is killed with SIGKILL while both legs have acknowledged work it has not
 * delivered; a new process on the same file delivers all of it, in order, with
 * the same event ids.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { FakeKit, FakeTelegram, fakeBotToken, freePort } from '@kitbridge/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const bin = new URL('../../packages/cli/bin/kitbridge.js', import.meta.url).pathname;
const CREDS = {
  account: 'acme',
  apiToken: 'crash-api-token-0001',
  channelUuid: 'crash-channel-01',
  salt: 'crash-salt',
};

let kit: FakeKit;
let tg: FakeTelegram;
let tmp: string;
let token: string;

beforeAll(async () => {
  kit = new FakeKit(CREDS);
  await kit.start();
  token = fakeBotToken();
  tg = new FakeTelegram({ token });
  await tg.start();
  tmp = mkdtempSync(join(os.tmpdir(), 'kitbridge-crash-'));
});

afterAll(async () => {
  await tg.close();
  await kit.close();
  rmSync(tmp, { recursive: true, force: true });
});

function startConnector(port: number): { child: ChildProcess; output: () => string } {
  let out = '';
  const child = spawn(process.execPath, [bin, 'run', 'telegram'], {
    env: {
      PATH: process.env.PATH ?? '',
      KIT_IM_URL: kit.url,
      KIT_ACCOUNT: CREDS.account,
      KIT_API_TOKEN: CREDS.apiToken,
      KIT_CHANNEL_UUID: CREDS.channelUuid,
      KIT_CHANNEL_SALT: CREDS.salt,
      KITBRIDGE_HOST: '127.0.0.1',
      KITBRIDGE_PORT: String(port),
      KITBRIDGE_PUBLIC_URL: `http://127.0.0.1:${port}`,
      KITBRIDGE_MEDIA_SECRET: 'crash-media-secret-0123456789abcdef',
      KITBRIDGE_STORE: `sqlite:${join(tmp, 'kitbridge.db')}`,
      KITBRIDGE_LOG_LEVEL: 'info',
      KITBRIDGE_DRAIN: '100ms',
      TELEGRAM_BOT_TOKEN: token,
      TELEGRAM_API_ROOT: tg.apiRoot,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  return { child, output: () => out };
}

async function until(check: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function waitReady(port: number): Promise<void> {
  const end = Date.now() + 20_000;
  for (;;) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/healthz`);
      if (r.status === 200) return;
    } catch {}
    if (Date.now() > end) throw new Error('connector did not come up');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('kill -9 and restart', () => {
  it('delivers everything acknowledged before the kill, once each and in order', async () => {
    const port = await freePort();
    const first = startConnector(port);
    try {
      await waitReady(port);
      const ann = { id: 501, is_bot: false, first_name: 'Ann' };
      const bob = { id: 502, is_bot: false, first_name: 'Bob' };

      // Customer leg: Kit is down, so acknowledged messages wait in the outbox.
      kit.outage('on');
      for (let i = 1; i <= 10; i++) {
        tg.textFrom(ann, `ann ${i}`);
        tg.textFrom(bob, `bob ${i}`);
      }
      // Telegram considers an update delivered once a later getUpdates confirms its offset.
      await until(() => tg.pendingUpdates.length === 0, 'updates to be confirmed');

      // Agent leg: Telegram is failing, so acknowledged callbacks are mid-delivery.
      for (let i = 0; i < 200; i++)
        tg.failNext('sendMessage', { error_code: 502, description: 'Bad Gateway' });
      for (let i = 1; i <= 3; i++) {
        const r = await kit.sendCallback(
          `http://127.0.0.1:${port}/kit/callback`,
          kit.agentMessage('tg:501', { text: `agent ${i}` }),
        );
        expect(r.status).toBe(200);
      }
      await until(() => tg.callsOf('sendMessage').length > 0, 'a delivery attempt');
    } finally {
      first.child.kill('SIGKILL');
      await new Promise((r) => first.child.once('exit', r));
    }
    expect(kit.events).toHaveLength(0);

    // Both far sides recover; a new process opens the same store.
    kit.outage('off');
    tg.clearFailures();
    const sentBefore = tg.sent.length;
    const second = startConnector(port);
    try {
      await kit.waitForEvents(20, 20_000);
      await tg.waitFor((c) => c.method === 'sendMessage' && c.params.text === 'agent 3', 20_000);
      await new Promise((r) => setTimeout(r, 300));

      const ids = kit.events.map((e: any) => e.event_id);
      expect(new Set(ids).size).toBe(ids.length);
      const texts = (who: string) =>
        kit.events.map((e: any) => e.event_data.message.text).filter((t: string) => t.startsWith(who));
      expect(texts('ann')).toEqual(Array.from({ length: 10 }, (_, i) => `ann ${i + 1}`));
      expect(texts('bob')).toEqual(Array.from({ length: 10 }, (_, i) => `bob ${i + 1}`));
      const agent = tg.sent
        .slice(sentBefore)
        .filter((c) => c.method === 'sendMessage')
        .map((c) => c.params.text);
      expect(agent).toEqual(['agent 1', 'agent 2', 'agent 3']);
    } finally {
      second.child.kill('SIGTERM');
      const code = await new Promise((r) => second.child.once('exit', r));
      expect(code).toBe(0);
    }
    // Two processes' worth of JSON logs, with retries and failures in them: no secret anywhere.
    const logs = first.output() + second.output();
    expect(logs).toContain('"msg":"kitbridge running"');
    for (const secret of [token, CREDS.apiToken, CREDS.salt, 'crash-media-secret-0123456789abcdef']) {
      expect(logs).not.toContain(secret);
    }
  });
});
