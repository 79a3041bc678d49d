/**
 * Socket Mode against FakeSlack's websocket with the real SocketModeClient:
 * hello, envelopes acked only after core stored them, no ack when the store
 * refuses (the fake redelivers, the connector receives it once), Slack's
 * refresh and a dropped socket (reconnecting with code network, then connected:
 * what /readyz follows), a refused app token.
 */
import { FakeSlack } from '@kitbridge/testkit';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { SlackConnector } from '../src/connector.js';
import { agentMessage, sleep, TestContext, TestDelivery, testConnector } from './setup.js';

let fake: FakeSlack;
let tc: TestContext;
let conn: SlackConnector | undefined;

beforeEach(async () => {
  fake = await new FakeSlack({ redeliverAfterMs: 300 }).start();
  tc = new TestContext({ captureLogs: true });
});

afterEach(async () => {
  tc.abort.abort();
  await conn?.stop();
  conn = undefined;
  await fake.close();
});

async function start(extra: Parameters<typeof testConnector>[1] = {}): Promise<SlackConnector> {
  conn = testConnector(fake, extra);
  await conn.start(tc.ctx);
  return conn;
}

describe('Slack over Socket Mode', () => {
  it('connects (apps.connections.open with the app token, hello), adds no HTTP route, acks after receive', async () => {
    await start();
    expect(conn!.status()).toEqual({ state: 'connected' });
    expect(tc.routes.size).toBe(0);
    expect(fake.callsOf('apps.connections.open')[0]).toMatchObject({ tokenType: 'app', status: 200 });
    const ann = fake.user({ name: 'ann' });
    const release = tc.hold();
    const env = fake.sendEnvelope(fake.dm(ann, 'over the socket'));
    await tc.until(() => tc.attempts.length === 1, 5_000, 'receive');
    await sleep(150);
    expect(env.acked).toBeUndefined();
    release();
    const ack = await fake.waitForAck(env.envelopeId);
    expect(ack.attempt).toBe(0);
    expect(tc.received.map((m) => m.text)).toEqual(['over the socket']);
    expect(tc.received[0]!.client.clientId).toBe(`sl:${fake.teamId}:${ann.id}`);
  });

  it('a store failure: no ack, the envelope comes again, and it is received once', async () => {
    await start();
    tc.failNext(1);
    const env = fake.sendEnvelope(fake.dm(fake.user({ name: 'bo' }), 'store was down'));
    const ack = await fake.waitForAck(env.envelopeId, 5_000);
    expect(ack.attempt).toBe(1);
    expect(env.deliveries.map((d) => d.retryReason)).toEqual(['', 'timeout']);
    expect(tc.attempts).toHaveLength(2);
    expect(tc.received.map((m) => m.text)).toEqual(['store was down']);
  });

  it('a redelivered envelope (the ack was lost) is a duplicate', async () => {
    await start();
    const cy = fake.user({ name: 'cy' });
    const event = fake.dm(cy, 'once');
    const a = fake.sendEnvelope(event);
    await fake.waitForAck(a.envelopeId);
    const b = fake.sendEnvelope(event);
    await fake.waitForAck(b.envelopeId);
    expect(tc.attempts).toHaveLength(2);
    expect(tc.received).toHaveLength(1);
  });

  it('both directions: a DM in, the reply out into the DM; the echo of the reply is ignored', async () => {
    await start();
    fake.echoBotMessages = true;
    const dee = fake.user({ name: 'dee', display_name: 'Dee' });
    const env = fake.sendEnvelope(fake.dm(dee, 'where is my parcel?'));
    await fake.waitForAck(env.envelopeId);
    const m = tc.received[0]!;
    await conn!.deliver(
      { clientId: m.client.clientId, address: m.client.address! },
      agentMessage({ text: 'It arrives tomorrow.' }),
      new TestDelivery().next(),
    );
    expect(fake.delivered(fake.dmChannelId(dee.id)).map((d) => d.text)).toEqual(['It arrives tomorrow.']);
    // The echo comes back as an envelope, is acked, and never reaches core.
    await tc.until(
      () => fake.envelopes.length === 2 && fake.envelopes[1]!.acked !== undefined,
      5_000,
      'echo acked',
    );
    expect(tc.attempts).toHaveLength(1);
  });

  it("Slack's refresh (disconnect refresh_requested): reconnecting with code network, then connected on a new socket", async () => {
    await start();
    const since = fake.socketLog.length;
    fake.disconnectSocket({ reason: 'refresh_requested' });
    const closed = await fake.waitForSocket('close', { since });
    expect(closed.by).toBe('client');
    await tc.until(
      () => tc.statuses.some((s) => s.state === 'reconnecting' && s.code === 'network'),
      5_000,
      'reconnecting',
    );
    await fake.waitForSocket((r) => r.kind === 'hello' && r.connectionId !== closed.connectionId, { since });
    await tc.until(() => conn!.status().state === 'connected', 5_000, 'connected again');
    const env = fake.sendEnvelope(fake.dm(fake.user({}), 'after the refresh'));
    await fake.waitForAck(env.envelopeId);
    expect(env.deliveries[0]!.connectionId).not.toBe(closed.connectionId);
    expect(tc.received.map((m) => m.text)).toEqual(['after the refresh']);
    expect(fake.callsOf('apps.connections.open')).toHaveLength(2);
  });

  it('a dropped socket: reconnects; an envelope sent meanwhile arrives on the new connection', async () => {
    await start();
    const since = fake.socketLog.length;
    fake.dropSocket();
    await fake.waitForSocket('close', { since });
    const env = fake.sendEnvelope(fake.dm(fake.user({}), 'while away'));
    const ack = await fake.waitForAck(env.envelopeId, 8_000);
    expect(ack.connectionId).toBe(2);
    expect(tc.received.map((m) => m.text)).toEqual(['while away']);
    expect(conn!.status().state).toBe('connected');
  });

  it('Slack unreachable for a while: reconnecting (network) with growing waits, connected when it answers', async () => {
    for (let i = 0; i < 3; i++) fake.failNext('apps.connections.open', { status: 503 });
    await start();
    expect(conn!.status()).toMatchObject({ state: 'reconnecting', code: 'network' });
    await tc.until(() => conn!.status().state === 'connected', 8_000, 'connected');
    expect(fake.callsOf('apps.connections.open').map((c) => c.status)).toEqual([503, 503, 503, 200]);
  });

  it('a refused app token stops start-up: failed with bad_credentials, naming SLACK_APP_TOKEN', async () => {
    fake.failNext('apps.connections.open', { error: 'invalid_auth' });
    conn = testConnector(fake);
    await expect(conn.start(tc.ctx)).rejects.toThrow(/Slack rejected SLACK_APP_TOKEN \(invalid_auth\)/);
    expect(conn.status()).toMatchObject({ state: 'failed', code: 'bad_credentials' });
    fake.failNext('apps.connections.open', { error: 'missing_scope', body: { needed: 'connections:write' } });
    const other = testConnector(fake);
    await expect(other.start(new TestContext().ctx)).rejects.toThrow(
      /SLACK_APP_TOKEN lacks the connections:write scope/,
    );
    expect(other.status()).toMatchObject({ state: 'failed', code: 'missing_permission' });
    await other.stop();
  });

  it('stop is idempotent, closes the socket, and leaves unacked envelopes with Slack', async () => {
    await start();
    const release = tc.hold();
    const env = fake.sendEnvelope(fake.dm(fake.user({}), 'held while stopping'));
    await tc.until(() => tc.attempts.length === 1, 5_000, 'receive');
    await conn!.stop();
    await conn!.stop();
    expect(conn!.status()).toEqual({ state: 'stopped' });
    release();
    await sleep(50);
    expect(env.acked).toBeUndefined();
    expect(fake.socketConnected).toBe(false);
    expect(fake.socketConnections.every((c) => c.state === 'closed')).toBe(true);
  });

  it('stopped while a reconnect waits for apps.connections.open: quick, and no unhandled rejection', async () => {
    await start();
    fake.stallNext('apps.connections.open');
    const since = fake.socketLog.length;
    fake.dropSocket();
    await fake.waitForSocket('close', { since });
    await fake.waitForCall((c) => c.method === 'apps.connections.open' && c.status === undefined);
    expect(conn!.status()).toMatchObject({ state: 'reconnecting', code: 'network' });
    const t0 = Date.now();
    await conn!.stop();
    expect(Date.now() - t0).toBeLessThan(1_500);
    expect(conn!.status()).toEqual({ state: 'stopped' });
    await sleep(300);
    expect(fake.socketConnected).toBe(false);
  });

  it('stopped while starting, before or after apps.connections.open: stopped stays stopped, no socket left', async () => {
    await start();
    await conn!.stop();
    // A fresh connector whose socket opens while it is being stopped.
    const opened = fake.callsOf('apps.connections.open').length;
    const c = testConnector(fake);
    const ctx2 = new TestContext();
    const starting = c.start(ctx2.ctx).catch(() => {});
    await tc.until(() => fake.callsOf('apps.connections.open').length > opened, 5_000, 'a new connection');
    await fake.waitForCall(
      (call) => call === fake.callsOf('apps.connections.open')[opened] && call.status === 200,
    );
    await c.stop();
    await starting;
    await sleep(300);
    expect(c.status(), JSON.stringify(ctx2.statuses)).toEqual({ state: 'stopped' });
    expect(fake.socketConnected).toBe(false);
    // Stopped while auth.test is still out.
    const early = testConnector(fake);
    const ctx3 = new TestContext();
    fake.stallNext('auth.test');
    const pending = early.start(ctx3.ctx).catch(() => {});
    await fake.waitForCall((call) => call.method === 'auth.test' && call.status === undefined);
    await early.stop();
    await pending;
    await sleep(100);
    expect(early.status(), JSON.stringify(ctx3.statuses)).toEqual({ state: 'stopped' });
    expect(ctx3.statuses.at(-1)).toEqual({ state: 'stopped' });
  });

  it('writes no secret into its logs', async () => {
    await start();
    fake.dropSocket();
    await tc.until(
      () => tc.statuses.filter((s) => s.state === 'connected').length >= 2,
      8_000,
      'reconnected',
    );
    const all = tc.logLines.join('');
    for (const s of [fake.botToken, fake.appToken, fake.signingSecret]) expect(all.includes(s)).toBe(false);
  });
});
