/**
 * The Slack connector: the Events API over HTTP (`POST /slack/events` on
 * kitbridge's server, signed v0) or Socket Mode, and the Web API for replies,
 * files and profiles. At-least-once either way: Slack gets its 2xx or its
 * envelope ack only after core stored the message, and what it sends again is
 * a duplicate.
 *
 * Built on @slack/web-api (WebClient) and @slack/socket-mode (the bare client),
 * not on Bolt: Bolt acks Socket Mode envelopes before its listeners run, and
 * over HTTP it brings its own receiver stack where kitbridge has a router.
 */
import {
  type AgentMessage,
  type AttachmentRef,
  type BackoffOptions,
  backoffDelay,
  type ChannelConnector,
  type ClientProfile,
  type CloseReason,
  type ConfigValidating,
  type ConnectionStatus,
  type ConnectorContext,
  type DeliveryReceipt,
  type DeliveryTarget,
  type DeliveryWork,
  type Logger,
  type MediaLimits,
  PermanentDeliveryError,
  type ProfileResolving,
  quote,
  type ResolvedFile,
  type SelfChecking,
  type SendStep,
  sendSteps,
  silentLogger,
  sleep,
} from '@kitbridge/core';
import { WebClient, WebClientEvent } from '@slack/web-api';
import { Agent } from 'undici';
import { CLIENT_ID_PREFIX, parseClientId } from './client-id.js';
import { DEFAULT_API_URL } from './config.js';
import { describeSlackError, isTokenError, neededScope, platformError, toDeliveryError } from './errors.js';
import { createEventsRoute, EVENTS_PATH } from './events.js';
import { SlackFiles } from './files.js';
import { type EventCallback, encodeAvatarRef, mapEventCallback } from './inbound.js';
import { SLACK_MEDIA_LIMITS } from './limits.js';
import { Names } from './names.js';
import { type OutboundDeps, type Place, planMessage, planText } from './outbound.js';
import { ChannelPacer, type PacingOptions } from './pacing.js';
import { SocketFatalError, SocketIntake } from './socket.js';
import { createWebClient, sdkClientOptions, withSignal } from './web.js';

export interface SlackConnectorOptions {
  /** SLACK_BOT_TOKEN (`xoxb-`). */
  botToken: string;
  /** SLACK_SIGNING_SECRET: events over HTTP at `${publicUrl}/slack/events`. */
  signingSecret?: string;
  /** SLACK_APP_TOKEN (`xapp-`): events over Socket Mode. Takes precedence over the signing secret. */
  appToken?: string;
  /** SLACK_API_URL, with the trailing slash. Default https://slack.com/api/. */
  apiUrl?: string;
  /** SLACK_SUPPORT_CHANNEL_ID: customers' top-level messages there open threads the agents answer in. */
  supportChannelId?: string;
  /** KITBRIDGE_PUBLIC_URL, for validateConfig and selfCheck (the bridge passes it again at start). */
  publicUrl?: string;
  logger?: Logger;
  /** About one message per second per channel (Slack's rule); `{ perSecond: 0 }` turns it off. */
  pacing?: PacingOptions;
  /** Retry of auth.test when Slack is unreachable at start. Default 1 s .. 60 s. */
  connectBackoff?: BackoffOptions;
  /** Socket Mode tuning (tests make it quick). */
  socket?: { clientPingTimeoutMs?: number; serverPingTimeoutMs?: number; backoff?: BackoffOptions };
  /** How long core keeps a looked-up profile. Default (core's): one day. */
  profileTtlMs?: number;
}

/** Scopes every mode needs, and what each is for (named when missing). */
const REQUIRED: Record<string, string> = {
  'chat:write': 'to answer customers',
};
/** Needed in the DM mode (no support channel). */
const DM_REQUIRED: Record<string, string> = {
  'im:history': 'to receive DMs (the message.im event)',
};
/** Worth having; start-up goes on without them, with a warning. */
const RECOMMENDED: Record<string, string> = {
  'users:read': "customers' names, pictures and languages",
  'users:read.email': "customers' e-mail addresses",
  'files:read': 'customer files (without it Slack serves its sign-in page instead)',
  'files:write': 'agent files (sent as links without it)',
  'im:write': 'opening a DM when none is known',
  'chat:write.customize': "the agent's name as the sender (a text prefix without it)",
};

/** A start-up refusal that no retry fixes. */
class StartupError extends Error {
  constructor(
    message: string,
    readonly code: 'bad_credentials' | 'missing_permission',
  ) {
    super(message);
  }
}

interface Identity {
  teamId: string;
  team?: string;
  botUserId: string;
  botId?: string;
  botName?: string;
  enterpriseId?: string;
  /** The bot token's scopes, when Slack said (x-oauth-scopes). */
  scopes?: Set<string>;
  /** The support channel's name and kind, when that mode is on. */
  support?: { name?: string; isPrivate: boolean };
}

export class SlackConnector implements ChannelConnector, ConfigValidating, SelfChecking, ProfileResolving {
  readonly name = 'slack';
  readonly mediaLimits: MediaLimits = SLACK_MEDIA_LIMITS;
  readonly profileTtlMs?: number;
  /** The Web API client (bot token), for anything the connector does not cover. */
  readonly web: WebClient;
  private readonly apiUrl: string;
  private readonly mode: 'socket' | 'http';
  private readonly secrets: string[];
  private readonly files: SlackFiles;
  private readonly names: Names;
  private readonly pacer: ChannelPacer;
  private readonly out: OutboundDeps;
  private readonly chains = new Map<string, Promise<unknown>>();
  private uploadAgent?: Agent;
  private logger: Logger;
  private ctx?: ConnectorContext;
  private state: ConnectionStatus = { state: 'stopped' };
  private identity?: Identity;
  private run?: AbortController;
  private socket?: SocketIntake;
  private connecting?: Promise<void>;

  constructor(private readonly opts: SlackConnectorOptions) {
    this.apiUrl = (opts.apiUrl ?? DEFAULT_API_URL).replace(/\/*$/, '/');
    this.mode = opts.appToken ? 'socket' : 'http';
    this.secrets = [opts.botToken, opts.signingSecret, opts.appToken].filter((s): s is string => !!s);
    this.logger = opts.logger ?? silentLogger;
    if (opts.profileTtlMs !== undefined) this.profileTtlMs = opts.profileTtlMs;
    const log = () => this.logger;
    this.web = createWebClient({
      token: opts.botToken,
      apiUrl: this.apiUrl,
      logger: log,
      secrets: this.secrets,
    });
    // Every Web API 429, whichever call got it (the SDK emits it before it rejects the call).
    this.web.on(WebClientEvent.RATE_LIMITED, (retrySec: number) =>
      this.ctx?.metrics.rateLimited(retrySec * 1000),
    );
    this.files = new SlackFiles({ web: this.web, token: opts.botToken, apiUrl: this.apiUrl });
    this.names = new Names(this.web, log, () => this.hasScope('users:read') !== false);
    this.pacer = new ChannelPacer(opts.pacing);
    this.out = {
      web: this.web,
      pacer: this.pacer,
      canCustomize: () => this.hasScope('chat:write.customize') === true,
      rateLimited: (waitMs) => this.ctx?.metrics.rateLimited(waitMs),
      dispatcher: () => {
        this.uploadAgent ??= new Agent({ connections: 8, headersTimeout: 120_000, bodyTimeout: 120_000 });
        return this.uploadAgent;
      },
    };
  }

  ownsClient(clientId: string): boolean {
    return clientId.startsWith(CLIENT_ID_PREFIX);
  }

  status(): ConnectionStatus {
    return this.state;
  }

  validateConfig(): string[] {
    const problems: string[] = [];
    if (!this.opts.appToken && !this.opts.signingSecret)
      problems.push('set SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (events over HTTP)');
    if (this.opts.appToken && this.opts.signingSecret)
      problems.push('set SLACK_APP_TOKEN or SLACK_SIGNING_SECRET, not both');
    if (
      this.mode === 'http' &&
      this.apiUrl === DEFAULT_API_URL &&
      this.opts.publicUrl &&
      !this.opts.publicUrl.startsWith('https://')
    ) {
      problems.push(
        'Slack sends events to HTTPS request URLs only: KITBRIDGE_PUBLIC_URL must start with https:// (or use Socket Mode: SLACK_APP_TOKEN)',
      );
    }
    return problems;
  }

  /** auth.test, the scopes, the support channel and (Socket Mode) the app token: what start-up would find. */
  async selfCheck(): Promise<string> {
    const signal = AbortSignal.timeout(30_000);
    let id: Identity;
    try {
      id = await this.identify(signal);
    } catch (err) {
      throw err instanceof StartupError ? new Error(err.message) : new Error(this.safe(err));
    }
    let mode: string;
    if (this.mode === 'socket') {
      const app = new WebClient(
        this.opts.appToken,
        sdkClientOptions({
          apiUrl: this.apiUrl,
          logger: () => this.logger,
          secrets: this.secrets,
        }),
      );
      try {
        await withSignal(signal, () => app.apps.connections.open({}));
      } catch (err) {
        if (isTokenError(err)) throw new Error(`Slack rejected SLACK_APP_TOKEN (${describeSlackError(err)})`);
        const scope = neededScope(err);
        if (scope) throw new Error(`SLACK_APP_TOKEN lacks the ${scope} scope`);
        throw new Error(this.safe(err));
      }
      mode = 'Socket Mode';
    } else mode = `events at ${this.opts.publicUrl ?? 'KITBRIDGE_PUBLIC_URL'}${EVENTS_PATH}`;
    const where = this.opts.supportChannelId
      ? `support channel #${id.support?.name ?? this.opts.supportChannelId}`
      : 'DMs to the app';
    const missing = id.scopes ? Object.keys(RECOMMENDED).filter((s) => !id.scopes!.has(s)) : [];
    return (
      `bot @${id.botName ?? id.botUserId} in ${id.team ?? 'the workspace'} (${id.teamId}${id.enterpriseId ? `, org ${id.enterpriseId}` : ''}), ` +
      `${mode}, ${where}` +
      (missing.length ? `; without ${missing.join(', ')}` : '')
    );
  }

  async start(ctx: ConnectorContext): Promise<void> {
    this.ctx = ctx;
    this.logger = ctx.logger;
    this.run = new AbortController();
    const run = this.run;
    ctx.signal.addEventListener('abort', () => run.abort(), { once: true });
    this.setStatus({ state: 'starting' });
    if (this.mode === 'http') {
      ctx.route(
        'POST',
        EVENTS_PATH,
        createEventsRoute({
          signingSecret: this.opts.signingSecret!,
          handle: (body, delivery) => {
            if (delivery.retryNum)
              this.logger.debug({ retryNum: delivery.retryNum, reason: delivery.retryReason }, 'Slack retry');
            return this.handleEvent(body);
          },
          stopping: () => run.signal.aborted,
          ready: () => this.identity !== undefined && this.state.state !== 'failed',
        }),
      );
    }
    try {
      this.identity = await this.identify(run.signal);
    } catch (err) {
      // Stopped while asking: nothing to report, stop() has the last word.
      if (run.signal.aborted) return;
      if (err instanceof StartupError) {
        this.setStatus({ state: 'failed', code: err.code, reason: err.message });
        throw new Error(err.message);
      }
      const reason = this.safe(err);
      this.logger.warn({ err: reason }, 'Slack unreachable at start; retrying');
      this.setStatus({ state: 'reconnecting', code: 'network', reason });
      this.connecting = this.connectInBackground(run.signal);
      return;
    }
    await this.startIntake();
  }

  async stop(): Promise<void> {
    this.run?.abort();
    await this.connecting?.catch(() => {});
    this.connecting = undefined;
    const socket = this.socket;
    this.socket = undefined;
    await socket?.stop();
    await this.files.close();
    const agent = this.uploadAgent;
    this.uploadAgent = undefined;
    await agent?.close().catch(() => {});
    this.setStatus({ state: 'stopped' });
  }

  async deliver(
    target: DeliveryTarget,
    message: AgentMessage,
    work?: DeliveryWork,
  ): Promise<DeliveryReceipt> {
    const place = await this.placeOf(target, work?.signal);
    return this.send(planMessage(this.out, place, message), work);
  }

  async closeConversation(
    target: DeliveryTarget,
    _reason: CloseReason,
    closingText?: string,
    work?: DeliveryWork,
  ): Promise<DeliveryReceipt> {
    if (!closingText) return {};
    const place = await this.placeOf(target, work?.signal);
    return this.send(planText(this.out, place, closingText), work);
  }

  resolveAttachment(ref: AttachmentRef): Promise<ResolvedFile> {
    return this.files.open(ref);
  }

  /**
   * users.info with include_locale, late (core calls it just before the event
   * goes to Kit, and caches it): display_name, else real_name; image_72 as the
   * avatar, through the media proxy; the email when users:read.email allows;
   * the locale as the language.
   */
  async resolveProfile(target: DeliveryTarget, signal: AbortSignal): Promise<ClientProfile | undefined> {
    const id = parseClientId(target.clientId);
    if (!id || this.hasScope('users:read') === false) return undefined;
    let user: UserInfo | undefined;
    try {
      const r = await withSignal(signal, () => this.web.users.info({ user: id.user, include_locale: true }));
      user = r.user as UserInfo | undefined;
    } catch (err) {
      if (platformError(err) === 'user_not_found') return undefined;
      throw new Error(`users.info failed: ${this.safe(err)}`);
    }
    if (!user) return undefined;
    const p = user.profile ?? {};
    const displayName = p.display_name?.trim() || p.real_name?.trim() || user.real_name?.trim() || user.name;
    this.names.setUser(id.user, displayName);
    const avatar = typeof p.image_72 === 'string' && URL.canParse(p.image_72) ? p.image_72 : undefined;
    return {
      ...(displayName ? { displayName } : {}),
      ...(p.email ? { email: p.email } : {}),
      ...(user.locale ? { language: user.locale } : {}),
      ...(avatar
        ? {
            avatar: {
              ref: encodeAvatarRef(avatar),
              kind: 'photo' as const,
              fileName: 'avatar.png',
              mimeType: 'image/png',
            },
          }
        : {}),
    };
  }

  // ---------------------------------------------------------------- intake

  /**
   * One event (HTTP or Socket Mode): mapped without I/O, then handed to core.
   * Resolves once core stored it (the caller then acks); rejects when the
   * store could not take it (no ack: Slack sends it again). What it returns
   * runs after the ack: the name lookups of mentions nobody knew yet.
   */
  private async handleEvent(body: Record<string, unknown>): Promise<() => void> {
    const ctx = this.ctx;
    if (!ctx) throw new Error('connector not started');
    const id = this.identity;
    let mapped: ReturnType<typeof mapEventCallback>;
    try {
      mapped = mapEventCallback(body as EventCallback, {
        ...(id ? { botUserId: id.botUserId, ownTeams: [id.teamId] } : {}),
        ...(id?.botId ? { botId: id.botId } : {}),
        ...(this.opts.supportChannelId ? { supportChannelId: this.opts.supportChannelId } : {}),
        names: this.names,
      });
    } catch (err) {
      // A malformed event must not be retried for ever: acknowledged and dropped.
      this.logger.warn(
        { eventId: quote(String(body['event_id'] ?? '')), err: (err as Error).message },
        'unreadable Slack event skipped',
      );
      return () => {};
    }
    if (mapped.kind === 'skip') {
      this.logger.debug(
        { eventId: quote(String(body['event_id'] ?? '')), reason: mapped.reason },
        'Slack event ignored',
      );
      return () => {};
    }
    const message = mapped.message;
    const user = parseClientId(message.client.clientId)?.user;
    if (user) this.names.setUser(user, message.client.profile?.displayName);
    // No Slack API call before the ack: the profile comes later, from resolveProfile.
    await this.serial(message.client.clientId, () => ctx.receive(message));
    const signal = this.run?.signal;
    return () => {
      if (signal) this.names.learn(mapped.mentions, signal);
    };
  }

  /** Messages of one customer reach core in the order Slack sent them. */
  private serial<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.chains.get(key) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.then(
      () => {},
      () => {},
    );
    this.chains.set(key, tail);
    void tail.then(() => {
      if (this.chains.get(key) === tail) this.chains.delete(key);
    });
    return run;
  }

  private async startIntake(): Promise<void> {
    if (this.run?.signal.aborted) return;
    if (this.mode === 'http') {
      this.setStatus({ state: 'connected' });
      this.logger.info({ url: `${this.ctx?.publicUrl ?? ''}${EVENTS_PATH}` }, 'Slack events over HTTP');
      return;
    }
    const socket = new SocketIntake({
      appToken: this.opts.appToken!,
      apiUrl: this.apiUrl,
      logger: () => this.logger,
      secrets: this.secrets,
      handle: async (body) => {
        const after = await this.handleEvent(body);
        // The ack goes out when this resolves; the lookups wait a turn more.
        setImmediate(after);
      },
      setStatus: (s) => this.setStatus(s),
      ...(this.opts.socket?.backoff ? { backoff: this.opts.socket.backoff } : {}),
      ...(this.opts.socket?.clientPingTimeoutMs
        ? { clientPingTimeoutMs: this.opts.socket.clientPingTimeoutMs }
        : {}),
      ...(this.opts.socket?.serverPingTimeoutMs
        ? { serverPingTimeoutMs: this.opts.socket.serverPingTimeoutMs }
        : {}),
    });
    this.socket = socket;
    try {
      await socket.start();
    } catch (err) {
      if (err instanceof SocketFatalError) throw new Error(err.message);
      throw err;
    }
  }

  private async connectInBackground(signal: AbortSignal): Promise<void> {
    const backoff = this.opts.connectBackoff ?? { baseMs: 1_000, maxMs: 60_000 };
    for (let attempt = 1; !signal.aborted; attempt++) {
      await sleep(backoffDelay(attempt, backoff), signal).catch(() => {});
      if (signal.aborted) return;
      try {
        this.identity = await this.identify(signal);
      } catch (err) {
        if (signal.aborted) return;
        if (err instanceof StartupError) {
          this.setStatus({ state: 'failed', code: err.code, reason: err.message });
          this.logger.error({ code: err.code }, err.message);
          return;
        }
        const reason = this.safe(err);
        this.setStatus({ state: 'reconnecting', code: 'network', reason });
        this.logger.warn({ err: reason, attempt }, 'Slack unreachable; retrying');
        continue;
      }
      await this.startIntake().catch((err: Error) =>
        this.logger.error({ err: err.message }, 'Slack intake failed'),
      );
      return;
    }
  }

  /**
   * auth.test (a bad token stops start-up), the token's scopes against what the
   * mode needs (a missing one stops it, named), the support channel (found, a
   * member, its history scope). Names learned: the bot user, the channel.
   */
  private async identify(signal: AbortSignal): Promise<Identity> {
    const call = AbortSignal.any([signal, AbortSignal.timeout(15_000)]);
    let auth: Awaited<ReturnType<WebClient['auth']['test']>>;
    try {
      auth = await withSignal(call, () => this.web.auth.test());
    } catch (err) {
      if (isTokenError(err)) {
        throw new StartupError(
          `Slack rejected SLACK_BOT_TOKEN (${describeSlackError(err)}): use the Bot User OAuth Token (xoxb-…) of the installed app`,
          'bad_credentials',
        );
      }
      throw err;
    }
    if (!auth.user_id || !auth.team_id) throw new Error('auth.test gave no bot user or team');
    const reported = auth.response_metadata?.scopes;
    const scopes = Array.isArray(reported) && reported.length ? new Set(reported) : undefined;
    const id: Identity = {
      teamId: auth.team_id,
      botUserId: auth.user_id,
      ...(auth.team ? { team: auth.team } : {}),
      ...(auth.bot_id ? { botId: auth.bot_id } : {}),
      ...(auth.user ? { botName: auth.user } : {}),
      ...(auth.enterprise_id ? { enterpriseId: auth.enterprise_id } : {}),
      ...(scopes ? { scopes } : {}),
    };
    const need = { ...REQUIRED, ...(this.opts.supportChannelId ? {} : DM_REQUIRED) };
    const lacking = (scope: string) => (scopes ? !scopes.has(scope) : false);
    for (const [scope, why] of Object.entries(need)) {
      if (lacking(scope)) throw missingScope(scope, why);
    }
    if (this.opts.supportChannelId) id.support = await this.checkSupportChannel(call, lacking);
    this.names.setUser(id.botUserId, id.botName);
    if (id.support?.name) this.names.setChannel(this.opts.supportChannelId!, id.support.name);
    const missing = Object.keys(RECOMMENDED).filter(lacking);
    if (missing.length) {
      this.logger.warn(
        { missing: missing.map((s) => `${s} (${RECOMMENDED[s]})`) },
        'the Slack bot token lacks recommended scopes',
      );
    }
    this.logger.info(
      { team: id.teamId, enterprise: id.enterpriseId, bot: id.botName, mode: this.mode },
      'Slack bot identified',
    );
    return id;
  }

  private async checkSupportChannel(
    signal: AbortSignal,
    lacking: (scope: string) => boolean,
  ): Promise<NonNullable<Identity['support']>> {
    const channelId = this.opts.supportChannelId!;
    let info: Awaited<ReturnType<WebClient['conversations']['info']>>;
    try {
      info = await withSignal(signal, () => this.web.conversations.info({ channel: channelId }));
    } catch (err) {
      const scope = neededScope(err);
      if (scope) throw missingScope(scope, 'to check SLACK_SUPPORT_CHANNEL_ID');
      const code = platformError(err);
      if (code === 'channel_not_found')
        throw new StartupError(
          `SLACK_SUPPORT_CHANNEL_ID ${channelId}: no such channel, or a private one the app is not in (invite it: /invite @app)`,
          'missing_permission',
        );
      throw err;
    }
    const ch = info.channel ?? {};
    if (ch.is_archived)
      throw new StartupError(
        `SLACK_SUPPORT_CHANNEL_ID ${channelId}: the channel is archived`,
        'missing_permission',
      );
    if (ch.is_member === false)
      throw new StartupError(
        `SLACK_SUPPORT_CHANNEL_ID ${channelId}: the app is not a member of #${ch.name ?? channelId}, so Slack sends it no messages from there (invite it: /invite @app)`,
        'missing_permission',
      );
    const isPrivate = ch.is_private === true;
    const history = isPrivate ? 'groups:history' : 'channels:history';
    if (lacking(history)) throw missingScope(history, `to receive messages from the support channel`);
    return { isPrivate, ...(ch.name ? { name: ch.name } : {}) };
  }

  // ---------------------------------------------------------------- delivery

  /**
   * Where a reply goes: the DM or the support thread the customer last wrote in
   * (the address core keeps), else, with an empty store, the DM, found from the
   * client id alone (conversations.open; a user id when im:write is missing).
   */
  private async placeOf(target: DeliveryTarget, signal: AbortSignal | undefined): Promise<Place> {
    const id = parseClientId(target.clientId);
    if (!id) throw new PermanentDeliveryError(`not a Slack client id: ${quote(target.clientId)}`);
    const a = target.address;
    const channel = typeof a?.['channel'] === 'string' ? a['channel'] : undefined;
    const thread = typeof a?.['thread_ts'] === 'string' ? a['thread_ts'] : undefined;
    if (channel && /^[CDG][A-Z0-9]+$/.test(channel)) {
      return { channel, ...(thread && /^\d+\.\d+$/.test(thread) ? { thread_ts: thread } : {}) };
    }
    const call = signal ?? AbortSignal.timeout(30_000);
    try {
      const r = await withSignal(call, () => this.web.conversations.open({ users: id.user }));
      const dm = r.channel?.id;
      if (!dm) return { channel: id.user };
      await this.ctx?.updateClient({ clientId: target.clientId, address: { channel: dm } });
      return { channel: dm };
    } catch (err) {
      // chat.postMessage to a user id posts into the app's DM with them: enough for text.
      if (neededScope(err)) return { channel: id.user };
      throw toDeliveryError(err, call, this.secrets);
    }
  }

  private send(steps: SendStep[], work?: DeliveryWork): Promise<DeliveryReceipt> {
    return sendSteps(
      steps.map((step) => async (signal: AbortSignal) => {
        try {
          return await step(signal);
        } catch (err) {
          throw toDeliveryError(err, signal, this.secrets);
        }
      }),
      work,
    );
  }

  // ---------------------------------------------------------------- helpers

  /** Whether the bot token has `scope`: undefined when Slack did not say. */
  private hasScope(scope: string): boolean | undefined {
    const s = this.identity?.scopes;
    return s ? s.has(scope) : undefined;
  }

  private safe(err: unknown): string {
    return describeSlackError(err, this.secrets);
  }

  private setStatus(status: ConnectionStatus): void {
    this.state = status;
    this.ctx?.setStatus(status);
  }
}

interface UserInfo {
  name?: string;
  real_name?: string;
  locale?: string;
  is_bot?: boolean;
  profile?: { display_name?: string; real_name?: string; image_72?: string; email?: string };
}

function missingScope(scope: string, why: string): StartupError {
  return new StartupError(
    `the Slack bot token lacks the ${scope} scope (${why}): add it under OAuth & Permissions > Bot Token Scopes and reinstall the app`,
    'missing_permission',
  );
}
