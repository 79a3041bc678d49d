/**
 * The fake Discord (testkit) driven by the real discord.js 14: REST, CDN and gateway.
 * Core is imported so undici 7 is loaded in the process, as in kitbridge itself:
 * uploads work only with an Agent from the undici 6 that @discordjs/rest uses.
 */
import '@kitbridge/core';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import {
  AttachmentBuilder,
  ChannelType,
  Client,
  type ClientOptions,
  DiscordAPIError,
  type DMChannel,
  GatewayIntentBits,
  type Message,
  Partials,
  RateLimitError,
  type TextChannel,
} from 'discord.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { DiscordErrors, FakeDiscord } from '../src/fake-discord.js';

const require = createRequire(import.meta.url);
const restEntry = require.resolve('@discordjs/rest', { paths: [dirname(require.resolve('discord.js'))] });
const { Agent: RestAgent } = createRequire(restEntry)('undici') as { Agent: new () => any };

// Snowflake-length ids: @discordjs/rest only treats 17-19 digits as ids in bucket routes.
const ALICE = '111111111111111111';
const BOB = '222222222222222222';
const GUILD = '333333333333333333';
const SUPPORT = '444444444444444444';

const dmIntents = [GatewayIntentBits.DirectMessages];

describe('FakeDiscord with discord.js', () => {
  let fake: FakeDiscord;
  const clients: Client[] = [];

  const makeClient = (intents: number[] = dmIntents, extra: Partial<ClientOptions> = {}) => {
    const { rest, ...others } = extra;
    const client = new Client({
      intents,
      partials: [Partials.Channel, Partials.Message],
      rest: {
        api: fake.apiUrl,
        cdn: fake.cdnUrl,
        agent: new RestAgent(),
        timeout: 500,
        retries: 1,
        offset: 0,
        ...rest,
      },
      // discord.js waits 5 s between two IDENTIFYs of one shard; tests re-identify at once.
      ws: { buildIdentifyThrottler: () => ({ waitForIdentify: async () => {} }) },
      waitGuildTimeout: 200,
      ...others,
    } as ClientOptions);
    clients.push(client);
    return client;
  };

  const login = async (client: Client) => {
    const ready = new Promise<void>((resolve) => client.once('clientReady', () => resolve()));
    await client.login(fake.token);
    await ready;
    return client;
  };

  const nextMessage = (client: Client, filter: (m: Message) => boolean = () => true) =>
    new Promise<Message>((resolve) => {
      const on = (m: Message) => {
        if (!filter(m)) return;
        client.off('messageCreate', on);
        resolve(m);
      };
      client.on('messageCreate', on);
    });

  beforeEach(async () => {
    fake = await new FakeDiscord({ heartbeatIntervalMs: 200 }).start();
    fake.user(ALICE, { username: 'alice', global_name: 'Alice A.', avatarBytes: Buffer.from('alice-png') });
    fake.user(BOB, { username: 'bob' });
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.destroy()));
    await fake.close();
  });

  it('logs in: GET /gateway/bot, HELLO, IDENTIFY with the intents, READY, heartbeats acknowledged', async () => {
    const client = await login(makeClient());
    expect(client.user?.id).toBe(fake.bot.id);
    expect(fake.callsTo('GET /gateway/bot')).toHaveLength(1);
    const [identify] = fake.identifies;
    expect(identify).toMatchObject({ token: fake.token, intents: GatewayIntentBits.DirectMessages });
    expect(fake.gatewayLog[0]).toMatchObject({
      kind: 'open',
      url: expect.stringMatching(/^\/gateway\?v=10&encoding=json/),
    });
    await fake.waitForGateway('heartbeat', { timeoutMs: 2_000 });
    // The ACK (op 11) reaches discord.js: it measures the latency.
    for (let i = 0; i < 50 && client.ws.ping < 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(client.ws.ping).toBeGreaterThanOrEqual(0);
    expect(fake.connected).toBe(true);
  });

  it('a wrong token gets 401 on REST: login fails with TokenInvalid', async () => {
    const client = makeClient();
    await expect(client.login('MTIz.bad.token')).rejects.toMatchObject({ code: 'TokenInvalid' });
    expect(fake.calls[0]).toMatchObject({ route: 'GET /gateway/bot', authorized: false, status: 401 });
  });

  it('delivers a DM as messageCreate on an uncached (partial) DM channel, with attachments, stickers and replies', async () => {
    const client = await login(makeClient());
    const first = fake.dm(ALICE, 'hello');
    const got = await nextMessage(client);
    expect(got.id).toBe(first.id);
    expect(got.content).toBe('hello');
    expect(got.channel.type).toBe(ChannelType.DM);
    expect(got.author.globalName).toBe('Alice A.');

    const withFile = nextMessage(client);
    fake.dm(ALICE, {
      content: 'see',
      attachments: [{ filename: 'cat.png', bytes: Buffer.from('PNGDATA'), contentType: 'image/png' }],
      sticker_items: [{ name: 'wave' }],
      replyTo: first.id,
    });
    const m = await withFile;
    const att = m.attachments.first()!;
    expect(att).toMatchObject({ name: 'cat.png', contentType: 'image/png', size: 7 });
    expect(att.url).toMatch(
      /\/cdn\/attachments\/\d+\/\d+\/cat\.png\?ex=[0-9a-f]+&is=[0-9a-f]+&hm=[0-9a-f]+&$/,
    );
    expect(Buffer.from(await (await fetch(att.url)).arrayBuffer()).toString()).toBe('PNGDATA');
    expect(m.stickers.first()?.name).toBe('wave');
    expect(m.reference?.messageId).toBe(first.id);

    const avatar = await fetch(got.author.displayAvatarURL({ extension: 'png' }));
    expect(Buffer.from(await avatar.arrayBuffer()).toString()).toBe('alice-png');
  });

  it('replies with text and uploads a file (multipart files[n] + payload_json) with undici 7 loaded', async () => {
    const client = await login(makeClient());
    fake.dm(ALICE, 'hi');
    const got = await nextMessage(client);
    const reply = await (got.channel as DMChannel).send({
      content: 'hello Alice',
      nonce: 'k1-0',
      enforceNonce: true,
    });
    expect(reply.content).toBe('hello Alice');
    const sent = await (got.channel as DMChannel).send({
      content: 'a file',
      files: [
        new AttachmentBuilder(Buffer.from('%PDF-1.4 fake'), {
          name: 'report one.pdf',
          description: 'the report',
        }),
      ],
    });
    expect(sent.attachments.first()?.name).toBe('report one.pdf');

    const delivered = fake.delivered(got.channelId);
    expect(delivered.map((d) => d.content)).toEqual(['hello Alice', 'a file']);
    expect(delivered[0]).toMatchObject({
      nonce: 'k1-0',
      call: { encoding: 'json', body: { enforce_nonce: true } },
    });
    const upload = delivered[1]!;
    expect(upload.call.encoding).toBe('multipart');
    expect(upload.files).toHaveLength(1);
    expect(upload.files[0]).toMatchObject({
      field: 'files[0]',
      index: 0,
      fileName: 'report one.pdf',
      description: 'the report',
    });
    expect(upload.files[0]!.bytes.toString()).toBe('%PDF-1.4 fake');
    // The uploaded file is on the CDN too.
    const url = upload.message.attachments[0]!.url;
    expect(Buffer.from(await (await fetch(url)).arrayBuffer()).toString()).toBe('%PDF-1.4 fake');
  });

  // The trap is Node 20's: from Node 22 on, the same upload goes through (CI runs both), so the
  // control shows the failure where it happens and the upload working where it does not.
  it('control: without the undici 6 Agent, an upload fails on Node 20 as platform-notes describe (text still works)', async () => {
    const client = await login(makeClient(dmIntents, { rest: { agent: null } }));
    const dm = (await client.channels.fetch(fake.dmChannel(ALICE).id)) as DMChannel;
    await dm.send('text is fine');
    const err = await dm.send({ files: [new AttachmentBuilder(Buffer.from('x'), { name: 'a.txt' })] }).then(
      () => undefined,
      (e: unknown) => e,
    );
    if (Number(process.versions.node.split('.')[0]) < 22) {
      expect(String(err)).toMatch(/action is not a function/);
      expect(fake.delivered(dm.id).map((d) => d.content)).toEqual(['text is fine']);
    } else {
      expect(err).toBeUndefined();
      expect(fake.delivered(dm.id)).toHaveLength(2);
    }
  });

  it('opens a DM channel on demand (POST /users/@me/channels) after a restart', async () => {
    const client = await login(makeClient());
    const user = await client.users.fetch(BOB);
    await user.send('hi Bob');
    expect(fake.callsTo('POST /users/@me/channels')[0]?.body).toEqual({ recipient_id: BOB });
    const dm = fake.dmChannel(BOB);
    expect(dm).toMatchObject({ type: 1, recipients: [{ id: BOB }] });
    expect(fake.delivered(dm.id).map((d) => d.content)).toEqual(['hi Bob']);
    // The bot's own message comes back on the gateway, as on Discord.
    await fake.waitForGateway((r) => r.kind === 'dispatch' && r.t === 'MESSAGE_CREATE');
  });

  it('a 429 with rejectOnRateLimit throws RateLimitError with the wait; without it the call waits and succeeds', async () => {
    const client = await login(makeClient(dmIntents, { rest: { rejectOnRateLimit: () => true } }));
    const dm = (await client.channels.fetch(fake.dmChannel(ALICE).id)) as DMChannel;
    fake.rateLimitNext('POST /channels/:channel/messages', 0.25);
    const err = await dm.send('x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RateLimitError);
    expect(err).toMatchObject({
      retryAfter: 250,
      global: false,
      scope: 'user',
      route: '/channels/:id/messages',
    });
    expect(fake.sent.at(-1)?.status).toBe(429);

    const patient = await login(makeClient());
    const dm2 = (await patient.channels.fetch(dm.id)) as DMChannel;
    fake.rateLimitNext('POST /channels/:channel/messages', 0.2);
    const started = Date.now();
    await dm2.send('y');
    expect(Date.now() - started).toBeGreaterThanOrEqual(180);
    expect(fake.delivered(dm.id).map((d) => d.content)).toEqual(['y']);
  });

  it('403 50007 surfaces as DiscordAPIError code 50007; closed DMs refuse every message', async () => {
    const client = await login(makeClient());
    const dm = (await client.channels.fetch(fake.dmChannel(ALICE).id)) as DMChannel;
    fake.failNext('POST /channels/:channel/messages', DiscordErrors.cannotSendToUser);
    const err = await dm.send('x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DiscordAPIError);
    expect(err).toMatchObject({ code: 50007, status: 403, message: 'Cannot send messages to this user' });
    await dm.send('ok now');
    fake.closeDms(ALICE);
    await expect(dm.send('blocked')).rejects.toMatchObject({ code: 50007 });
    expect(fake.delivered(dm.id).map((d) => d.content)).toEqual(['ok now']);
  });

  it('a 5xx is retried by @discordjs/rest; a stalled POST times out, is retried, and the nonce dedupes the repeat', async () => {
    const client = await login(makeClient());
    const dm = (await client.channels.fetch(fake.dmChannel(ALICE).id)) as DMChannel;
    fake.failNext('POST /channels/:channel/messages', DiscordErrors.internal);
    await dm.send('after a 500');
    expect(fake.sent.map((c) => c.status)).toEqual([500, 200]);

    // The first POST reaches Discord (the message exists) but its answer is lost.
    fake.stallNext('POST /channels/:channel/messages', { process: true });
    const m = await dm.send({ content: 'once', nonce: 'evt-1:0', enforceNonce: true });
    expect(fake.sent.filter((c) => (c.body as { nonce?: string }).nonce === 'evt-1:0')).toHaveLength(2);
    expect(fake.delivered(dm.id).map((d) => d.content)).toEqual(['after a 500', 'once']);
    expect(m.id).toBe(fake.delivered(dm.id)[1]!.message.id);

    // Without enforce_nonce Discord keeps both.
    await dm.send({ content: 'twice', nonce: 'n2' });
    await dm.send({ content: 'twice', nonce: 'n2' });
    expect(fake.delivered(dm.id).filter((d) => d.content === 'twice')).toHaveLength(2);
  });

  it('a resumable disconnect: discord.js RESUMEs on the resume URL and gets the dispatch it missed', async () => {
    const client = await login(makeClient());
    const resumed = new Promise<void>((resolve) => client.once('shardResume', () => resolve()));
    const since = fake.gatewayLog.length;
    fake.disconnect({ resumable: true });
    const missed = fake.dm(ALICE, 'while away');
    const got = nextMessage(client);
    await resumed;
    expect((await got).id).toBe(missed.id);
    const resume = await fake.waitForGateway('resume', { since });
    expect(resume.sessionId).toBe(fake.gatewaySessions[0]!.id);
    expect(await fake.waitForGateway('resumed', { since })).toMatchObject({ replayed: 1 });
    expect(fake.gatewayLog.slice(since).find((r) => r.kind === 'open')?.url).toMatch(/^\/gateway-resume\?/);
    expect(fake.identifies).toHaveLength(1);
  });

  it('a dropped TCP connection (1006) is resumed too', async () => {
    const client = await login(makeClient());
    const since = fake.gatewayLog.length;
    fake.dropConnection();
    fake.dm(ALICE, 'during the cut');
    const got = await nextMessage(client);
    expect(got.content).toBe('during the cut');
    await fake.waitForGateway('resumed', { since });
  });

  it('op 7 RECONNECT and unacknowledged heartbeats (a zombie) both end in a RESUME', async () => {
    await login(makeClient());
    let since = fake.gatewayLog.length;
    fake.requestReconnect();
    await fake.waitForGateway('resumed', { since, timeoutMs: 3_000 });
    since = fake.gatewayLog.length;
    fake.ackHeartbeats = false;
    await fake.waitForGateway('resume', { since, timeoutMs: 3_000 });
    fake.ackHeartbeats = true;
    await fake.waitForGateway('resumed', { since, timeoutMs: 3_000 });
    expect(fake.identifies).toHaveLength(1);
  });

  it('a non-resumable disconnect: INVALID_SESSION, a fresh IDENTIFY, the missed message only in history', async () => {
    const client = await login(makeClient());
    const first = fake.dm(ALICE, 'before');
    await nextMessage(client);
    const since = fake.gatewayLog.length;
    const reReady = new Promise<void>((resolve) => client.once('shardReady', () => resolve()));
    const seen: string[] = [];
    client.on('messageCreate', (m) => seen.push(m.content));
    fake.disconnect({ resumable: false });
    const missed = fake.dm(ALICE, 'missed');
    await reReady;
    expect(await fake.waitForGateway('invalid-session', { since })).toMatchObject({ resumable: false });
    expect(fake.identifies).toHaveLength(2);
    const after = fake.dm(ALICE, 'after');
    await fake.waitForGateway((r) => r.kind === 'dispatch' && r.delivered === true, { since });
    await new Promise((r) => setTimeout(r, 50));
    expect(seen).toEqual(['after']);

    const channel = (await client.channels.fetch(first.channel_id)) as DMChannel;
    const backfill = await channel.messages.fetch({ after: first.id, limit: 50 });
    // Discord answers newest first; the Collection keeps that order.
    expect([...backfill.keys()]).toEqual([after.id, missed.id]);
    expect(fake.messagesIn(first.channel_id).map((m) => m.content)).toEqual(['before', 'missed', 'after']);
  });

  it('CDN links expire; refresh-urls and re-reading the message give fresh ones', async () => {
    const client = await login(makeClient());
    const msg = fake.dm(ALICE, {
      attachments: [{ filename: 'a b.txt', bytes: Buffer.from('abc'), contentType: 'text/plain' }],
    });
    const old = msg.attachments[0]!.url;
    expect((await fetch(old)).status).toBe(200);
    fake.expireCdnLinks();
    const gone = await fetch(old);
    expect(gone.status).toBe(404);
    expect(await gone.text()).toBe('This content is no longer available.');

    const { refreshed_urls } = (await client.rest.post('/attachments/refresh-urls', {
      body: { attachment_urls: [old] },
    })) as { refreshed_urls: { original: string; refreshed: string }[] };
    expect(refreshed_urls[0]!.original).toBe(old);
    expect(refreshed_urls[0]!.refreshed).not.toBe(old);
    const fresh = await fetch(refreshed_urls[0]!.refreshed);
    expect(await fresh.text()).toBe('abc');

    const channel = (await client.channels.fetch(msg.channel_id)) as DMChannel;
    const reread = await channel.messages.fetch({ message: msg.id, force: true });
    expect(await (await fetch(reread.attachments.first()!.url)).text()).toBe('abc');

    // A short TTL expires on its own.
    fake.cdnLinkTtlMs = 50;
    const short = fake.message(msg.channel_id, msg.id)!.attachments[0]!.url;
    expect((await fetch(short)).status).toBe(200);
    await new Promise((r) => setTimeout(r, 80));
    expect((await fetch(short)).status).toBe(404);
  });

  it('a privileged intent that is not switched on closes the gateway with 4014: login rejects', async () => {
    fake.privilegedIntents = 0;
    const client = makeClient([GatewayIntentBits.DirectMessages, GatewayIntentBits.MessageContent]);
    const disconnected = new Promise<number>((resolve) =>
      client.once('shardDisconnect', (event) => resolve(event.code)),
    );
    await expect(client.login(fake.token)).rejects.toThrow(/disallowed intents/i);
    expect(await disconnected).toBe(4014);
    expect(await fake.waitForGateway('close')).toMatchObject({ code: 4014, by: 'server' });
  });

  it('support channel: GUILD_CREATE with channels, guild messages with member, a private thread with a member added', async () => {
    fake.guild({ id: GUILD, name: 'Acme', premium_tier: 2, channels: [{ id: SUPPORT, name: 'support' }] });
    const client = await login(
      makeClient([
        GatewayIntentBits.Guilds,
        GatewayIntentBits.GuildMessages,
        GatewayIntentBits.MessageContent,
        GatewayIntentBits.DirectMessages,
      ]),
    );
    const guild = client.guilds.cache.get(GUILD)!;
    expect(guild.name).toBe('Acme');
    expect(guild.premiumTier).toBe(2);
    const fetched = await client.guilds.fetch({ guild: GUILD, force: true });
    expect(fetched.premiumTier).toBe(2);

    const incoming = nextMessage(client);
    fake.guildMessage(SUPPORT, BOB, 'I need help');
    const m = await incoming;
    expect(m.guildId).toBe(GUILD);
    expect(m.member?.id).toBe(BOB);
    expect(m.content).toBe('I need help');

    const support = client.channels.cache.get(SUPPORT) as TextChannel;
    const thread = await support.threads.create({
      name: 'bob',
      type: ChannelType.PrivateThread,
      invitable: false,
      autoArchiveDuration: 10080,
    });
    await thread.members.add(BOB);
    expect(fake.threads).toMatchObject([{ id: thread.id, type: 12, name: 'bob', parent_id: SUPPORT }]);
    expect(fake.threadMembers(thread.id).sort()).toEqual([BOB, fake.bot.id].sort());
    await thread.send('Hi Bob, an agent is here');
    expect(fake.delivered(thread.id).map((d) => d.content)).toEqual(['Hi Bob, an agent is here']);

    const active = (await client.rest.get(`/guilds/${GUILD}/threads/active`)) as {
      threads: { id: string }[];
    };
    expect(active.threads.map((t) => t.id)).toEqual([thread.id]);

    const inThread = nextMessage(client, (x) => x.channelId === thread.id);
    fake.guildMessage(thread.id, BOB, 'thanks');
    expect((await inThread).content).toBe('thanks');
  });

  it('without MessageContent, guild messages arrive empty unless they mention the bot; DMs keep their content', async () => {
    fake.guild({ id: GUILD, channels: [{ id: SUPPORT }] });
    const client = await login(
      makeClient([
        GatewayIntentBits.Guilds,
        GatewayIntentBits.GuildMessages,
        GatewayIntentBits.DirectMessages,
      ]),
    );
    const a = nextMessage(client);
    fake.guildMessage(SUPPORT, BOB, 'secret');
    expect((await a).content).toBe('');
    const b = nextMessage(client);
    fake.guildMessage(SUPPORT, BOB, { content: `<@${fake.bot.id}> hi`, mentions: [fake.bot.id] });
    expect((await b).content).toBe(`<@${fake.bot.id}> hi`);
    const c = nextMessage(client);
    fake.dm(BOB, 'dm text');
    expect((await c).content).toBe('dm text');
  });

  it('discord.js quirk: MESSAGE_UPDATE for a DM channel it has not cached is dropped (the raw event still arrives)', async () => {
    const m = fake.dm(ALICE, 'written before login');
    const client = await login(makeClient());
    let updates = 0;
    const raw: string[] = [];
    client.on('messageUpdate', () => updates++);
    client.on('raw', (p: { t?: string }) => p.t && raw.push(p.t));
    fake.editMessage(m.channel_id, m.id, 'edited');
    await fake.waitForGateway((r) => r.kind === 'dispatch' && r.t === 'MESSAGE_UPDATE');
    await new Promise((r) => setTimeout(r, 50));
    expect(raw).toContain('MESSAGE_UPDATE');
    expect(updates).toBe(0);
    await client.channels.fetch(m.channel_id);
    const updated = new Promise<void>((resolve) => client.once('messageUpdate', () => resolve()));
    fake.editMessage(m.channel_id, m.id, 'edited again');
    await updated;
  });

  it('every session gets the dispatches (two replicas on one token)', async () => {
    const [a, b] = await Promise.all([login(makeClient()), login(makeClient())]);
    const got = Promise.all([nextMessage(a), nextMessage(b)]);
    fake.dm(ALICE, 'to both');
    expect((await got).map((m) => m.content)).toEqual(['to both', 'to both']);
    expect(fake.gatewaySessions.map((s) => s.state)).toEqual(['live', 'live']);
  });

  it('edits are dispatched as MESSAGE_UPDATE', async () => {
    const client = await login(makeClient());
    const m = fake.dm(ALICE, 'typo');
    await nextMessage(client);
    const updated = new Promise<Message>((resolve) =>
      client.once('messageUpdate', (_old, n) => resolve(n as Message)),
    );
    fake.editMessage(m.channel_id, m.id, 'fixed');
    const n = await updated;
    expect(n.content).toBe('fixed');
    expect(n.editedTimestamp).not.toBeNull();
  });
});

describe('FakeDiscord REST, raw', () => {
  let fake: FakeDiscord;
  let channelId: string;
  const api = async (method: string, path: string, body?: unknown, token = fake.token) => {
    const res = await fetch(`${fake.apiUrl}/v10${path}`, {
      method,
      headers: { authorization: `Bot ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, json: text ? JSON.parse(text) : undefined };
  };

  beforeEach(async () => {
    fake = await new FakeDiscord({ nonceWindowMs: 100, uploadLimitBytes: 8 }).start();
    fake.user(ALICE);
    channelId = fake.dmChannel(ALICE).id;
  });
  afterEach(async () => {
    await fake.close();
  });

  it('401 for a wrong token, with the body Discord sends', async () => {
    expect(await api('GET', '/users/@me', undefined, 'wrong')).toMatchObject({
      status: 401,
      json: { message: '401: Unauthorized', code: 0 },
    });
  });

  it('429 carries retry_after and the rate-limit headers', async () => {
    fake.rateLimitNext('POST /channels/:channel/messages', 1.5, { global: true });
    const r = await api('POST', `/channels/${channelId}/messages`, { content: 'x' });
    expect(r.status).toBe(429);
    expect(r.json).toMatchObject({ retry_after: 1.5, global: true });
    expect(r.headers.get('retry-after')).toBe('1.5');
    expect(r.headers.get('x-ratelimit-remaining')).toBe('0');
    expect(r.headers.get('x-ratelimit-reset-after')).toBe('1.5');
    expect(r.headers.get('x-ratelimit-global')).toBe('true');
    expect(r.headers.get('x-ratelimit-scope')).toBe('global');
    expect(r.headers.get('x-ratelimit-bucket')).toMatch(/^[0-9a-f]+$/);
  });

  it('validates messages: empty 50006, over 2000 characters 50035, a file over the limit 413, unknown channel 10003', async () => {
    expect((await api('POST', `/channels/${channelId}/messages`, { content: ' ' })).json.code).toBe(50006);
    expect(
      (await api('POST', `/channels/${channelId}/messages`, { content: 'x'.repeat(2001) })).json.code,
    ).toBe(50035);
    expect((await api('POST', '/channels/999999999999999999/messages', { content: 'x' })).json.code).toBe(
      10003,
    );
    const form = new FormData();
    form.append('payload_json', JSON.stringify({ content: 'big', attachments: [{ id: 0 }] }));
    form.append('files[0]', new Blob([Buffer.alloc(9)]), 'big.bin');
    const big = await fetch(`${fake.apiUrl}/v10/channels/${channelId}/messages`, {
      method: 'POST',
      headers: { authorization: `Bot ${fake.token}` },
      body: form,
    });
    expect(big.status).toBe(413);
    expect(await big.json()).toMatchObject({ code: 40005 });
    expect(fake.delivered()).toHaveLength(0);
  });

  it('nonce + enforce_nonce dedupes within the window only', async () => {
    const body = { content: 'once', nonce: 'n-1', enforce_nonce: true };
    const a = await api('POST', `/channels/${channelId}/messages`, body);
    const b = await api('POST', `/channels/${channelId}/messages`, body);
    expect(b.json.id).toBe(a.json.id);
    expect(fake.delivered(channelId)).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 120));
    const c = await api('POST', `/channels/${channelId}/messages`, body);
    expect(c.json.id).not.toBe(a.json.id);
    expect(fake.delivered(channelId)).toHaveLength(2);
  });

  it('message history: after/before/limit windows, answered newest first', async () => {
    const ids = ['1', '2', '3', '4', '5'].map((c) => fake.dm(ALICE, c).id);
    const after = await api('GET', `/channels/${channelId}/messages?after=${ids[0]}&limit=2`);
    expect(after.json.map((m: { content: string }) => m.content)).toEqual(['3', '2']);
    const before = await api('GET', `/channels/${channelId}/messages?before=${ids[4]}&limit=2`);
    expect(before.json.map((m: { content: string }) => m.content)).toEqual(['4', '3']);
    const latest = await api('GET', `/channels/${channelId}/messages?limit=1`);
    expect(latest.json.map((m: { content: string }) => m.content)).toEqual(['5']);
    expect((await api('GET', `/channels/${channelId}/messages?limit=101`)).status).toBe(400);
    expect((await api('GET', `/channels/${channelId}/messages/${ids[2]}`)).json.content).toBe('3');
  });

  it('refresh-urls re-signs our links and echoes others; CDN ranges work', async () => {
    const att = fake.addAttachment(channelId, { filename: 'f.bin', bytes: Buffer.from('0123456789') });
    const r = await api('POST', '/attachments/refresh-urls', {
      attachment_urls: [att.url, 'https://example.com/x.png'],
    });
    expect(r.json.refreshed_urls[1]).toEqual({
      original: 'https://example.com/x.png',
      refreshed: 'https://example.com/x.png',
    });
    const part = await fetch(r.json.refreshed_urls[0].refreshed, { headers: { range: 'bytes=2-4' } });
    expect(part.status).toBe(206);
    expect(await part.text()).toBe('234');
    const unsigned = att.url.slice(0, att.url.indexOf('?'));
    expect((await fetch(unsigned)).status).toBe(404);
  });

  it('a deleted message takes its files off the CDN; applications/@me tells the privileged intents; threads can be deleted', async () => {
    const m = fake.dm(ALICE, { attachments: [{ filename: 'x.txt', bytes: Buffer.from('x') }] });
    const url = m.attachments[0]!.url;
    expect((await fetch(url)).status).toBe(200);
    fake.deleteMessage(channelId, m.id);
    expect((await fetch(url)).status).toBe(404);
    const r = await api('POST', '/attachments/refresh-urls', { attachment_urls: [url] });
    expect(r.json.refreshed_urls[0].refreshed).toBe(url);

    expect((await api('GET', '/applications/@me')).json).toMatchObject({
      id: fake.bot.id,
      flags: (1 << 18) | (1 << 14) | (1 << 12),
    });
    fake.privilegedIntents = 0;
    expect((await api('GET', '/applications/@me')).json.flags).toBe(0);

    fake.guild({ id: GUILD, channels: [{ id: SUPPORT }] });
    const t = fake.createThread(SUPPORT, { name: 'gone soon' });
    expect((await api('DELETE', `/channels/${t.id}`)).status).toBe(200);
    expect(fake.channel(t.id)).toBeUndefined();
    expect((await api('DELETE', `/channels/${channelId}`)).status).toBe(400);
  });

  it('a stalled call is recorded and never answered; waitFor sees sent calls', async () => {
    fake.stallNext('POST /channels/:channel/messages');
    const ac = new AbortController();
    const pending = fetch(`${fake.apiUrl}/v10/channels/${channelId}/messages`, {
      method: 'POST',
      headers: { authorization: `Bot ${fake.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ content: 'lost' }),
      signal: ac.signal,
    }).catch((e: Error) => e.name);
    const call = await fake.waitFor((c) => (c.body as { content?: string }).content === 'lost');
    expect(call.status).toBeUndefined();
    ac.abort();
    expect(await pending).toBe('AbortError');
    expect(fake.delivered()).toHaveLength(0);
  });
});

describe('FakeDiscord gateway, raw', () => {
  let fake: FakeDiscord;
  beforeEach(async () => {
    fake = await new FakeDiscord().start();
  });
  afterEach(async () => {
    await fake.close();
  });

  const open = async () => {
    const ws = new WebSocket(`${fake.gatewayUrl}?v=10&encoding=json`);
    const frames: { op: number; t?: string; s?: number; d?: any }[] = [];
    const waiters: (() => void)[] = [];
    ws.on('message', (data) => {
      frames.push(JSON.parse(String(data)));
      for (const w of waiters.splice(0)) w();
    });
    const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
    const frame = async (pred: (f: (typeof frames)[number]) => boolean) => {
      for (;;) {
        const f = frames.find(pred);
        if (f) return f;
        await new Promise<void>((r) => waiters.push(r));
      }
    };
    await frame((f) => f.op === 10);
    return { ws, frames, frame, closed, send: (p: unknown) => ws.send(JSON.stringify(p)) };
  };

  it('HELLO, a bad token closes 4004', async () => {
    const c = await open();
    expect(c.frames[0]).toMatchObject({ op: 10, d: { heartbeat_interval: 41250 } });
    c.send({ op: 2, d: { token: 'nope', intents: 0, properties: {} } });
    expect(await c.closed).toBe(4004);
  });

  it('heartbeat ACK, READY with s=1, RESUME of an unknown session gets op 9 false', async () => {
    const c = await open();
    c.send({ op: 1, d: null });
    await c.frame((f) => f.op === 11);
    c.send({ op: 2, d: { token: fake.token, intents: 1 << 12, properties: {} } });
    const ready = await c.frame((f) => f.t === 'READY');
    expect(ready).toMatchObject({
      op: 0,
      s: 1,
      d: { v: 10, user: { id: fake.bot.id, bot: true }, guilds: [] },
    });
    c.ws.close(4200);
    await c.closed;

    const d = await open();
    d.send({ op: 6, d: { token: fake.token, session_id: 'unknown', seq: 1 } });
    expect(await d.frame((f) => f.op === 9)).toMatchObject({ d: false });
    d.ws.close();
  });
});
