/**
 * The Discord connector through a running Bridge: the real discord.js against
 * FakeDiscord (REST, CDN, gateway) on one side, FakeKit on the other, over real
 * HTTP; then `kitbridge run discord` as a child process killed with SIGKILL.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { type Bridge, createLogger, MemoryStore, type Store, startBridge } from '@kitbridge/core';
import { DiscordConnector, type DiscordConnectorOptions } from '@kitbridge/discord';
import { SqliteStore } from '@kitbridge/store-sqlite';
import { FakeDiscord, FakeKit, freePort, testCoreConfig } from '@kitbridge/testkit';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

const creds = {
  account: 'acme',
  apiToken: 'discord-e2e-api-token-01',
  channelUuid: 'discord-e2e-channel',
  salt: 'discord-e2e-salt',
};
const ALICE = '111111111111111111';
const BOB = '222222222222222222';
const GUILD = '333333333333333333';
const SUPPORT = '444444444444444444';
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=',
  'base64',
);

let kit: FakeKit;
let discord: FakeDiscord;
let bridge: Bridge | undefined;
let port: number;
let tmp: string;

/** IDENTIFYs after the first wait while `held` (discord.js's own throttle waits 5 s; tests decide). */
const identify = {
  held: false,
  waiters: [] as (() => void)[],
  release() {
    identify.held = false;
    for (const w of identify.waiters.splice(0)) w();
  },
};

function connector(opts: Partial<DiscordConnectorOptions> = {}): DiscordConnector {
  return new DiscordConnector({
    token: discord.token,
    apiUrl: discord.apiUrl,
    cdnUrl: discord.cdnUrl,
    rest: { timeoutMs: 2_000, retries: 1, offsetMs: 0 },
    client: {
      ws: {
        buildIdentifyThrottler: () => ({
          waitForIdentify: () =>
            identify.held
              ? new Promise<void>((resolve) => identify.waiters.push(resolve))
              : Promise.resolve(),
        }),
      } as never,
      waitGuildTimeout: 200,
    },
    receiveBackoff: { baseMs: 20, maxMs: 100 },
    reconnectBackoff: { baseMs: 20, maxMs: 200 },
    ...opts,
  });
}

/** Log lines of the bridges started by {@link start}. */
let logs: string[] = [];

async function start(c: DiscordConnector, store?: Store): Promise<Bridge> {
  bridge = await startBridge({
    config: testCoreConfig({ url: kit.url, ...creds }, port, {
      closeMessage: 'Thanks, this chat is closed.',
    }),
    connector: c,
    ...(store ? { store } : {}),
    logger: createLogger({
      level: 'info',
      destination: new Writable({
        write(chunk, _enc, cb) {
          logs.push(String(chunk));
          cb();
        },
      }),
    }),
  });
  return bridge;
}

async function readyz(): Promise<number> {
  const r = await request(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
  if (!r) return 0;
  await r.body.dump();
  return r.statusCode;
}

async function until(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 15_000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const messageOf = (e: unknown) => (e as any).event_data.message;
const textsOf = (events: unknown[], clientId: string) =>
  events.filter((e: any) => e.client_data.client_id === clientId).map((e) => messageOf(e).text);

beforeAll(() => {
  tmp = mkdtempSync(join(os.tmpdir(), 'kitbridge-discord-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

beforeEach(async () => {
  kit = new FakeKit(creds);
  await kit.start();
  discord = await new FakeDiscord({ heartbeatIntervalMs: 1_000 }).start();
  discord.user(ALICE, { username: 'alice', global_name: 'Alice Archer', avatarBytes: PNG });
  discord.user(BOB, { username: 'bob' });
  port = await freePort();
});
afterEach(async () => {
  logs = [];
  identify.release();
  await bridge?.stop(500);
  bridge = undefined;
  await discord.close();
  await kit.close();
});

describe('Discord <-> Kit through a running bridge', () => {
  it('DMs: text and a photo reach Kit (the photo fetched after its CDN link expired); the reply and the close come back', async () => {
    await start(connector());
    discord.dm(ALICE, 'Hello, I need help');
    discord.dm(ALICE, {
      content: 'the tracking page',
      attachments: [{ filename: 'tracking.png', bytes: PNG, contentType: 'image/png' }],
    });
    await kit.waitForEvents(2);
    const [first, second] = kit.events as any[];
    expect(first.client_data).toMatchObject({
      client_id: `dc:${ALICE}`,
      client_display_name: 'Alice Archer',
    });
    expect(messageOf(first).text).toBe('Hello, I need help');
    const photo = messageOf(second).payload[0];
    expect(photo).toMatchObject({ type: 'photo', file_name: 'tracking.png' });
    // Kit only ever sees kitbridge's own links, never Discord's signed, expiring ones.
    const seen = JSON.stringify(kit.events);
    expect(seen).not.toContain(discord.cdnUrl);
    expect(seen).not.toMatch(/[?&]hm=/);
    discord.expireCdnLinks();
    const got = await request(photo.file_url);
    expect(got.statusCode).toBe(200);
    expect(Buffer.from(await got.body.arrayBuffer()).equals(PNG)).toBe(true);
    const avatar = await request(first.client_data.client_avatar);
    expect(Buffer.from(await avatar.body.arrayBuffer()).equals(PNG)).toBe(true);

    const reply = await kit.sendCallback(
      `${bridge!.url}/kit/callback`,
      kit.agentMessage(`dc:${ALICE}`, { text: 'An agent here. It ships on Friday.' }),
    );
    expect(reply.status).toBe(200);
    const dm = discord.dmChannel(ALICE).id;
    await discord.waitForDelivered(1, dm, 10_000);
    await kit.sendCallback(`${bridge!.url}/kit/callback`, kit.closeConversation(`dc:${ALICE}`));
    await discord.waitForDelivered(2, dm, 10_000);
    expect(discord.delivered(dm).map((d) => d.content)).toEqual([
      'An agent here. It ships on Friday.',
      'Thanks, this chat is closed.',
    ]);
  });

  it('a customer with closed DMs (50007): the reply is dead-lettered with that reason; other customers are unaffected', async () => {
    const store = new MemoryStore();
    await start(connector(), store);
    discord.closeDms(ALICE);
    await kit.sendCallback(
      `${bridge!.url}/kit/callback`,
      kit.agentMessage(`dc:${ALICE}`, { text: 'never arrives' }),
    );
    await kit.sendCallback(`${bridge!.url}/kit/callback`, kit.agentMessage(`dc:${BOB}`, { text: 'arrives' }));
    await until(async () => (await store.list({ state: 'dead' })).length === 1, 'the dead letter');
    const [dead] = await store.list({ state: 'dead' });
    expect(dead).toMatchObject({ clientId: `dc:${ALICE}`, attempts: 1 });
    expect(dead!.lastError).toMatch(/Cannot send messages to this user \(50007\)/);
    await discord.waitForDelivered(1, discord.dmChannel(BOB).id, 10_000);
  });

  it("support channel: the first message opens the customer's private thread; Kit's reply lands in it", async () => {
    discord.guild({ id: GUILD, name: 'Acme', channels: [{ id: SUPPORT, name: 'support' }], members: [BOB] });
    await start(connector({ supportChannelId: SUPPORT }));
    discord.guildMessage(SUPPORT, BOB, 'My invoice is wrong');
    await kit.waitForEvents(1);
    expect((kit.events[0] as any).client_data.client_id).toBe(`dcs:${GUILD}:${BOB}`);
    await until(() => discord.threads.length === 1, 'the thread');
    const thread = discord.threads[0]!.id;
    await kit.sendCallback(
      `${bridge!.url}/kit/callback`,
      kit.agentMessage(`dcs:${GUILD}:${BOB}`, { text: 'Let me look at it, Bob.' }),
    );
    await discord.waitForDelivered(1, thread, 10_000);
    expect(discord.delivered(thread)[0]!.content).toBe('Let me look at it, Bob.');
    discord.guildMessage(thread, BOB, 'thanks');
    await kit.waitForEvents(2);
    expect(textsOf(kit.events, `dcs:${GUILD}:${BOB}`)).toEqual(['My invoice is wrong', 'thanks']);
  });

  it('/readyz follows the gateway: 503 while it reconnects, 200 after a fresh IDENTIFY; what was written meanwhile reaches Kit once', async () => {
    await start(connector());
    await until(async () => (await readyz()) === 200, 'ready');
    for (let i = 1; i <= 3; i++) {
      discord.dm(ALICE, `alice ${i}`);
      discord.dm(BOB, `bob ${i}`);
    }
    await kit.waitForEvents(6);
    identify.held = true;
    discord.disconnect({ resumable: false });
    await until(async () => (await readyz()) === 503, 'not ready while reconnecting');
    for (let i = 4; i <= 6; i++) {
      discord.dm(ALICE, `alice ${i}`);
      discord.dm(BOB, `bob ${i}`);
    }
    identify.release();
    await until(async () => (await readyz()) === 200, 'ready again');
    discord.dm(ALICE, 'alice 7');
    discord.dm(BOB, 'bob 7');
    await kit.waitForEvents(14);
    await new Promise((r) => setTimeout(r, 200));
    const ids = kit.events.map((e: any) => e.event_id);
    expect(new Set(ids).size).toBe(14);
    expect(textsOf(kit.events, `dc:${ALICE}`)).toEqual(Array.from({ length: 7 }, (_, i) => `alice ${i + 1}`));
    expect(textsOf(kit.events, `dc:${BOB}`)).toEqual(Array.from({ length: 7 }, (_, i) => `bob ${i + 1}`));
  });

  it('the connector stopped while customers write: after the restart every message reaches Kit exactly once', async () => {
    const file = join(tmp, 'stop-restart.db');
    const c = connector();
    await start(c, SqliteStore.open(file));
    discord.dm(ALICE, 'before 1');
    discord.dm(BOB, 'before 1');
    await kit.waitForEvents(2);
    await bridge!.stop(500);
    bridge = undefined;
    for (let i = 1; i <= 5; i++) {
      discord.dm(ALICE, `while stopped ${i}`);
      discord.dm(BOB, `while stopped ${i}`);
    }
    await start(c, SqliteStore.open(file));
    await kit.waitForEvents(12);
    await new Promise((r) => setTimeout(r, 200));
    expect(new Set(kit.events.map((e: any) => e.event_id)).size).toBe(12);
    for (const who of [ALICE, BOB])
      expect(textsOf(kit.events, `dc:${who}`)).toEqual([
        'before 1',
        ...Array.from({ length: 5 }, (_, i) => `while stopped ${i + 1}`),
      ]);
  });
});

// ---------------------------------------------------------------- kill -9

const bin = new URL('../../packages/cli/bin/kitbridge.js', import.meta.url).pathname;

function run(db: string): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  let out = '';
  const child = spawn(process.execPath, [bin, 'run', 'discord'], {
    env: {
      PATH: process.env.PATH ?? '',
      KIT_IM_URL: kit.url,
      KIT_ACCOUNT: creds.account,
      KIT_API_TOKEN: creds.apiToken,
      KIT_CHANNEL_UUID: creds.channelUuid,
      KIT_CHANNEL_SALT: creds.salt,
      KITBRIDGE_HOST: '127.0.0.1',
      KITBRIDGE_PORT: String(port),
      KITBRIDGE_PUBLIC_URL: `http://127.0.0.1:${port}`,
      KITBRIDGE_MEDIA_SECRET: 'discord-crash-media-secret-0123456789',
      KITBRIDGE_STORE: `sqlite:${db}`,
      KITBRIDGE_LOG_LEVEL: 'info',
      KITBRIDGE_DRAIN: '100ms',
      DISCORD_BOT_TOKEN: discord.token,
      DISCORD_API_URL: discord.apiUrl,
      DISCORD_CDN_URL: discord.cdnUrl,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

/** Pending customer events in the store of a running process (a read-only open works beside it). */
async function pendingInbound(db: string): Promise<number> {
  const store = SqliteStore.open(db, { readonly: true });
  try {
    return (await store.pending('inbound')).length;
  } finally {
    await store.close();
  }
}

async function kill9(p: ReturnType<typeof run>): Promise<void> {
  p.child.kill('SIGKILL');
  await p.exited;
}

describe('kitbridge run discord, killed with SIGKILL', () => {
  it('messages stored before the kill (Kit down) reach Kit once after the restart, in order', async () => {
    const db = join(tmp, 'kill-stored.db');
    const first = run(db);
    try {
      await until(async () => (await readyz()) === 200, 'the first process to be ready', 20_000);
      for (let i = 1; i <= 3; i++) {
        discord.dm(ALICE, `alice ${i}`);
        discord.dm(BOB, `bob ${i}`);
      }
      await kit.waitForEvents(6, 15_000);
      // Kit goes down: what customers write now is stored and acknowledged, not yet delivered.
      kit.outage('on');
      for (let i = 4; i <= 8; i++) {
        discord.dm(ALICE, `alice ${i}`);
        discord.dm(BOB, `bob ${i}`);
      }
      // Stored in the outbox (each customer's head is being retried against the outage).
      await until(async () => (await pendingInbound(db)) === 10, 'ten messages in the outbox');
    } finally {
      await kill9(first);
    }
    kit.outage('off');
    const second = run(db);
    try {
      await kit.waitForEvents(16, 20_000);
      await new Promise((r) => setTimeout(r, 300));
      expect(new Set(kit.events.map((e: any) => e.event_id)).size).toBe(kit.events.length);
      expect(textsOf(kit.events, `dc:${ALICE}`)).toEqual(
        Array.from({ length: 8 }, (_, i) => `alice ${i + 1}`),
      );
      expect(textsOf(kit.events, `dc:${BOB}`)).toEqual(Array.from({ length: 8 }, (_, i) => `bob ${i + 1}`));
    } finally {
      second.child.kill('SIGTERM');
      expect(await second.exited).toBe(0);
    }
    const logs = first.output() + second.output();
    expect(logs).toContain('"msg":"kitbridge running"');
    for (const secret of [discord.token, creds.apiToken, creds.salt]) expect(logs).not.toContain(secret);
  });

  it('messages written while no process ran reach Kit once after the restart (the checkpoints in the SQLite file)', async () => {
    const db = join(tmp, 'kill-down.db');
    const first = run(db);
    try {
      await until(async () => (await readyz()) === 200, 'the first process to be ready', 20_000);
      discord.dm(ALICE, 'alice 1');
      discord.dm(BOB, 'bob 1');
      await kit.waitForEvents(2, 15_000).catch((err) => {
        console.log(first.output());
        throw err;
      });
      // Let the checkpoints of both channels be written.
      await new Promise((r) => setTimeout(r, 300));
    } finally {
      await kill9(first);
    }
    for (let i = 2; i <= 6; i++) {
      discord.dm(ALICE, `alice ${i}`);
      discord.dm(BOB, `bob ${i}`);
    }
    const second = run(db);
    try {
      await kit.waitForEvents(12, 20_000);
      await new Promise((r) => setTimeout(r, 300));
      expect(new Set(kit.events.map((e: any) => e.event_id)).size).toBe(kit.events.length);
      expect(textsOf(kit.events, `dc:${ALICE}`)).toEqual(
        Array.from({ length: 6 }, (_, i) => `alice ${i + 1}`),
      );
      expect(textsOf(kit.events, `dc:${BOB}`)).toEqual(Array.from({ length: 6 }, (_, i) => `bob ${i + 1}`));
    } finally {
      second.child.kill('SIGTERM');
      expect(await second.exited).toBe(0);
    }
  });
});
