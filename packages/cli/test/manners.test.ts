/**
 * What a new operator meets first, as a real child process: each command's help,
 * a port already taken, Kit out of reach, and `outbox` on a store that is not there.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { FakeTelegram, fakeBotToken } from '@kitbridge/testkit';
import { afterAll, describe, expect, it } from 'vitest';

const bin = new URL('../bin/kitbridge.js', import.meta.url).pathname;
const tmp = mkdtempSync(join(os.tmpdir(), 'kitbridge-manners-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const valid = {
  KIT_ACCOUNT: 'acme',
  KIT_API_TOKEN: 'kit-api-token-SECRET-1',
  KIT_CHANNEL_UUID: 'chan-0001-uuid',
  KIT_CHANNEL_SALT: 'salt-SECRET-2',
  KITBRIDGE_PUBLIC_URL: 'https://bridge.example.com',
  KITBRIDGE_MEDIA_SECRET: 'media-SECRET-3-0123456789abcdef0123456789',
  TELEGRAM_BOT_TOKEN: '123456:AAAAaaaaBBBBbbbbCCCCccccDDDDdddd_-12',
  KITBRIDGE_HOST: '127.0.0.1',
  KITBRIDGE_STORE: 'memory:',
};

function kitbridge(args: string[], env: Record<string, string> = {}, cwd = tmp) {
  const r = spawnSync(process.execPath, [bin, ...args], {
    env: { PATH: process.env.PATH ?? '', ...env },
    cwd,
    encoding: 'utf8',
    timeout: 20_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('kitbridge help', () => {
  it.each([
    ['run', '--help'],
    ['help', 'run'],
    ['run', 'telegram', '--help'],
    ['run', '-h'],
  ])('kitbridge %s %s prints the help of run', (...args) => {
    const r = kitbridge(args);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^Usage: kitbridge run <platform>/);
    expect(r.out).toContain('not through npx');
    expect(r.err).toBe('');
  });

  it.each(['check', 'demo', 'outbox'])(
    'kitbridge %s --help and kitbridge help %s print that command',
    (cmd) => {
      const a = kitbridge([cmd, '--help']);
      expect(a.code).toBe(0);
      expect(a.out).toContain(`kitbridge ${cmd}`);
      expect(a.out).not.toContain('kitbridge run <platform>');
      expect(kitbridge(['help', cmd]).out).toBe(a.out);
    },
  );

  it('kitbridge help lists every command; an unknown topic or option is named', () => {
    const all = kitbridge(['help']);
    expect(all.code).toBe(0);
    for (const c of ['run', 'check', 'demo', 'outbox']) expect(all.out).toContain(`kitbridge ${c}`);
    const topic = kitbridge(['help', 'fax']);
    expect(topic.code).toBe(1);
    expect(topic.err).toContain('unknown command "fax"');
    const opt = kitbridge(['run', 'telegram', '--verbose']);
    expect(opt.code).toBe(1);
    expect(opt.err).toContain("Unknown option '--verbose'");
  });
});

describe('kitbridge run: the port', () => {
  it('a port already in use names KITBRIDGE_PORT and stops with exit 2', async () => {
    const taken: Server = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as { port: number }).port;
    try {
      // Kit is not reached: the server listens before the login.
      const r = await new Promise<{ code: number | null; err: string }>((resolve) => {
        const child = spawn(process.execPath, [bin, 'run', 'telegram'], {
          env: {
            PATH: process.env.PATH ?? '',
            ...valid,
            KITBRIDGE_PORT: String(port),
            KIT_IM_URL: 'http://127.0.0.1:9',
          },
        });
        let err = '';
        child.stderr.on('data', (d) => (err += d));
        child.on('exit', (code) => resolve({ code, err }));
      });
      expect(r.code).toBe(2);
      expect(r.err).toContain(`KITBRIDGE_PORT: port ${port} on 127.0.0.1 is already in use`);
      expect(r.err).not.toContain('SECRET');
    } finally {
      await new Promise((r) => taken.close(r));
    }
  });
});

describe('kitbridge check: Kit out of reach', () => {
  it('names the URL it tried, without the token', async () => {
    const token = fakeBotToken();
    const tg = await new FakeTelegram({ token }).start();
    try {
      const r = await new Promise<{ code: number | null; out: string }>((resolve) => {
        const child = spawn(process.execPath, [bin, 'check', 'telegram'], {
          env: {
            PATH: process.env.PATH ?? '',
            ...valid,
            KIT_IM_URL: 'http://127.0.0.1:9/kit',
            TELEGRAM_BOT_TOKEN: token,
            TELEGRAM_API_ROOT: tg.apiRoot,
          },
        });
        let out = '';
        child.stdout.on('data', (d) => (out += d));
        child.stderr.on('data', (d) => (out += d));
        child.on('exit', (code) => resolve({ code, out }));
      });
      expect(r.code).toBe(1);
      expect(r.out).toMatch(
        /FAIL {2}Kit login: Kit unreachable .*tried http:\/\/127\.0\.0\.1:9\/kit\/api\/v3\/botService\/login \(KIT_IM_URL/,
      );
      expect(r.out).not.toContain('SECRET');
      expect(r.out).toContain('ok    telegram:');
    } finally {
      await tg.close();
    }
  });
});

describe('kitbridge outbox: a store that is not there', () => {
  it('a path that does not exist is named and nothing is created', () => {
    const r = kitbridge(['outbox'], { KITBRIDGE_STORE: 'sqlite:./kitbrige.db' });
    expect(r.code).toBe(1);
    expect(r.err).toContain('KITBRIDGE_STORE: there is no store at ./kitbrige.db (nothing was created)');
    expect(r.out).not.toContain('pending');
    expect(existsSync(join(tmp, 'kitbrige.db'))).toBe(false);
    expect(existsSync(join(tmp, 'kitbrige.db-lock'))).toBe(false);
    // Every outbox verb, and the default store too.
    expect(kitbridge(['outbox', 'retry', '--dead'], {}).err).toContain('there is no store at ./kitbridge.db');
    expect(existsSync(join(tmp, 'kitbridge.db'))).toBe(false);
  });

  it('memory: explains there is nothing to inspect', () => {
    const r = kitbridge(['outbox', 'list'], { KITBRIDGE_STORE: 'memory:' });
    expect(r.code).toBe(1);
    expect(r.err).toContain('KITBRIDGE_STORE is memory:');
    expect(r.err).toContain('nothing to inspect');
  });
});
