/**
 * The Discord connector: discord.js against Discord's REST API and gateway.
 *
 * Intake: one gateway session, run under `ctx.exclusive('gateway')` so that of
 * several replicas sharing a store exactly one holds it (the others report
 * `standby` and serve deliveries, callbacks and media). Customer messages are
 * handed to `ctx.receive` in order per channel; after it resolved, the
 * channel's checkpoint moves to that message. On start and after every fresh
 * IDENTIFY (a session that could not be resumed) the history after each
 * channel's checkpoint is fetched, so nothing written while the process was
 * down or disconnected is missed; core drops the overlap as duplicates.
 *
 * Two ways in: DMs (`dc:<user>`), and with DISCORD_SUPPORT_CHANNEL_ID a server
 * channel where each customer gets a private thread (`dcs:<guild>:<user>`).
 *
 * Delivery: core's sendSteps over message POSTs, each with a nonce derived
 * from Kit's event id and the step (`enforce_nonce`), every REST call given
 * the attempt's signal; rate-limit waits longer than a few seconds come back
 * as RetryableDeliveryError with Discord's wait instead of sleeping inside.
 */
import { randomBytes } from 'node:crypto';
import {
  type AgentMessage,
  type AttachmentRef,
  type BackoffOptions,
  backoffDelay,
  type ChannelConnector,
  type Checkpoints,
  type ClientProfile,
  type CloseReason,
  type ConnectionStatus,
  type ConnectorContext,
  type DeliveryReceipt,
  type DeliveryTarget,
  type DeliveryWork,
  type InboundMessage,
  type JsonObject,
  type Logger,
  type MediaLimits,
  PermanentDeliveryError,
  type ProfileResolving,
  type ResolvedFile,
  type SelfChecking,
  sendSteps,
  silentLogger,
  sleep,
  type TargetMediaLimits,
  TtlCache,
  type TypingCapable,
} from '@kitbridge/core';
import { type ClientOptions, DiscordAPIError, RateLimitError, REST, Routes } from 'discord.js';
import {
  type ChannelBook as Book,
  ChannelBook,
  type ChannelEntry,
  memoryCheckpoints,
} from './checkpoints.js';
import { formatDmClientId, formatSupportClientId, hasDiscordPrefix, parseClientId } from './client-id.js';
import { botIdOfToken, DEFAULT_API_URL, DEFAULT_CDN_URL } from './config.js';
import { apiCode, isUnauthorized, safeError, toDeliveryError } from './errors.js';
import { DiscordFiles } from './files.js';
import { GatewayFatalError, type GatewayPacket, GatewaySession, TOKEN_REJECTED } from './gateway.js';
import {
  displayName,
  kitMessageId,
  mapContent,
  type NameSource,
  profileOf,
  type RawMessage,
  type RawUser,
  skipReason,
} from './inbound.js';
import { DEFAULT_UPLOAD_BYTES, intentsFor, inviteUrl, mediaLimitsOf, uploadLimitForTier } from './limits.js';
import { type OutPayload, type PlanContext, planMessage, planText } from './outbound.js';
import { countingMakeRequest } from './rate-limits.js';
import { newRestAgent, type RestAgent } from './rest-agent.js';
import { type RawThread, SupportThreads } from './threads.js';

export interface DiscordConnectorOptions {
  token: string;
  /** REST base without the version. Default https://discord.com/api. */
  apiUrl?: string;
  /** CDN base for avatars. Default https://cdn.discordapp.com. */
  cdnUrl?: string;
  /** A server text channel where customers write; each gets a private thread. */
  supportChannelId?: string;
  /** Largest upload for every target, in bytes (DISCORD_MAX_UPLOAD_MB); default by target. */
  maxUploadBytes?: number;
  logger?: Logger;
  rest?: {
    /** Per request until the answer's headers. Default 15 s. */
    timeoutMs?: number;
    /** Per file upload. Default 5 min. */
    uploadTimeoutMs?: number;
    /** @discordjs/rest's own retries of 5xx and timeouts. Default 3. */
    retries?: number;
    /** Extra wait after a rate limit's reset, ms. Default 50. */
    offsetMs?: number;
  };
  /** Rate-limit waits up to this long happen inside a call; longer ones come back to the outbox. Default 3 s. */
  maxRateLimitWaitMs?: number;
  /** Merged into discord.js's Client options (tests: `ws.buildIdentifyThrottler`, `waitGuildTimeout`). */
  client?: Partial<ClientOptions>;
  /** Waits between tries of a receive the store refused. Default 200 ms .. 30 s. */
  receiveBackoff?: BackoffOptions;
  /** Waits between logins when Discord is unreachable. Default 1 s .. 60 s. */
  reconnectBackoff?: BackoffOptions;
  /** After a refused token or intent (once running), how long until trying again. Default 60 s. */
  fatalRetryMs?: number;
  /** With ctx.exclusive: report standby when the gateway job has not started within this. Default 1.5 s. */
  standbyGraceMs?: number;
  /** start() resolves (reconnecting) when the first login takes longer than this. Default 30 s. */
  startTimeoutMs?: number;
  backfill?: {
    /** Pages of 100 messages fetched per channel at most. Default 20. */
    maxPages?: number;
    /** Channels quiet for longer are no longer looked at. Default 30 days. */
    windowMs?: number;
    /** Channels fetched at once. Default 4. */
    concurrency?: number;
  };
  /** How long a looked-up profile is reused. Default one day. */
  profileTtlMs?: number;
}

const never = new AbortController().signal;
const GUILD_TEXT = 0;
const GUILD_ANNOUNCEMENT = 5;

/** Where one delivery goes; `reopen` finds it again when Discord says it is gone. */
interface Destination {
  channelId: string;
  reopen?: (signal: AbortSignal) => Promise<string>;
}

/** Who a customer message is from, as the connector files it. */
interface Route {
  clientId: string;
  entry: ChannelEntry;
  address?: JsonObject;
  /** A message in the support channel itself: the customer's thread is opened after it was received. */
  openThread?: { guildId: string; user: RawUser };
}

export class DiscordConnector
  implements ChannelConnector, ProfileResolving, TargetMediaLimits, SelfChecking, TypingCapable
{
  readonly name = 'discord';
  readonly profileTtlMs: number;
  private readonly token: string;
  private readonly apiUrl: string;
  private readonly cdnUrl: string;
  private readonly support?: string;
  private readonly agent: RestAgent;
  private readonly uploadAgent: RestAgent;
  /** REST for everything but uploads; uploads get a longer timeout. */
  readonly rest: REST;
  private readonly uploadRest: REST;
  private readonly files: DiscordFiles;
  private readonly threads?: SupportThreads;
  private readonly tiers = new TtlCache<string, number>({ ttlMs: 3_600_000, maxEntries: 1_000 });
  private readonly profiles: TtlCache<string, ClientProfile | undefined>;
  private readonly dmChannels = new Map<string, string>();
  private logger: Logger;
  private ctx?: ConnectorContext;
  private run?: AbortController;
  private state: ConnectionStatus = { state: 'stopped' };
  private book?: Book;
  private selfId?: string;
  private applicationId?: string;
  private supportGuildId?: string;
  private session?: GatewaySession;
  private jobs = new Set<Promise<void>>();
  private jobRunning = false;
  private gate: Promise<void> = Promise.resolve();
  private readonly queues = new Map<string, Promise<void>>();
  private backfillSlots = 0;
  private readonly backfillWaiters: (() => void)[] = [];
  private warnedMemory = false;
  private memory?: Checkpoints;

  constructor(private readonly opts: DiscordConnectorOptions) {
    this.token = opts.token.replace(/^Bot\s+/i, '');
    this.apiUrl = (opts.apiUrl ?? DEFAULT_API_URL).replace(/\/+$/, '');
    this.cdnUrl = (opts.cdnUrl ?? DEFAULT_CDN_URL).replace(/\/+$/, '');
    if (opts.supportChannelId) this.support = opts.supportChannelId;
    this.logger = opts.logger ?? silentLogger;
    this.applicationId = botIdOfToken(this.token);
    this.selfId = this.applicationId;
    this.profileTtlMs = opts.profileTtlMs ?? 24 * 3_600_000;
    this.profiles = new TtlCache({ ttlMs: this.profileTtlMs });
    this.agent = newRestAgent();
    this.uploadAgent = newRestAgent();
    const maxWait = opts.maxRateLimitWaitMs ?? 3_000;
    const restOptions = {
      api: this.apiUrl,
      cdn: this.cdnUrl,
      retries: opts.rest?.retries ?? 3,
      offset: opts.rest?.offsetMs ?? 50,
      // A long wait goes back to the outbox (RetryableDeliveryError with the wait), a short one is slept here.
      rejectOnRateLimit: (data: { retryAfter: number; timeToReset: number }) =>
        Math.max(data.retryAfter, data.timeToReset) > maxWait,
      makeRequest: countingMakeRequest(() => this.ctx?.metrics),
    };
    this.rest = new REST({
      ...restOptions,
      timeout: opts.rest?.timeoutMs ?? 15_000,
      agent: this.agent as never,
    }).setToken(this.token);
    this.uploadRest = new REST({
      ...restOptions,
      timeout: opts.rest?.uploadTimeoutMs ?? 300_000,
      agent: this.uploadAgent as never,
    }).setToken(this.token);
    this.files = new DiscordFiles({
      rest: this.rest,
      cdnUrl: this.cdnUrl,
      token: this.token,
      logger: () => this.logger,
    });
    if (this.support) {
      this.threads = new SupportThreads({
        rest: this.rest,
        channelId: this.support,
        guildId: () => this.supportGuildId,
        selfId: () => this.selfId,
        cached: () => this.cachedThreads(),
        logger: () => this.logger,
      });
    }
  }

  // ---------------------------------------------------------------- contract basics

  ownsClient(clientId: string): boolean {
    return hasDiscordPrefix(clientId);
  }

  /**
   * The static table core checks agent files against: the largest upload any
   * target takes (DISCORD_MAX_UPLOAD_MB, or the support server's boost level).
   * Each delivery checks its own target again ({@link mediaLimitsFor}).
   */
  get mediaLimits(): MediaLimits {
    if (this.opts.maxUploadBytes) return mediaLimitsOf(this.opts.maxUploadBytes);
    const tier = this.supportGuildId ? this.tiers.peek(this.supportGuildId) : undefined;
    return mediaLimitsOf(Math.max(DEFAULT_UPLOAD_BYTES, uploadLimitForTier(tier)));
  }

  status(): ConnectionStatus {
    return this.state;
  }

  // ---------------------------------------------------------------- lifecycle

  async start(ctx: ConnectorContext): Promise<void> {
    if (this.run && !this.run.signal.aborted) return;
    this.ctx = ctx;
    this.logger = ctx.logger;
    const run = new AbortController();
    this.run = run;
    const stopRun = () => run.abort(new Error('stopping'));
    if (ctx.signal.aborted) stopRun();
    else ctx.signal.addEventListener('abort', stopRun, { once: true });
    this.setStatus({ state: 'starting' });
    let checkpoints = ctx.checkpoints;
    if (!checkpoints) {
      // Kept by this connector object: a restart of it in the same process still knows its cursors.
      checkpoints = this.memory ??= memoryCheckpoints();
      if (!this.warnedMemory)
        this.logger.warn(
          'core gave no durable checkpoints: messages written while the process is down are not fetched after a restart',
        );
      this.warnedMemory = true;
    }
    this.book = new ChannelBook(checkpoints, () => this.logger, this.opts.backfill);

    try {
      await this.identify(run.signal);
    } catch (err) {
      run.abort(err);
      throw err;
    }

    let settled = false;
    let resolveFirst!: () => void;
    let rejectFirst!: (err: Error) => void;
    const first = new Promise<void>((resolve, reject) => {
      resolveFirst = () => {
        settled = true;
        resolve();
      };
      rejectFirst = (err) => {
        settled = true;
        reject(err);
      };
    });
    const outcome = {
      resolve: () => resolveFirst(),
      reject: (e: Error) => rejectFirst(e),
      settled: () => settled,
    };
    const job = (signal: AbortSignal) => this.holdGateway(signal, outcome);
    let standby: NodeJS.Timeout | undefined;
    if (ctx.exclusive) {
      const onStandby = () => {
        if (this.jobRunning || settled) return;
        this.setStatus({
          state: 'standby',
          code: 'not_leader',
          reason: 'another replica holds the Discord gateway session',
        });
        outcome.resolve();
      };
      // A core that says how its first try went ('running' | 'standby') is taken at its word; one
      // that returns nothing gets a grace period for the job to start before this reports standby.
      const taken = ctx.exclusive('gateway', job) as unknown as Promise<'running' | 'standby'> | undefined;
      if (taken && typeof taken.then === 'function') {
        taken.then(
          (how) => {
            if (how === 'standby') onStandby();
          },
          (err: unknown) =>
            outcome.reject(new Error(`the gateway job could not be scheduled: ${(err as Error).message}`)),
        );
      } else if (!this.jobRunning) {
        standby = setTimeout(onStandby, this.opts.standbyGraceMs ?? 1_500);
      }
    } else {
      void job(run.signal);
    }
    const slow = setTimeout(() => outcome.resolve(), this.opts.startTimeoutMs ?? 30_000);
    try {
      await first;
    } catch (err) {
      run.abort(err);
      throw err;
    } finally {
      clearTimeout(standby);
      clearTimeout(slow);
    }
  }

  async stop(): Promise<void> {
    const run = this.run;
    if (run && !run.signal.aborted) run.abort(new Error('stopping'));
    await this.session?.destroy();
    await Promise.allSettled([...this.jobs]);
    // Messages being handed to core finish (their receive is bounded); the rest comes back by backfill.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...this.queues.values()]),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, 5_000);
      }),
    ]).finally(() => clearTimeout(timer));
    await this.files.close();
    this.setStatus({ state: 'stopped' });
  }

  /** GET /users/@me (a rejected token stops start-up) and, in support mode, the support channel. */
  private async identify(signal: AbortSignal): Promise<void> {
    try {
      const me = (await this.rest.get(Routes.user(), { signal })) as RawUser;
      this.selfId = me.id;
      this.logger.info({ bot: me.username, id: me.id, support: !!this.support }, 'Discord bot identified');
    } catch (err) {
      if (isUnauthorized(err)) {
        this.setStatus({ state: 'failed', code: 'bad_credentials', reason: TOKEN_REJECTED });
        throw new Error(TOKEN_REJECTED);
      }
      this.logger.warn(
        { err: safeError(err, this.token).message },
        'Discord unreachable at start; the gateway keeps trying',
      );
      return;
    }
    if (!this.support) return;
    try {
      const ch = (await this.rest.get(Routes.channel(this.support), { signal })) as {
        type: number;
        guild_id?: string;
        name?: string;
      };
      if ((ch.type !== GUILD_TEXT && ch.type !== GUILD_ANNOUNCEMENT) || !ch.guild_id) {
        const reason = `DISCORD_SUPPORT_CHANNEL_ID is not a server text channel (channel type ${ch.type})`;
        this.setStatus({ state: 'failed', code: 'misconfigured', reason });
        throw new Error(reason);
      }
      this.supportGuildId = ch.guild_id;
    } catch (err) {
      if (err instanceof DiscordAPIError && (err.status === 403 || err.status === 404)) {
        const reason =
          `the bot cannot see DISCORD_SUPPORT_CHANNEL_ID ${this.support} (${err.message}): ` +
          `invite it to the server with ${inviteUrl(this.applicationId ?? '<application id>', true)} ` +
          'and let it view the channel';
        this.setStatus({ state: 'failed', code: 'missing_permission', reason });
        throw new Error(reason);
      }
      if (!(err instanceof DiscordAPIError)) {
        this.logger.warn(
          { err: safeError(err, this.token).message },
          'support channel not checked; Discord unreachable',
        );
        return;
      }
      throw err;
    }
  }

  /**
   * The exclusive job: hold a gateway session until `signal` aborts (lease lost,
   * or the process stops); log in again after Discord ended a session.
   */
  private holdGateway(
    signal: AbortSignal,
    first: { resolve(): void; reject(err: Error): void; settled(): boolean },
  ): Promise<void> {
    const run = this.run!;
    const p = (async () => {
      this.jobRunning = true;
      const jobSignal = AbortSignal.any([signal, run.signal]);
      const backoff = this.opts.reconnectBackoff ?? { baseMs: 1_000, maxMs: 60_000 };
      let attempt = 0;
      try {
        while (!jobSignal.aborted) {
          const session = new GatewaySession({
            token: this.token,
            intents: intentsFor(!!this.support),
            support: !!this.support,
            ...(this.applicationId ? { applicationId: this.applicationId } : {}),
            api: this.apiUrl,
            cdn: this.cdnUrl,
            agent: this.agent,
            restTimeoutMs: this.opts.rest?.timeoutMs ?? 15_000,
            events: {
              dispatch: (packet) => this.onDispatch(packet),
              reconnecting: (reason) => this.setStatus({ state: 'reconnecting', code: 'network', reason }),
            },
            logger: this.logger,
            ...(this.opts.client ? { client: this.opts.client } : {}),
          });
          this.session = session;
          try {
            await session.open(jobSignal);
            attempt = 0;
            first.resolve();
            const end = await Promise.race([
              session.ended,
              new Promise<undefined>((r) =>
                jobSignal.addEventListener('abort', () => r(undefined), { once: true }),
              ),
            ]);
            if (!end || jobSignal.aborted) break;
            if (end.code !== 'closed') {
              this.setStatus({ state: 'failed', code: end.code, reason: end.reason });
              await sleep(this.opts.fatalRetryMs ?? 60_000, jobSignal).catch(() => {});
            }
          } catch (err) {
            if (jobSignal.aborted) break;
            if (err instanceof GatewayFatalError) {
              this.setStatus({ state: 'failed', code: err.fatal.code, reason: err.fatal.reason });
              if (!first.settled()) {
                first.reject(new Error(err.fatal.reason));
                break;
              }
              this.logger.error({ code: err.fatal.code }, `Discord gateway refused: ${err.fatal.reason}`);
              await sleep(this.opts.fatalRetryMs ?? 60_000, jobSignal).catch(() => {});
              continue;
            }
            attempt++;
            const reason = (err as Error).message;
            const wait = backoffDelay(attempt, backoff);
            // Out of daily sessions (session_start_limit) is Discord throttling us, not the network.
            const code = /sessions remaining/i.test(reason) ? 'rate_limited' : 'network';
            this.setStatus({ state: 'reconnecting', code, reason });
            this.logger.warn(
              { err: reason, attempt, retryInMs: wait },
              'Discord gateway login failed; retrying',
            );
            first.resolve();
            await sleep(wait, jobSignal).catch(() => {});
          } finally {
            if (this.session === session) this.session = undefined;
            await session.destroy();
          }
        }
      } finally {
        this.jobRunning = false;
        if (!run.signal.aborted && this.state.state !== 'failed') {
          this.setStatus({
            state: 'standby',
            code: 'not_leader',
            reason: 'another replica holds the Discord gateway session',
          });
        }
      }
    })();
    this.jobs.add(p);
    void p.finally(() => this.jobs.delete(p));
    return p;
  }

  // ---------------------------------------------------------------- intake

  private onDispatch(packet: GatewayPacket): void {
    const d = packet.d as Record<string, unknown>;
    switch (packet.t) {
      case 'READY': {
        const user = d['user'] as RawUser | undefined;
        if (user?.id) this.selfId = user.id;
        const app = d['application'] as { id?: string } | undefined;
        if (app?.id) this.applicationId = app.id;
        this.setStatus({ state: 'connected' });
        this.freshSession();
        return;
      }
      case 'RESUMED':
        this.logger.info('Discord gateway session resumed');
        this.setStatus({ state: 'connected' });
        return;
      case 'MESSAGE_CREATE':
        this.onLive(d as unknown as RawMessage, false);
        return;
      case 'MESSAGE_UPDATE':
        this.onLive(d as unknown as RawMessage, true);
        return;
      case 'GUILD_CREATE':
      case 'GUILD_UPDATE':
        this.onGuild(d);
        return;
      case 'THREAD_CREATE':
      case 'THREAD_UPDATE':
        this.threads?.customerOf(d as unknown as RawThread);
        return;
      case 'THREAD_DELETE':
        this.threads?.forget(String(d['id']));
        return;
      case 'CHANNEL_CREATE': {
        const recipients = d['recipients'] as RawUser[] | undefined;
        if (d['type'] === 1 && recipients?.[0]) this.dmChannels.set(recipients[0].id, String(d['id']));
        return;
      }
      default:
        return;
    }
  }

  private onGuild(d: Record<string, unknown>): void {
    const id = String(d['id']);
    const channels = (d['channels'] as { id: string }[] | undefined) ?? [];
    if (this.support && !this.supportGuildId && channels.some((c) => c.id === this.support))
      this.supportGuildId = id;
    if (typeof d['premium_tier'] === 'number') this.tiers.set(id, d['premium_tier']);
    if (id === this.supportGuildId) {
      for (const t of (d['threads'] as RawThread[] | undefined) ?? []) this.threads?.customerOf(t);
    }
  }

  /**
   * A fresh session (start, or a reconnect that could not resume): load the
   * channels and their checkpoints, and queue a history fetch for each before
   * any live message of the new session (they wait on the gate).
   */
  private freshSession(): void {
    const book = this.book!;
    this.gate = (async () => {
      let channels: Awaited<ReturnType<Book['load']>>;
      try {
        channels = await book.load();
      } catch (err) {
        this.logger.warn(
          { err: (err as Error).message },
          'checkpoints unreadable; nothing fetched from history',
        );
        return;
      }
      for (const c of channels) {
        if (c.entry.kind === 'thread') this.threads?.note(c.entry.userId, c.channelId);
        this.enqueue(c.channelId, () => this.backfill(c.channelId, c.entry));
      }
      if (channels.length)
        this.logger.info({ channels: channels.length }, 'fetching what arrived while disconnected');
    })();
  }

  private onLive(msg: RawMessage, edited: boolean): void {
    if (!msg?.id || !msg.channel_id) return;
    const skip = skipReason(msg, this.selfId);
    if (skip) {
      if (skip !== 'the bot itself')
        this.logger.debug({ messageId: msg.id, reason: skip }, 'message ignored');
      return;
    }
    // An update without an edit time is an embed being unfurled, not an edit.
    if (edited && !msg.edited_timestamp) return;
    void this.gate.then(() => {
      const route = this.routeOfLive(msg);
      if (!route) {
        this.logger.debug(
          { messageId: msg.id, channelId: msg.channel_id },
          'message outside DMs and the support channel ignored',
        );
        return;
      }
      this.enqueue(msg.channel_id, () => this.handle(msg, route, edited));
    });
  }

  /** Who a live message is from, or undefined when it is none of the connector's business. */
  private routeOfLive(msg: RawMessage): Route | undefined {
    if (!msg.guild_id) {
      if (msg.channel_type !== undefined && msg.channel_type !== 1) return undefined; // group DMs
      return this.routeFor(msg.channel_id, { kind: 'dm', userId: msg.author.id }, msg.author);
    }
    if (!this.support) return undefined;
    if (msg.channel_id === this.support) {
      this.supportGuildId ??= msg.guild_id;
      return this.routeFor(msg.channel_id, { kind: 'support', guildId: msg.guild_id }, msg.author);
    }
    const customer =
      this.threads?.knownCustomer(msg.channel_id) ??
      (() => {
        const t = this.cachedThread(msg.channel_id);
        return t ? this.threads?.customerOf(t) : undefined;
      })();
    if (!customer) return undefined;
    return this.routeFor(
      msg.channel_id,
      { kind: 'thread', guildId: msg.guild_id, userId: customer },
      msg.author,
    );
  }

  /** The client a message in `channelId` (filed as `entry`) belongs to; undefined for other authors in a thread. */
  private routeFor(channelId: string, entry: ChannelEntry, author: RawUser): Route | undefined {
    switch (entry.kind) {
      case 'dm':
        return {
          clientId: formatDmClientId(author.id),
          entry: { kind: 'dm', userId: author.id },
          address: { channelId },
        };
      case 'support':
        return {
          clientId: formatSupportClientId(entry.guildId, author.id),
          entry,
          ...(this.threads?.known(author.id)
            ? { address: { threadId: this.threads.known(author.id)! } }
            : {}),
          openThread: { guildId: entry.guildId, user: author },
        };
      case 'thread':
        // Only the customer speaks for the customer: staff writing in the thread are not relayed.
        if (author.id !== entry.userId) return undefined;
        return {
          clientId: formatSupportClientId(entry.guildId, entry.userId),
          entry,
          address: { threadId: channelId },
        };
    }
  }

  /** Hands one customer message to core, then moves the channel's checkpoint past it. */
  private async handle(msg: RawMessage, route: Route, edited: boolean): Promise<void> {
    let content: ReturnType<typeof mapContent>;
    try {
      content = mapContent(msg, this.names());
    } catch (err) {
      this.logger.error({ messageId: msg.id, err: (err as Error).message }, 'unreadable message skipped');
      return;
    }
    if (!content.text && content.items.length === 0) {
      this.logger.debug({ messageId: msg.id }, 'message without text, files or stickers ignored');
      return;
    }
    const message: InboundMessage = {
      client: {
        clientId: route.clientId,
        ...(route.address ? { address: route.address } : {}),
        profile: profileOf(msg.author),
      },
      messageId: kitMessageId(msg, edited),
      ...(content.text ? { text: content.text } : {}),
      ...(content.items.length ? { items: content.items } : {}),
      ...(edited ? { edited: true } : {}),
    };
    await this.receive(message);
    const book = this.book!;
    await book.remember(msg.channel_id, route.entry).catch((err: Error) => {
      this.logger.warn({ err: err.message }, 'channel index not stored; retried with the next message');
    });
    if (!edited) {
      await book.advance(msg.channel_id, msg.id).catch((err: Error) => {
        this.logger.warn(
          { err: err.message },
          'checkpoint not stored; the next fetch repeats (deduplicated)',
        );
      });
    }
    if (route.openThread)
      void this.openThread(route.clientId, route.openThread.guildId, route.openThread.user);
  }

  /** ctx.receive until it resolves (the store is back) or the process stops. */
  private async receive(message: InboundMessage): Promise<void> {
    const ctx = this.ctx!;
    const signal = this.run!.signal;
    const backoff = this.opts.receiveBackoff ?? { baseMs: 200, maxMs: 30_000 };
    for (let attempt = 1; ; attempt++) {
      try {
        await ctx.receive(message);
        return;
      } catch (err) {
        if (signal.aborted) throw err;
        const wait = backoffDelay(attempt, backoff);
        this.logger.warn(
          { clientId: message.client.clientId, err: (err as Error).message, retryInMs: wait },
          'message not stored; trying again',
        );
        await sleep(wait, signal);
      }
    }
  }

  /** After a customer's first message in the support channel: their private thread, found or created. */
  private async openThread(clientId: string, guildId: string, user: RawUser): Promise<void> {
    const threads = this.threads;
    if (!threads || this.run?.signal.aborted) return;
    try {
      const known = threads.known(user.id);
      const threadId = await threads.findOrCreate(user.id, displayName(user), this.run!.signal);
      if (known === threadId) return;
      await this.noteThread(clientId, guildId, user.id, threadId);
    } catch (err) {
      this.logger.warn(
        { clientId, err: safeError(err, this.token).message },
        'support thread not opened; tried again with the next message or reply',
      );
    }
  }

  private async noteThread(
    clientId: string,
    guildId: string,
    userId: string,
    threadId: string,
  ): Promise<void> {
    await this.ctx?.updateClient({ clientId, address: { threadId } });
    const book = this.book!;
    await book.remember(threadId, { kind: 'thread', guildId, userId });
    // Everything in the thread is newer than the thread itself: the history fetch starts there.
    if (!book.cursor(threadId)) await book.advance(threadId, threadId);
  }

  /** Fetches a channel's history after its checkpoint, oldest first, and hands each message to core. */
  private async backfill(channelId: string, entry: ChannelEntry): Promise<void> {
    await this.acquireBackfill();
    const signal = this.run!.signal;
    let count = 0;
    try {
      let after = this.book!.cursor(channelId);
      const maxPages = this.opts.backfill?.maxPages ?? 20;
      for (let page = 0; after && page < maxPages && !signal.aborted; page++) {
        const batch = await this.history(channelId, after, signal);
        if (!batch) return;
        batch.sort((a, b) => (BigInt(a.id) < BigInt(b.id) ? -1 : 1));
        for (const m of batch) {
          if (skipReason(m, this.selfId)) continue;
          const route = this.routeFor(channelId, entry, m.author);
          if (!route) continue;
          await this.handle(m, route, false);
          count++;
        }
        if (batch.length < 100) break;
        after = batch.at(-1)!.id;
        if (page === maxPages - 1)
          this.logger.warn({ channelId, pages: maxPages }, 'history fetch stopped at its page limit');
      }
    } finally {
      this.releaseBackfill();
      if (count)
        this.logger.info({ channelId, messages: count }, 'fetched messages that arrived while disconnected');
    }
  }

  /** One page of history; undefined when the channel is gone or the fetch keeps failing. */
  private async history(
    channelId: string,
    after: string,
    signal: AbortSignal,
  ): Promise<RawMessage[] | undefined> {
    const backoff = this.opts.reconnectBackoff ?? { baseMs: 1_000, maxMs: 60_000 };
    for (let attempt = 1; attempt <= 5; attempt++) {
      try {
        return (await this.rest.get(Routes.channelMessages(channelId), {
          query: new URLSearchParams({ after, limit: '100' }),
          signal,
        })) as RawMessage[];
      } catch (err) {
        if (signal.aborted) return undefined;
        const code = apiCode(err);
        if (code === 10003 || code === 50001 || code === 50013) {
          this.logger.info({ channelId, code }, 'channel no longer readable; not fetched');
          return undefined;
        }
        const wait = err instanceof RateLimitError ? err.retryAfter : backoffDelay(attempt, backoff);
        this.logger.warn(
          { channelId, err: safeError(err, this.token).message, retryInMs: wait },
          'history fetch failed',
        );
        await sleep(wait, signal).catch(() => {});
      }
    }
    return undefined;
  }

  private acquireBackfill(): Promise<void> {
    if (this.backfillSlots < (this.opts.backfill?.concurrency ?? 4)) {
      this.backfillSlots++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.backfillWaiters.push(resolve));
  }

  private releaseBackfill(): void {
    const next = this.backfillWaiters.shift();
    if (next) next();
    else this.backfillSlots--;
  }

  /** Runs `task` after everything queued for the channel: one channel's messages reach core in order. */
  private enqueue(channelId: string, task: () => Promise<void>): void {
    const signal = this.run?.signal;
    const prev = this.queues.get(channelId) ?? Promise.resolve();
    const next = prev
      .then(() => (signal?.aborted ? undefined : task()))
      .catch((err: unknown) => {
        if (!signal?.aborted)
          this.logger.error({ channelId, err: (err as Error).message }, 'message handling failed');
      });
    this.queues.set(channelId, next);
    void next.finally(() => {
      if (this.queues.get(channelId) === next) this.queues.delete(channelId);
    });
  }

  private names(): NameSource {
    const client = this.session?.client;
    if (!client) return {};
    return {
      channel: (id) => {
        const c = client.channels.cache.get(id) as { name?: string } | undefined;
        return c?.name ?? undefined;
      },
      role: (id) => {
        for (const g of client.guilds.cache.values()) {
          const r = g.roles.cache.get(id);
          if (r) return r.name;
        }
        return undefined;
      },
    };
  }

  private cachedThread(id: string): RawThread | undefined {
    const c = this.session?.client.channels.cache.get(id) as
      | {
          id: string;
          name?: string;
          parentId?: string | null;
          ownerId?: string | null;
          isThread?: () => boolean;
        }
      | undefined;
    if (!c?.isThread?.()) return undefined;
    return {
      id: c.id,
      ...(c.name ? { name: c.name } : {}),
      parent_id: c.parentId ?? null,
      ...(c.ownerId ? { owner_id: c.ownerId } : {}),
    };
  }

  private *cachedThreads(): Iterable<RawThread> {
    const client = this.session?.client;
    if (!client) return;
    for (const c of client.channels.cache.values()) {
      if (!c.isThread()) continue;
      yield {
        id: c.id,
        name: c.name,
        parent_id: c.parentId,
        ...(c.ownerId ? { owner_id: c.ownerId } : {}),
      };
    }
  }

  // ---------------------------------------------------------------- delivery

  async deliver(
    target: DeliveryTarget,
    message: AgentMessage,
    work?: DeliveryWork,
  ): Promise<DeliveryReceipt> {
    const signal = work?.signal ?? never;
    try {
      const dest = await this.destination(target, signal);
      const limits = message.attachments.length ? await this.limitsFor(target, signal) : this.mediaLimits;
      return await sendSteps(planMessage(message, message.eventId, this.planContext(dest, limits)), work);
    } catch (err) {
      throw toDeliveryError(err, this.token);
    }
  }

  async closeConversation(
    target: DeliveryTarget,
    _reason: CloseReason,
    closingText?: string,
    work?: DeliveryWork,
  ): Promise<DeliveryReceipt> {
    if (!closingText || !/\S/.test(closingText)) return {};
    const signal = work?.signal ?? never;
    try {
      const dest = await this.destination(target, signal);
      // Core gives no event id here: a random key, kept with the delivery's progress, makes the nonces.
      const { key, work: keyed } = await keyedWork(work);
      return await sendSteps(planText(closingText, key, this.planContext(dest, this.mediaLimits)), keyed);
    } catch (err) {
      throw toDeliveryError(err, this.token);
    }
  }

  async sendTyping(target: DeliveryTarget): Promise<void> {
    const signal = AbortSignal.timeout(10_000);
    const dest = await this.destination(target, signal);
    await this.rest.post(Routes.channelTyping(dest.channelId), { signal });
  }

  /** 10 MiB in DMs and unboosted servers, 50 / 100 MiB at boost level 2 / 3; DISCORD_MAX_UPLOAD_MB overrides. */
  async mediaLimitsFor(target: DeliveryTarget, signal: AbortSignal): Promise<MediaLimits> {
    if (this.opts.maxUploadBytes) return mediaLimitsOf(this.opts.maxUploadBytes);
    const c = parseClientId(target.clientId);
    if (c?.kind !== 'support') return mediaLimitsOf(DEFAULT_UPLOAD_BYTES);
    const tier = await this.tiers.get(c.guildId, async () => {
      const g = (await this.rest.get(Routes.guild(c.guildId), { signal })) as { premium_tier?: number };
      return g.premium_tier ?? 0;
    });
    return mediaLimitsOf(uploadLimitForTier(tier));
  }

  private async limitsFor(target: DeliveryTarget, signal: AbortSignal): Promise<MediaLimits> {
    try {
      return await this.mediaLimitsFor(target, signal);
    } catch (err) {
      this.logger.debug(
        { err: safeError(err, this.token).message },
        'upload limit lookup failed; using the default',
      );
      return mediaLimitsOf(this.opts.maxUploadBytes ?? DEFAULT_UPLOAD_BYTES);
    }
  }

  /** Where a client's messages go: their DM channel (opened on demand) or their support thread (found or made). */
  private async destination(target: DeliveryTarget, signal: AbortSignal): Promise<Destination> {
    const c = parseClientId(target.clientId);
    if (!c) throw new PermanentDeliveryError(`not a Discord client id: ${target.clientId}`);
    const address = target.address ?? {};
    if (c.kind === 'dm') {
      const stored = typeof address['channelId'] === 'string' ? address['channelId'] : undefined;
      const channelId =
        stored ?? this.dmChannels.get(c.userId) ?? (await this.openDm(target.clientId, c.userId, signal));
      return { channelId, reopen: (s) => this.openDm(target.clientId, c.userId, s) };
    }
    const stored = typeof address['threadId'] === 'string' ? address['threadId'] : undefined;
    const threads = this.threads;
    if (stored && !threads) return { channelId: stored };
    if (!threads) {
      throw new PermanentDeliveryError(
        `${target.clientId} is a support-channel customer, but DISCORD_SUPPORT_CHANNEL_ID is not set and no thread is known`,
      );
    }
    if (this.supportGuildId && c.guildId !== this.supportGuildId && !stored) {
      throw new PermanentDeliveryError(
        `${target.clientId} belongs to another server than DISCORD_SUPPORT_CHANNEL_ID's`,
      );
    }
    const find = async (s: AbortSignal) => {
      const name = this.profiles.peek(c.userId)?.displayName;
      const id = await threads.findOrCreate(c.userId, name, s);
      await this.noteThread(target.clientId, c.guildId, c.userId, id);
      return id;
    };
    const channelId = stored ?? threads.known(c.userId) ?? (await find(signal));
    if (stored) threads.note(c.userId, stored);
    return {
      channelId,
      reopen: async (s) => {
        threads.forget(channelId);
        return find(s);
      },
    };
  }

  /** POST /users/@me/channels: the DM channel with a user (after a restart the address may be unknown). */
  private async openDm(clientId: string, userId: string, signal: AbortSignal): Promise<string> {
    const ch = (await this.rest.post(Routes.userChannels(), { body: { recipient_id: userId }, signal })) as {
      id: string;
    };
    this.dmChannels.set(userId, ch.id);
    await this.ctx?.updateClient({ clientId, address: { channelId: ch.id } }).catch((err: Error) => {
      this.logger.debug({ err: err.message }, 'DM channel not recorded');
    });
    return ch.id;
  }

  private planContext(dest: Destination, limits: MediaLimits): PlanContext {
    return {
      maxUploadBytes: limits.document.maxUploadBytes,
      isTooLarge: (err) => apiCode(err) === 40005 || (err instanceof DiscordAPIError && err.status === 413),
      post: (payload, signal) => this.post(dest, payload, signal),
    };
  }

  /** One message POST with its nonce; a gone DM channel or thread is found again once. */
  private async post(dest: Destination, p: OutPayload, signal: AbortSignal): Promise<{ id: string }> {
    const body: Record<string, unknown> = {
      nonce: p.nonce,
      enforce_nonce: true,
      // Agents' text never pings @everyone, roles or users.
      allowed_mentions: { parse: [] },
      ...(p.content ? { content: p.content } : {}),
      ...(p.file ? { attachments: [{ id: 0, filename: p.file.name }] } : {}),
    };
    const rest = p.file ? this.uploadRest : this.rest;
    const files = p.file
      ? [
          {
            key: 'files[0]',
            name: p.file.name,
            data: p.file.data,
            ...(p.file.contentType ? { contentType: p.file.contentType } : {}),
          },
        ]
      : undefined;
    const send = (channelId: string) =>
      rest.post(Routes.channelMessages(channelId), { body, ...(files ? { files } : {}), signal }) as Promise<{
        id: string;
      }>;
    try {
      return await send(dest.channelId);
    } catch (err) {
      if (apiCode(err) !== 10003 || !dest.reopen) throw err;
      this.logger.info({ channelId: dest.channelId }, 'DM channel or thread gone; opening it again');
      dest.channelId = await dest.reopen(signal);
      return send(dest.channelId);
    }
  }

  // ---------------------------------------------------------------- media and profiles

  resolveAttachment(ref: AttachmentRef): Promise<ResolvedFile> {
    return this.files.open(ref);
  }

  /** Display name (global name, else username) and avatar; Discord tells no language. */
  async resolveProfile(target: DeliveryTarget, signal: AbortSignal): Promise<ClientProfile | undefined> {
    const c = parseClientId(target.clientId);
    if (!c) return undefined;
    return this.profiles.get(c.userId, async () => {
      const user = (await this.rest.get(Routes.user(c.userId), { signal })) as RawUser;
      return profileOf(user);
    });
  }

  // ---------------------------------------------------------------- kitbridge check

  /** The token, the gateway quota, the privileged intent and the support channel; starts nothing. */
  async selfCheck(): Promise<string> {
    const signal = AbortSignal.timeout(20_000);
    let me: RawUser;
    try {
      me = (await this.rest.get(Routes.user(), { signal })) as RawUser;
    } catch (err) {
      if (isUnauthorized(err)) throw new Error(TOKEN_REJECTED);
      throw safeError(err, this.token);
    }
    const parts = [`bot @${me.username} (${me.id})`];
    const gw = (await this.rest.get(Routes.gatewayBot(), { signal })) as {
      session_start_limit?: { remaining?: number; total?: number };
    };
    const limit = gw.session_start_limit;
    if (limit?.remaining !== undefined)
      parts.push(`${limit.remaining}/${limit.total} gateway sessions left today`);
    if (limit?.remaining === 0)
      throw new Error(`${parts.join('; ')}: no gateway session can start until the quota resets`);
    const app = await this.rest
      .get(Routes.currentApplication(), { signal })
      .then((a) => a as { id?: string; flags?: number })
      .catch(() => undefined);
    const appId = app?.id ?? me.id;
    if (this.support) {
      const MESSAGE_CONTENT = (1 << 18) | (1 << 19);
      if (app?.flags !== undefined && (app.flags & MESSAGE_CONTENT) === 0) {
        throw new Error(
          `${parts.join('; ')}; the Message Content intent is off: the support channel needs it (Developer Portal > Bot > Privileged Gateway Intents)`,
        );
      }
      let ch: { type: number; name?: string; guild_id?: string };
      try {
        ch = (await this.rest.get(Routes.channel(this.support), { signal })) as typeof ch;
      } catch (err) {
        if (err instanceof DiscordAPIError && (err.status === 403 || err.status === 404)) {
          throw new Error(
            `${parts.join('; ')}; the bot cannot see DISCORD_SUPPORT_CHANNEL_ID (${err.message}): invite it with ${inviteUrl(appId, true)}`,
          );
        }
        throw safeError(err, this.token);
      }
      if (ch.type !== GUILD_TEXT && ch.type !== GUILD_ANNOUNCEMENT) {
        throw new Error(`DISCORD_SUPPORT_CHANNEL_ID is not a server text channel (channel type ${ch.type})`);
      }
      parts.push(`support channel #${ch.name ?? this.support} (server ${ch.guild_id})`);
    } else parts.push('DMs');
    parts.push(`invite: ${inviteUrl(appId, !!this.support)}`);
    return parts.join('; ');
  }

  private setStatus(status: ConnectionStatus): void {
    this.state = status;
    this.ctx?.setStatus(status);
  }
}

/**
 * The delivery's key for nonces when core gives no event id: a random one,
 * stored in the delivery's progress before the first POST and kept with every
 * later save, so every attempt of one delivery sends the same nonces.
 */
async function keyedWork(work: DeliveryWork | undefined): Promise<{ key: string; work?: DeliveryWork }> {
  if (!work) return { key: randomBytes(12).toString('base64url') };
  const done = work.progress.done;
  const stored = typeof done?.['nonceKey'] === 'string' ? done['nonceKey'] : undefined;
  const key = stored ?? randomBytes(12).toString('base64url');
  if (!stored) await work.progress.save({ ...(done ?? {}), nonceKey: key });
  return {
    key,
    work: {
      signal: work.signal,
      progress: {
        done: { ...(done ?? {}), nonceKey: key },
        save: (p) => work.progress.save({ ...p, nonceKey: key }),
      },
    },
  };
}
