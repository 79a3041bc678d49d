/**
 * The Telegram connector: grammy against the Bot API (cloud or self-hosted).
 * Intake by long polling (default) or webhook, at-least-once either way: an
 * update is confirmed to Telegram only after core stored the message.
 */
import { autoRetry } from '@grammyjs/auto-retry';
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
  type TypingCapable,
} from '@kitbridge/core';
import { Bot, GrammyError } from 'grammy';
import type { Update, UserFromGetMe } from 'grammy/types';
import { AvatarCache } from './avatar.js';
import { CLIENT_ID_PREFIX, parseClientId } from './client-id.js';
import { DEFAULT_API_ROOT } from './config.js';
import { safeError, toDeliveryError } from './errors.js';
import { TelegramFiles } from './files.js';
import { mapUpdate } from './inbound.js';
import { SELF_HOSTED_MEDIA_LIMITS, TELEGRAM_MEDIA_LIMITS } from './limits.js';
import { grammySignal, planMessage, planText, type Step } from './outbound.js';
import { type PacingOptions, pacing } from './pacing.js';
import { ALLOWED_UPDATES, Poller, type PollingOptions } from './polling.js';
import { countRateLimits } from './rate-limits.js';
import { checkUpdate } from './update-schema.js';
import { createWebhookRoute, WEBHOOK_PATH } from './webhook.js';

export interface TelegramConnectorOptions {
  token: string;
  /** Bot API server, without a trailing slash. Default https://api.telegram.org. */
  apiRoot?: string;
  mode?: 'polling' | 'webhook';
  /** Required in webhook mode: Telegram sends it in X-Telegram-Bot-Api-Secret-Token. */
  webhookSecret?: string;
  /** Serve group chats, each group one client. Default false. */
  allowGroups?: boolean;
  /** KITBRIDGE_PUBLIC_URL, for validateConfig (the bridge passes it again at start). */
  publicUrl?: string;
  logger?: Logger;
  polling?: PollingOptions;
  pacing?: PacingOptions;
  /** 429/5xx retries inside one API call (@grammyjs/auto-retry). Longer waits go back to core's outbox. */
  autoRetry?: { maxRetryAttempts?: number; maxDelaySeconds?: number };
  /** Retry of getMe/setWebhook when Telegram is unreachable at start. Default 1 s .. 60 s. */
  connectBackoff?: BackoffOptions;
  /** How long a looked-up profile photo is reused. Default one day. */
  avatarTtlMs?: number;
}

/** Thrown by start() when Telegram refuses the token. */
const TOKEN_REJECTED = 'Telegram rejected TELEGRAM_BOT_TOKEN (revoked or wrong)';
/**
 * 409s in a row taken for a handover of the polling lease (the previous
 * holder's last long poll, up to its 30 s timeout), before they are a conflict.
 */
const HANDOVER_WINDOW_MS = 60_000;

export class TelegramConnector
  implements ChannelConnector, TypingCapable, ConfigValidating, SelfChecking, ProfileResolving
{
  readonly name = 'telegram';
  /** The cloud's limits, or a self-hosted server's (no download limit). */
  readonly mediaLimits: MediaLimits;
  /**
   * The grammy bot, for its `api` (usable for anything the connector does not
   * cover). Updates do not pass through its middleware: the connector reads
   * them itself, by polling or webhook, and hands them to core.
   */
  readonly bot: Bot;
  private readonly apiRoot: string;
  private readonly files: TelegramFiles;
  private readonly avatars: AvatarCache;
  private logger: Logger;
  private ctx?: ConnectorContext;
  private state: ConnectionStatus = { state: 'stopped' };
  private poller?: Poller;
  private run?: AbortController;
  private connecting?: Promise<void>;
  /** Resolves connect() once the polling job's first getUpdates answered. */
  private onFirstPoll?: () => void;

  constructor(private readonly opts: TelegramConnectorOptions) {
    this.apiRoot = (opts.apiRoot ?? DEFAULT_API_ROOT).replace(/\/+$/, '');
    this.mediaLimits = this.apiRoot === DEFAULT_API_ROOT ? TELEGRAM_MEDIA_LIMITS : SELF_HOSTED_MEDIA_LIMITS;
    this.logger = opts.logger ?? silentLogger;
    this.bot = new Bot(opts.token, { client: { apiRoot: this.apiRoot } });
    // Innermost first: pacing and the 429 count see every attempt, auto-retry wraps them.
    this.bot.api.config.use(pacing(opts.pacing));
    this.bot.api.config.use(countRateLimits(() => this.ctx?.metrics));
    this.bot.api.config.use(
      autoRetry({
        maxRetryAttempts: opts.autoRetry?.maxRetryAttempts ?? 3,
        maxDelaySeconds: opts.autoRetry?.maxDelaySeconds ?? 60,
        rethrowHttpErrors: true, // network errors go back to the caller's own retry
      }),
    );
    this.files = new TelegramFiles({
      api: this.bot.api,
      token: opts.token,
      apiRoot: this.apiRoot,
      limits: this.mediaLimits,
    });
    this.avatars = new AvatarCache(this.bot.api, () => this.logger, opts.avatarTtlMs);
  }

  ownsClient(clientId: string): boolean {
    return clientId.startsWith(CLIENT_ID_PREFIX);
  }

  status(): ConnectionStatus {
    return this.state;
  }

  validateConfig(): string[] {
    const problems: string[] = [];
    if (this.opts.mode === 'webhook') {
      if (!this.opts.webhookSecret)
        problems.push('TELEGRAM_WEBHOOK_SECRET is required when TELEGRAM_MODE=webhook');
      if (
        this.apiRoot === DEFAULT_API_ROOT &&
        this.opts.publicUrl &&
        !this.opts.publicUrl.startsWith('https://')
      ) {
        problems.push(
          'Telegram delivers webhooks over HTTPS only: KITBRIDGE_PUBLIC_URL must start with https://',
        );
      }
    }
    return problems;
  }

  /** getMe and getWebhookInfo: is the token good, and what would start-up change. */
  async selfCheck(): Promise<string> {
    try {
      const me = await this.bot.api.getMe();
      const hook = await this.bot.api.getWebhookInfo();
      const mode = this.opts.mode ?? 'polling';
      const note =
        mode === 'polling' && hook.url
          ? '; a webhook is set now and will be removed when polling starts'
          : mode === 'webhook' &&
              hook.url &&
              this.opts.publicUrl &&
              hook.url !== `${this.opts.publicUrl}${WEBHOOK_PATH}`
            ? '; the webhook now points elsewhere and will be replaced at start'
            : '';
      return `bot @${me.username} (${mode})${note}`;
    } catch (err) {
      if (isUnauthorized(err)) throw new Error(TOKEN_REJECTED);
      throw safeError(err, this.opts.token);
    }
  }

  async start(ctx: ConnectorContext): Promise<void> {
    this.ctx = ctx;
    this.logger = ctx.logger;
    this.run = new AbortController();
    const run = this.run;
    ctx.signal.addEventListener('abort', () => run.abort(), { once: true });
    this.setStatus({ state: 'starting' });
    if (this.opts.mode === 'webhook') this.addWebhookRoute(ctx);

    try {
      await this.connect(ctx);
    } catch (err) {
      if (isUnauthorized(err)) {
        this.setStatus({ state: 'failed', code: 'bad_credentials', reason: TOKEN_REJECTED });
        throw new Error(TOKEN_REJECTED);
      }
      // Telegram unreachable: keep trying in the background; /readyz says not ready meanwhile.
      const reason = safeError(err, this.opts.token).message;
      this.logger.warn({ err: reason }, 'Telegram unreachable at start; retrying');
      this.setStatus({ state: 'reconnecting', code: 'network', reason });
      this.connecting = this.connectInBackground(ctx, run.signal);
    }
  }

  async stop(): Promise<void> {
    // Taken before the abort: the polling job lets go of it as soon as it sees the abort.
    const poller = this.poller;
    this.poller = undefined;
    this.run?.abort();
    await this.connecting?.catch(() => {});
    // Confirms handled updates before the files close (the job's own stop is then a repeat).
    await poller?.stop();
    await this.files.close();
    this.connecting = undefined;
    this.setStatus({ state: 'stopped' });
  }

  async deliver(
    target: DeliveryTarget,
    message: AgentMessage,
    work?: DeliveryWork,
  ): Promise<DeliveryReceipt> {
    const chatId = this.chatOf(target);
    return sendSteps(this.calls(planMessage(chatId, message)), work);
  }

  async closeConversation(
    target: DeliveryTarget,
    _reason: CloseReason,
    closingText?: string,
    work?: DeliveryWork,
  ): Promise<DeliveryReceipt> {
    if (!closingText) return {};
    const chatId = this.chatOf(target);
    return sendSteps(this.calls(planText(chatId, closingText)), work);
  }

  async sendTyping(target: DeliveryTarget): Promise<void> {
    const chatId = this.chatOf(target);
    await this.call(
      (api, signal) => api.sendChatAction(chatId, 'typing', {}, grammySignal(signal)),
      AbortSignal.timeout(10_000),
    );
  }

  resolveAttachment(ref: AttachmentRef): Promise<ResolvedFile> {
    return this.files.open(ref);
  }

  /** The customer's profile photo, looked up late (core caches it; so does the avatar cache). */
  async resolveProfile(target: DeliveryTarget, signal: AbortSignal): Promise<ClientProfile | undefined> {
    const chatId = parseClientId(target.clientId);
    // A private chat's id is the user's id; groups (negative ids) have no one face.
    if (chatId === undefined || chatId <= 0) return undefined;
    const avatar = await this.avatars.get(chatId, signal);
    return avatar ? { avatar } : undefined;
  }

  // ---------------------------------------------------------------- intake

  /** getMe, then polling or the webhook; 'connected' once updates can flow. */
  private async connect(ctx: ConnectorContext): Promise<void> {
    const me: UserFromGetMe = await this.bot.api.getMe();
    this.bot.botInfo = me;
    this.logger.info({ bot: me.username, mode: this.opts.mode ?? 'polling' }, 'Telegram bot identified');
    if (this.run?.signal.aborted) return;
    if (this.opts.mode === 'webhook') {
      await this.bot.api.setWebhook(`${ctx.publicUrl}${WEBHOOK_PATH}`, {
        secret_token: this.opts.webhookSecret!,
        allowed_updates: [...ALLOWED_UPDATES],
      });
      this.setStatus({ state: 'connected' });
      return;
    }
    // A webhook left behind makes getUpdates answer 409; removing it keeps its pending updates.
    await this.bot.api.deleteWebhook();
    // One poller per bot across replicas: the others serve callbacks and media meanwhile.
    const firstAnswer = new Promise<void>((resolve) => {
      this.onFirstPoll = resolve;
    });
    const where = await ctx.exclusive('polling', (signal) => this.poll(signal));
    if (where === 'running') await firstAnswer;
    else this.setStatus({ state: 'standby', code: 'not_leader', reason: 'another replica polls Telegram' });
  }

  /** The long-polling job; runs while this process holds the polling lease and the connector runs. */
  private async poll(lease: AbortSignal): Promise<void> {
    const run = this.run;
    if (!run || run.signal.aborted) return;
    const signal = AbortSignal.any([lease, run.signal]);
    const poller = new Poller(
      this.bot.api,
      (update) => this.handleUpdate(update),
      {
        connected: () => this.setStatus({ state: 'connected' }),
        failed: (reason, code) => this.setStatus({ state: 'failed', code, reason }),
        reconnecting: (reason, code) => this.setStatus({ state: 'reconnecting', code, reason }),
        standby: (reason) => this.setStatus({ state: 'standby', code: 'conflict', reason }),
      },
      this.logger,
      // Under the polling lease a 409 is first the previous holder letting go, not a failure.
      { handoverMs: HANDOVER_WINDOW_MS, ...this.opts.polling },
    );
    this.poller = poller;
    await poller.start();
    this.onFirstPoll?.();
    if (!signal.aborted) await new Promise((r) => signal.addEventListener('abort', r, { once: true }));
    if (this.poller === poller) this.poller = undefined;
    await poller.stop();
    if (!run.signal.aborted)
      this.setStatus({
        state: 'standby',
        code: 'not_leader',
        reason: 'the polling lease moved to another replica',
      });
  }

  private async connectInBackground(ctx: ConnectorContext, signal: AbortSignal): Promise<void> {
    const backoff = this.opts.connectBackoff ?? { baseMs: 1_000, maxMs: 60_000 };
    for (let attempt = 1; !signal.aborted; attempt++) {
      await sleep(backoffDelay(attempt, backoff), signal).catch(() => {});
      if (signal.aborted) return;
      try {
        await this.connect(ctx);
        return;
      } catch (err) {
        const reason = isUnauthorized(err) ? TOKEN_REJECTED : safeError(err, this.opts.token).message;
        this.setStatus(
          isUnauthorized(err)
            ? { state: 'failed', code: 'bad_credentials', reason }
            : { state: 'reconnecting', code: 'network', reason },
        );
        this.logger.warn({ err: reason, attempt }, 'Telegram connect failed; retrying');
      }
    }
  }

  private addWebhookRoute(ctx: ConnectorContext): void {
    ctx.route(
      'POST',
      WEBHOOK_PATH,
      createWebhookRoute({
        secret: this.opts.webhookSecret!,
        handle: (update) => this.handleUpdate(update),
        // Stopping: Telegram keeps the update and sends it again later.
        stopping: () => this.run?.signal.aborted ?? true,
      }),
    );
  }

  /**
   * Every update, polled or pushed: map, then hand to core. Returns only after
   * core stored the message; a rejected receive propagates, so the update is
   * not confirmed.
   */
  private async handleUpdate(update: Update): Promise<void> {
    const ctx = this.ctx;
    if (!ctx) throw new Error('connector not started');
    const checked = checkUpdate(update);
    if (!checked.ok) {
      // Confirmed all the same: Telegram would send it again for ever, and it would never fit.
      this.logger.debug(
        { update_id: update.update_id, problem: quote(checked.problem) },
        'update of an unexpected shape ignored',
      );
      return;
    }
    let mapped: ReturnType<typeof mapUpdate>;
    try {
      mapped = mapUpdate(update, { allowGroups: this.opts.allowGroups ?? false });
    } catch (err) {
      // A malformed update must not block the queue behind it.
      this.logger.error(
        { update_id: update.update_id, err: (err as Error).message },
        'unreadable update skipped',
      );
      return;
    }
    if (mapped.kind === 'skip') {
      this.logger.debug({ update_id: update.update_id, reason: mapped.reason }, 'update ignored');
      return;
    }
    if (mapped.kind === 'start') {
      // Stored before the update is confirmed; core sends it with the customer's next messages.
      if (mapped.utm) await ctx.updateClient({ clientId: mapped.clientId, profile: { utm: mapped.utm } });
      this.logger.debug({ clientId: mapped.clientId, utm: mapped.utm }, '/start received');
      return;
    }
    // No platform call before the update is confirmed: the avatar comes later, from resolveProfile.
    await ctx.receive(mapped.message);
  }

  // ---------------------------------------------------------------- delivery

  private chatOf(target: DeliveryTarget): number {
    const chatId = parseClientId(target.clientId);
    if (chatId === undefined)
      throw new PermanentDeliveryError(`not a Telegram client id: ${target.clientId}`);
    return chatId;
  }

  /** One Bot API call, its errors turned into core's delivery errors (secret-free). */
  private async call(step: Step, signal: AbortSignal): Promise<unknown> {
    try {
      return await step(this.bot.api, signal);
    } catch (err) {
      throw toDeliveryError(err, this.opts.token);
    }
  }

  private calls(steps: Step[]): SendStep[] {
    return steps.map((step) => (signal) => this.call(step, signal));
  }

  private setStatus(status: ConnectionStatus): void {
    this.state = status;
    this.ctx?.setStatus(status);
  }
}

function isUnauthorized(err: unknown): boolean {
  return err instanceof GrammyError && err.error_code === 401;
}
