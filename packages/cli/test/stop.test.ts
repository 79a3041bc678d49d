/**
 * Stopping as a process manager stops it: the documented production command
 * starts the node process itself (no npx in between), and SIGTERM to that pid,
 * as systemd and a container runtime send it, drains the connector and exits 0
 * with nothing lost. Real child processes against FakeKit and FakeTelegram.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '@kitbridge/store-sqlite';
import { FakeKit, FakeTelegram, fakeBotToken, freePort } from '@kitbridge/testkit';
import { request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';

const root = new URL('../../../', import.meta.url).pathname;
const tmp = mkdtempSync(join(os.tmpdir(), 'kitbridge-stop-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const CREDS = { account: 'acme', apiToken: 'stop-api-token-SECRET', channelUuid: 'stop-chan-01', salt: 's' };

async function until<T>(
  what: string,
  f: () => T | undefined | Promise<T | undefined>,
  ms = 20_000,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const readyz = (url: string) =>
  request(`${url}/readyz`).then(
    async (r) => ({ status: r.statusCode, body: await r.body.text() }),
    () => undefined,
  );

describe('SIGTERM to the documented production command', () => {
  // systemd's ExecStart names the bin link; the container runs node on the bin file.
  it.each([
    ['node packages/cli/bin/kitbridge.js', process.execPath, [join(root, 'packages/cli/bin/kitbridge.js')]],
    ['node_modules/.bin/kitbridge', join(root, 'node_modules/.bin/kitbridge'), []],
  ])('%s run telegram: drains and exits 0, nothing lost', async (_name, cmd, args) => {
    const kit = new FakeKit(CREDS);
    await kit.start();
    const token = fakeBotToken();
    const tg = new FakeTelegram({ token });
    await tg.start();
    const port = await freePort();
    const store = join(tmp, `${port}.db`);
    const url = `http://127.0.0.1:${port}`;
    let out = '';
    const child: ChildProcess = spawn(cmd, [...args, 'run', 'telegram'], {
      env: {
        PATH: `${join(process.execPath, '..')}:${process.env.PATH ?? ''}`,
        KIT_IM_URL: kit.url,
        KIT_ACCOUNT: CREDS.account,
        KIT_API_TOKEN: CREDS.apiToken,
        KIT_CHANNEL_UUID: CREDS.channelUuid,
        KIT_CHANNEL_SALT: CREDS.salt,
        KITBRIDGE_HOST: '127.0.0.1',
        KITBRIDGE_PORT: String(port),
        KITBRIDGE_PUBLIC_URL: url,
        KITBRIDGE_MEDIA_SECRET: 'stop-media-SECRET-0123456789abcdef0123',
        KITBRIDGE_STORE: `sqlite:${store}`,
        // Long enough to send a callback after /readyz turned 503; the test waits for states, not for time.
        KITBRIDGE_DRAIN: '6s',
        TELEGRAM_BOT_TOKEN: token,
        TELEGRAM_API_ROOT: tg.apiRoot,
      },
    });
    child.stdout?.on('data', (d) => (out += d));
    child.stderr?.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    try {
      await until('ready', async () => (await readyz(url))?.status === 200);
      // The pid a process manager holds is the node process serving, not a wrapper.
      const exe = realpathSync(`/proc/${child.pid}/exe`);
      expect(exe).toBe(realpathSync(process.execPath));
      expect(readFileSync(`/proc/${child.pid}/cmdline`, 'utf8')).toContain('kitbridge');

      child.kill('SIGTERM');
      const stopping = await until('readyz 503', async () => {
        const r = await readyz(url);
        return r?.status === 503 ? r : undefined;
      });
      expect(JSON.parse(stopping.body)).toMatchObject({ stopping: true });
      // Kit's callback during the drain window is still taken and stored.
      const reply = kit.agentMessage('tg:4242', { text: 'sent while stopping' });
      expect((await kit.sendCallback(`${url}/kit/callback`, reply)).status).toBe(200);

      expect(await exited).toBe(0);
      expect(out).toContain('kitbridge: SIGTERM, draining');
      expect(out).toContain('"msg":"stopped"');
      expect(out).not.toContain('SECRET');
      // Nobody serves on the port any more.
      expect(await readyz(url)).toBeUndefined();
      // Nothing lost: the reply reached Telegram, or waits in the store for the next start.
      const sent = tg.callsOf('sendMessage').filter((c) => c.params.text === 'sent while stopping').length;
      const s = SqliteStore.open(store, { checkpointIntervalMs: 0 });
      const pending = (await s.list({ state: 'pending', limit: 10 })).length;
      await s.close();
      expect(sent + pending).toBe(1);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await tg.close();
      await kit.close();
    }
  });
});

describe('SIGTERM during start-up', () => {
  it('is not lost: start-up finishes, then it drains and exits 0', async () => {
    const kit = new FakeKit(CREDS);
    await kit.start();
    // Kit answers the login slowly: the signal lands while the process is still starting.
    kit.latencyMs = 1_500;
    const token = fakeBotToken();
    const tg = new FakeTelegram({ token });
    await tg.start();
    const port = await freePort();
    let out = '';
    const child = spawn(process.execPath, [join(root, 'packages/cli/bin/kitbridge.js'), 'run', 'telegram'], {
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
        KITBRIDGE_MEDIA_SECRET: 'stop-media-SECRET-0123456789abcdef0123',
        KITBRIDGE_STORE: 'memory:',
        KITBRIDGE_DRAIN: '50ms',
        TELEGRAM_BOT_TOKEN: token,
        TELEGRAM_API_ROOT: tg.apiRoot,
      },
    });
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    try {
      await until('listening', () => out.includes('"msg":"listening"') || undefined);
      expect(out).not.toContain('kitbridge running');
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(out).toContain('kitbridge: SIGTERM, draining');
      expect(out).toContain('"msg":"stopped"');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await tg.close();
      await kit.close();
    }
  });
});
