/**
 * GET /metrics and the log fields through a running Bridge: real grammY against
 * the fake Bot API, FakeKit on the other side, over real HTTP. Messages go both
 * ways, some are duplicated, refused, delayed or rate limited, and the counters,
 * gauges and log lines must say so.
 */
import { Writable } from 'node:stream';
import { type Bridge, createLogger, startBridge } from '@kitbridge/core';
import { TelegramConnector } from '@kitbridge/telegram';
import { FakeKit, FakeTelegram, freePort, testCoreConfig, tgUser } from '@kitbridge/testkit';
import { request } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

const creds = {
  account: 'acme',
  apiToken: 'api-token-0123456789',
  channelUuid: 'chan-0001-uuid',
  salt: 'salt-abc',
};
const metricsToken = 'metrics-token-0123456789abcdef';
const alice = tgUser(5150, 'Alice');

let kit: FakeKit;
let tg: FakeTelegram;
let bridge: Bridge | undefined;
let lines: Record<string, unknown>[];

beforeEach(async () => {
  kit = new FakeKit(creds);
  await kit.start();
  tg = await new FakeTelegram().start();
  lines = [];
  const port = await freePort();
  const logger = createLogger({
    level: 'debug',
    secrets: [creds.apiToken, creds.salt, tg.token, metricsToken],
    destination: new Writable({
      write(chunk, _enc, cb) {
        lines.push(JSON.parse(String(chunk)) as Record<string, unknown>);
        cb();
      },
    }),
  });
  const connector = new TelegramConnector({
    token: tg.token,
    apiRoot: tg.apiRoot,
    pacing: { perChatMs: 5, globalMs: 1 },
    polling: { timeoutSeconds: 2, backoff: { baseMs: 20, maxMs: 100 } },
    autoRetry: { maxRetryAttempts: 2, maxDelaySeconds: 5 },
  });
  const base = testCoreConfig({ url: kit.url, ...creds }, port);
  bridge = await startBridge({
    config: { ...base, metricsToken, outbox: { ...base.outbox, maxAttempts: 1_000 } },
    connector,
    logger,
  });
});

afterEach(async () => {
  await bridge?.stop(500);
  bridge = undefined;
  await tg.close();
  await kit.close();
});

async function scrape(): Promise<string> {
  const r = await request(`${bridge!.url}/metrics`, { headers: { authorization: `Bearer ${metricsToken}` } });
  expect(r.statusCode).toBe(200);
  expect(r.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
  return r.body.text();
}

/** The value of the series `name{labels}` (labels in any order), undefined when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}

/** Scrapes until `check` holds (the backlog gauges are cached for 2 s; counters are not). */
async function scrapeUntil(check: (text: string) => boolean, what: string): Promise<string> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const text = await scrape();
    if (check(text)) return text;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const inbound = { leg: 'inbound', platform: 'telegram' };
const outbound = { leg: 'outbound', platform: 'telegram' };

describe('GET /metrics through a running bridge', () => {
  it('wants the bearer token', async () => {
    const none = await request(`${bridge!.url}/metrics`);
    expect(none.statusCode).toBe(401);
    expect(await none.body.text()).toBe('Unauthorized');
    const wrong = await request(`${bridge!.url}/metrics`, { headers: { authorization: 'Bearer nope' } });
    expect(wrong.statusCode).toBe(401);
    await wrong.body.dump();
  });

  it('counts both legs, duplicates, failures, dead letters, the backlog, 429s, media and Kit logins', async () => {
    // Customer -> Kit: one message, then the same Telegram message again (a redelivery).
    const first = tg.textFrom(alice, 'one');
    await kit.waitForEvents(1);
    tg.pushUpdate({ message: first.message! });
    await scrapeUntil((t) => sample(t, 'kitbridge_duplicates_dropped_total', inbound) === 1, 'the duplicate');

    // Kit refuses one: a dead letter at once.
    kit.rejectNext(1, { error: 'client_id is banned', code: 400 });
    tg.textFrom(alice, 'refused');
    await scrapeUntil(
      (t) => sample(t, 'kitbridge_dead_letters_total', { ...inbound, reason: 'permanent' }) === 1,
      'the inbound dead letter',
    );

    // Kit is down: the message waits in the outbox, and the gauges show it.
    kit.outage('on');
    const waiting = tg.textFrom(alice, 'waits');
    const waitingId = `tg:5150/${(waiting.message as { message_id: number }).message_id}`;
    const during = await scrapeUntil(
      (t) =>
        sample(t, 'kitbridge_outbox_pending', inbound) === 1 &&
        (sample(t, 'kitbridge_delivery_failures_total', { ...inbound, class: 'transient' }) ?? 0) >= 1,
      'the backlog',
    );
    expect(sample(during, 'kitbridge_outbox_pending_clients', inbound)).toBe(1);
    expect(sample(during, 'kitbridge_outbox_oldest_pending_age_seconds', inbound)).toBeGreaterThan(0);
    kit.outage('off');
    await kit.waitForEvents(2);
    await scrapeUntil((t) => sample(t, 'kitbridge_outbox_pending', inbound) === 0, 'the backlog to clear');

    // A photo, fetched by Kit through the media proxy; and a tampered link.
    const photo = Buffer.alloc(50_000, 7);
    tg.photoFrom(alice, photo);
    await kit.waitForEvents(3);
    const url = String((kit.events[2] as any).event_data.message.payload[0].file_url);
    const got = await request(url);
    expect(got.statusCode).toBe(200);
    expect(Buffer.from(await got.body.arrayBuffer())).toEqual(photo);
    const forged = await request(`${bridge!.url}/media/forged-token`);
    expect(forged.statusCode).toBe(403);
    await forged.body.dump();

    // Kit -> customer: one reply waits out a 429 inside the call, one is refused (blocked).
    const callbackUrl = `${bridge!.url}/kit/callback`;
    tg.failNext('sendMessage', { error_code: 429, retry_after: 1 });
    await kit.sendCallback(callbackUrl, kit.agentMessage('tg:5150', { text: 'after a wait' }));
    await scrapeUntil((t) => sample(t, 'kitbridge_messages_delivered_total', outbound) === 1, 'the reply');
    expect(tg.delivered.map((c) => c.params['text'])).toEqual(['after a wait']);
    tg.failNext('sendMessage', { error_code: 403, description: 'Forbidden: bot was blocked by the user' });
    await kit.sendCallback(callbackUrl, kit.agentMessage('tg:5150', { text: 'never seen' }));

    const text = await scrapeUntil(
      (t) =>
        sample(t, 'kitbridge_dead_letters_total', { ...outbound, reason: 'permanent' }) === 1 &&
        sample(t, 'kitbridge_messages_delivered_total', inbound) === 4 &&
        sample(t, 'kitbridge_media_requests_total', { status: '200' }) === 1,
      'the outbound dead letter, and the agent told of it',
    );
    // Inbound: one, refused, waits, the photo, and the agent's notice of the reply that could not
    // reach the customer (KITBRIDGE_NOTIFY_AGENT); the redelivery dropped.
    expect(kit.events).toHaveLength(4);
    expect(sample(text, 'kitbridge_messages_received_total', inbound)).toBe(5);
    expect(sample(text, 'kitbridge_messages_delivered_total', inbound)).toBe(4);
    expect(sample(text, 'kitbridge_delivery_latency_seconds_count', inbound)).toBe(4);
    expect(sample(text, 'kitbridge_delivery_failures_total', { ...inbound, class: 'permanent' })).toBe(1);
    expect(sample(text, 'kitbridge_outbox_dead', inbound)).toBe(1);
    // Outbound: two callbacks, one delivered, one dead; the 429 was waited out, not a failed attempt.
    expect(sample(text, 'kitbridge_messages_received_total', outbound)).toBe(2);
    expect(sample(text, 'kitbridge_messages_delivered_total', outbound)).toBe(1);
    expect(sample(text, 'kitbridge_delivery_failures_total', { ...outbound, class: 'permanent' })).toBe(1);
    expect(sample(text, 'kitbridge_delivery_failures_total', { ...outbound, class: 'rate_limited' })).toBe(0);
    expect(sample(text, 'kitbridge_platform_rate_limits_total', { platform: 'telegram' })).toBe(1);
    expect(sample(text, 'kitbridge_platform_rate_limit_wait_seconds_total', { platform: 'telegram' })).toBe(
      1,
    );
    // Media: the photo's bytes and both answers.
    expect(sample(text, 'kitbridge_media_streamed_bytes_total')).toBe(photo.length);
    expect(sample(text, 'kitbridge_media_requests_total', { status: '403' })).toBe(1);
    // Kit, the connection, the process.
    expect(sample(text, 'kitbridge_kit_auth_total', { operation: 'login', outcome: 'success' })).toBe(1);
    expect(sample(text, 'kitbridge_kit_logged_in')).toBe(1);
    expect(sample(text, 'kitbridge_ready', { platform: 'telegram' })).toBe(1);
    expect(sample(text, 'kitbridge_connector_state', { platform: 'telegram', state: 'connected' })).toBe(1);
    expect(sample(text, 'kitbridge_connector_state', { platform: 'telegram', state: 'failed' })).toBe(0);
    expect(sample(text, 'process_resident_memory_bytes')).toBeGreaterThan(0);
    // Labels are bounded: no client id, no event id, no secret.
    for (const s of ['tg:5150', 'tg%3A5150', creds.apiToken, tg.token, metricsToken])
      expect(text).not.toContain(s);

    // The log: one message can be followed by its event id, every line saying leg and client.
    const ofWaiting = lines.filter((l) => l['eventId'] === waitingId);
    expect(ofWaiting.map((l) => l['msg'])).toEqual(
      expect.arrayContaining(['Kit call failed; retrying', 'delivery failed; will retry']),
    );
    for (const l of ofWaiting) expect(l).toMatchObject({ leg: 'inbound', clientId: 'tg:5150' });
    const aboutDeliveries = lines.filter((l) =>
      ['Kit call failed; retrying', 'delivery failed; will retry', 'dead letter'].includes(String(l['msg'])),
    );
    expect(aboutDeliveries.filter((l) => l['msg'] === 'dead letter')).toHaveLength(2);
    for (const l of aboutDeliveries) {
      expect(l['leg'], JSON.stringify(l)).toMatch(/^(inbound|outbound)$/);
      expect(l['clientId'], JSON.stringify(l)).toBe('tg:5150');
      expect(typeof l['eventId'], JSON.stringify(l)).toBe('string');
    }
    const deadOut = aboutDeliveries.find((l) => l['msg'] === 'dead letter' && l['leg'] === 'outbound');
    expect(deadOut?.['reason']).toMatch(/blocked/);
  });
});
