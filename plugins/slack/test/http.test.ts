/**
 * The Events API over HTTP: FakeSlack POSTs signed events (v0 over Slack's own
 * JSON escaping) to /slack/events on core's HTTP server, the connector answers
 * with the real WebClient. The answer is a 2xx only once core stored the
 * message; everything else Slack would retry.
 */
import { randomBytes } from 'node:crypto';
import { FakeSlack, slackJson, slackSignature } from '@kitbridge/testkit';
import { request } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { SlackConnector } from '../src/connector.js';
import { EVENTS_BODY_LIMIT_BYTES } from '../src/events.js';
import { agentMessage, sleep, type TestContext, TestDelivery, testConnector, webhookHost } from './setup.js';

let fake: FakeSlack;
let tc: TestContext;
let url: string;
let closeHost: () => Promise<void>;
let conn: SlackConnector;

beforeEach(async () => {
  fake = await new FakeSlack().start();
  const host = await webhookHost({ captureLogs: true });
  tc = host.tc;
  url = `${host.url}/slack/events`;
  closeHost = host.close;
});

afterEach(async () => {
  tc.abort.abort();
  await conn?.stop();
  await closeHost();
  await fake.close();
});

async function start(extra: Parameters<typeof testConnector>[1] = {}): Promise<SlackConnector> {
  conn = testConnector(fake, { mode: 'http', ...extra });
  await conn.start(tc.ctx);
  return conn;
}

/** POSTs raw bytes with the given headers (for what FakeSlack would never send). */
async function post(body: string | Buffer, headers: Record<string, string>) {
  const res = await request(url, {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/json', ...headers },
  });
  return { status: res.statusCode, body: await res.body.text() };
}

function signed(body: string, ts = Math.floor(Date.now() / 1000)) {
  return {
    'x-slack-request-timestamp': String(ts),
    'x-slack-signature': slackSignature(fake.signingSecret, ts, body),
  };
}

describe('Slack events over HTTP', () => {
  it('a signed DM is answered 200 only after core stored it; the reply goes back into the DM', async () => {
    await start();
    expect(conn.status()).toEqual({ state: 'connected' });
    expect(tc.routes.has('POST /slack/events')).toBe(true);
    const ann = fake.user({ name: 'ann', real_name: 'Ann Lee' });
    const release = tc.hold();
    let answered = 0;
    const sent = fake
      .sendEvent(url, fake.dm(ann, 'Hi! *Order* 1042 has not arrived &amp; I worry'))
      .then((r) => {
        answered = Date.now();
        return r;
      });
    await tc.until(() => tc.attempts.length === 1, 5_000, 'receive');
    await sleep(300);
    expect(answered).toBe(0);
    const released = Date.now();
    release();
    const r = await sent;
    expect(r.status).toBe(200);
    expect(answered).toBeGreaterThanOrEqual(released);
    const msg = tc.received[0]!;
    expect(msg).toMatchObject({
      client: { clientId: `sl:${fake.teamId}:${ann.id}`, address: { channel: fake.dmChannelId(ann.id) } },
      text: 'Hi! Order 1042 has not arrived & I worry',
    });
    // No Slack call before the answer: the profile comes later.
    expect(fake.calls.map((c) => c.method)).toEqual(['auth.test']);

    await conn.deliver(
      { clientId: msg.client.clientId, address: msg.client.address! },
      agentMessage({ text: 'On its way: <b>Friday</b> & no later' }),
      new TestDelivery().next(),
    );
    const [reply] = fake.delivered(fake.dmChannelId(ann.id));
    expect(reply?.text).toBe('On its way: &lt;b&gt;Friday&lt;/b&gt; &amp; no later');
  });

  it('a bad signature, a stale or far-future timestamp, none at all, or a re-serialised body: 401, nothing stored', async () => {
    await start();
    const bea = fake.user({ name: 'bea' });
    for (const signature of ['bad', 'stale', 'none'] as const) {
      const r = await fake.sendEvent(url, fake.dm(bea, `forged ${signature}`), { signature });
      expect(r.status, signature).toBe(401);
    }
    const future = await fake.sendEvent(url, fake.dm(bea, 'from the future'), {
      timestamp: Math.floor(Date.now() / 1000) + 6 * 60,
    });
    expect(future.status).toBe(401);
    // Slack signs its own bytes (`\/`, `\uXXXX`); the same JSON written by JSON.stringify does not match.
    const envelope = fake.eventCallback(fake.dm(bea, 'naïve / raw'));
    const exact = slackJson(envelope);
    const ts = Math.floor(Date.now() / 1000);
    expect((await post(JSON.stringify(envelope), { ...signed(exact, ts) })).status).toBe(401);
    expect(
      (await post(exact, { 'x-slack-request-timestamp': 'soon', 'x-slack-signature': 'v0=zz' })).status,
    ).toBe(401);
    expect(tc.attempts).toHaveLength(0);
    expect((await post(exact, signed(exact, ts))).status).toBe(200);
    expect(tc.received.map((m) => m.text)).toEqual(['naïve / raw']);
  });

  it('answers the url_verification challenge', async () => {
    await start();
    const r = await fake.sendUrlVerification(url);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toEqual({ challenge: r.challenge });
    expect((await fake.sendUrlVerification(url, { signature: 'bad' })).status).toBe(401);
  });

  it('413 past the size limit, 400 for a signed body that is not an event', async () => {
    await start();
    const huge = Buffer.alloc(EVENTS_BODY_LIMIT_BYTES + 10, 0x20);
    expect((await post(huge, signed(huge.toString()))).status).toBe(413);
    for (const body of ['not json', '[1,2]', '"x"', 'null', '{"type":"event_callback","event":"x"}']) {
      expect((await post(body, signed(body))).status, body).toBe(400);
    }
    // Signed and well-formed, but nothing to store: acknowledged.
    const other = '{"type":"app_rate_limited","minute_rate_limited":1}';
    expect((await post(other, signed(other))).status).toBe(200);
    expect(tc.attempts).toHaveLength(0);
  });

  it("Slack's retries (x-slack-retry-num, same event_id) are duplicates: answered 200, received once", async () => {
    await start();
    const cy = fake.user({ name: 'cy' });
    const envelope = fake.eventCallback(fake.dm(cy, 'only once please'));
    const first = await fake.sendEvent(url, envelope);
    const retry1 = await fake.sendEvent(url, envelope, { retryNum: 1, retryReason: 'http_timeout' });
    const retry2 = await fake.sendEvent(url, envelope, { retryNum: 2, retryReason: 'http_error' });
    expect([first.status, retry1.status, retry2.status]).toEqual([200, 200, 200]);
    expect(tc.attempts).toHaveLength(3);
    expect(tc.received).toHaveLength(1);
    // Over Socket Mode or a second event_id for the same message (message and app_mention): still the same id.
    const again = await fake.sendEvent(url, { ...envelope, event_id: 'Ev0OTHER01' });
    expect(again.status).toBe(200);
    expect(new Set(tc.attempts.map((m) => m.messageId)).size).toBe(1);
  });

  it('a store failure gives no 2xx, so Slack retries, and the retry is stored once', async () => {
    await start();
    const dee = fake.user({ name: 'dee' });
    tc.failNext(2);
    const attempts = await fake.deliverEvent(url, fake.dm(dee, 'the store was down'), {
      retryDelaysMs: [50, 50, 50],
    });
    expect(attempts.map((a) => a.status)).toEqual([500, 500, 200]);
    expect(tc.attempts).toHaveLength(3);
    expect(tc.received.map((m) => m.text)).toEqual(['the store was down']);
  });

  it("echo loop prevention: the app's own replies that Slack echoes back, and other bots, never reach Kit", async () => {
    await start();
    fake.echoBotMessages = true;
    fake.requestUrl = url;
    const eli = fake.user({ name: 'eli' });
    await fake.sendEvent(url, fake.dm(eli, 'ping'));
    expect(tc.received).toHaveLength(1);
    await conn.deliver(
      { clientId: tc.received[0]!.client.clientId, address: tc.received[0]!.client.address! },
      agentMessage({ text: 'pong' }),
      new TestDelivery().next(),
    );
    const dm = fake.dmChannelId(eli.id);
    await fake.sendEvent(url, fake.botMessage(dm, { text: 'a webhook integration' }));
    await tc.until(
      () => tc.logLines.filter((l) => l.includes('a bot or the app itself')).length >= 2,
      5_000,
      'the echo and the bot message to be ignored',
    );
    expect(tc.attempts).toHaveLength(1);
  });

  it('answers 503 while Slack is unreachable at start (Slack retries), then stores once identified', async () => {
    for (let i = 0; i < 100; i++) fake.failNext('auth.test', { status: 503 });
    await start({ connectBackoff: { baseMs: 20, maxMs: 40 } });
    expect(conn.status()).toMatchObject({ state: 'reconnecting', code: 'network' });
    const fay = fake.user({ name: 'fay' });
    const early = await fake.sendEvent(url, fake.dm(fay, 'too early'));
    expect(early.status).toBe(503);
    expect(tc.attempts).toHaveLength(0);
    fake.clearFailures();
    await tc.until(() => conn.status().state === 'connected', 5_000, 'connected');
    expect((await fake.sendEvent(url, fake.dm(fay, 'now'))).status).toBe(200);
    expect(tc.received.map((m) => m.text)).toEqual(['now']);
  });

  it('stopping: 503 and the event stays with Slack', async () => {
    await start();
    tc.abort.abort();
    const r = await fake.sendEvent(url, fake.dm(fake.user({}), 'while stopping'));
    expect(r.status).toBe(503);
    expect(tc.attempts).toHaveLength(0);
  });

  it('writes no secret into its logs', async () => {
    await start();
    await fake.sendEvent(url, fake.dm(fake.user({}), 'hello'), { signature: 'bad' });
    await fake.sendEvent(url, fake.dm(fake.user({}), `random ${randomBytes(4).toString('hex')}`));
    const all = tc.logLines.join('');
    for (const s of [fake.botToken, fake.signingSecret, fake.appToken]) expect(all.includes(s)).toBe(false);
  });
});
