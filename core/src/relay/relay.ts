/**
 * The relay: both legs, each through its own outbox.
 *   platform -> plugin -> receive() -> inbound outbox -> KitClient
 *   Kit callback -> handleCallback() -> outbound outbox -> connector.deliver
 * The Kit event is built once, when the message arrives, and stored as it is, so
 * every retry sends the same bytes (same event_id, same media links).
 */

import type { CoreConfig, OutboxSettings } from '../config.js';
import type {
  ChannelConnector,
  ClientIdentity,
  DeliveryReceipt,
  DeliveryTarget,
  DeliveryWork,
  InboundMessage,
  JsonObject,
  MediaKind,
  MediaLimits,
  ReceiveResult,
} from '../connector.js';
import {
  hasTargetMediaLimits,
  isProfileResolving,
  isTypingCapable,
  PermanentDeliveryError,
  RetryableDeliveryError,
} from '../connector.js';
import type { CallbackOutcome } from '../kit/callback-route.js';
import type { KitClient } from '../kit/client.js';
import { customerEventId, DEDUPE_TTL_MS } from '../kit/decisions.js';
import { KitAuthError, KitRejectedError, KitUnavailableError } from '../kit/errors.js';
import type {
  AgentMessageCallback,
  CloseConversationCallback,
  CustomerEvent,
  KitCallback,
} from '../kit/schemas.js';
import type { Logger } from '../logger.js';
import type { MediaFetcher } from '../media/fetch.js';
import { type MediaSigner, mediaUrl } from '../media/token.js';
import type { Metrics } from '../metrics.js';
import { type FailureKind, Outbox } from '../outbox.js';
import { LeaseLostError, type OutboxItem, type Store } from '../store/store.js';
import {
  degradedReason,
  describeAgentMessage,
  NOTICE_KEY_PREFIX,
  type NoticeKind,
  noticeEvent,
  noticeText,
} from './agent-notice.js';
import { ClientBook } from './clients.js';
import { LateProfiles } from './profiles.js';
import { toCustomerEvent } from './to-kit.js';
import { toAgentMessage } from './to-platform.js';

export interface RelayOptions {
  config: CoreConfig;
  outbox: OutboxSettings;
  connector: ChannelConnector;
  store: Store;
  kit: KitClient;
  signer: MediaSigner;
  fetcher: MediaFetcher;
  logger: Logger;
  /** Counters of both legs; none when absent. */
  metrics?: Metrics;
  now?: () => number;
}

/** Stored on the outbound leg: the callback as Kit sent it. */
type OutboundPayload = { kind: 'send_message' | 'close_conversation'; event: JsonObject };

/** A close_conversation item's progress: the connector's own, until the customer was told. */
type CloseProgress = { told?: boolean; platform?: JsonObject };

export class Relay {
  readonly inbound: Outbox;
  readonly outbound: Outbox;
  private readonly now: () => number;
  private readonly clients: ClientBook;
  /** Late profile lookups, for connectors that offer them. */
  private readonly profiles?: LateProfiles;

  constructor(private readonly o: RelayOptions) {
    this.now = o.now ?? Date.now;
    this.clients = new ClientBook(o.store, this.now);
    if (isProfileResolving(o.connector)) {
      const { publicUrl } = o.config;
      this.profiles = new LateProfiles(
        o.connector,
        (id, file) => mediaUrl(publicUrl, o.signer.sign(id, file)),
        o.logger,
      );
    }
    const common = {
      ...o.outbox,
      store: o.store,
      logger: o.logger,
      dedupeTtlMs: DEDUPE_TTL_MS,
      now: this.now,
    };
    this.inbound = new Outbox({
      ...common,
      leg: 'inbound',
      deliver: (item, work) => this.sendToKit(item, work),
      classify: classifyKitError,
      ...(o.metrics ? { metrics: o.metrics.leg('inbound') } : {}),
    });
    this.outbound = new Outbox({
      ...common,
      leg: 'outbound',
      deliver: (item, work) => this.deliverOutbound(item, work),
      classify: classifyPlatformError,
      ...(o.config.notifyAgent !== false
        ? { onGiveUp: (item: OutboxItem, reason: string) => this.undelivered(item, reason) }
        : {}),
      ...(o.metrics ? { metrics: o.metrics.leg('outbound') } : {}),
    });
  }

  async start(): Promise<void> {
    await Promise.all([this.inbound.start(), this.outbound.start()]);
  }

  async stop(graceMs?: number): Promise<void> {
    await Promise.all([this.inbound.stop(graceMs), this.outbound.stop(graceMs)]);
  }

  /** Resolves when both legs have nothing pending (demo and tests). */
  async idle(): Promise<void> {
    await Promise.all([this.inbound.idle(), this.outbound.idle()]);
  }

  // ---------------------------------------------------------------- customer -> Kit

  /** The plugin's `ctx.receive`. Resolves once the message is stored. */
  receive = async (msg: InboundMessage): Promise<ReceiveResult> => {
    const { config, signer, logger } = this.o;
    const { clientId } = msg.client;
    if (msg.edited && config.edits === 'ignore') {
      logger.debug(
        { leg: 'inbound', clientId, eventId: customerEventId(clientId, msg.messageId) },
        'edited message ignored (KITBRIDGE_EDITS=ignore)',
      );
      return 'accepted';
    }
    const profile = await this.clients.profileFor(msg.client);
    const event = toCustomerEvent(
      { ...msg, client: { ...msg.client, profile } },
      {
        mediaUrlFor: (id, file) => mediaUrl(config.publicUrl, signer.sign(id, file)),
        maxFileBytes: this.maxFileBytes,
        onTooLarge: (file, limit) =>
          logger.warn(
            {
              leg: 'inbound',
              clientId,
              eventId: customerEventId(clientId, msg.messageId),
              kind: file.kind,
              size: file.size,
              limit,
            },
            'customer file too large to relay; Kit gets a line of text instead',
          ),
      },
    );
    const result = await this.inbound.enqueue({
      leg: 'inbound',
      clientId,
      key: event.event_id,
      payload: event as unknown as JsonObject,
    });
    if (result === 'accepted') {
      // The message is safe already: the platform's ack does not wait for the record, and a
      // failed record write must not make the platform resend the message.
      void this.clients
        .seen(msg.client, profile)
        .catch((err: Error) =>
          logger.warn(
            { leg: 'inbound', clientId, eventId: event.event_id, err: err.message },
            'client record not updated',
          ),
        );
    } else
      logger.debug(
        { leg: 'inbound', clientId, eventId: event.event_id, messageId: msg.messageId },
        'duplicate customer message dropped',
      );
    return result;
  };

  /** The media limits for one delivery: per target when the connector has them, else its static table. */
  private async limitsFor(
    target: DeliveryTarget,
    signal: AbortSignal,
    eventId: string,
  ): Promise<MediaLimits> {
    const { connector, logger } = this.o;
    if (!hasTargetMediaLimits(connector)) return connector.mediaLimits;
    try {
      return await connector.mediaLimitsFor(target, signal);
    } catch (err) {
      logger.debug(
        { leg: 'outbound', clientId: target.clientId, eventId, err: (err as Error).message },
        'media limits lookup failed; static limits used',
      );
      return connector.mediaLimits;
    }
  }

  /**
   * The inbound worker's send: the stored event, its client_data completed by the
   * connector's late profile lookup when it has one (never held back by it).
   */
  private async sendToKit(item: OutboxItem, work: DeliveryWork): Promise<void> {
    let event = item.payload as unknown as CustomerEvent;
    if (item.key.startsWith(NOTICE_KEY_PREFIX) && !(await this.conversationOpen(item.clientId))) {
      // Sending it would reopen a conversation Kit closed since.
      this.o.logger.info(
        { clientId: item.clientId, eventId: event.event_id },
        'agent notice dropped: the conversation is closed',
      );
      return;
    }
    if (this.profiles) {
      const address = (await this.clients.get(item.clientId).catch(() => undefined))?.address;
      event = await this.profiles.enrich(
        event,
        { clientId: item.clientId, ...(address ? { address } : {}) },
        work.signal,
      );
    }
    await this.o.kit.send(event, work.signal);
  }

  /** A customer file larger than this cannot reach Kit: the proxy's cap, or what the platform lets us fetch. */
  private readonly maxFileBytes = (kind: MediaKind): number =>
    Math.min(
      this.o.config.media.maxBytes,
      this.o.connector.mediaLimits[kind].maxDownloadBytes ?? Number.POSITIVE_INFINITY,
    );

  /** The plugin's `ctx.updateClient`. Resolves once the record is stored. */
  updateClient = (client: ClientIdentity): Promise<void> => this.clients.update(client);

  // ---------------------------------------------------------------- Kit -> customer

  /** The callback route's handler. Resolves once the event is stored. */
  handleCallback = async (cb: KitCallback): Promise<CallbackOutcome> => {
    if (cb.kind === 'unknown') {
      this.o.logger.info(
        {
          leg: 'outbound',
          clientId: cb.event.client_data?.client_id,
          eventId: cb.event.event_id,
          type: cb.event.event_type,
        },
        'kit event of an unknown type acknowledged',
      );
      return 'ignored';
    }
    const clientId = cb.event.client_data.client_id;
    const payload: OutboundPayload = { kind: cb.kind, event: cb.event as unknown as JsonObject };
    return this.outbound.enqueue({ leg: 'outbound', clientId, key: cb.event.event_id, payload });
  };

  private async deliverOutbound(item: OutboxItem, work: DeliveryWork): Promise<DeliveryReceipt | undefined> {
    const { connector, config, logger } = this.o;
    if (!connector.ownsClient(item.clientId)) {
      throw new PermanentDeliveryError(
        `client_id ${item.clientId} does not belong to the ${connector.name} connector`,
      );
    }
    const record = await this.clients.get(item.clientId);
    const target: DeliveryTarget = {
      clientId: item.clientId,
      ...(record?.address ? { address: record.address } : {}),
    };
    const payload = item.payload as unknown as OutboundPayload;

    if (payload.kind === 'close_conversation') {
      const event = payload.event as unknown as CloseConversationCallback;
      const reason = event.event_data?.close_reason ?? 'CLOSED_BY_UNKNOWN_REASON';
      const done = work.progress.done as CloseProgress | undefined;
      if (done?.told !== true) {
        await connector.closeConversation(target, reason, config.closeMessage, {
          signal: work.signal,
          progress: {
            done: done?.platform,
            save: (platform) => work.progress.save({ platform }),
          },
        });
      }
      // Recorded before the client record is written: when that write fails, the retry writes it
      // again without telling the customer a second time.
      const told = done?.told === true || (await this.saveTold(item, work));
      // An attempt given up (deadline, stop) writes nothing more.
      work.signal.throwIfAborted();
      try {
        await this.clients.closed(item.clientId, reason);
      } catch (err) {
        if (told) throw err;
        // No retry can skip the closing text: a stale record is the lesser harm than telling twice.
        logger.warn(
          { leg: 'outbound', clientId: item.clientId, eventId: item.key, err: (err as Error).message },
          'client record not updated after Kit closed the conversation',
        );
      }
      return;
    }

    const event = payload.event as unknown as AgentMessageCallback;
    const hasFiles = (event.event_data.message.payload ?? []).some((p) => 'file_url' in p);
    if (hasFiles && isTypingCapable(connector)) {
      // One "typing" per agent message with files, while they are fetched and uploaded.
      connector.sendTyping(target).catch(() => {});
    }
    const prepared = await toAgentMessage(event, {
      fetcher: this.o.fetcher,
      // Looked up only when there are files to check against them.
      limits: hasFiles ? await this.limitsFor(target, work.signal, item.key) : connector.mediaLimits,
      showAgentName: config.showAgentName,
      logger,
      logFields: { leg: 'outbound', clientId: item.clientId, eventId: item.key },
    });
    let receipt: DeliveryReceipt | undefined;
    try {
      receipt = (await connector.deliver(target, prepared.message, work)) || undefined;
    } finally {
      prepared.dispose();
    }
    if (prepared.replaced.length && this.o.config.notifyAgent !== false) {
      await this.notify(item, 'degraded', degradedReason(prepared.replaced));
    }
    return receipt;
  }

  // ---------------------------------------------------------------- telling the agent

  /** The outbox gave up on an agent's item: the agent hears of it, in the conversation, once. */
  private async undelivered(item: OutboxItem, reason: string): Promise<void> {
    if ((item.payload as OutboundPayload).kind !== 'send_message') return;
    await this.notify(item, 'undelivered', reason);
  }

  /**
   * Stores a notice to the agent on the inbound leg, while the conversation is
   * open. Never throws: a notice lost is better than a reply delivered twice.
   */
  private async notify(item: OutboxItem, kind: NoticeKind, why: string): Promise<void> {
    const { logger } = this.o;
    const log = { leg: 'outbound', clientId: item.clientId, eventId: item.key, notice: kind };
    try {
      if (!(await this.conversationOpen(item.clientId))) {
        logger.info(log, 'agent not told: the conversation is closed');
        return;
      }
      const msg = (item.payload as OutboundPayload).event as unknown as AgentMessageCallback;
      const files = (msg.event_data?.message?.payload ?? []).flatMap((p) =>
        'file_url' in p ? [String((p as { file_name?: unknown }).file_name || 'file')] : [],
      );
      const what = describeAgentMessage({ text: msg.event_data?.message?.text ?? undefined, files });
      const { key, event } = noticeEvent(item.clientId, item.key, kind, noticeText(kind, what, why));
      const r = await this.inbound.enqueue({
        leg: 'inbound',
        clientId: item.clientId,
        key,
        payload: event as unknown as JsonObject,
      });
      logger.info(log, r === 'accepted' ? 'agent told in Kit' : 'agent already told');
    } catch (err) {
      logger.warn({ ...log, err: (err as Error).message }, 'agent notice not stored');
    }
  }

  /** Read from the store, not a cache: another replica may have seen Kit close it. */
  private async conversationOpen(clientId: string): Promise<boolean> {
    return (await this.o.store.getClient(clientId))?.conversation !== 'closed';
  }

  /** Records that the customer was told of the close; false when the store could not take it. */
  private async saveTold(item: OutboxItem, work: DeliveryWork): Promise<boolean> {
    try {
      await work.progress.save({ told: true });
      return true;
    } catch (err) {
      if (err instanceof LeaseLostError) throw err;
      this.o.logger.warn(
        { leg: 'outbound', clientId: item.clientId, eventId: item.key, err: (err as Error).message },
        'could not record that the conversation close was sent',
      );
      return false;
    }
  }
}

// ---------------------------------------------------------------- failure classes

export function classifyKitError(err: unknown): FailureKind {
  if (err instanceof KitRejectedError)
    return { permanent: true, reason: `Kit rejected the event: ${err.message}` };
  if (err instanceof KitUnavailableError) {
    return {
      permanent: false,
      reason: err.message,
      ...(err.retryAfterMs ? { retryAfterMs: err.retryAfterMs } : {}),
    };
  }
  // Credentials may be fixed by an operator while messages wait.
  if (err instanceof KitAuthError) return { permanent: false, reason: err.message };
  return { permanent: false, reason: (err as Error)?.message ?? String(err) };
}

export function classifyPlatformError(err: unknown): FailureKind {
  if (err instanceof PermanentDeliveryError) return { permanent: true, reason: err.message };
  if (err instanceof RetryableDeliveryError) {
    return {
      permanent: false,
      reason: err.message,
      ...(err.retryAfterMs ? { retryAfterMs: err.retryAfterMs } : {}),
    };
  }
  return { permanent: false, reason: (err as Error)?.message ?? String(err) };
}
