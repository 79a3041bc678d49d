/**
 * Replicas: three `kitbridge run telegram` processes on one PostgreSQL store,
 * behind one round-robin proxy that is both the callback URL and the webhook
 * URL, as a load balancer would be. Under load one replica is killed with
 * SIGKILL. Every customer message reaches Kit once (by event_id, which Kit
 * deduplicates) and in order per customer; every agent reply reaches the
 * customer in order, and at most the one reply in flight on the killed
 * replica may arrive twice (at least once towards platforms). Then the same
 * in polling mode, where the polling lease moves to another replica.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FakeKit, FakeTelegram, fakeBotToken, freePort, tgUser } from '@kitbridge/testkit';
import pg from 'pg';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

const bin = new URL('../../packages/cli/bin/kitbridge.js', import.meta.url).pathname;
const PG_ADMIN_URL = process.env.KITBRIDGE_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/test';
const CREDS = {
  account: 'acme',
  apiToken: 'replica-api-token-01',
  channelUuid: 'replica-chan-1',
  salt: 'replica-salt',
};
const WEBHOOK_SECRET = 'replica-webhook-secret';
const MEDIA_SECRET = 'replica-media-secret-0123456789abcdef';
const DB_PASSWORD = 'replica-db-password';
const CUSTOMERS = 5;
const MESSAGES = 12;
const REPLIES = 8;

const database = `kb_e2e_${randomBytes(6).toString('hex')}`;
let kit: FakeKit;
let tg: FakeTelegram;
let token: string;
let proxy: Awaited<ReturnType<typeof roundRobin>>;
let replicas: Replica[] = [];
let schema = 0;

interface Replica {
  port: number;
  child: ChildProcess;
  output: () => string;
  alive: boolean;
}

async function admin<T>(run: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: PG_ADMIN_URL });
  await c.connect();
  try {
    return await run(c);
  } finally {
    await c.end();
  }
}

beforeAll(async () => {
  await admin((c) => c.query(`CREATE DATABASE ${database}`));
  kit = new FakeKit(CREDS);
  await kit.start();
});

afterAll(async () => {
  await kit.close();
  await admin((c) => c.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`));
});

beforeEach(async () => {
  kit.events.length = 0;
  token = fakeBotToken();
  tg = new FakeTelegram({ token });
  await tg.start();
  proxy = await roundRobin(() => replicas.filter((r) => r.alive).map((r) => r.port));
});

afterEach(async () => {
  await Promise.all(replicas.map((r) => stop(r, 'SIGKILL')));
  replicas = [];
  await proxy.close();
  await tg.close();
});

/** The store URL with a password (trust auth ignores it): it must never show in any log. */
function storeUrl(s: string): string {
  const u = new URL(PG_ADMIN_URL);
  u.password = DB_PASSWORD;
  u.pathname = `/${database}`;
  u.searchParams.set('schema', s);
  return u.href;
}

function startReplica(port: number, store: string, mode: 'webhook' | 'polling'): Replica {
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
      KITBRIDGE_PUBLIC_URL: proxy.url,
      KITBRIDGE_MEDIA_SECRET: MEDIA_SECRET,
      KITBRIDGE_STORE: store,
      KITBRIDGE_LEASE: '3s',
      KITBRIDGE_LOG_LEVEL: 'info',
      KITBRIDGE_DRAIN: '100ms',
      TELEGRAM_BOT_TOKEN: token,
      TELEGRAM_API_ROOT: tg.apiRoot,
      TELEGRAM_MODE: mode,
      ...(mode === 'webhook' ? { TELEGRAM_WEBHOOK_SECRET: WEBHOOK_SECRET } : {}),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const replica: Replica = { port, child, output: () => out, alive: true };
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  child.once('exit', () => {
    replica.alive = false;
  });
  return replica;
}

async function stop(r: Replica, signal: NodeJS.Signals): Promise<void> {
  if (r.child.exitCode !== null || r.child.signalCode !== null) return;
  const exited = new Promise((resolve) => r.child.once('exit', resolve));
  r.child.kill(signal);
  await exited;
}

async function readyz(port: number): Promise<{ status: number; state?: string }> {
  try {
    const r = await request(`http://127.0.0.1:${port}/readyz`);
    const body = (await r.body.json().catch(() => ({}))) as { connector?: { state?: string } };
    const state = body.connector?.state;
    return { status: r.statusCode, ...(state ? { state } : {}) };
  } catch {
    return { status: 0 };
  }
}

async function until(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 60_000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) {
      const logs = replicas.map((r, i) => `--- replica ${i}\n${r.output().slice(-3000)}`).join('\n');
      throw new Error(`timed out waiting for ${what}\n${logs}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function startReplicas(mode: 'webhook' | 'polling'): Promise<void> {
  const logins = kit.logins;
  const store = storeUrl(`${mode}_${schema++}`);
  const ports = await Promise.all([freePort(), freePort(), freePort()]);
  // Started together: migrations must not race.
  replicas = ports.map((p) => startReplica(p, store, mode));
  for (const r of replicas) {
    await until(async () => (await readyz(r.port)).status === 200, `replica ${r.port} to be ready`);
  }
  // Each replica holds a Kit session of its own: one login each, no more.
  expect(kit.logins - logins).toBe(replicas.length);
}

/** Retries like the platforms and Kit do until the bridge answers 200; the same body every time. */
async function deliverUntilOk(send: () => Promise<number>, what: string): Promise<void> {
  await until(async () => (await send().catch(() => 0)) === 200, what);
}

const customers = Array.from({ length: CUSTOMERS }, (_, i) => tgUser(7100 + i, `Customer${i}`));
const text = (c: number, m: number) => `customer ${c} message ${m}`;
const reply = (c: number, m: number) => `reply ${m} to customer ${c}`;

/** Kit deduplicates by event_id: the distinct events, in arrival order. */
function kitMessages(): { eventId: string; text: string }[] {
  const seen = new Set<string>();
  const out: { eventId: string; text: string }[] = [];
  for (const e of kit.events as { event_id: string; event_data: { message: { text: string } } }[]) {
    if (seen.has(e.event_id)) continue;
    seen.add(e.event_id);
    out.push({ eventId: e.event_id, text: e.event_data.message.text });
  }
  return out;
}

function expectKitGotEachOnceInOrder(): void {
  const got = kitMessages();
  expect(got).toHaveLength(CUSTOMERS * MESSAGES);
  // One event per message: no message was taken in twice under two ids.
  expect(new Set(got.map((g) => g.text)).size).toBe(got.length);
  for (let c = 0; c < CUSTOMERS; c++) {
    expect(got.map((g) => g.text).filter((t) => t.startsWith(`customer ${c} `))).toEqual(
      Array.from({ length: MESSAGES }, (_, m) => text(c, m)),
    );
  }
}

/** Agent replies as the customer saw them: in order; a reply repeated right after itself at most once per customer. */
function expectRepliesInOrder(): number {
  let repeats = 0;
  for (let c = 0; c < CUSTOMERS; c++) {
    const seen = tg.sent
      .filter((s) => s.method === 'sendMessage' && Number(s.params.chat_id) === customers[c]!.id)
      .map((s) => String(s.params.text));
    const collapsed = seen.filter((t, i) => t !== seen[i - 1]);
    expect(collapsed).toEqual(Array.from({ length: REPLIES }, (_, m) => reply(c, m)));
    expect(seen.length - collapsed.length).toBeLessThanOrEqual(1);
    repeats += seen.length - collapsed.length;
  }
  return repeats;
}

function expectNoSecretInLogs(): void {
  const logs = replicas.map((r) => r.output()).join('\n');
  expect(logs).toContain('"msg":"kitbridge running"');
  for (const secret of [token, CREDS.apiToken, CREDS.salt, MEDIA_SECRET, WEBHOOK_SECRET, DB_PASSWORD]) {
    expect(logs).not.toContain(secret);
  }
}

describe('three replicas on PostgreSQL behind one URL', () => {
  it('webhook mode, kill -9 of a replica under load: every message once and in order, both ways', async () => {
    await startReplicas('webhook');
    expect(tg.webhook?.url).toBe(`${proxy.url}/telegram/webhook`);
    const callbackUrl = `${proxy.url}/kit/callback`;
    let killed = false;
    let servedAtKill = new Map<number, number>();
    const killWhenBusy = (async () => {
      await until(
        () => kitMessages().length >= (CUSTOMERS * MESSAGES) / 3 && tg.sent.length >= 3,
        'the load to build up',
      );
      // It took its share of the webhooks and callbacks until now.
      expect(proxy.served.get(replicas[1]!.port)).toBeGreaterThan(0);
      await stop(replicas[1]!, 'SIGKILL');
      killed = true;
      servedAtKill = new Map(proxy.served);
    })();
    await Promise.all(
      customers.flatMap((user, c) => [
        // Each customer writes one message after another, as Telegram sends one chat's updates.
        (async () => {
          for (let m = 0; m < MESSAGES; m++) {
            const update = tg.number({ message: tg.buildMessage(user, { text: text(c, m) }) });
            await deliverUntilOk(
              async () => (await tg.deliverWebhook(update)).status,
              `message ${text(c, m)}`,
            );
          }
        })(),
        // The agent answers, one reply after another; Kit retries a callback until it gets 200.
        (async () => {
          for (let m = 0; m < REPLIES; m++) {
            const body = kit.agentMessage(`tg:${user.id}`, { text: reply(c, m) });
            await deliverUntilOk(async () => (await kit.sendCallback(callbackUrl, body)).status, reply(c, m));
          }
        })(),
      ]),
    );
    await killWhenBusy;
    expect(killed).toBe(true);
    await until(() => kitMessages().length >= CUSTOMERS * MESSAGES, 'every message at Kit');
    await until(
      () =>
        new Set(tg.sent.filter((s) => s.method === 'sendMessage').map((s) => s.params.text)).size >=
        CUSTOMERS * REPLIES,
      'every reply at Telegram',
    );
    expectKitGotEachOnceInOrder();
    expectRepliesInOrder();
    // The survivors took the rest.
    for (const r of [replicas[0]!, replicas[2]!]) {
      expect(proxy.served.get(r.port) ?? 0).toBeGreaterThan(servedAtKill.get(r.port) ?? 0);
    }
    // The survivors still serve both URLs.
    expect((await readyz(replicas[0]!.port)).status).toBe(200);
    expect((await readyz(replicas[2]!.port)).status).toBe(200);
    expectNoSecretInLogs();
  }, 180_000);

  it('polling mode: one replica polls, the others stand by (ready); kill -9 of the poller hands polling over', async () => {
    await startReplicas('polling');
    const states = async () => Promise.all(replicas.map(async (r) => (await readyz(r.port)).state));
    await until(async () => {
      const s = await states();
      return s.filter((x) => x === 'connected').length === 1 && s.filter((x) => x === 'standby').length === 2;
    }, 'one poller and two standbys');
    // Standby replicas answer /readyz 200: the load balancer keeps sending them callbacks.
    for (const r of replicas) expect((await readyz(r.port)).status).toBe(200);
    const poller = (await states()).indexOf('connected');

    const send = (from: number, to: number) => {
      for (let m = from; m < to; m++)
        for (let c = 0; c < CUSTOMERS; c++) tg.textFrom(customers[c]!, text(c, m));
    };
    send(0, MESSAGES / 2);
    await until(() => kitMessages().length >= CUSTOMERS * 2, 'the first messages at Kit');
    await stop(replicas[poller]!, 'SIGKILL');
    // Kit revokes every session meanwhile: the survivors log in again, once each at most.
    const logins = kit.logins;
    kit.expireAccessTokens();
    kit.expireRefreshTokens();
    send(MESSAGES / 2, MESSAGES);
    // Another replica takes the polling lease over once the dead one's runs out (3 s).
    await until(async () => (await states()).filter((x) => x === 'connected').length === 1, 'a new poller');
    await until(() => kitMessages().length >= CUSTOMERS * MESSAGES, 'every message at Kit');
    expectKitGotEachOnceInOrder();
    expect(kit.logins - logins).toBeGreaterThanOrEqual(1);
    expect(kit.logins - logins).toBeLessThanOrEqual(2);
    // Agent replies through the proxy still reach the customers, whichever replica takes them.
    const callbackUrl = `${proxy.url}/kit/callback`;
    await Promise.all(
      customers.map(async (user, c) => {
        for (let m = 0; m < REPLIES; m++) {
          const body = kit.agentMessage(`tg:${user.id}`, { text: reply(c, m) });
          await deliverUntilOk(async () => (await kit.sendCallback(callbackUrl, body)).status, reply(c, m));
        }
      }),
    );
    await until(
      () => tg.sent.filter((s) => s.method === 'sendMessage').length >= CUSTOMERS * REPLIES,
      'every reply at Telegram',
    );
    expect(expectRepliesInOrder()).toBe(0);
    expectNoSecretInLogs();
  }, 180_000);
});

/**
 * A load balancer in a few lines: each request goes to the next live replica;
 * one that cannot be reached (or dies mid-request) is skipped for the next, as
 * nginx's proxy_next_upstream does. 502 when none answers.
 */
async function roundRobin(
  backends: () => number[],
): Promise<{ url: string; served: Map<number, number>; close(): Promise<void> }> {
  let next = 0;
  const served = new Map<number, number>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const body = Buffer.concat(chunks);
      const ports = backends();
      for (let i = 0; i < ports.length; i++) {
        const port = ports[next++ % ports.length]!;
        try {
          const r = await request(`http://127.0.0.1:${port}${req.url}`, {
            method: req.method as 'GET',
            headers: forwardable(req.headers),
            ...(body.length ? { body } : {}),
          });
          const payload = Buffer.from(await r.body.arrayBuffer());
          const headers = forwardable(r.headers as IncomingHttpHeaders);
          res.writeHead(r.statusCode, headers).end(payload);
          served.set(port, (served.get(port) ?? 0) + 1);
          return;
        } catch {
          // That replica is gone: the next one.
        }
      }
      res.writeHead(502).end('no replica answered');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    served,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

function forwardable(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) {
    if (
      v === undefined ||
      ['host', 'connection', 'keep-alive', 'transfer-encoding', 'content-length'].includes(k)
    )
      continue;
    out[k] = Array.isArray(v) ? v.join(', ') : v;
  }
  return out;
}
