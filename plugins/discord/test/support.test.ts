/**
 * Support-channel mode, both directions: customers write in a server channel,
 * each gets a private thread, agents answer there. FakeDiscord + discord.js.
 */
import { agentMessage, type FakeDiscord, TestContext, TestDelivery } from '@kitbridge/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { cursorKey, INDEX_KEY } from '../src/checkpoints.js';
import type { DiscordConnector } from '../src/connector.js';
import { Intents } from '../src/limits.js';
import { ALICE, BOB, CAROL, GUILD, SUPPORT, startFake, testConnector } from './setup.js';

const MiB = 1024 * 1024;
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

async function setup(opts: { premiumTier?: number } = {}) {
  fake = await startFake({ support: true, ...opts });
  return fake;
}

async function started(tc = new TestContext({ captureLogs: true })) {
  const c = testConnector(fake!, { supportChannelId: SUPPORT });
  running.push({ c, tc });
  await c.start(tc.ctx);
  await tc.until(() => c.status().state === 'connected', 10_000, 'connected');
  return { c, tc };
}

const client = (user: string) => `dcs:${GUILD}:${user}`;
const threadsOf = (user: string) => fake!.threads.filter((t) => t.name?.endsWith(user));

describe('support channel: customer -> core', () => {
  it('identifies with DirectMessages, Guilds, GuildMessages and the privileged MessageContent', async () => {
    await setup();
    await started();
    expect(fake!.identifies[0]!.intents).toBe(
      Intents.DirectMessages | Intents.Guilds | Intents.GuildMessages | Intents.MessageContent,
    );
  });

  it("a customer's first message: received as dcs:<guild>:<user>, then their private thread, recorded as their address", async () => {
    await setup();
    const { tc } = await started();
    const m = fake!.guildMessage(SUPPORT, ALICE, 'I need help with my order');
    await tc.waitForMessages(1);
    expect(tc.received[0]).toMatchObject({
      client: { clientId: client(ALICE), profile: { displayName: 'Alice Archer' } },
      messageId: m.id,
      text: 'I need help with my order',
    });
    await tc.until(() => fake!.threads.length === 1 && !!tc.checkpoints.get(cursorKey(fake!.threads[0]!.id)));
    const [thread] = fake!.threads;
    expect(thread).toMatchObject({
      type: 12,
      name: `Alice Archer · ${ALICE}`,
      parent_id: SUPPORT,
      owner_id: fake!.bot.id,
    });
    expect(fake!.callsTo('POST /channels/:channel/threads')[0]?.body).toMatchObject({
      type: 12,
      invitable: false,
    });
    expect(fake!.threadMembers(thread!.id)).toContain(ALICE);
    expect(tc.updates).toContainEqual({ clientId: client(ALICE), address: { threadId: thread!.id } });
    // Both the channel and the thread are looked at after a restart.
    const index = JSON.parse(tc.checkpoints.get(INDEX_KEY)!).channels;
    expect(index[SUPPORT]).toEqual({ k: 'support', g: GUILD });
    expect(index[thread!.id]).toEqual({ k: 'thread', g: GUILD, u: ALICE });
    expect(tc.checkpoints.get(cursorKey(thread!.id))).toBe(thread!.id);

    // A second message in the channel reuses the thread.
    fake!.guildMessage(SUPPORT, ALICE, 'hello?');
    await tc.waitForMessages(2);
    await new Promise((r) => setTimeout(r, 100));
    expect(fake!.threads).toHaveLength(1);
  });

  it('the thread is the same client; staff in the thread are not relayed; the same user’s DMs are another client', async () => {
    await setup();
    const { tc } = await started();
    fake!.guildMessage(SUPPORT, ALICE, 'first');
    await tc.until(() => fake!.threads.length === 1 && tc.updates.length > 0);
    const thread = fake!.threads[0]!.id;
    fake!.guildMessage(thread, ALICE, 'in my thread');
    fake!.guildMessage(thread, CAROL, 'a moderator');
    fake!.dm(ALICE, 'in DMs');
    await tc.waitForMessages(3);
    await new Promise((r) => setTimeout(r, 100));
    expect(tc.received.map((m) => [m.client.clientId, m.text, m.client.address])).toEqual([
      [client(ALICE), 'first', undefined],
      [client(ALICE), 'in my thread', { threadId: thread }],
      [`dc:${ALICE}`, 'in DMs', { channelId: fake!.dmChannel(ALICE).id }],
    ]);
  });

  it('after a fresh IDENTIFY the channel and the threads are fetched from their checkpoints', async () => {
    await setup();
    const { tc } = await started();
    fake!.guildMessage(SUPPORT, ALICE, 'a1');
    await tc.until(() => fake!.threads.length === 1 && tc.updates.length > 0);
    const thread = fake!.threads[0]!.id;
    fake!.guildMessage(thread, ALICE, 'a2');
    await tc.waitForMessages(2);
    await tc.until(() => tc.checkpoints.get(cursorKey(thread)) !== thread);
    const since = fake!.gatewayLog.length;
    fake!.disconnect({ resumable: false });
    fake!.guildMessage(thread, ALICE, 'a3 (missed)');
    fake!.guildMessage(SUPPORT, BOB, 'b1 (missed)');
    await fake!.waitForGateway('ready', { since });
    await tc.waitForMessages(4, 10_000);
    const of = (user: string) =>
      tc.received.filter((m) => m.client.clientId === client(user)).map((m) => m.text);
    expect(of(ALICE)).toEqual(['a1', 'a2', 'a3 (missed)']);
    expect(of(BOB)).toEqual(['b1 (missed)']);
    await tc.until(() => threadsOf(BOB).length === 1);
  });
});

describe('support channel: agent -> customer', () => {
  it('replies go to the thread; with no address (a lost store) the same thread is found, active or archived', async () => {
    await setup();
    const first = await started();
    fake!.guildMessage(SUPPORT, ALICE, 'help');
    await first.tc.until(() => first.tc.updates.length > 0);
    const thread = fake!.threads[0]!.id;
    await first.c.deliver(
      { clientId: client(ALICE), address: { threadId: thread } },
      agentMessage({ text: 'Hi Alice, an agent here' }),
      new TestDelivery().next(),
    );
    expect(fake!.delivered(thread).map((d) => d.content)).toEqual(['Hi Alice, an agent here']);

    // Another process, no address: the active thread is found by its name.
    const second = await started();
    await second.c.deliver(
      { clientId: client(ALICE) },
      agentMessage({ text: 'still here' }),
      new TestDelivery().next(),
    );
    // Archived meanwhile, a third process: found among the archived private threads; sending unarchives it.
    fake!.archiveThread(thread);
    const third = await started();
    await third.c.deliver(
      { clientId: client(ALICE) },
      agentMessage({ text: 'and later' }),
      new TestDelivery().next(),
    );
    expect(fake!.threads).toHaveLength(1);
    expect(fake!.delivered(thread).map((d) => d.content)).toEqual([
      'Hi Alice, an agent here',
      'still here',
      'and later',
    ]);
    expect(fake!.channel(thread)!.thread_metadata!.archived).toBe(false);
    expect(third.tc.updates).toContainEqual({ clientId: client(ALICE), address: { threadId: thread } });
  });

  it('a customer with no thread gets one from the delivery; two replicas at once end with one thread', async () => {
    await setup();
    const a = await started();
    const b = await started();
    await Promise.all([
      a.c.deliver(
        { clientId: client(CAROL) },
        agentMessage({ text: 'from replica a' }),
        new TestDelivery().next(),
      ),
      b.c.deliver(
        { clientId: client(CAROL) },
        agentMessage({ text: 'from replica b' }),
        new TestDelivery().next(),
      ),
    ]);
    const threads = threadsOf(CAROL);
    expect(threads).toHaveLength(1);
    expect(
      fake!
        .delivered(threads[0]!.id)
        .map((d) => d.content)
        .sort(),
    ).toEqual(['from replica a', 'from replica b']);
    expect(fake!.threadMembers(threads[0]!.id)).toContain(CAROL);
  });

  it('a thread deleted meanwhile (10003) is made again and recorded', async () => {
    await setup();
    const { c, tc } = await started();
    const gone = fake!.createThread(SUPPORT, { name: `Bob · ${BOB}`, members: [BOB] });
    await fetch(`${fake!.apiUrl}/v10/channels/${gone.id}`, {
      method: 'DELETE',
      headers: { authorization: `Bot ${fake!.token}` },
    });
    await c.deliver(
      { clientId: client(BOB), address: { threadId: gone.id } },
      agentMessage({ text: 'new thread' }),
      new TestDelivery().next(),
    );
    const [fresh] = threadsOf(BOB);
    expect(fresh!.id).not.toBe(gone.id);
    expect(fake!.delivered(fresh!.id).map((d) => d.content)).toEqual(['new thread']);
    expect(tc.updates.at(-1)).toEqual({ clientId: client(BOB), address: { threadId: fresh!.id } });
  });

  it('the upload limit follows the server’s boost level', async () => {
    await setup({ premiumTier: 2 });
    const { c } = await started();
    const signal = new AbortController().signal;
    expect((await c.mediaLimitsFor({ clientId: client(ALICE) }, signal)).photo.maxUploadBytes).toBe(50 * MiB);
    expect((await c.mediaLimitsFor({ clientId: `dc:${ALICE}` }, signal)).photo.maxUploadBytes).toBe(10 * MiB);
    // The static table (what core checks first) is the largest any target takes.
    expect(c.mediaLimits.document.maxUploadBytes).toBe(50 * MiB);
    fake!.guild({ id: GUILD, premium_tier: 3 });
    await new Promise((r) => setTimeout(r, 100));
    expect((await c.mediaLimitsFor({ clientId: client(ALICE) }, signal)).photo.maxUploadBytes).toBe(
      100 * MiB,
    );
  });
});

describe('support channel: start-up', () => {
  it('without the Message Content intent start-up stops, saying which intent and where to switch it on', async () => {
    await setup();
    fake!.privilegedIntents = 0;
    const tc = new TestContext();
    const c = testConnector(fake!, { supportChannelId: SUPPORT });
    running.push({ c, tc });
    const err = await c.start(tc.ctx).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(
      /Message Content intent \(gateway close 4014\).*Developer Portal \(https:\/\/discord\.com\/developers\/applications\/\d+\/bot\), Bot > Privileged Gateway Intents/,
    );
    expect(c.status()).toMatchObject({ state: 'failed', code: 'missing_permission' });
  });

  it('the intent switched off while running: failed (missing_permission), and connected again once it is back on', async () => {
    await setup();
    const { c, tc } = await started();
    const all = fake!.privilegedIntents;
    fake!.privilegedIntents = 0;
    fake!.disconnect({ resumable: false });
    await tc.until(() => c.status().state === 'failed', 10_000, 'failed');
    expect(c.status()).toMatchObject({ code: 'missing_permission', reason: expect.stringMatching(/4014/) });
    fake!.privilegedIntents = all;
    await tc.until(() => c.status().state === 'connected', 10_000, 'connected again');
    fake!.guildMessage(SUPPORT, ALICE, 'back');
    await tc.waitForMessages(1);
  });

  it('a support channel the bot cannot see stops start-up with the invite link', async () => {
    await setup();
    const tc = new TestContext();
    const c = testConnector(fake!, { supportChannelId: '777777777777777777' });
    running.push({ c, tc });
    await expect(c.start(tc.ctx)).rejects.toThrow(
      /cannot see DISCORD_SUPPORT_CHANNEL_ID 777777777777777777.*oauth2\/authorize\?client_id=\d+&scope=bot&permissions=360777354240/,
    );
    expect(c.status()).toMatchObject({ state: 'failed', code: 'missing_permission' });
  });
});
