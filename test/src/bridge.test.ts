/**
 * Both legs through a running Bridge over real HTTP: FakeKit on one side, the
 * ScriptedConnector (a complete, platform-less connector) on the other.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import os from 'node:os';
import { join } from 'node:path';
import { type Bridge, MemoryStore, type Store, startBridge } from '@kitbridge/core';
import { openSqliteStore } from '@kitbridge/store-sqlite';
import { FakeKit, freePort, ScriptedConnector, testCoreConfig } from '@kitbridge/testkit';
import { request } from 'undici';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';

let kit: FakeKit;
let connector: ScriptedConnector;
let bridge: Bridge;
let callbackUrl: string;
let storeKind: 'memory' | 'sqlite' = 'memory';
const tmp = mkdtempSync(join(os.tmpdir(), 'kitbridge-bridge-'));
let dbCount = 0;

async function makeStore(): Promise<Store> {
  return storeKind === 'memory' ? new MemoryStore() : openSqliteStore(join(tmp, `bridge-${++dbCount}.db`));
}

async function start(over: Parameters<typeof testCoreConfig>[2] = {}) {
  const port = await freePort();
  connector = new ScriptedConnector();
  bridge = await startBridge({
    config: testCoreConfig(kitCreds(), port, over),
    connector,
    store: await makeStore(),
  });
  callbackUrl = `${bridge.url}/kit/callback`;
}

function kitCreds() {
  return {
    url: kit.url,
    account: 'acme',
    apiToken: 'api-token-0123456789',
    channelUuid: 'chan-0001-uuid',
    salt: 'salt-abc',
  };
}

beforeEach(async () => {
  kit = new FakeKit({
    account: 'acme',
    apiToken: 'api-token-0123456789',
    channelUuid: 'chan-0001-uuid',
    salt: 'salt-abc',
  });
  await kit.start();
});

afterEach(async () => {
  await bridge?.stop(500);
  await kit.close();
});

const text = (clientId: string, messageId: string, body: string) => ({
  client: { clientId, profile: { displayName: 'Ann Lee', language: 'en' } },
  messageId,
  text: body,
});

async function get(url: string) {
  const r = await request(url);
  return { status: r.statusCode, headers: r.headers, body: Buffer.from(await r.body.arrayBuffer()) };
}

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// Every test runs on both stores: the in-memory one and a real SQLite file.
describe.each(['memory', 'sqlite'] as const)('with the %s store', (kind) => {
  beforeEach(() => {
    storeKind = kind;
  });

  describe('customer -> Kit', () => {
    it('posts a send_message event with a deterministic event_id and the profile', async () => {
      await start();
      expect(await connector.push(text('sc:1', 'm1', 'hello'))).toBe('accepted');
      await kit.waitForEvents(1);
      expect(kit.events[0]).toEqual({
        client_data: { client_id: 'sc:1', client_display_name: 'Ann Lee', client_language: 'en' },
        event_id: 'sc:1/m1',
        event_type: 'send_message',
        event_data: { message: { message_id: 'sc:1/m1', text: 'hello' } },
      });
    });

    it('drops a redelivered platform message', async () => {
      await start();
      expect(await connector.push(text('sc:1', 'm1', 'hello'))).toBe('accepted');
      expect(await connector.push(text('sc:1', 'm1', 'hello'))).toBe('duplicate');
      await bridge.relay.idle();
      expect(kit.events).toHaveLength(1);
    });

    it('hands Kit a signed media-proxy URL that streams the exact bytes, never the platform ref', async () => {
      await start();
      const bytes = Buffer.from(Array.from({ length: 300_000 }, (_, i) => i % 251));
      connector.files.set('secret-file-ref-xyz', { bytes, mimeType: 'image/jpeg', fileName: 'cat.jpg' });
      await connector.push({
        ...text('sc:2', 'm1', 'look'),
        items: [
          {
            type: 'media',
            kind: 'photo',
            ref: 'secret-file-ref-xyz',
            fileName: 'cat.jpg',
            mimeType: 'image/jpeg',
          },
        ],
      });
      await kit.waitForEvents(1);
      const item = (kit.events[0] as any).event_data.message.payload[0];
      expect(item.type).toBe('photo');
      expect(item.file_name).toBe('cat.jpg');
      expect(item.file_url).toMatch(new RegExp(`^${bridge.url}/media/`));
      expect(item.file_url).not.toContain('secret-file-ref-xyz');
      const got = await get(item.file_url);
      expect(got.status).toBe(200);
      expect(got.headers['content-type']).toBe('image/jpeg');
      expect(got.body.equals(bytes)).toBe(true);
      const tampered = await get(item.file_url.slice(0, -2) + (item.file_url.endsWith('A') ? 'BB' : 'AA'));
      expect(tampered.status).toBe(403);
    });

    it('keeps every message through a Kit outage, in order, with the same event_id on retries', async () => {
      await start();
      kit.outage('on');
      for (let i = 1; i <= 5; i++) await connector.push(text('sc:3', `m${i}`, `msg ${i}`));
      await new Promise((r) => setTimeout(r, 300));
      expect(kit.events).toHaveLength(0);
      kit.outage('off');
      await kit.waitForEvents(5);
      await bridge.relay.idle();
      expect(kit.events.map((e: any) => e.event_id)).toEqual([
        'sc:3/m1',
        'sc:3/m2',
        'sc:3/m3',
        'sc:3/m4',
        'sc:3/m5',
      ]);
    });

    it('tells Kit in the text of a file too large to relay, instead of a link that cannot work', async () => {
      await start();
      const MB = 1024 * 1024;
      connector.mediaLimits = {
        ...connector.mediaLimits,
        video: { ...connector.mediaLimits.video, maxDownloadBytes: 1 * MB },
      };
      connector.files.set('d1', { bytes: Buffer.from('small doc') });
      await connector.push({
        client: { clientId: 'sc:3' },
        messageId: 'm1',
        text: 'see attached',
        items: [
          { type: 'media', ref: 'v1', kind: 'video', fileName: 'big.mp4', size: 5 * MB },
          // Over KITBRIDGE_MEDIA_MAX_BYTES (50 MB in tests).
          { type: 'media', ref: 'p1', kind: 'photo', size: 60 * MB },
          { type: 'media', ref: 'd1', kind: 'document', fileName: 'small.txt', size: 9 },
        ],
      });
      await kit.waitForEvents(1);
      const message = (kit.events[0] as any).event_data.message;
      expect(message.text).toBe(
        'see attached\n' +
          '[video not relayed: big.mp4, 5.0 MB, over the 1.0 MB limit]\n' +
          '[photo not relayed: photo.jpg, 60.0 MB, over the 50.0 MB limit]',
      );
      expect(message.payload).toHaveLength(1);
      expect(message.payload[0]).toMatchObject({ type: 'document', file_name: 'small.txt' });
      expect((await get(message.payload[0].file_url)).body.toString()).toBe('small doc');
    });

    it('dead-letters an event Kit rejects and goes on with the next', async () => {
      await start();
      kit.rejectNext(1, { error: 'bad payload', code: 400 });
      await connector.push(text('sc:4', 'm1', 'first'));
      await connector.push(text('sc:4', 'm2', 'second'));
      await kit.waitForEvents(1);
      await bridge.relay.idle();
      expect(kit.events.map((e: any) => e.event_id)).toEqual(['sc:4/m2']);
      const dead = await bridge.store.list({ state: 'dead' });
      expect(dead.map((d) => d.key)).toEqual(['sc:4/m1']);
      expect(dead[0]?.lastError).toContain('bad payload');
    });
  });

  describe('client records', () => {
    const clientData = (n: number) => (kit.events[n] as { client_data: Record<string, unknown> }).client_data;

    it('sends what a plugin learned once with later messages, and the utm until Kit closes the conversation', async () => {
      await start();
      await connector.update({
        clientId: 'sc:7',
        address: { thread: 't-1' },
        profile: { utm: { source: 'google', campaign: 'spring' }, email: 'ann@example.com' },
      });
      await connector.push(text('sc:7', 'm1', 'first'));
      // A later message that says less keeps what is known.
      await connector.push({ client: { clientId: 'sc:7' }, messageId: 'm2', text: 'second' });
      await kit.waitForEvents(2);
      const known = {
        client_id: 'sc:7',
        client_display_name: 'Ann Lee',
        client_language: 'en',
        client_email: 'ann@example.com',
        utm: { source: 'google', campaign: 'spring' },
      };
      expect(clientData(0)).toEqual(known);
      expect(clientData(1)).toEqual(known);

      // The agent's answer goes to the address the plugin recorded.
      await kit.sendCallback(callbackUrl, kit.agentMessage('sc:7', { text: 'hello Ann' }));
      await connector.waitForDeliveries(1);
      expect(connector.delivered[0]?.target).toEqual({ clientId: 'sc:7', address: { thread: 't-1' } });

      await kit.sendCallback(callbackUrl, kit.closeConversation('sc:7', 'CLOSED_BY_AGENT'));
      await bridge.relay.idle();
      expect(await bridge.store.getClient('sc:7')).toMatchObject({
        conversation: 'closed',
        closeReason: 'CLOSED_BY_AGENT',
      });
      await connector.push({ client: { clientId: 'sc:7' }, messageId: 'm3', text: 'back again' });
      await kit.waitForEvents(3);
      const { utm: _utm, ...withoutUtm } = known;
      expect(clientData(2)).toEqual(withoutUtm);
      expect((await bridge.store.getClient('sc:7'))?.conversation).toBe('open');
    });
  });

  describe('Kit -> customer', () => {
    it('delivers a signed agent message once, even when Kit sends it twice', async () => {
      await start();
      const body = kit.agentMessage('sc:9', {
        text: 'How can I help?',
        sender: { sender_display_name: 'Bob' },
      });
      expect((await kit.sendCallback(callbackUrl, body)).status).toBe(200);
      expect((await kit.sendCallback(callbackUrl, body)).status).toBe(200);
      await connector.waitForDeliveries(1);
      await bridge.relay.idle();
      expect(connector.delivered).toHaveLength(1);
      expect(connector.delivered[0]?.message.text).toBe('How can I help?');
      expect(connector.delivered[0]?.target.clientId).toBe('sc:9');
    });

    it('prefixes the agent name when KITBRIDGE_SHOW_AGENT_NAME is on', async () => {
      await start({ showAgentName: true });
      await kit.sendCallback(
        callbackUrl,
        kit.agentMessage('sc:9', { text: 'Hi', sender: { sender_display_name: 'Bob' } }),
      );
      await connector.waitForDeliveries(1);
      expect(connector.delivered[0]?.message.text).toBe('Bob: Hi');
    });

    it.each(['valid', 'bearer', 'upper'] as const)('accepts the %s signature form', async (signature) => {
      await start();
      const r = await kit.sendCallback(callbackUrl, kit.agentMessage('sc:9', { text: 'x' }), { signature });
      expect(r.status).toBe(200);
    });

    it.each(['bad', 'none'] as const)(
      'answers 401 to a %s signature and delivers nothing',
      async (signature) => {
        await start();
        const r = await kit.sendCallback(callbackUrl, kit.agentMessage('sc:9', { text: 'x' }), { signature });
        expect(r.status).toBe(401);
        await new Promise((res) => setTimeout(res, 100));
        expect(connector.delivered).toHaveLength(0);
        expect(await bridge.store.list({})).toEqual([]);
      },
    );

    it('answers the channel test request (GET and POST) and refuses a bad one', async () => {
      await start();
      expect((await kit.sendTestRequest(callbackUrl, 'GET')).status).toBe(200);
      expect((await kit.sendTestRequest(callbackUrl, 'POST')).status).toBe(200);
      const bad = await request(callbackUrl, { method: 'GET', headers: { authorization: 'nope' } });
      expect(bad.statusCode).toBe(401);
      await bad.body.dump();
    });

    it('answers 400 to malformed JSON and to a body that fails the schema, 413 past 1 MiB', async () => {
      await start();
      const post = async (body: string, headers: Record<string, string> = {}) => {
        const r = await request(callbackUrl, {
          method: 'POST',
          body,
          headers: { 'content-type': 'application/json', ...headers },
        });
        await r.body.dump();
        return r.statusCode;
      };
      expect(await post('{not json')).toBe(400);
      const bad = { event_id: 'e1', event_type: 'send_message', client_data: { client_id: 'sc:1' } };
      expect(
        await post(JSON.stringify(bad), {
          authorization: createHash('md5').update('salt-abc:api-token-0123456789:e1').digest('hex'),
        }),
      ).toBe(400);
      expect(await post('x'.repeat(1024 * 1024 + 10))).toBe(413);
      expect(connector.delivered).toHaveLength(0);
    });

    it('acknowledges an unknown event type without delivering it', async () => {
      await start();
      const body = { event_id: 'u1', event_type: 'typing_started', client_data: { client_id: 'sc:1' } };
      expect((await kit.sendCallback(callbackUrl, body)).status).toBe(200);
      await bridge.relay.idle();
      expect(connector.delivered).toHaveLength(0);
    });

    it('tells the connector of a closed conversation with KITBRIDGE_CLOSE_MESSAGE', async () => {
      await start({ closeMessage: 'Thanks, bye' });
      await kit.sendCallback(callbackUrl, kit.closeConversation('sc:5', 'CLOSED_BY_AGENT'));
      await bridge.relay.idle();
      expect(connector.closed).toEqual([
        { target: { clientId: 'sc:5' }, reason: 'CLOSED_BY_AGENT', text: 'Thanks, bye' },
      ]);
    });

    it("retries a failing delivery and dead-letters 'blocked' at once", async () => {
      await start();
      connector.failNext('retry', 'permanent');
      await kit.sendCallback(callbackUrl, kit.agentMessage('sc:6', { text: 'one' }));
      await kit.sendCallback(callbackUrl, kit.agentMessage('sc:6', { text: 'two' }));
      await bridge.relay.idle();
      // 'one' failed with a retryable error, then 'blocked' killed it; 'two' went through.
      expect(connector.delivered.map((d) => d.message.text)).toEqual(['two']);
      const dead = await bridge.store.list({ state: 'dead' });
      expect(dead).toHaveLength(1);
      expect(dead[0]?.lastError).toBe('blocked by the customer');
    });

    describe('agent files', () => {
      let files: Server;
      let filesUrl: string;
      const big = Buffer.alloc(11 * 1024 * 1024, 7);
      const small = Buffer.from('%PDF-1.4 tiny');
      beforeEach(async () => {
        files = createServer((req, res) => {
          const body = req.url === '/big.jpg' ? big : small;
          res.writeHead(200, {
            'content-type': req.url === '/big.jpg' ? 'image/jpeg' : 'application/pdf',
            'content-length': body.length,
          });
          res.end(body);
        });
        await new Promise<void>((r) => files.listen(0, '127.0.0.1', r));
        filesUrl = `http://127.0.0.1:${(files.address() as { port: number }).port}`;
      });
      afterEach(() => new Promise<void>((r) => files.close(() => r())));

      it('streams a file to the connector, and turns one past the platform limit into a link', async () => {
        await start();
        const body = kit.agentMessage('sc:7', {
          text: 'here',
          payload: [
            { type: 'document', file_name: 'terms.pdf', file_url: `${filesUrl}/terms.pdf` },
            { type: 'photo', file_name: 'big.jpg', file_url: `${filesUrl}/big.jpg` },
          ],
        });
        await kit.sendCallback(callbackUrl, body);
        await connector.waitForDeliveries(1);
        const d = connector.delivered[0]!;
        expect(d.files).toHaveLength(1);
        expect(d.files[0]?.fileName).toBe('terms.pdf');
        expect(d.files[0]?.bytes.equals(small)).toBe(true);
        expect(d.message.notices).toEqual([`big.jpg (too large to send here): ${filesUrl}/big.jpg`]);
      });
    });
  });

  describe('health', () => {
    it('is ready once logged in to Kit and the connector is connected', async () => {
      await start();
      expect((await get(`${bridge.url}/healthz`)).status).toBe(200);
      const ready = await get(`${bridge.url}/readyz`);
      expect(ready.status).toBe(200);
      expect(JSON.parse(ready.body.toString())).toMatchObject({
        ready: true,
        kit: true,
        connector: { state: 'connected' },
      });
    });

    it('stays ready while Kit is down, and shows the backlog', async () => {
      await start();
      kit.outage('on');
      await connector.push(text('sc:8', 'm1', 'waiting'));
      await new Promise((r) => setTimeout(r, 100));
      const ready = await get(`${bridge.url}/readyz`);
      expect(ready.status).toBe(200);
      expect(JSON.parse(ready.body.toString()).outbox.inbound).toMatchObject({ pending: 1, clients: 1 });
      kit.outage('off');
      await kit.waitForEvents(1);
    });

    it('is not ready while Kit is unreachable at start, and becomes ready once it answers', async () => {
      kit.outage('on');
      await start();
      const before = await get(`${bridge.url}/readyz`);
      expect(before.status).toBe(503);
      expect(JSON.parse(before.body.toString())).toMatchObject({ ready: false, kit: false });
      kit.outage('off');
      const end = Date.now() + 10_000;
      while ((await get(`${bridge.url}/readyz`)).status !== 200) {
        if (Date.now() > end) throw new Error('never became ready');
        await new Promise((r) => setTimeout(r, 100));
      }
    });

    it('refuses to start when Kit rejects the credentials, naming what to check', async () => {
      const port = await freePort();
      const creds = { ...kitCreds(), apiToken: 'wrong-token-SECRET-9' };
      const err = await startBridge({
        config: testCoreConfig(creds, port),
        connector: new ScriptedConnector(),
        store: await makeStore(),
      }).catch((e: Error) => e);
      expect(String(err)).toContain('check KIT_ACCOUNT, KIT_API_TOKEN and KIT_CHANNEL_UUID');
      expect(String(err)).not.toContain('wrong-token-SECRET-9');
    });
  });
});

describe('client records across a restart (SQLite)', () => {
  it('keeps a recorded utm and address for the next process on the same file', async () => {
    const file = join(tmp, 'restart.db');
    const port = await freePort();
    const first = new ScriptedConnector();
    const b1 = await startBridge({
      config: testCoreConfig(kitCreds(), port),
      connector: first,
      store: await openSqliteStore(file),
    });
    await first.update({ clientId: 'sc:8', address: { thread: 't-8' }, profile: { utm: { source: 'qr' } } });
    await b1.stop(500);

    connector = new ScriptedConnector();
    bridge = await startBridge({
      config: testCoreConfig(kitCreds(), port),
      connector,
      store: await openSqliteStore(file),
    });
    await connector.push({ client: { clientId: 'sc:8' }, messageId: 'm1', text: 'hi' });
    await kit.waitForEvents(1);
    expect((kit.events[0] as { client_data: unknown }).client_data).toEqual({
      client_id: 'sc:8',
      utm: { source: 'qr' },
    });
    await kit.sendCallback(`${bridge.url}/kit/callback`, kit.agentMessage('sc:8', { text: 'hello' }));
    await connector.waitForDeliveries(1);
    expect(connector.delivered[0]?.target.address).toEqual({ thread: 't-8' });
  });
});
