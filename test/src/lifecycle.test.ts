/**
 * Start and stop as the routes see them: while the connector is still starting
 * an unknown path is 503 (its webhook route is not there yet, and a 404 would
 * not be retried); on stop /readyz turns 503 at once while callbacks, webhooks
 * and media links are still served for a drain window, and everything answered
 * 200 is in the store before it closes.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import {
  type Bridge,
  type ConnectorContext,
  RetryableDeliveryError,
  readBody,
  sendText,
  startBridge,
} from '@kitbridge/core';
import { openSqliteStore, SqliteStore } from '@kitbridge/store-sqlite';
import { FakeKit, freePort, ScriptedConnector, testCoreConfig } from '@kitbridge/testkit';
import { request } from 'undici';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';

const CREDS = {
  account: 'acme',
  apiToken: 'life-api-token-0001',
  channelUuid: 'life-chan-01',
  salt: 'life-salt',
};
const tmp = mkdtempSync(join(os.tmpdir(), 'kitbridge-lifecycle-'));
let kit: FakeKit;
const bridges: Bridge[] = [];

/** A ScriptedConnector with a webhook route of its own, added in start() as plugins do; start waits for `open()`. */
class HookConnector extends ScriptedConnector {
  private release!: () => void;
  private readonly gate = new Promise<void>((r) => {
    this.release = r;
  });

  open(): void {
    this.release();
  }

  override async start(ctx: ConnectorContext): Promise<void> {
    await this.gate;
    ctx.route('POST', '/scripted/hook', async (req, res) => {
      if (ctx.signal.aborted) {
        req.resume();
        return sendText(res, 503, 'Service Unavailable');
      }
      const m = JSON.parse((await readBody(req, 64 * 1024)).toString('utf8'));
      await this.push({ client: { clientId: m.client }, messageId: m.id, text: m.text });
      sendText(res, 200, 'OK');
    });
    await super.start(ctx);
  }
}

async function send(url: string, method = 'GET', body?: unknown) {
  const r = await request(url, {
    method: method as 'GET',
    ...(body ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {}),
  });
  return { status: r.statusCode, headers: r.headers, body: Buffer.from(await r.body.arrayBuffer()) };
}

beforeEach(async () => {
  kit = new FakeKit(CREDS);
  await kit.start();
});

afterEach(async () => {
  for (const b of bridges.splice(0)) await b.stop({ graceMs: 500, drainMs: 0 });
  await kit.close();
});

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('while the connector starts', () => {
  it('answers an unknown path 503 with Retry-After, and 404 once started', async () => {
    const port = await freePort();
    const connector = new HookConnector();
    const started = startBridge({ config: testCoreConfig({ url: kit.url, ...CREDS }, port), connector });
    const base = `http://127.0.0.1:${port}`;
    const end = Date.now() + 10_000;
    for (;;) {
      const up = await send(`${base}/healthz`).catch(() => undefined);
      if (up?.status === 200) break;
      if (Date.now() > end) throw new Error('the server did not listen');
      await new Promise((r) => setTimeout(r, 20));
    }
    const early = await send(`${base}/scripted/hook`, 'POST', { client: 'sc:1', id: 'm1', text: 'hi' });
    expect(early.status).toBe(503);
    expect(early.headers['retry-after']).toBeDefined();
    // Core routes are there from the start.
    expect((await send(`${base}/kit/callback`, 'PUT')).status).toBe(405);

    connector.open();
    bridges.push(await started);
    expect(
      (await send(`${base}/scripted/hook`, 'POST', { client: 'sc:1', id: 'm1', text: 'hi' })).status,
    ).toBe(200);
    expect((await send(`${base}/no/such/path`)).status).toBe(404);
    await kit.waitForEvents(1);
  });
});

describe('stopping', () => {
  it("refuses to start on a store that holds another connector's items", async () => {
    const file = join(tmp, 'one-connector.db');
    const config = testCoreConfig({ url: kit.url, ...CREDS }, await freePort());
    const first = await startBridge({
      config,
      connector: new ScriptedConnector(),
      store: await openSqliteStore(file),
    });
    await first.stop({ graceMs: 0, drainMs: 0 });
    class Other extends ScriptedConnector {
      override readonly name = 'other';
    }
    const err = await startBridge({
      config: testCoreConfig({ url: kit.url, ...CREDS }, await freePort()),
      connector: new Other(),
      store: await openSqliteStore(file),
    }).catch((e: Error) => e);
    expect((err as Error).message).toBe(
      `the store sqlite:${file} holds the scripted connector's items; give the other connector a store of its own`,
    );
    // The same connector again (a restart, another replica) is welcome.
    const again = await startBridge({
      config,
      connector: new ScriptedConnector(),
      store: await openSqliteStore(file),
    });
    await again.stop({ graceMs: 0, drainMs: 0 });
  });

  it('turns /readyz 503 first, then still serves callbacks, webhooks and media for the drain window', async () => {
    const file = join(tmp, 'drain.db');
    const port = await freePort();
    const connector = new HookConnector();
    connector.open();
    const bridge = await startBridge({
      config: testCoreConfig({ url: kit.url, ...CREDS }, port, {
        drainMs: 400,
        // Kit stays down through the drain: no dead letters meanwhile.
        outbox: { concurrency: 8, maxAttempts: 1_000, maxAgeMs: 60_000, backoff: { baseMs: 20, maxMs: 200 } },
      }),
      connector,
      store: await openSqliteStore(file),
    });
    const bytes = Buffer.from('a file the agent opens while the bridge stops');
    connector.files.set('file-1', { bytes, mimeType: 'image/png', fileName: 'a.png' });
    await connector.push({
      client: { clientId: 'sc:1' },
      messageId: 'm0',
      items: [{ type: 'media', kind: 'photo', ref: 'file-1', fileName: 'a.png', mimeType: 'image/png' }],
    });
    await kit.waitForEvents(1);
    const fileUrl = (kit.events[0] as any).event_data.message.payload[0].file_url as string;
    // From here on, neither leg gets through: what is accepted must wait in the store.
    kit.outage('on');
    connector.failNext(new RetryableDeliveryError('flood wait', 2_000));

    const began = Date.now();
    const stopped = bridge.stop({ graceMs: 2_000 });
    const ready = await send(`${bridge.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(JSON.parse(ready.body.toString())).toMatchObject({ ready: false, stopping: true });

    const cb = await kit.sendCallback(
      `${bridge.url}/kit/callback`,
      kit.agentMessage('sc:1', { text: 'late' }),
    );
    expect(cb.status).toBe(200);
    const hook = await send(`${bridge.url}/scripted/hook`, 'POST', {
      client: 'sc:2',
      id: 'm9',
      text: 'late too',
    });
    expect(hook.status).toBe(200);
    const media = await send(fileUrl);
    expect(media.status).toBe(200);
    expect(media.body.equals(bytes)).toBe(true);
    expect((await send(`${bridge.url}/healthz`)).status).toBe(200);

    await stopped;
    expect(Date.now() - began).toBeGreaterThanOrEqual(400);
    await expect(send(`${bridge.url}/healthz`)).rejects.toThrow();

    // Everything answered 200 is in the store.
    const after = SqliteStore.open(file, { readonly: true });
    const inbound = (await after.pending('inbound')).map((i) => i.key);
    const outbound = (await after.pending('outbound')).map(
      (i) => (i.payload as any).event.event_data.message.text,
    );
    await after.close();
    expect(inbound).toContain('sc:2/m9');
    expect(outbound).toEqual(['late']);

    // ...and is delivered by the next process.
    kit.outage('off');
    const next = new HookConnector();
    next.open();
    bridges.push(
      await startBridge({
        config: testCoreConfig({ url: kit.url, ...CREDS }, port),
        connector: next,
        store: await openSqliteStore(file),
      }),
    );
    await next.waitForDeliveries(1);
    expect(next.delivered.map((d) => d.message.text)).toEqual(['late']);
    await kit.waitForEvents(2);
    expect(kit.events.map((e: any) => e.event_id)).toContain('sc:2/m9');
    expect(connector.delivered).toHaveLength(0);
  });
});
