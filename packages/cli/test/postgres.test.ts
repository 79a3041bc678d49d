/** The CLI on the PostgreSQL store (the real server): URL checks, `outbox` and `check`, never showing the password. */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { PostgresStore } from '@kitbridge/store-postgres';
import { FakeKit, FakeTelegram, fakeBotToken, freePort } from '@kitbridge/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const bin = new URL('../bin/kitbridge.js', import.meta.url).pathname;
const PG_ADMIN_URL = process.env.KITBRIDGE_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/test';
const PASSWORD = 'pg-PASSWORD-never-shown';
const schema = `kb_cli_${randomBytes(6).toString('hex')}`;
const CREDS = {
  account: 'acme',
  apiToken: 'pg-cli-api-token',
  channelUuid: 'pg-cli-channel',
  salt: 'pg-cli-salt',
};

/** The test server's URL, with a password (trust auth ignores it) and this file's schema. */
function storeUrl(over: { port?: number; schema?: string } = {}): string {
  const u = new URL(PG_ADMIN_URL);
  u.password = PASSWORD;
  if (over.port) u.port = String(over.port);
  u.searchParams.set('schema', over.schema ?? schema);
  return u.href;
}

let kit: FakeKit;
let tg: FakeTelegram;

beforeAll(async () => {
  kit = new FakeKit(CREDS);
  await kit.start();
  tg = new FakeTelegram({ token: fakeBotToken(), bot: { username: 'pg_support_bot' } });
  await tg.start();
});

afterAll(async () => {
  await tg.close();
  await kit.close();
  const c = new pg.Client({ connectionString: PG_ADMIN_URL });
  await c.connect();
  try {
    await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } finally {
    await c.end();
  }
});

function kitbridge(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], { env: { PATH: process.env.PATH ?? '', ...env } });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('exit', (code) => resolve({ code, out }));
  });
}

describe('KITBRIDGE_STORE=postgres://', () => {
  it('outbox status, list, retry and drop work on the shared store', async () => {
    const store = await PostgresStore.open(storeUrl());
    const now = Date.now();
    const a = await store.enqueue(
      { leg: 'outbound', clientId: 'tg:1', key: 'ev-a', payload: {} },
      60_000,
      now,
      {
        owner: 'test',
        leaseMs: 60_000,
      },
    );
    const b = await store.enqueue(
      { leg: 'inbound', clientId: 'tg:2', key: 'ev-b', payload: {} },
      60_000,
      now,
    );
    await store.bury(a!.id, a!.fence!, 3, 'Forbidden: bot was blocked by the user');
    await store.close();
    const env = { KITBRIDGE_STORE: storeUrl() };

    const status = await kitbridge(['outbox'], env);
    expect(status.code).toBe(0);
    expect(status.out).toMatch(/outbound\s+pending 0 {2}dead 1/);
    expect(status.out).toMatch(/inbound\s+pending 1 {2}dead 0/);
    expect(status.out).toContain(`#${a!.id} outbound dead client=tg:1 key=ev-a attempts=3`);
    expect((await kitbridge(['outbox', 'retry', '--dead'], env)).out).toContain('1 item(s) due again');
    expect((await kitbridge(['outbox', 'list'], env)).out).toContain(
      `#${a!.id} outbound pending client=tg:1 key=ev-a attempts=0`,
    );
    expect((await kitbridge(['outbox', 'drop', String(b!.id)], env)).out).toContain('dropped');
    expect((await kitbridge(['outbox'], env)).out).toMatch(/inbound\s+pending 0 {2}dead 0/);
  });

  const checkEnv = (store: string) => ({
    KIT_IM_URL: kit.url,
    KIT_ACCOUNT: CREDS.account,
    KIT_API_TOKEN: CREDS.apiToken,
    KIT_CHANNEL_UUID: CREDS.channelUuid,
    KIT_CHANNEL_SALT: CREDS.salt,
    KITBRIDGE_PUBLIC_URL: 'https://bridge.example.com',
    KITBRIDGE_MEDIA_SECRET: 'pg-cli-media-secret-0123456789abcdef',
    KITBRIDGE_STORE: store,
    TELEGRAM_BOT_TOKEN: tg.token,
    TELEGRAM_API_ROOT: tg.apiRoot,
  });

  it('check reports the store, its password masked', async () => {
    const r = await kitbridge(['check', 'telegram'], checkEnv(storeUrl()));
    expect(r.out).toContain(`ok    configuration (telegram), store postgres://postgres:***@`);
    expect(r.out).toContain(`schema=${schema}`);
    expect(r.code).toBe(0);
    expect(r.out).not.toContain(PASSWORD);
  });

  it('an unreachable database stops start-up with a message naming the variable, not the password', async () => {
    const r = await kitbridge(['check', 'telegram'], checkEnv(storeUrl({ port: await freePort() })));
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(
      /KITBRIDGE_STORE: cannot open the PostgreSQL store postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:\d+\/test.*connection refused/,
    );
    expect(r.out).not.toContain(PASSWORD);
  });

  it('a malformed URL is a configuration error naming KITBRIDGE_STORE', async () => {
    const r = await kitbridge(['outbox'], { KITBRIDGE_STORE: `${storeUrl()}&pool=5` });
    expect(r.code).toBe(2);
    expect(r.out).toContain('KITBRIDGE_STORE: unknown parameter "pool"');
    expect(r.out).not.toContain(PASSWORD);
    const bad = await kitbridge(['outbox'], { KITBRIDGE_STORE: storeUrl({ schema: 'bad-name' }) });
    expect(bad.out).toContain('KITBRIDGE_STORE: schema "bad-name"');
  });
});
