/**
 * Start as the routes see it: while the connector is still starting an unknown
 * path is 503 (its webhook route is not there yet, and a 404 would not be retried).
 */
import { type Bridge, type ConnectorContext, readBody, sendText, startBridge } from '@kitbridge/core';
import { FakeKit, freePort, ScriptedConnector, testCoreConfig } from '@kitbridge/testkit';
import { request } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

const CREDS = {
  account: 'acme',
  apiToken: 'life-api-token-0001',
  channelUuid: 'life-chan-01',
  salt: 'life-salt',
};
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
  for (const b of bridges.splice(0)) await b.stop(500);
  await kit.close();
});

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
