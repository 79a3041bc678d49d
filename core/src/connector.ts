/**
 * The connector contract: everything a platform plugin implements and everything
 * core hands it. One file, grouped by concern. A plugin knows its platform and
 * nothing of Kit's wire format; core knows Kit and nothing of any platform.
 *
 * Required: {@link ChannelConnector}. Optional capabilities are separate small
 * interfaces ({@link TypingCapable}, ...) that core discovers at run time with the
 * type guards at the end of this file, so a new connector starts tiny.
 */
import type { Readable } from 'node:stream';
import type { RouteHandler } from './http/router.js';
import type { MediaKind } from './kit/schemas.js';
import type { Logger } from './logger.js';

export type { MediaKind } from './kit/schemas.js';

// ---------------------------------------------------------------- identity and profile

/**
 * Who the customer is. `clientId` is stable per customer and self-describing
 * (`tg:<chat_id>`, `dc:<user_id>`, `sl:<team>:<user>`): the plugin owns the format
 * and must be able to route a reply from the id alone, even with an empty store.
 */
export interface ClientIdentity {
  clientId: string;
  /**
   * Anything extra the plugin needs to reach the customer, JSON-serialisable;
   * stored per client (the latest wins) and handed back on every delivery.
   * Absent: the stored one is kept. E.g.
   * Discord: the DM channel id (reopened with createDM after a restart when it is
   * missing) or the support-channel thread; Slack: the channel and `thread_ts`
   * the customer last wrote in, so replies land in that thread.
   */
  address?: JsonObject;
  profile?: ClientProfile;
}

/**
 * Profile fields that map onto Kit's client_data. All optional. Core keeps what
 * it was given before: a field a message leaves out is sent as last known.
 */
export interface ClientProfile {
  displayName?: string;
  phone?: string;
  email?: string;
  /** IETF tag or platform language code, e.g. `en`, `pt-br`. */
  language?: string;
  /** The customer's picture, served to Kit through the media proxy. */
  avatar?: AttachmentRef;
  utm?: { source?: string; campaign?: string; content?: string; medium?: string; term?: string };
  page?: { url?: string; title?: string };
  device?: { type?: string; model?: string; user_agent?: string };
}

// ---------------------------------------------------------------- customer -> Kit

/**
 * A platform file the plugin can fetch later. `ref` is opaque to core (a Telegram
 * file_id, a Slack file id): it goes into a signed media token, never into a URL
 * as it is, so it must not itself be a secret.
 */
export interface AttachmentRef {
  ref: string;
  kind: MediaKind;
  fileName?: string;
  mimeType?: string;
  /** Bytes, when the platform says. */
  size?: number;
}

export type InboundItem =
  | ({ type: 'media' } & AttachmentRef)
  | { type: 'location'; latitude: number; longitude: number; address?: string }
  | { type: 'contact'; name?: string; number?: string };

/** One customer message, normalized by the plugin. */
export interface InboundMessage {
  client: ClientIdentity;
  /**
   * The platform's identity of this message, unique per client and identical on
   * every redelivery (an edit gets its own, e.g. `42:e1700000000`). Core derives
   * Kit's event_id and message_id from it, so retries and duplicates collapse.
   */
  messageId: string;
  text?: string;
  items?: InboundItem[];
  /** True when this is an edit of an earlier message (core may prefix the text). */
  edited?: boolean;
}

export type ReceiveResult = 'accepted' | 'duplicate';

// ---------------------------------------------------------------- Kit -> customer

export type SenderType = 'agent' | 'bot' | (string & {});

export interface AgentSender {
  id?: string;
  displayName?: string;
  type?: SenderType;
}

/** A file the agent sent; the bytes are fetched only when the plugin asks. */
export interface OutboundAttachment {
  kind: MediaKind;
  fileName: string;
  /** Kit's URL. Hand it to a platform that fetches by URL only when `size` fits its by-URL limit. */
  url: string;
  /** From a HEAD-free first look: Content-Length of the fetch, when known before upload. */
  size?: number;
  contentType?: string;
  /**
   * Opens a fresh, size-capped, SSRF-checked stream of the file (call again on a
   * retry: a stream is read once). Rejects with {@link MediaFetchError}.
   */
  open(): Promise<FetchedFile>;
}

export interface FetchedFile {
  stream: Readable;
  size?: number;
  contentType?: string;
  fileName: string;
}

/** One agent message for the customer. */
export interface AgentMessage {
  /** Kit's event_id: stable across retries, usable as an idempotency key. */
  eventId: string;
  text?: string;
  sender?: AgentSender;
  attachments: OutboundAttachment[];
  locations: { latitude: number; longitude: number; address?: string }[];
  contacts: { name?: string; number?: string }[];
  /** Lines core adds for what could not be sent as a file (too large, fetch failed). Send them as text. */
  notices: string[];
}

/** Where a delivery goes: the id plus the last address the plugin stored for it. */
export interface DeliveryTarget {
  clientId: string;
  address?: JsonObject;
}

export type CloseReason =
  | 'CLOSED_BY_AGENT'
  | 'CLOSED_BY_BOT'
  | 'CLOSED_BY_CLIENT_TIMEOUT'
  | 'CLOSED_BY_UNKNOWN_REASON'
  | (string & {});

// ---------------------------------------------------------------- media

/** A platform file opened for streaming to Kit through the media proxy. */
export interface ResolvedFile {
  stream: Readable;
  contentType?: string;
  size?: number;
  fileName?: string;
}

/** What a platform accepts per media kind; core checks it before sending. */
export interface MediaLimit {
  /** Largest upload, in bytes. */
  maxUploadBytes: number;
  /**
   * Largest customer file the connector can fetch from the platform (the cloud
   * Bot API serves bots 20 MB at most); absent: no limit of the platform's own.
   * Core tells Kit of a larger file in the message text instead of a link that
   * cannot work.
   */
  maxDownloadBytes?: number;
  /** Largest file the platform will fetch by URL itself; 0 or absent: always upload. */
  maxByUrlBytes?: number;
  /** Accepted MIME types (`image/*` style wildcards); absent: any. */
  mimeTypes?: string[];
}
export type MediaLimits = Record<MediaKind, MediaLimit>;

// ---------------------------------------------------------------- states

/**
 * Explicit connection states, as mautrix bridgev2 has them. What `/readyz` answers:
 * - `connected`: 200, intake runs here;
 * - `standby`: 200, a replica that does not hold the platform's singleton job
 *   (Telegram long polling, a Discord gateway session) but serves callbacks,
 *   webhooks and media, so a load balancer keeps sending it requests;
 * - `starting`, `reconnecting`: 503 until connected again (the outbox keeps what waits);
 * - `failed`: 503; operator action is needed (revoked token, another consumer
 *   holds it): core logs the reason and stays up, serving what it can;
 * - `stopped`: 503.
 */
export type ConnectionState = 'starting' | 'connected' | 'standby' | 'reconnecting' | 'failed' | 'stopped';

/**
 * Why a connector is in its state, for machines (alerts, dashboards); `reason`
 * says it for people. Plugins may add their own lower-case codes.
 */
export type StatusCode =
  /** The platform refused the credentials (revoked or wrong token). */
  | 'bad_credentials'
  /** A permission, scope or privileged intent the mode needs is missing. */
  | 'missing_permission'
  /** Another consumer holds the platform session (Telegram 409). */
  | 'conflict'
  /** The platform is throttling us. */
  | 'rate_limited'
  /** The platform cannot be reached (DNS, connect, TLS, 5xx). */
  | 'network'
  /** Another replica holds the singleton job (state `standby`). */
  | 'not_leader'
  | (string & {});

export interface ConnectionStatus {
  state: ConnectionState;
  /** Machine-readable cause, when the state has one (see {@link StatusCode}). */
  code?: StatusCode;
  /** Human-readable and secret-free. */
  reason?: string;
}

/** States in which `/readyz` answers 200. */
export function isReadyState(state: ConnectionState): boolean {
  return state === 'connected' || state === 'standby';
}

// ---------------------------------------------------------------- context

/** What core gives a connector in {@link ChannelConnector.start}. */
export interface ConnectorContext {
  /**
   * Hands a customer message to the relay. Resolves once it is durably stored
   * (or recognised as a duplicate): acknowledge the platform only after that.
   * Rejects when the store cannot take it; then do not acknowledge. It does no
   * platform or Kit I/O and a bounded number of store round trips (one for a
   * known customer), and it does not wait for the customer's record to be
   * updated once the message is safe; so a platform that wants its ack within
   * seconds (Slack's Events API: 3 s) can await it before answering. Do not
   * call the platform before it either: profile lookups belong in
   * {@link ProfileResolving}, which runs later.
   */
  receive(message: InboundMessage): Promise<ReceiveResult>;
  /**
   * Records what the plugin learned of a customer outside a message: a new
   * address (a DM channel reopened after a restart, a support thread that had
   * to be recreated) or profile fields (a deep link's utm). Resolves once it is
   * stored. The address comes back with the next delivery; the profile fields
   * go to Kit with the customer's next messages (utm until Kit closes the
   * conversation). One local store write, no network I/O.
   */
  updateClient(client: ClientIdentity): Promise<void>;
  /** Reports a connection state change; cheap, call freely. */
  setStatus(status: ConnectionStatus): void;
  /** Adds an HTTP route to the process's one server (webhooks). Call before start resolves. */
  route(method: 'GET' | 'POST', path: string, handler: RouteHandler): void;
  /** `KITBRIDGE_PUBLIC_URL` without a trailing slash. */
  publicUrl: string;
  logger: Logger;
  /** Aborted when the process begins to stop. */
  signal: AbortSignal;
  /**
   * Durable cursors for platforms whose push connection has no acknowledgement
   * (Discord's gateway): record the last message seen per channel, and on start
   * or after a reconnect fetch what came after it. Dedupe makes the overlap
   * harmless, so set it after `receive` resolved, never before.
   */
  checkpoints: Checkpoints;
  /**
   * Runs `job` in exactly one process of all replicas sharing the store (a lease
   * in the store; SQLite and memory grant it to their one process at once). The
   * job's signal aborts when the lease is lost or the process stops: stop then,
   * and a new holder starts it again. Telegram long polling and a Discord gateway
   * session are such jobs. Report `standby` while not holding it. Resolves after
   * the first try to take the lease: `running` when this process took it (the job
   * has been called), `standby` when another holds it (this one keeps trying).
   */
  exclusive(name: string, job: (signal: AbortSignal) => Promise<void>): Promise<'running' | 'standby'>;
  /** Counters of the platform's side (its 429s), exported on `GET /metrics` with the `platform` label. */
  metrics: PlatformMetrics;
}

/** What a plugin counts about its platform. Calls are synchronous increments: no I/O, they never throw. */
export interface PlatformMetrics {
  /**
   * The platform answered 429 and asked to wait `waitMs` (0 when it did not
   * say). Call once per such answer, also when the SDK waits and retries by
   * itself; not for the plugin's own pacing, which is no answer of the platform.
   */
  rateLimited(waitMs: number): void;
}

/** A small durable key-value of cursors, per connector. One store round trip per call; no platform I/O. */
export interface Checkpoints {
  get(key: string): Promise<string | undefined>;
  /** Stored when it resolves. */
  set(key: string, value: string): Promise<void>;
}

// ---------------------------------------------------------------- the connector

/** Errors a connector throws from deliver/close to steer retries. */
export class PermanentDeliveryError extends Error {
  override name = 'PermanentDeliveryError';
}

export class RetryableDeliveryError extends Error {
  override name = 'RetryableDeliveryError';
  constructor(
    message: string,
    /** The platform's own wait (Telegram retry_after, Slack Retry-After), in ms. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

/**
 * The required interface of a platform plugin.
 *
 * Errors from `deliver` and `closeConversation`: throw {@link PermanentDeliveryError}
 * for what no retry will fix (the customer blocked the bot), {@link RetryableDeliveryError}
 * with the platform's wait for rate limits; anything else is retried with backoff.
 */
export interface ChannelConnector {
  /** Platform name, lower case: `telegram`. Used in logs and metrics. */
  readonly name: string;
  /** True when this connector owns `clientId` (by its prefix). No I/O. */
  ownsClient(clientId: string): boolean;
  /** The platform's media limits; core checks outbound files against them. */
  readonly mediaLimits: MediaLimits;

  /**
   * Connects and begins receiving. Add webhook routes with `ctx.route` before
   * resolving. Resolve once intake is running; a fatal misconfiguration (revoked
   * token) rejects with a secret-free message.
   */
  start(ctx: ConnectorContext): Promise<void>;
  /** Stops intake and releases connections. Idempotent. Must not drop acknowledged messages. */
  stop(): Promise<void>;
  /** Current state, as `/readyz` reports it; no I/O. Report changes with `ctx.setStatus` too (for the log). */
  status(): ConnectionStatus;

  /**
   * Sends one agent message. Called at least once per Kit event, in order per
   * client, never concurrently for one client (under the client's lease). Use
   * `message.eventId` to avoid doubles where the platform allows it.
   *
   * A message that takes several platform sends (a long text split, several
   * files) records each one with `work.progress.save` as soon as it is sent,
   * not when the attempt fails: a retry in this process, after a restart or on
   * another replica then resumes instead of repeating ({@link sendSteps} does
   * it). Stop when `work.signal` aborts (the attempt's deadline passed or the
   * process stops): hand the signal to every platform call. May return the
   * platform's message ids.
   */
  deliver(
    target: DeliveryTarget,
    message: AgentMessage,
    work?: DeliveryWork,
    // biome-ignore lint/suspicious/noConfusingVoidType: a connector with no ids to report returns nothing
  ): Promise<DeliveryReceipt | void>;
  /** Kit closed the conversation: tell the customer if configured, else a no-op. Same rules as `deliver`. */
  closeConversation(
    target: DeliveryTarget,
    reason: CloseReason,
    closingText?: string,
    work?: DeliveryWork,
    // biome-ignore lint/suspicious/noConfusingVoidType: a connector with no ids to report returns nothing
  ): Promise<DeliveryReceipt | void>;
  /**
   * Opens a platform file for the media proxy. Called when Kit fetches the URL,
   * possibly days later. Throw {@link AttachmentGoneError} when the platform no
   * longer has it.
   */
  resolveAttachment(ref: AttachmentRef): Promise<ResolvedFile>;
}

export class AttachmentGoneError extends Error {
  override name = 'AttachmentGoneError';
}

// ---------------------------------------------------------------- delivery work

/** What an attempt of one delivery is given besides the message. */
export interface DeliveryWork {
  /** Aborts at the attempt's deadline (KITBRIDGE_DELIVERY_TIMEOUT) or when the process stops. */
  signal: AbortSignal;
  progress: DeliveryProgress;
}

/** The durable progress of one delivery, kept across retries, restarts and replicas. */
export interface DeliveryProgress {
  /** What earlier attempts recorded; undefined on the first attempt. */
  readonly done: JsonObject | undefined;
  /**
   * Records progress; resolves once stored. Rejects when this process lost the
   * client to another (its lease expired): stop without sending more.
   */
  save(progress: JsonObject): Promise<void>;
}

/** What a delivery may report back. */
export interface DeliveryReceipt {
  /** The platform's ids of the messages sent, in order. */
  platformMessageIds?: string[];
}

// ---------------------------------------------------------------- optional capabilities

/** Shows "typing…" to the customer. Core calls it at most once per burst of agent messages. */
export interface TypingCapable {
  sendTyping(target: DeliveryTarget): Promise<void>;
}

/**
 * Looks a customer's profile up on the platform, late: the inbound worker calls
 * it just before the customer's event goes to Kit, never while a platform
 * waits for its acknowledgement (Slack wants its ack within 3 s). Core caches
 * the answer per client for `profileTtlMs` (default one day) and merges it
 * under what the message itself carried. A rejection or a timeout sends the
 * event with what is known: it never holds a message back. Honour the signal.
 */
export interface ProfileResolving {
  resolveProfile(target: DeliveryTarget, signal: AbortSignal): Promise<ClientProfile | undefined>;
  readonly profileTtlMs?: number;
}

/**
 * Media limits that depend on where a message goes (Discord's upload limit
 * depends on the server's boost level). Called before each delivery with
 * files; may look the target up on the platform (cache it). Falls back to
 * `mediaLimits` when it rejects.
 */
export interface TargetMediaLimits {
  mediaLimitsFor(target: DeliveryTarget, signal: AbortSignal): Promise<MediaLimits>;
}

/** Checks platform configuration before anything starts (no network). Return a list of problems. */
export interface ConfigValidating {
  validateConfig(): string[];
}

/**
 * Checks the platform credentials and reachability without starting intake
 * (`kitbridge check`). Resolves with a short, secret-free summary ("bot @acme_bot");
 * rejects with a message that says what is wrong.
 */
export interface SelfChecking {
  selfCheck(): Promise<string>;
}

export function isSelfChecking(c: ChannelConnector): c is ChannelConnector & SelfChecking {
  return typeof (c as Partial<SelfChecking>).selfCheck === 'function';
}

export function isProfileResolving(c: ChannelConnector): c is ChannelConnector & ProfileResolving {
  return typeof (c as Partial<ProfileResolving>).resolveProfile === 'function';
}

export function hasTargetMediaLimits(c: ChannelConnector): c is ChannelConnector & TargetMediaLimits {
  return typeof (c as Partial<TargetMediaLimits>).mediaLimitsFor === 'function';
}

export function isTypingCapable(c: ChannelConnector): c is ChannelConnector & TypingCapable {
  return typeof (c as Partial<TypingCapable>).sendTyping === 'function';
}

export function isConfigValidating(c: ChannelConnector): c is ChannelConnector & ConfigValidating {
  return typeof (c as Partial<ConfigValidating>).validateConfig === 'function';
}

// ---------------------------------------------------------------- helpers

export type JsonValue = string | number | boolean | null | JsonValue[] | { [k: string]: JsonValue };
export type JsonObject = { [k: string]: JsonValue };
