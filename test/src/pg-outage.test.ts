/**
 * PostgreSQL trouble under a running Bridge: the store reaches the real server
 * through a TCP relay that the test cuts (every connection dropped, new ones
 * refused) and restores, as a failover or a network fault would. Meanwhile
 * intake answers 503 and acknowledges nothing, /readyz says why; once the
 * database is back the same process recovers without a restart, and what Kit
 * and the platform sent again arrives once.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server, Socket } from 'node:net';
import { type Bridge, startBridge } from '@kitbridge/core';
import { PostgresStore } from '@kitbridge/store-postgres';
import { FakeKit, freePort, ScriptedConnector, testCoreConfig } from '@kitbridge/testkit';
import pg from 'pg';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const PG_ADMIN_URL = process.env.KITBRIDGE_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/test';
const creds = {
  account: 'acme',
  apiToken: 'outage-api-token-1',
  channelUuid: 'outage-chan-1',
  salt: 'outage-salt',
};
const database = `kb_outage_${randomBytes(6).toString('hex')}`;

async function admin(sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: PG_ADMIN_URL });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

/** A TCP relay to the real server that can be cut and restored on the same port. */
class Relay {
  private server?: Server;
  private readonly sockets = new Set<Socket>();
  constructor(readonly port: number) {}

  async up(): Promise<void> {
    const target = new URL(PG_ADMIN_URL);
    this.server = createServer((client) => {
      const upstream = new Socket();
      upstream.connect(Number(target.port || 5432), target.hostname);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => {});
      }
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((r) => this.server!.listen(this.port, '127.0.0.1', r));
  }

  async cut(): Promise<void> {
    const closed = new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    for (const s of this.sockets) s.destroy();
    await closed;
    this.server = undefined;
  }
}

let kit: FakeKit;
let relay: Relay;
let store: PostgresStore;
let bridge: Bridge;
let connector: ScriptedConnector;

beforeAll(async () => {
  await admin(`CREATE DATABASE ${database}`);
  kit = new FakeKit(creds);
  await kit.start();
  relay = new Relay(await freePort());
  await relay.up();
  const url = new URL(PG_ADMIN_URL);
  url.port = String(relay.port);
  url.pathname = `/${database}`;
  store = await PostgresStore.open(url.href, { connectTimeoutMs: 1_000, queryTimeoutMs: 3_000 });
  connector = new ScriptedConnector();
  bridge = await startBridge({
    config: testCoreConfig({ url: kit.url, ...creds }, await freePort()),
    connector,
    store,
  });
});

afterAll(async () => {
  await bridge?.stop(500);
  await relay?.cut();
  await kit?.close();
  await admin(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
});

async function readyz(): Promise<{
  status: number;
  body: { ready?: boolean; store?: { ok: boolean; reason?: string } };
}> {
  const r = await request(`${bridge.url}/readyz`);
  return { status: r.statusCode, body: (await r.body.json()) as never };
}

async function until(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 20_000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const message = (id: string) => ({
  client: { clientId: 'sc:1', profile: { displayName: 'Ann' } },
  messageId: id,
  text: `customer ${id}`,
});

describe('PostgreSQL outage under a running bridge', () => {
  it('503 and nothing acknowledged while it is gone; /readyz says why; recovers in place once it is back', async () => {
    const callbackUrl = `${bridge.url}/kit/callback`;
    expect((await readyz()).status).toBe(200);
    expect((await kit.sendCallback(callbackUrl, kit.agentMessage('sc:1', { text: 'before' }))).status).toBe(
      200,
    );
    await connector.push(message('m0'));
    await until(
      () => connector.delivered.length === 1 && kit.events.length === 1,
      'both legs before the outage',
    );

    await relay.cut();
    const during = kit.agentMessage('sc:1', { text: 'during' });
    expect((await kit.sendCallback(callbackUrl, during)).status).toBe(503);
    await expect(connector.push(message('m1'))).rejects.toThrow();
    await until(async () => (await readyz()).status === 503, '/readyz to turn 503');
    const down = await readyz();
    expect(down.body.ready).toBe(false);
    expect(down.body.store).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/PostgreSQL unreachable/),
    });

    await relay.up();
    // Kit and the platform send again what was refused; the process itself was never restarted.
    await until(
      async () => (await kit.sendCallback(callbackUrl, during)).status === 200,
      'the callback to be taken',
    );
    await until(
      () =>
        connector.push(message('m1')).then(
          () => true,
          () => false,
        ),
      'the message to be taken',
    );
    expect((await readyz()).body.store).toEqual({ ok: true });
    await until(
      () => connector.delivered.length === 2 && kit.events.length === 2,
      'both legs after the outage',
    );
    // Sent again, taken once: a duplicate of what the store committed is dropped at intake.
    expect(await connector.push(message('m1'))).toBe('duplicate');
    expect(connector.delivered.map((d) => d.message.text)).toEqual(['before', 'during']);
    expect(
      kit.events.map((e) => (e as { event_data: { message: { text: string } } }).event_data.message.text),
    ).toEqual(['customer m0', 'customer m1']);
  });
});
