/**
 * The Slack connector inside a real bridge (core's relay, outbox, media proxy
 * and HTTP server, memory store) between FakeKit and FakeSlack, in both modes:
 * a customer's DM and file reach Kit once, Kit fetches the file through the
 * media proxy, the agent's reply reaches the DM under the agent's name, and
 * /readyz follows the Socket Mode connection.
 */
import { type Bridge, createLogger, startBridge } from '@kitbridge/core';
import { FakeKit, FakeSlack, freePort, testCoreConfig } from '@kitbridge/testkit';
import { request } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { testConnector } from './setup.js';

const CREDS = {
  account: 'acme',
  apiToken: 'bridge-api-token-01',
  channelUuid: 'bridge-chan-01',
  salt: 'bridge-salt-01',
};

let kit: FakeKit;
let slack: FakeSlack;
let bridge: Bridge | undefined;
let port: number;

beforeEach(async () => {
  kit = new FakeKit(CREDS);
  await kit.start();
  slack = await new FakeSlack({ redeliverAfterMs: 300 }).start();
  port = await freePort();
});

afterEach(async () => {
  await bridge?.stop({ graceMs: 500, drainMs: 0 });
  bridge = undefined;
  await slack.close();
  await kit.close();
});

async function start(mode: 'socket' | 'http'): Promise<void> {
  const config = testCoreConfig({ url: kit.url, ...CREDS }, port, { showAgentName: true });
  const logger = createLogger({ level: 'silent' });
  bridge = await startBridge({ config, connector: testConnector(slack, { mode, logger }), logger });
}

async function readyz(): Promise<number> {
  const r = await request(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
  if (!r) return 0;
  await r.body.dump();
  return r.statusCode;
}

async function until(check: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

type KitEvent = {
  client_data: { client_id: string };
  event_data: { message: { text?: string; payload?: { file_url: string }[] } };
};

for (const mode of ['socket', 'http'] as const) {
  describe(`a bridge on Slack (${mode === 'socket' ? 'Socket Mode' : 'Events API over HTTP'})`, () => {
    it('a DM and a file reach Kit once; the file through the media proxy; the reply under the agent name', async () => {
      await start(mode);
      await until(async () => (await readyz()) === 200, 'ready');
      const ann = slack.user({ name: 'ann', real_name: 'Ann Lee' });
      const png = Buffer.alloc(150_000, 7);
      const events = [
        slack.dm(ann, 'Hello *there*'),
        slack.dm(ann, {
          text: 'the receipt',
          files: [{ name: 'receipt.png', bytes: png, mimetype: 'image/png' }],
        }),
      ];
      for (const e of events) {
        if (mode === 'socket') slack.sendEnvelope(e);
        else expect((await slack.sendEvent(`http://127.0.0.1:${port}/slack/events`, e)).status).toBe(200);
      }
      // Slack's own retry of the first one changes nothing.
      if (mode === 'socket') slack.sendEnvelope(events[0]!);
      else
        expect(
          (await slack.sendEvent(`http://127.0.0.1:${port}/slack/events`, events[0]!, { retryNum: 1 }))
            .status,
        ).toBe(200);
      await kit.waitForEvents(2, 10_000);
      await new Promise((r) => setTimeout(r, 300));
      const got = kit.events as KitEvent[];
      expect(got.map((e) => e.event_data.message.text)).toEqual(['Hello there', 'the receipt']);
      const clientId = `sl:${slack.teamId}:${ann.id}`;
      expect(got.every((e) => e.client_data.client_id === clientId)).toBe(true);
      // The late profile (users.info, after the ack): the name, the language, the picture through the proxy.
      expect(got[0]!.client_data).toMatchObject({ client_display_name: 'Ann Lee', client_language: 'en-US' });
      if (mode === 'socket')
        expect(slack.callsOf('users.info')[0]!.at).toBeGreaterThanOrEqual(slack.envelopes[0]!.acked!.at);

      const link = got[1]!.event_data.message.payload![0]!.file_url;
      const file = await request(link);
      expect(file.statusCode).toBe(200);
      expect(Buffer.from(await file.body.arrayBuffer()).equals(png)).toBe(true);

      const reply = kit.agentMessage(clientId, {
        text: 'Thanks, Ann: refunded.',
        sender: { sender_display_name: 'Bob', sender_type: 'agent' },
      });
      expect((await kit.sendCallback(`http://127.0.0.1:${port}/kit/callback`, reply)).status).toBe(200);
      const [sent] = await slack.waitForDelivered(1, slack.dmChannelId(ann.id), 10_000);
      expect(sent).toMatchObject({ text: 'Thanks, Ann: refunded.', username: 'Bob' });
    });
  });
}

describe('a bridge on Slack (Socket Mode): /readyz follows the socket', () => {
  it('503 while the socket is away, 200 once it is back; what was sent meanwhile reaches Kit once', async () => {
    await start('socket');
    await until(async () => (await readyz()) === 200, 'ready');
    for (let i = 0; i < 3; i++) slack.failNext('apps.connections.open', { status: 503 });
    slack.dropSocket();
    await until(async () => (await readyz()) === 503, 'not ready while reconnecting');
    const bo = slack.user({ name: 'bo' });
    slack.sendEnvelope(slack.dm(bo, 'while away'));
    await until(async () => (await readyz()) === 200, 'ready again');
    await kit.waitForEvents(1, 10_000);
    await new Promise((r) => setTimeout(r, 300));
    expect((kit.events as KitEvent[]).map((e) => e.event_data.message.text)).toEqual(['while away']);
  });
});
