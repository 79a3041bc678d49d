/**
 * Start-up, states and the singleton gateway job: a refused token, Discord
 * unreachable at start, standby while another replica holds the gateway,
 * `kitbridge check discord`.
 */
import type { ConnectorContext } from '@kitbridge/core';
import {
  agentMessage,
  FakeDiscord,
  fakeDiscordToken,
  freePort,
  TestContext,
  TestDelivery,
} from '@kitbridge/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import type { DiscordConnector } from '../src/connector.js';
import { fatalOfClose, TOKEN_REJECTED } from '../src/gateway.js';
import { ALICE, SUPPORT, startFake, testConnector } from './setup.js';

let fake: FakeDiscord | undefined;
const running: { c: DiscordConnector; tc: TestContext }[] = [];

afterEach(async () => {
  for (const { c, tc } of running.splice(0)) {
    tc.abort.abort();
    await c.stop();
  }
  await fake?.close();
  fake = undefined;
});

function track(c: DiscordConnector, tc = new TestContext({ captureLogs: true })) {
  running.push({ c, tc });
  return { c, tc };
}

describe('start-up', () => {
  it('a rejected token stops start-up, saying which variable and where to get a new one', async () => {
    fake = await startFake();
    const { c, tc } = track(testConnector(fake, { token: fakeDiscordToken('999999999999999999') }));
    await expect(c.start(tc.ctx)).rejects.toThrow(
      'Discord rejected DISCORD_BOT_TOKEN (revoked or wrong): copy a new one from the Developer Portal, Applications > your app > Bot > Reset Token',
    );
    expect(c.status()).toEqual({ state: 'failed', code: 'bad_credentials', reason: TOKEN_REJECTED });
    expect(fake.identifies).toHaveLength(0);
  });

  it('gateway close codes that need an operator', () => {
    expect(fatalOfClose(4004, '1', false)).toMatchObject({ code: 'bad_credentials' });
    expect(fatalOfClose(4014, '123', true)?.reason).toMatch(
      /Message Content intent .*applications\/123\/bot.*or unset DISCORD_SUPPORT_CHANNEL_ID/,
    );
    expect(fatalOfClose(4014, '123', false)).toMatchObject({ code: 'missing_permission' });
    expect(fatalOfClose(4009, '1', false)).toBeUndefined();
    expect(fatalOfClose(1006, '1', false)).toBeUndefined();
  });

  it('Discord unreachable at start: start-up goes on (reconnecting, network), connected once it is back', async () => {
    const port = await freePort();
    fake = new FakeDiscord({ heartbeatIntervalMs: 1_000 });
    const { c, tc } = track(
      testConnector(fake, { apiUrl: `http://127.0.0.1:${port}/api`, cdnUrl: `http://127.0.0.1:${port}/cdn` }),
    );
    await c.start(tc.ctx);
    expect(c.status()).toMatchObject({ state: 'reconnecting', code: 'network' });
    await fake.start(port);
    fake.user(ALICE);
    await tc.until(() => c.status().state === 'connected', 10_000, 'connected');
    fake.dm(ALICE, 'hi');
    await tc.waitForMessages(1);
  });

  it('start and stop are idempotent; stop closes the gateway session', async () => {
    fake = await startFake();
    const { c, tc } = track(testConnector(fake));
    await c.start(tc.ctx);
    await c.start(tc.ctx);
    await tc.until(() => c.status().state === 'connected');
    expect(fake.identifies).toHaveLength(1);
    await c.stop();
    await c.stop();
    expect(c.status().state).toBe('stopped');
    await tc.until(() => !fake!.connected, 3_000, 'the session closed');
  });
});

describe('one gateway session among replicas: ctx.exclusive', () => {
  it('standby while another replica holds it (deliveries still work), connected when granted, standby again when the lease is lost', async () => {
    fake = await startFake();
    const tc = new TestContext({ captureLogs: true });
    let job: ((signal: AbortSignal) => Promise<void>) | undefined;
    let jobName: string | undefined;
    const ctx: ConnectorContext = {
      ...tc.ctx,
      // Another replica holds the lease: the first try says so, and the job is called later.
      exclusive: (name, fn) => {
        jobName = name;
        job = fn;
        return Promise.resolve('standby' as const);
      },
    };
    const { c } = track(testConnector(fake), tc);
    await c.start(ctx);
    expect(jobName).toBe('gateway');
    expect(c.status()).toMatchObject({ state: 'standby', code: 'not_leader' });
    expect(fake.identifies).toHaveLength(0);
    await c.deliver(
      { clientId: `dc:${ALICE}` },
      agentMessage({ text: 'from a standby replica' }),
      new TestDelivery().next(),
    );
    expect(fake.delivered().map((d) => d.content)).toEqual(['from a standby replica']);

    const lease = new AbortController();
    const holding = job!(lease.signal);
    await tc.until(() => c.status().state === 'connected', 10_000, 'connected');
    fake.dm(ALICE, 'to the leader');
    await tc.waitForMessages(1);

    lease.abort(new Error('lease lost'));
    await holding;
    expect(c.status()).toMatchObject({ state: 'standby', code: 'not_leader' });
    await tc.until(() => !fake!.connected, 3_000, 'the session closed');
  });

  it('with the lease granted at once (one process), connected as before', async () => {
    fake = await startFake();
    const { c, tc } = track(testConnector(fake));
    await c.start(tc.ctx);
    expect(tc.jobs.get('gateway')?.running).toBe(true);
    expect(c.status().state).toBe('connected');
    // Discord has no inbound webhooks here: the connector adds no HTTP route.
    expect(tc.routes.size).toBe(0);
  });
});

describe('kitbridge check discord', () => {
  it('DMs: the bot, the gateway quota and the invite link', async () => {
    fake = await startFake();
    const c = testConnector(fake);
    expect(await c.selfCheck()).toBe(
      `bot @kitbridge-fake (${fake.bot.id}); 1000/1000 gateway sessions left today; DMs; invite: https://discord.com/oauth2/authorize?client_id=${fake.bot.id}&scope=bot&permissions=101376`,
    );
    expect(fake.identifies).toHaveLength(0);
    await c.stop();
  });

  it('support channel: the channel and the Message Content intent', async () => {
    fake = await startFake({ support: true });
    const c = testConnector(fake, { supportChannelId: SUPPORT });
    expect(await c.selfCheck()).toMatch(
      /; support channel #support \(server \d+\); invite: .*permissions=360777354240$/,
    );
    fake.privilegedIntents = 0;
    await expect(c.selfCheck()).rejects.toThrow(/Message Content intent is off/);
    await c.stop();
  });

  it('a rejected token', async () => {
    fake = await startFake();
    const c = testConnector(fake, { token: fakeDiscordToken('999999999999999999') });
    await expect(c.selfCheck()).rejects.toThrow(TOKEN_REJECTED);
    await c.stop();
  });
});
