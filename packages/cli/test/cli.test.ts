/** The `kitbridge` binary as an operator meets it: a real child process, real env. */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '@kitbridge/store-sqlite';
import { FakeKit, FakeTelegram, fakeBotToken, freePort } from '@kitbridge/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const bin = new URL('../bin/kitbridge.js', import.meta.url).pathname;
const tmp = mkdtempSync(join(os.tmpdir(), 'kitbridge-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const valid = {
  KIT_ACCOUNT: 'acme',
  KIT_API_TOKEN: 'kit-api-token-SECRET-1',
  KIT_CHANNEL_UUID: 'chan-0001-uuid',
  KIT_CHANNEL_SALT: 'salt-SECRET-2',
  KITBRIDGE_PUBLIC_URL: 'https://bridge.example.com',
  KITBRIDGE_MEDIA_SECRET: 'media-SECRET-3-0123456789abcdef0123456789',
  TELEGRAM_BOT_TOKEN: '123456:AAAAaaaaBBBBbbbbCCCCccccDDDDdddd_-12',
  KITBRIDGE_PORT: '0',
  KITBRIDGE_HOST: '127.0.0.1',
  KIT_IM_URL: 'http://127.0.0.1:9',
};

function kitbridge(args: string[], env: Record<string, string>, as?: { uid: number; gid: number }) {
  const r = spawnSync(process.execPath, [bin, ...args], {
    env: { PATH: process.env.PATH ?? '', ...env },
    encoding: 'utf8',
    timeout: 20_000,
    ...as,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/**
 * File modes do not stop root. Run as root, the read-only tests run the command
 * as `nobody` (65534), when that user can read this checkout; `null`: as we are;
 * undefined: they cannot run here.
 */
const NOBODY = { uid: 65534, gid: 65534 };
const runAs: typeof NOBODY | null | undefined =
  process.getuid?.() !== 0 ? null : kitbridge(['--version'], {}, NOBODY).code === 0 ? NOBODY : undefined;

describe('kitbridge run: configuration', () => {
  it('refuses to start without configuration, naming every missing variable', () => {
    const r = kitbridge(['run', 'telegram'], {});
    expect(r.code).toBe(2);
    for (const v of [
      'KIT_ACCOUNT',
      'KIT_API_TOKEN',
      'KIT_CHANNEL_UUID',
      'KIT_CHANNEL_SALT',
      'KITBRIDGE_PUBLIC_URL',
      'KITBRIDGE_MEDIA_SECRET',
      'TELEGRAM_BOT_TOKEN',
    ]) {
      expect(r.err).toContain(v);
    }
  });

  it('says what is wrong with a bad value, without echoing secrets', () => {
    const r = kitbridge(['run', 'telegram'], {
      ...valid,
      KITBRIDGE_PORT: 'eighty',
      TELEGRAM_BOT_TOKEN: 'not-a-token-SECRET-4',
    });
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/KITBRIDGE_PORT: expected a port number/);
    expect(r.err).toMatch(/TELEGRAM_BOT_TOKEN/);
    expect(r.err).not.toMatch(/SECRET/);
  });

  it('names an unknown platform', () => {
    const r = kitbridge(['run', 'fax'], valid);
    expect(r.code).toBe(1);
    expect(r.err).toContain('unknown platform "fax"; choose one of: telegram');
  });

  it('a store path that cannot be created stops start-up with a clear message', () => {
    const file = join(tmp, 'a-file');
    writeFileSync(file, 'x');
    const r = kitbridge(['run', 'telegram'], {
      ...valid,
      KITBRIDGE_STORE: `sqlite:${file}/sub/kitbridge.db`,
    });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/KITBRIDGE_STORE: .*a-file\/sub\/kitbridge\.db/);
  });

  it.skipIf(runAs === undefined)(
    'a read-only store directory or file stops start-up with a clear message',
    () => {
      const as = runAs ?? undefined;
      chmodSync(tmp, 0o755);
      const dir = join(tmp, 'read-only-dir');
      mkdirSync(dir, { mode: 0o555 });
      chmodSync(dir, 0o555);
      const inDir = kitbridge(
        ['run', 'telegram'],
        { ...valid, KITBRIDGE_STORE: `sqlite:${dir}/kitbridge.db` },
        as,
      );
      expect(inDir.code).toBe(1);
      expect(inDir.err).toContain(`KITBRIDGE_STORE: cannot open the SQLite store ${dir}/kitbridge.db:`);
      expect(inDir.err).toMatch(/cannot be created or opened|read-only|permission/);

      const writable = join(tmp, 'writable-dir');
      mkdirSync(writable, { mode: 0o777 });
      chmodSync(writable, 0o777);
      const file = join(writable, 'kitbridge.db');
      SqliteStore.open(file, { checkpointIntervalMs: 0 }).close();
      chmodSync(file, 0o444);
      const ro = kitbridge(['run', 'telegram'], { ...valid, KITBRIDGE_STORE: `sqlite:${file}` }, as);
      expect(ro.code).toBe(1);
      expect(ro.err).toContain(`KITBRIDGE_STORE: cannot open the SQLite store ${file}:`);
      expect(ro.err).toMatch(/read-only/);
    },
  );

  it('a corrupt store file stops start-up with a clear message', () => {
    const file = join(tmp, 'corrupt.db');
    writeFileSync(file, Buffer.alloc(8192, 0x5a));
    const r = kitbridge(['run', 'telegram'], { ...valid, KITBRIDGE_STORE: `sqlite:${file}` });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/KITBRIDGE_STORE: .*corrupt\.db/);
  });
});

describe('kitbridge run: one process per store', () => {
  it('a second run on the same store file refuses to start and names the first; outbox works beside it', async () => {
    const creds = {
      account: 'acme',
      apiToken: 'lock-api-token-SECRET',
      channelUuid: 'lock-chan-01',
      salt: 's',
    };
    const kit = new FakeKit(creds);
    await kit.start();
    const token = fakeBotToken();
    const tg = new FakeTelegram({ token });
    await tg.start();
    const store = join(tmp, 'one-store', 'kitbridge.db');
    const env = async () => {
      const port = await freePort();
      return {
        ...valid,
        PATH: process.env.PATH ?? '',
        KIT_IM_URL: kit.url,
        KIT_ACCOUNT: creds.account,
        KIT_API_TOKEN: creds.apiToken,
        KIT_CHANNEL_UUID: creds.channelUuid,
        KIT_CHANNEL_SALT: creds.salt,
        KITBRIDGE_PORT: String(port),
        KITBRIDGE_PUBLIC_URL: `http://127.0.0.1:${port}`,
        KITBRIDGE_STORE: `sqlite:${store}`,
        KITBRIDGE_DRAIN: '50ms',
        TELEGRAM_BOT_TOKEN: token,
        TELEGRAM_API_ROOT: tg.apiRoot,
      };
    };
    // Async children: the fakes in this process must keep answering the first one.
    const start = (e: Record<string, string>) => {
      const child = spawn(process.execPath, [bin, 'run', 'telegram'], { env: e });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      return { child, out: () => out, exited };
    };
    const first = start(await env());
    let second: ReturnType<typeof start> | undefined;
    try {
      const end = Date.now() + 20_000;
      while (!first.out().includes('"msg":"kitbridge running"')) {
        if (Date.now() > end) throw new Error(`first run did not start: ${first.out()}`);
        await new Promise((r) => setTimeout(r, 25));
      }
      const connects = tg.callsOf('deleteWebhook').length;

      second = start(await env());
      const timeout = new Promise<string>((r) => setTimeout(() => r('still running'), 10_000).unref());
      expect(await Promise.race([second.exited, timeout])).toBe(1);
      expect(second.out()).toContain(
        `kitbridge: KITBRIDGE_STORE: cannot open the SQLite store ${store}: it is in use by another process ` +
          `(pid ${first.child.pid} on host ${os.hostname()}, since `,
      );
      expect(second.out()).toContain('stop that one first, or give this one a file of its own');
      expect(second.out()).not.toContain('SECRET');
      // It stopped before anything else: it did not take the first one's long poll.
      expect(tg.callsOf('deleteWebhook')).toHaveLength(connects);
      expect(first.child.exitCode).toBeNull();

      const status = await new Promise<number | null>((resolve) =>
        spawn(process.execPath, [bin, 'outbox'], { env: { KITBRIDGE_STORE: `sqlite:${store}` } }).on(
          'exit',
          resolve,
        ),
      );
      expect(status).toBe(0);
    } finally {
      if (second?.child.exitCode === null) second.child.kill('SIGKILL');
      first.child.kill('SIGTERM');
      expect(await first.exited).toBe(0);
      await tg.close();
      await kit.close();
    }
  });
});

describe('kitbridge outbox', () => {
  // outbox inspects stores that exist (it creates none): make the empty one.
  beforeAll(async () => {
    await SqliteStore.open(join(tmp, 'ops.db'), { checkpointIntervalMs: 0 }).close();
  });

  it('prints counts for an empty store', () => {
    const r = kitbridge(['outbox'], { KITBRIDGE_STORE: `sqlite:${join(tmp, 'ops.db')}` });
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/inbound\s+pending 0 {2}dead 0/);
    expect(r.out).toMatch(/outbound\s+pending 0 {2}dead 0/);
  });

  it('shows dead letters, retries them and drops an item', async () => {
    const path = join(tmp, 'dead.db');
    const store = SqliteStore.open(path);
    const now = Date.now();
    const a = await store.enqueue(
      { leg: 'outbound', clientId: 'tg:1', key: 'ev-a', payload: {} },
      60_000,
      now,
      { owner: 'test', leaseMs: 60_000 },
    );
    const b = await store.enqueue(
      { leg: 'inbound', clientId: 'tg:2', key: 'ev-b', payload: {} },
      60_000,
      now,
    );
    await store.bury(a!.id, a!.fence!, 3, 'Forbidden: bot was blocked by the user');
    await store.close();
    const env = { KITBRIDGE_STORE: `sqlite:${path}` };

    const status = kitbridge(['outbox'], env);
    expect(status.out).toMatch(/outbound\s+pending 0 {2}dead 1/);
    expect(status.out).toMatch(/inbound\s+pending 1 {2}dead 0/);
    expect(status.out).toContain(`#${a!.id} outbound dead client=tg:1 key=ev-a attempts=3`);
    expect(status.out).toContain('last error: Forbidden: bot was blocked by the user');

    expect(kitbridge(['outbox', 'list', '--dead'], env).out).toContain(`#${a!.id} outbound dead`);
    expect(kitbridge(['outbox', 'retry', '--dead'], env).out).toContain('1 item(s) due again');
    expect(kitbridge(['outbox', 'list'], env).out).toContain(
      `#${a!.id} outbound pending client=tg:1 key=ev-a attempts=0`,
    );
    expect(kitbridge(['outbox', 'drop', String(b!.id)], env).out).toContain('dropped');
    expect(kitbridge(['outbox', 'drop', String(b!.id)], env).code).toBe(1);
    expect(kitbridge(['outbox'], env).out).toMatch(/inbound\s+pending 0 {2}dead 0/);
  });

  it('refuses a bad id', () => {
    const r = kitbridge(['outbox', 'drop', 'abc'], { KITBRIDGE_STORE: `sqlite:${join(tmp, 'ops.db')}` });
    expect(r.code).toBe(1);
    expect(r.err).toContain('expected an item id');
  });
});

describe('kitbridge demo', () => {
  it('runs both legs offline and exits 0, without printing a secret', () => {
    const r = kitbridge(['demo'], {});
    expect(r.code).toBe(0);
    expect(r.out).toContain('Kit received these send_message events');
    expect(r.out).toMatch(/-> 200 image\/jpeg, \d+ bytes, same as sent: true/);
    expect(r.out).toContain('Telegram sendMessage');
    expect(r.out).toContain('with a bad signature -> 401');
    expect(r.out).toContain('Both legs worked.');
    expect(r.out).not.toMatch(/\/bot\d+:/); // no Telegram URL with a token
  });
});

describe('kitbridge demo discord', () => {
  it('runs both legs offline on Discord and exits 0, without printing a secret', () => {
    const r = kitbridge(['demo', 'discord'], {});
    expect(r.code).toBe(0);
    expect(r.out).toContain('"client_id": "dc:');
    expect(r.out).toMatch(/-> 200 image\/png, \d+ bytes, same as sent: true/);
    expect(r.out).toContain('"enforce_nonce": true');
    expect(r.out).toContain('with a bad signature -> 401');
    expect(r.out).toContain('Both legs worked.');
    expect(r.out).not.toMatch(/[?&]hm=/); // no signed Discord CDN link reaches Kit
  });

  it('names the demos there are', () => {
    const r = kitbridge(['demo', 'fax'], {});
    expect(r.code).toBe(1);
    expect(r.err).toContain('no demo for "fax"; choose telegram (the default), discord or slack');
  });
});

describe('kitbridge run discord: configuration', () => {
  it('names the missing and the bad Discord variables', () => {
    const { TELEGRAM_BOT_TOKEN: _t, ...core } = valid;
    const missing = kitbridge(['run', 'discord'], core);
    expect(missing.code).toBe(2);
    expect(missing.err).toContain('DISCORD_BOT_TOKEN');
    const bad = kitbridge(['run', 'discord'], {
      ...core,
      DISCORD_BOT_TOKEN: 'not-a-token-SECRET-5',
      DISCORD_SUPPORT_CHANNEL_ID: 'support',
      DISCORD_MAX_UPLOAD_MB: '9000',
    });
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/DISCORD_BOT_TOKEN/);
    expect(bad.err).toMatch(/DISCORD_SUPPORT_CHANNEL_ID: expected a channel id/);
    expect(bad.err).toMatch(/DISCORD_MAX_UPLOAD_MB: expected a whole number/);
    expect(bad.err).not.toMatch(/SECRET/);
  });
});

describe('kitbridge --help', () => {
  it('lists the commands', () => {
    const r = kitbridge(['--help'], {});
    expect(r.code).toBe(0);
    expect(r.out).toContain('kitbridge run <platform>');
  });
});
