/**
 * A fake Slack on 127.0.0.1 that speaks the real wire protocols, so @slack/bolt,
 * @slack/web-api's WebClient and @slack/socket-mode run unmodified against it:
 *
 * - the Web API under `/api/` (`clientOptions: { slackApiUrl: fake.apiUrl }`, with
 *   the trailing slash): form-urlencoded, JSON or query parameters, the token as
 *   `Authorization: Bearer` or a `token` parameter, HTTP 200 with `{ok:false,error}`
 *   for most errors, 429 with `Retry-After`, scopes checked per method
 *   (`missing_scope` with `needed`/`provided`) and reported in `x-oauth-scopes`;
 * - file uploads (`files.getUploadURLExternal` -> POST to the returned `upload_url`
 *   -> `files.completeUploadExternal`) and customer files at `url_private` /
 *   `url_private_download`, which need the bot token and `files:read` (without
 *   them Slack answers 200 with an HTML sign-in page, and so does the fake);
 * - the Events API: events POSTed to a request URL, signed with the v0 scheme over
 *   Slack's own JSON (`/` written `\/`, non-ASCII as `\uXXXX`), with retry headers;
 * - Socket Mode: `apps.connections.open` -> a websocket that says hello, carries
 *   envelopes, takes `{envelope_id}` acks, redelivers what is not acked, and asks
 *   the client to reconnect (`disconnect`, `refresh_requested`) as Slack does.
 *
 * Tests register users, channels and files, build message events as Slack sends
 * them ({@link FakeSlack.dm}, {@link FakeSlack.channelMessage}, …), deliver them over
 * HTTP ({@link FakeSlack.sendEvent}) or the socket ({@link FakeSlack.sendEnvelope}),
 * read what the app did ({@link FakeSlack.calls}, {@link FakeSlack.delivered},
 * {@link FakeSlack.uploads}, {@link FakeSlack.acks}) and script failures.
 */
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { type WebSocket, WebSocketServer } from 'ws';
import { multipartBoundary, parseMultipart } from './multipart.js';
import { Watchers } from './watchers.js';

// ---------------------------------------------------------------- constants

/** The bot scopes a Slack connector asks for; the fake's default set. */
export const SLACK_DEFAULT_BOT_SCOPES = [
  'chat:write',
  'chat:write.customize',
  'im:history',
  'im:read',
  'im:write',
  'channels:history',
  'channels:read',
  'groups:history',
  'groups:read',
  'mpim:history',
  'mpim:read',
  'users:read',
  'users:read.email',
  'files:read',
  'files:write',
  'team:read',
] as const;

/** Ready-made `{ok:false}` failures for {@link FakeSlack.failNext}. */
export const SlackErrors = {
  channelNotFound: { error: 'channel_not_found' },
  notInChannel: { error: 'not_in_channel' },
  isArchived: { error: 'is_archived' },
  invalidAuth: { error: 'invalid_auth' },
  tokenRevoked: { error: 'token_revoked' },
  accountInactive: { error: 'account_inactive' },
  fatalError: { error: 'fatal_error' },
  internal: { status: 500 },
  serviceUnavailable: { status: 503 },
} as const satisfies Record<string, SlackFailureSpec>;

/**
 * Pseudo-method names for {@link FakeSlack.failNext} / {@link FakeSlack.stallNext}
 * beside Web API methods: the POST to an `upload_url`, and a GET of `url_private`.
 */
export const SLACK_UPLOAD = 'upload';
export const SLACK_DOWNLOAD = 'download';

/** Which scope each method needs (bot token); `im:*` style scopes are picked per channel type. */
const METHOD_SCOPES: Record<string, string | ((kind: ChannelKind) => string)> = {
  'users.info': 'users:read',
  'conversations.open': 'im:write',
  'conversations.info': (k) => `${SCOPE_PREFIX[k]}:read`,
  'conversations.history': (k) => `${SCOPE_PREFIX[k]}:history`,
  'conversations.replies': (k) => `${SCOPE_PREFIX[k]}:history`,
  'chat.postMessage': 'chat:write',
  'files.getUploadURLExternal': 'files:write',
  'files.completeUploadExternal': 'files:write',
  'files.info': 'files:read',
  'team.info': 'team:read',
};

type ChannelKind = 'im' | 'mpim' | 'channel' | 'group';
const SCOPE_PREFIX: Record<ChannelKind, string> = {
  im: 'im',
  mpim: 'mpim',
  channel: 'channels',
  group: 'groups',
};

const RETIRED_METHODS = new Set(['files.upload', 'rtm.connect', 'rtm.start']);
/** The Web API methods the fake answers. */
const WEB_METHODS = new Set([
  'auth.test',
  'users.info',
  'team.info',
  'conversations.open',
  'conversations.info',
  'conversations.history',
  'conversations.replies',
  'chat.postMessage',
  'files.getUploadURLExternal',
  'files.completeUploadExternal',
  'files.info',
  'apps.connections.open',
]);
const JSON_PARAMS = new Set(['blocks', 'attachments', 'files', 'metadata', 'unfurl', 'users']);
const MAX_TEXT = 40_000;

// ---------------------------------------------------------------- wire shapes (the subset used)

export interface SlackUser {
  id: string;
  team_id: string;
  name: string;
  deleted: boolean;
  real_name: string;
  tz: string;
  tz_label: string;
  tz_offset: number;
  is_bot: boolean;
  is_app_user: boolean;
  updated: number;
  profile: {
    display_name: string;
    real_name: string;
    image_24: string;
    image_48: string;
    image_72: string;
    image_192: string;
    email?: string;
    team: string;
    [field: string]: unknown;
  };
  /** Only with `include_locale=true`. */
  locale?: string;
  enterprise_user?: { id: string; enterprise_id: string; enterprise_name: string; teams: string[] };
  [field: string]: unknown;
}

/** A file object as events, files.info and messages carry it. */
export interface SlackFile {
  id: string;
  created: number;
  timestamp: number;
  name: string;
  title: string;
  mimetype: string;
  filetype: string;
  pretty_type: string;
  user: string;
  user_team: string;
  editable: boolean;
  size: number;
  mode: string;
  is_external: boolean;
  external_type: string;
  is_public: boolean;
  public_url_shared: boolean;
  display_as_bot: boolean;
  username: string;
  url_private: string;
  url_private_download: string;
  permalink: string;
  permalink_public: string;
  has_rich_preview: boolean;
  file_access: string;
  shares?: Record<string, Record<string, { ts: string; thread_ts?: string; channel_name?: string }[]>>;
  channels?: string[];
  groups?: string[];
  ims?: string[];
  [field: string]: unknown;
}

/** A message object (`type: 'message'`) as responses and nested events carry it; fields beyond the listed ones pass through. */
export interface SlackMessage {
  type: 'message';
  subtype?: string;
  channel?: string;
  channel_type?: ChannelKind;
  user?: string;
  bot_id?: string;
  text?: string;
  ts: string;
  event_ts?: string;
  thread_ts?: string;
  team?: string;
  files?: (SlackFile | { id: string; file_access: string; [field: string]: unknown })[];
  [field: string]: unknown;
}

/** A message event: a {@link SlackMessage} with its channel. */
export interface SlackMessageEvent extends SlackMessage {
  channel: string;
}

/** The `event_callback` body Slack POSTs (HTTP) or puts in an envelope's payload (Socket Mode). */
export interface SlackEventCallback {
  token: string;
  team_id: string;
  context_team_id: string | null;
  context_enterprise_id: string | null;
  enterprise_id?: string;
  api_app_id: string;
  event: Record<string, unknown>;
  type: 'event_callback';
  event_id: string;
  event_time: number;
  authorizations: {
    enterprise_id: string | null;
    team_id: string | null;
    user_id: string;
    is_bot: boolean;
    is_enterprise_install: boolean;
  }[];
  is_ext_shared_channel: boolean;
  event_context: string;
  [field: string]: unknown;
}

// ---------------------------------------------------------------- test inputs

export interface SlackUserInput {
  /** Default: a fresh `U…` id. */
  id?: string;
  name?: string;
  real_name?: string;
  display_name?: string;
  email?: string;
  /** What users.info gives with include_locale (default `en-US`). */
  locale?: string;
  tz?: string;
  image_72?: string;
  /** The user's own team: another one than the workspace's makes a Slack Connect user. */
  team_id?: string;
  is_bot?: boolean;
  deleted?: boolean;
  /** Extra wire fields, passed through as given. */
  fields?: Record<string, unknown>;
}

export interface SlackChannelInput {
  /** Default: a fresh `C…` (public) or `G…`-less `C…` (private) id. */
  id?: string;
  name?: string;
  /** Private channel (`channel_type: 'group'` in events). */
  is_private?: boolean;
  /** Shared with another organisation (Slack Connect). */
  is_ext_shared?: boolean;
  is_archived?: boolean;
  /** Whether the bot is a member (default true); a public channel without it answers not_in_channel. */
  botIsMember?: boolean;
  members?: string[];
}

/** A file a customer attaches; registered and served at its url_private. */
export interface SlackFileInput {
  name: string;
  bytes: Buffer;
  mimetype?: string;
  filetype?: string;
  title?: string;
  /** Extra file fields (`subtype: 'slack_audio'`, `original_w`, `transcription`, …). */
  fields?: Record<string, unknown>;
}

/** What a customer writes; a plain string is `{ text }`. */
export interface SlackMessageInput {
  text?: string;
  /** Files attached: the message gets subtype `file_share`. */
  files?: SlackFileInput[];
  /** A reply in the thread of this parent ts (adds thread_ts and parent_user_id). */
  threadTs?: string;
  /** Default: a fresh ts after every earlier one. */
  ts?: string;
  /**
   * Slack Connect: files from another organisation arrive as stubs
   * `{ id, file_access: 'check_file_info' }`; the app must call files.info.
   */
  fileAccess?: 'check_file_info';
  /** Extra event fields, passed through as given. */
  fields?: Record<string, unknown>;
}

/** Envelope options shared by HTTP and Socket Mode deliveries. */
export interface SlackEventOptions {
  /** The envelope's team_id (default: the workspace's). */
  teamId?: string;
  /** Enterprise Grid: the org id (default: the fake's enterpriseId). */
  enterpriseId?: string | null;
  /** The workspace the event happened in (default: teamId). */
  contextTeamId?: string | null;
  /** An org-wide install: authorizations[0].team_id null, is_enterprise_install true. */
  orgInstall?: boolean;
  /** Reuse an event_id (a redelivery of the same event); default: a fresh one. */
  eventId?: string;
  eventTime?: number;
  /** Default: whether the event's channel is registered as ext-shared. */
  isExtSharedChannel?: boolean;
}

export interface SlackSendEventOptions extends SlackEventOptions {
  /** `x-slack-retry-num` (Slack's retries are 1, 2, 3). */
  retryNum?: number;
  /** `x-slack-retry-reason` (default `http_timeout` when retryNum is set). */
  retryReason?: string;
  /** `valid` (default), `bad` (wrong secret), `stale` (timestamp 6 minutes old), `none` (no headers). */
  signature?: 'valid' | 'bad' | 'stale' | 'none';
  /** The `x-slack-request-timestamp`, seconds (default now). */
  timestamp?: number;
  /** Abort the request after this long (the result then has status 0 and timedOut). */
  timeoutMs?: number;
  headers?: Record<string, string>;
}

export interface SlackSendEventResult {
  /** 0 when the request failed or timed out. */
  status: number;
  body: string;
  headers: Record<string, string>;
  /** The exact bytes POSTed (what the signature covers). */
  rawBody: string;
  envelope: Record<string, unknown>;
  eventId?: string;
  elapsedMs: number;
  timedOut?: boolean;
  error?: string;
}

// ---------------------------------------------------------------- records

/** A file part (multipart) or raw body the app sent. */
export interface SlackReceivedFile {
  field: string;
  fileName?: string;
  contentType?: string;
  headers: Record<string, string>;
  bytes: Buffer;
}

/** One Web API call (or upload / download request) the app made. */
export interface SlackApiCall {
  /** `chat.postMessage`, …; {@link SLACK_UPLOAD} or {@link SLACK_DOWNLOAD} for the file routes. */
  method: string;
  /** Parameters, whatever the encoding; JSON-looking values (blocks, files, …) parsed, `true`/`false` as booleans, numbers left as strings. */
  params: Record<string, unknown>;
  files: SlackReceivedFile[];
  encoding: 'form' | 'json' | 'multipart' | 'query' | 'raw' | 'none';
  /** Request headers, names in lower case. */
  headers: Record<string, string>;
  /** The token used (Bearer header first, else the token parameter). */
  token?: string;
  tokenType?: 'bot' | 'app' | 'unknown';
  /** The HTTP status answered; undefined while unanswered (stalled). */
  status?: number;
  /** The JSON answered. */
  response?: Record<string, unknown>;
  /** Date.now() when the request arrived. */
  at: number;
}

/** A message the bot created (chat.postMessage, or a file share), as stored in the channel. */
export interface SlackBotMessage {
  channel: string;
  ts: string;
  text: string;
  thread_ts?: string;
  /** Only when the app has chat:write.customize (Slack ignores them otherwise). */
  username?: string;
  icon_url?: string;
  icon_emoji?: string;
  blocks?: unknown;
  files?: SlackFile[];
  /** The message as stored. */
  message: SlackMessageEvent;
  call: SlackApiCall;
}

/** One POST to an upload_url. */
export interface SlackUpload {
  fileId: string;
  uploadUrl: string;
  /** The `length` given to files.getUploadURLExternal. */
  declaredLength: number;
  bytes: Buffer;
  encoding: 'raw' | 'multipart';
  /** multipart: the part's name (`body` from the SDK), file name and type. */
  field?: string;
  fileName?: string;
  contentType?: string;
  headers: Record<string, string>;
  status: number;
  at: number;
}

/** A scripted failure. */
export interface SlackFailureSpec {
  /** An `{ok:false, error}` answer (HTTP 200 unless `status`). */
  error?: string;
  /** An HTTP status: 429 adds Retry-After, 5xx answers Slack's error page. */
  status?: number;
  /** Seconds, for 429 (default 1). */
  retryAfter?: number;
  /** Extra body fields (`needed`, `provided`, `response_metadata`, …). */
  body?: Record<string, unknown>;
  /** Let this many matching calls succeed first. */
  afterCalls?: number;
  /** Only calls this accepts consume the failure (e.g. one channel). */
  when?: (call: SlackApiCall) => boolean;
}

export interface SlackStallSpec {
  /** Do the work (post the message, store the upload) before hanging: an answer that got lost. */
  process?: boolean;
  when?: (call: SlackApiCall) => boolean;
}

/** A request for a customer file (url_private / url_private_download). */
export interface SlackFileRequest {
  fileId?: string;
  path: string;
  /** Whether the Bearer token was the bot's with files:read. */
  authorized: boolean;
  /** 200 bytes, 200 sign-in HTML, 302 to the sign-in page, 404, … */
  status: number;
  servedHtml: boolean;
  headers: Record<string, string>;
  at: number;
}

/** One envelope sent over Socket Mode, with its deliveries and its ack. */
export interface SlackEnvelope {
  envelopeId: string;
  type: string;
  payload: Record<string, unknown>;
  /** Each time it went out: attempt 0 first, then redeliveries. */
  deliveries: { attempt: number; at: number; connectionId: number; retryReason: string }[];
  /** The first ack received. */
  acked?: SlackSocketAck;
  /** Redeliveries exhausted without an ack. */
  gaveUp: boolean;
}

/** An `{envelope_id, payload?}` the client sent back. */
export interface SlackSocketAck {
  envelopeId: string;
  at: number;
  connectionId: number;
  /** The ack's payload (the socket-mode client always sends `{}`). */
  payload?: unknown;
  /** The attempt that was out when it arrived (0: the first delivery). */
  attempt: number;
  /** ms since that delivery went out. */
  afterMs: number;
  /** An ack for an unknown envelope, or for one already acked. */
  late?: boolean;
}

export type SlackSocketRecordKind =
  | 'open'
  | 'rejected'
  | 'hello'
  | 'envelope'
  | 'ack'
  | 'disconnect'
  | 'close'
  | 'message'
  | 'ping';

/** Something that happened on a Socket Mode connection. */
export interface SlackSocketRecord {
  kind: SlackSocketRecordKind;
  /** Position in {@link FakeSlack.socketLog}. */
  index: number;
  at: number;
  connectionId: number;
  envelopeId?: string;
  attempt?: number;
  /** disconnect: the reason sent; rejected: why. */
  reason?: string;
  /** close: the code and who closed first. */
  code?: number;
  by?: 'server' | 'client';
  /** message: a frame the fake did not understand. */
  data?: string;
}

export interface SlackSocketConnectionInfo {
  id: number;
  ticket: string;
  openedAt: number;
  closedAt?: number;
  state: 'open' | 'draining' | 'closed';
}

export interface FakeSlackOptions {
  /** Default: a fresh `xoxb-…`. */
  botToken?: string;
  /** Default: a fresh `xapp-1-…`. */
  appToken?: string;
  /** Default: 32 random hex characters. */
  signingSecret?: string;
  /** The deprecated verification token in event bodies. */
  verificationToken?: string;
  teamId?: string;
  teamName?: string;
  teamDomain?: string;
  /** Enterprise Grid: the org's id (auth.test's enterprise_id, events' enterprise_id). */
  enterpriseId?: string;
  appId?: string;
  botId?: string;
  botUserId?: string;
  botName?: string;
  /** Bot token scopes (default {@link SLACK_DEFAULT_BOT_SCOPES}). */
  scopes?: readonly string[];
  /** What `url_private` answers without a valid token (default `redirect`: 302 to an HTML sign-in page). */
  fileAuthFailure?: 'redirect' | 'html';
  /** Socket Mode: redeliver an envelope not acked within this long (default 3000 ms). */
  redeliverAfterMs?: number;
  /** Socket Mode: redeliveries before giving up (default 3). */
  maxRedeliveries?: number;
  /** Socket Mode: ping the client this often (default 0: never). */
  socketPingIntervalMs?: number;
}

// ---------------------------------------------------------------- internal state

interface StoredFile {
  file: SlackFile;
  bytes: Buffer;
  /** Set for files the app uploads: the upload_url key, the declared length. */
  uploadKey?: string;
  declaredLength?: number;
  uploaded?: boolean;
  completed?: boolean;
}

interface StoredChannel {
  id: string;
  kind: ChannelKind;
  name?: string;
  /** DMs: the other user. */
  user?: string;
  isArchived: boolean;
  isExtShared: boolean;
  botIsMember: boolean;
  members: Set<string>;
  created: number;
  messages: SlackMessageEvent[];
  /** conversations.open has been called (the second one answers already_open). */
  opened?: boolean;
}

interface SocketConn {
  id: number;
  ws: WebSocket;
  ticket: string;
  openedAt: number;
  closedAt?: number;
  state: 'open' | 'draining' | 'closed';
  closedByServer?: boolean;
  pingTimer?: ReturnType<typeof setInterval>;
}

interface EnvelopeState extends SlackEnvelope {
  timer?: ReturnType<typeof setTimeout>;
  acceptsResponsePayload?: boolean;
  /** Waiting for a live connection before (re)delivery. */
  queuedAttempt?: number;
}

class Failure {
  constructor(
    readonly status: number,
    readonly body: Record<string, unknown> | string,
    readonly headers: Record<string, string> = {},
  ) {}
}

const ID_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

/** A Slack-style id: the prefix and 10 upper-case letters or digits. */
export function slackId(prefix: string, length = 10): string {
  const bytes = randomBytes(length);
  let s = prefix;
  for (const b of bytes) s += ID_CHARS[b % ID_CHARS.length];
  return s;
}

/** A bot token of the real shape (`xoxb-<team>-<bot>-<secret>`). */
export function fakeSlackBotToken(): string {
  return `xoxb-${digits(12)}-${digits(13)}-${randomBytes(18).toString('base64url').replace(/[-_]/g, 'x').slice(0, 24)}`;
}

/** An app-level token of the real shape (`xapp-1-<app>-<n>-<hex>`). */
export function fakeSlackAppToken(appId = slackId('A')): string {
  return `xapp-1-${appId}-${digits(13)}-${randomBytes(32).toString('hex')}`;
}

/**
 * JSON as Slack writes it: no spaces, `/` escaped as `\/`, every non-ASCII
 * character as `\uXXXX`. Parsing gives the same value as JSON.stringify's output,
 * but the bytes differ, so a receiver that re-serialises a parsed body before
 * checking the signature fails.
 */
export function slackJson(value: unknown): string {
  return JSON.stringify(value)
    .replace(/\//g, '\\/')
    .replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** `v0=` + HMAC-SHA256(secret, `v0:<ts>:<body>`), hex: the x-slack-signature of a body. */
export function slackSignature(signingSecret: string, timestampSec: number, rawBody: string): string {
  return `v0=${createHmac('sha256', signingSecret).update(`v0:${timestampSec}:${rawBody}`).digest('hex')}`;
}

export class FakeSlack {
  /** The bot token (`xoxb-`) the Web API and url_private accept. */
  readonly botToken: string;
  /** The app-level token (`xapp-`) apps.connections.open accepts. */
  readonly appToken: string;
  /** The secret event POSTs are signed with (v0). */
  readonly signingSecret: string;
  /** The deprecated `token` field of event bodies. */
  readonly verificationToken: string;
  /** The workspace (`T…`). */
  readonly teamId: string;
  readonly teamName: string;
  readonly teamDomain: string;
  /** Enterprise Grid org (`E…`), when configured. */
  readonly enterpriseId: string | undefined;
  /** The app (`A…`): api_app_id of events, app_id of the socket's hello. */
  readonly appId: string;
  /** The bot (`B…`): bot_id of the app's messages. */
  readonly botId: string;
  /** The bot user (`U…`): auth.test's user_id, `user` of the app's messages. */
  readonly botUserId: string;
  readonly botName: string;
  /** The bot token's scopes: edit to take one away (missing_scope, ignored username, HTML for files). */
  readonly scopes: Set<string>;
  /** What `url_private` answers without a valid token and files:read. */
  fileAuthFailure: 'redirect' | 'html';
  /** Socket Mode: an envelope not acked within this long is sent again (retry_attempt + 1, retry_reason `timeout`). */
  redeliverAfterMs: number;
  /** Socket Mode: redeliveries of an unacked envelope before it is given up (gaveUp). */
  maxRedeliveries: number;
  /** Socket Mode: when false, client pings get no pong (a half-dead connection). */
  answerPings = true;
  /** When set, the bot's own chat.postMessage messages come back as message events through {@link deliver}, as Slack echoes them. */
  echoBotMessages = false;
  /** The app's Events API request URL, for {@link deliver} when no socket is connected. */
  requestUrl?: string;
  /** Set by {@link revokeBotToken}: every call with the bot token fails with this error. */
  botTokenError?: string;

  /** Every Web API call, upload and file request, in arrival order. */
  readonly calls: SlackApiCall[] = [];
  /** Every chat.postMessage call with a valid token, failures and retries included. */
  readonly sent: SlackApiCall[] = [];
  /** Every POST to an upload_url. */
  readonly uploads: SlackUpload[] = [];
  /** Every request for a customer file. */
  readonly fileRequests: SlackFileRequest[] = [];
  /** Every Socket Mode envelope, in order. */
  readonly envelopes: SlackEnvelope[] = [];
  /** Every ack received on the socket, late ones included. */
  readonly acks: SlackSocketAck[] = [];
  /** Everything that happened on Socket Mode connections, in order. */
  readonly socketLog: SlackSocketRecord[] = [];

  private server?: Server;
  private wss?: WebSocketServer;
  private port = 0;
  private lastMicros = 0;
  private connSeq = 1;
  private roundRobin = 0;
  private pingIntervalMs: number;
  private readonly users = new Map<string, SlackUser>();
  private readonly userLocales = new Map<string, string>();
  private readonly channels = new Map<string, StoredChannel>();
  private readonly dmByUser = new Map<string, string>();
  private readonly files = new Map<string, StoredFile>();
  private readonly uploadKeys = new Map<string, string>();
  private readonly botMessages: SlackBotMessage[] = [];
  private readonly failures = new Map<string, SlackFailureSpec[]>();
  private readonly stalls = new Map<string, SlackStallSpec[]>();
  private readonly tickets = new Map<string, number>();
  private readonly conns = new Map<number, SocketConn>();
  private readonly envelopeById = new Map<string, EnvelopeState>();
  private readonly watchers = new Watchers('FakeSlack');

  constructor(opts: FakeSlackOptions = {}) {
    this.appId = opts.appId ?? slackId('A');
    this.botToken = opts.botToken ?? fakeSlackBotToken();
    this.appToken = opts.appToken ?? fakeSlackAppToken(this.appId);
    this.signingSecret = opts.signingSecret ?? randomBytes(16).toString('hex');
    this.verificationToken = opts.verificationToken ?? randomBytes(12).toString('base64url');
    this.teamId = opts.teamId ?? slackId('T');
    this.teamName = opts.teamName ?? 'Fake Workspace';
    this.teamDomain = opts.teamDomain ?? 'fake-workspace';
    this.enterpriseId = opts.enterpriseId;
    this.botId = opts.botId ?? slackId('B');
    this.botUserId = opts.botUserId ?? slackId('U');
    this.botName = opts.botName ?? 'kitbridge';
    this.scopes = new Set(opts.scopes ?? SLACK_DEFAULT_BOT_SCOPES);
    this.fileAuthFailure = opts.fileAuthFailure ?? 'redirect';
    this.redeliverAfterMs = opts.redeliverAfterMs ?? 3_000;
    this.maxRedeliveries = opts.maxRedeliveries ?? 3;
    this.pingIntervalMs = opts.socketPingIntervalMs ?? 0;
    this.user({
      id: this.botUserId,
      name: this.botName,
      real_name: this.botName,
      is_bot: true,
      fields: { profile_bot_id: this.botId },
    });
  }

  // ---------------------------------------------------------------- lifecycle and addresses

  /** `http://127.0.0.1:<port>`. */
  get origin(): string {
    if (!this.server) throw new Error('FakeSlack is not started');
    return `http://127.0.0.1:${this.port}`;
  }

  /** The Web API base with its trailing slash: WebClient's / Bolt's `clientOptions.slackApiUrl`. */
  get apiUrl(): string {
    return `${this.origin}/api/`;
  }

  /** Listens on 127.0.0.1, on `port` (default: any free port). */
  async start(port = 0): Promise<this> {
    const server = createServer((req, res) => {
      this.handle(req, res).catch((err: Error) => {
        if (!res.headersSent) sendJson(res, 500, { ok: false, error: `fake: ${err.message}` });
        else res.destroy();
      });
    });
    const wss = new WebSocketServer({ noServer: true, autoPong: false });
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      this.upgrade(wss, req, socket, head);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.wss = wss;
    this.port = (server.address() as AddressInfo).port;
    return this;
  }

  /** Ends every connection (sockets and HTTP, stalled calls included), stops redelivery timers and listening. */
  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    for (const e of this.envelopeById.values()) clearTimeout(e.timer);
    for (const c of this.conns.values()) {
      clearInterval(c.pingTimer);
      c.ws.terminate();
    }
    this.wss?.close();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  // ---------------------------------------------------------------- test API: people, places, files

  /** Registers (or updates) a user; users from another team_id are Slack Connect users. */
  user(input: SlackUserInput = {}): SlackUser {
    const id = input.id ?? slackId('U');
    const prev = this.users.get(id);
    const name = input.name ?? prev?.name ?? `user${id.slice(-4).toLowerCase()}`;
    const realName = input.real_name ?? prev?.real_name ?? name;
    const image = input.image_72 ?? prev?.profile.image_72 ?? `${this.avatarBase()}/${id}_72.png`;
    const teamId = input.team_id ?? prev?.team_id ?? this.teamId;
    const email = input.email ?? prev?.profile.email;
    const u: SlackUser = {
      ...prev,
      id,
      team_id: teamId,
      name,
      deleted: input.deleted ?? prev?.deleted ?? false,
      real_name: realName,
      tz: input.tz ?? prev?.tz ?? 'Europe/Berlin',
      tz_label: 'Central European Time',
      tz_offset: 3600,
      is_bot: input.is_bot ?? prev?.is_bot ?? false,
      is_app_user: false,
      updated: nowSeconds(),
      profile: {
        ...prev?.profile,
        display_name: input.display_name ?? prev?.profile.display_name ?? '',
        real_name: realName,
        image_24: image.replace(/_72\./, '_24.'),
        image_48: image.replace(/_72\./, '_48.'),
        image_72: image,
        image_192: image.replace(/_72\./, '_192.'),
        ...(email ? { email } : {}),
        team: teamId,
      },
      ...(this.enterpriseId
        ? {
            enterprise_user: {
              id,
              enterprise_id: this.enterpriseId,
              enterprise_name: 'Fake Org',
              teams: [teamId],
            },
          }
        : {}),
      ...input.fields,
    };
    delete u.locale;
    this.userLocales.set(id, input.locale ?? this.userLocales.get(id) ?? 'en-US');
    this.users.set(id, u);
    return u;
  }

  /** A registered user as users.info answers it (without locale); undefined when unknown. */
  getUser(id: string): SlackUser | undefined {
    return this.users.get(id);
  }

  /** Registers a channel (public by default, the bot a member). */
  channel(input: SlackChannelInput = {}): { id: string; name: string } {
    const id = input.id ?? slackId(input.is_private ? 'G' : 'C');
    const prev = this.channels.get(id);
    const c: StoredChannel = prev ?? {
      id,
      kind: input.is_private ? 'group' : 'channel',
      isArchived: false,
      isExtShared: false,
      botIsMember: true,
      members: new Set(),
      created: nowSeconds(),
      messages: [],
    };
    c.name = input.name ?? c.name ?? `channel-${id.slice(-4).toLowerCase()}`;
    if (input.is_private !== undefined) c.kind = input.is_private ? 'group' : 'channel';
    if (input.is_ext_shared !== undefined) c.isExtShared = input.is_ext_shared;
    if (input.is_archived !== undefined) c.isArchived = input.is_archived;
    if (input.botIsMember !== undefined) c.botIsMember = input.botIsMember;
    for (const m of input.members ?? []) c.members.add(m);
    this.channels.set(id, c);
    return { id, name: c.name };
  }

  /** Archives (or unarchives) a channel: posts then fail with is_archived. */
  archiveChannel(id: string, archived = true): void {
    this.storedChannel(id).isArchived = archived;
  }

  /** The DM channel id (`D…`) between the app and a user, created if needed. */
  dmChannelId(userId: string): string {
    return this.ensureDm(userId).id;
  }

  /** A channel as conversations.info answers it; undefined when unknown. */
  getChannel(id: string): Record<string, unknown> | undefined {
    const c = this.channels.get(id);
    return c ? this.renderChannel(c) : undefined;
  }

  /**
   * Registers a customer's file: served at its url_private / url_private_download
   * (Bearer bot token and files:read needed) and known to files.info.
   */
  addFile(input: SlackFileInput, owner: string = this.botUserId): SlackFile {
    const s = this.storeFile(input.name, input.bytes, owner, {
      ...(input.mimetype ? { mimetype: input.mimetype } : {}),
      ...(input.filetype ? { filetype: input.filetype } : {}),
      ...(input.title ? { title: input.title } : {}),
      ...input.fields,
    });
    s.uploaded = true;
    s.completed = true;
    return structuredClone(s.file);
  }

  /** A file as files.info answers it; undefined when unknown. */
  getFile(id: string): SlackFile | undefined {
    const f = this.files.get(id);
    return f ? structuredClone(f.file) : undefined;
  }

  /** The bytes of a file (a customer's, or one the app uploaded); undefined when unknown. */
  fileBytes(id: string): Buffer | undefined {
    return this.files.get(id)?.bytes;
  }

  /** Deletes a file: its URLs answer 404 and files.info file_not_found. */
  removeFile(id: string): void {
    this.files.delete(id);
  }

  /** A channel's messages, oldest first (the bot's included, thread replies included). */
  messagesIn(channelId: string): SlackMessageEvent[] {
    return structuredClone(this.channels.get(channelId)?.messages ?? []);
  }

  /** The bot token stops working: every call with it answers `{ok:false, error}` (default token_revoked). */
  revokeBotToken(error = 'token_revoked'): void {
    this.botTokenError = error;
  }

  // ---------------------------------------------------------------- test API: building events

  /**
   * A DM from `user` to the app (`channel_type: 'im'`), stored in the DM's history.
   * Returns the event, not yet delivered: pass it to sendEvent / sendEnvelope.
   */
  dm(user: string | SlackUser, input: string | SlackMessageInput): SlackMessageEvent {
    const u = this.userOf(user);
    const ch = this.ensureDm(u.id);
    return this.post(ch, u, typeof input === 'string' ? { text: input } : input);
  }

  /** A message from `user` in a channel (channel_type `channel`, or `group` when private); a thread reply with threadTs. */
  channelMessage(
    channelId: string,
    user: string | SlackUser,
    input: string | SlackMessageInput,
  ): SlackMessageEvent {
    const ch = this.storedChannel(channelId);
    const u = this.userOf(user);
    ch.members.add(u.id);
    return this.post(ch, u, typeof input === 'string' ? { text: input } : input);
  }

  /** A `message_changed` event for a stored message (its text replaced). */
  editMessage(channelId: string, ts: string, text: string): SlackMessageEvent {
    const ch = this.storedChannel(channelId);
    const i = ch.messages.findIndex((m) => m.ts === ts);
    if (i < 0) throw new Error(`FakeSlack: no message ${ts} in ${channelId}`);
    const previous = ch.messages[i]!;
    const editTs = this.nextTs();
    const message: SlackMessage = {
      ...structuredClone(previous),
      text,
      blocks: richTextBlocks(text),
      edited: { user: previous.user ?? previous.bot_id, ts: editTs },
    };
    delete message.event_ts;
    delete message.channel_type;
    delete message.channel;
    ch.messages[i] = { ...previous, text, blocks: message['blocks'], edited: message['edited'] };
    const prevOut: SlackMessage = structuredClone(previous);
    delete prevOut.event_ts;
    delete prevOut.channel_type;
    delete prevOut.channel;
    return {
      type: 'message',
      subtype: 'message_changed',
      message,
      previous_message: prevOut,
      channel: ch.id,
      hidden: true,
      ts: editTs,
      event_ts: editTs,
      channel_type: ch.kind,
    };
  }

  /** A `message_deleted` event; the message leaves the history. */
  deleteMessage(channelId: string, ts: string): SlackMessageEvent {
    const ch = this.storedChannel(channelId);
    const i = ch.messages.findIndex((m) => m.ts === ts);
    if (i < 0) throw new Error(`FakeSlack: no message ${ts} in ${channelId}`);
    const [previous] = ch.messages.splice(i, 1);
    const delTs = this.nextTs();
    return {
      type: 'message',
      subtype: 'message_deleted',
      hidden: true,
      deleted_ts: ts,
      previous_message: previous,
      channel: ch.id,
      ts: delTs,
      event_ts: delTs,
      channel_type: ch.kind,
    };
  }

  /**
   * A message from another bot or integration: `subtype: 'bot_message'` with its
   * bot_id (default a fresh one) and no user, as legacy integrations and webhooks post.
   */
  botMessage(
    channelId: string,
    input: { text: string; botId?: string; username?: string; threadTs?: string },
  ): SlackMessageEvent {
    const ch = this.channelOrDm(channelId);
    const ts = this.nextTs();
    const m: SlackMessageEvent = {
      type: 'message',
      subtype: 'bot_message',
      text: input.text,
      ts,
      bot_id: input.botId ?? slackId('B'),
      ...(input.username ? { username: input.username } : {}),
      ...(input.threadTs ? { thread_ts: input.threadTs } : {}),
      channel: ch.id,
      event_ts: ts,
      channel_type: ch.kind,
    };
    ch.messages.push(structuredClone(m));
    return m;
  }

  /**
   * The app's own message as Slack echoes it back (`message.im` / `message.channels`
   * include it): user = the bot user, bot_id, app_id, bot_profile; no subtype.
   */
  ownMessage(
    channelId: string,
    text: string,
    opts: { threadTs?: string; ts?: string } = {},
  ): SlackMessageEvent {
    const ch = this.channelOrDm(channelId);
    const ts = opts.ts ?? this.nextTs();
    return {
      user: this.botUserId,
      type: 'message',
      ts,
      bot_id: this.botId,
      app_id: this.appId,
      text,
      team: this.teamId,
      bot_profile: this.botProfile(),
      blocks: richTextBlocks(text),
      ...(opts.threadTs ? { thread_ts: opts.threadTs, parent_user_id: this.botUserId } : {}),
      channel: ch.id,
      event_ts: ts,
      channel_type: ch.kind,
    };
  }

  /**
   * Wraps an event in the `event_callback` body Slack sends: event_id, event_time,
   * team_id, api_app_id, authorizations, context ids, and for Enterprise Grid
   * enterprise_id / context_enterprise_id.
   */
  eventCallback(event: Record<string, unknown>, opts: SlackEventOptions = {}): SlackEventCallback {
    const teamId = opts.teamId ?? this.teamId;
    const enterpriseId = opts.enterpriseId === undefined ? (this.enterpriseId ?? null) : opts.enterpriseId;
    const contextTeamId = opts.contextTeamId === undefined ? teamId : opts.contextTeamId;
    const channelId = typeof event['channel'] === 'string' ? event['channel'] : undefined;
    const ext =
      opts.isExtSharedChannel ?? (channelId ? this.channels.get(channelId)?.isExtShared : false) ?? false;
    const eventTime = opts.eventTime ?? nowSeconds();
    return {
      token: this.verificationToken,
      team_id: teamId,
      context_team_id: contextTeamId,
      context_enterprise_id: enterpriseId,
      ...(enterpriseId ? { enterprise_id: enterpriseId } : {}),
      api_app_id: this.appId,
      event: { ...event, event_ts: event['event_ts'] ?? event['ts'] ?? `${eventTime}.000000` },
      type: 'event_callback',
      event_id: opts.eventId ?? slackId('Ev', 9),
      event_time: eventTime,
      authorizations: [
        {
          enterprise_id: enterpriseId,
          team_id: opts.orgInstall ? null : teamId,
          user_id: this.botUserId,
          is_bot: true,
          is_enterprise_install: opts.orgInstall ?? false,
        },
      ],
      is_ext_shared_channel: ext,
      event_context: eventContext(),
    };
  }

  // ---------------------------------------------------------------- test API: Events API over HTTP

  /**
   * POSTs an event (or a whole event_callback body) to `url` as Slack does:
   * Slack's JSON escaping, `x-slack-signature` / `x-slack-request-timestamp`
   * (valid, bad, stale or none), and `x-slack-retry-num` / `x-slack-retry-reason`
   * for a retry. Resolves with what the app answered.
   */
  async sendEvent(
    url: string,
    event: Record<string, unknown>,
    opts: SlackSendEventOptions = {},
  ): Promise<SlackSendEventResult> {
    const envelope = event['type'] === 'event_callback' ? event : this.eventCallback(event, opts);
    return this.postSigned(url, envelope, opts);
  }

  /** POSTs a signed `url_verification` challenge (what Slack sends when the request URL is saved). */
  async sendUrlVerification(
    url: string,
    opts: Omit<SlackSendEventOptions, keyof SlackEventOptions> & { challenge?: string } = {},
  ): Promise<SlackSendEventResult & { challenge: string }> {
    const challenge = opts.challenge ?? randomBytes(24).toString('base64url');
    const r = await this.postSigned(
      url,
      { token: this.verificationToken, challenge, type: 'url_verification' },
      opts,
    );
    return { ...r, challenge };
  }

  /**
   * Delivers an event the way Slack's Events API does: the first attempt, then,
   * while the app answers non-2xx or takes longer than `timeoutMs` (3 s), retries
   * with the same event_id and `x-slack-retry-num` 1..`maxRetries` (3) after
   * `retryDelaysMs` (Slack: about immediately, 1 min, 5 min; give tests small ones).
   * An answer with `x-slack-no-retry: 1` stops the retries. Resolves with every attempt.
   */
  async deliverEvent(
    url: string,
    event: Record<string, unknown>,
    opts: SlackEventOptions & { timeoutMs?: number; retryDelaysMs?: number[]; maxRetries?: number } = {},
  ): Promise<SlackSendEventResult[]> {
    const envelope = event['type'] === 'event_callback' ? event : this.eventCallback(event, opts);
    const delays = opts.retryDelaysMs ?? [0, 60_000, 300_000];
    const maxRetries = opts.maxRetries ?? 3;
    const timeoutMs = opts.timeoutMs ?? 3_000;
    const attempts: SlackSendEventResult[] = [];
    let reason: string | undefined;
    for (let n = 0; n <= maxRetries; n++) {
      if (n > 0) await sleep(delays[n - 1] ?? delays[delays.length - 1] ?? 0);
      const r = await this.postSigned(url, envelope, {
        timeoutMs,
        ...(n > 0 ? { retryNum: n, retryReason: reason ?? 'http_error' } : {}),
      });
      attempts.push(r);
      if (r.status >= 200 && r.status < 300) break;
      if (r.headers['x-slack-no-retry'] === '1') break;
      reason = r.timedOut ? 'http_timeout' : r.status === 0 ? 'connection_failed' : 'http_error';
    }
    return attempts;
  }

  /**
   * Sends an event the way the app receives events now: over a live Socket Mode
   * connection when there is one, else POSTed (once) to {@link requestUrl}.
   */
  async deliver(event: Record<string, unknown>, opts: SlackEventOptions = {}): Promise<void> {
    if (this.liveConns().length) {
      this.sendEnvelope(event, opts);
      return;
    }
    if (!this.requestUrl) throw new Error('FakeSlack: no socket connected and no requestUrl set');
    await this.sendEvent(this.requestUrl, event, opts);
  }

  // ---------------------------------------------------------------- test API: Socket Mode

  /**
   * Sends an `events_api` envelope over Socket Mode (an event is wrapped with
   * {@link eventCallback}; an event_callback body goes as it is). It goes to a live
   * connection (round robin) or waits for the next one; when not acked within
   * {@link redeliverAfterMs} it is sent again with retry_attempt + 1.
   */
  sendEnvelope(
    payload: Record<string, unknown>,
    opts: SlackEventOptions & { type?: string; acceptsResponsePayload?: boolean } = {},
  ): SlackEnvelope {
    const type = opts.type ?? 'events_api';
    const body =
      type === 'events_api' && payload['type'] !== 'event_callback'
        ? this.eventCallback(payload, opts)
        : payload;
    const env: EnvelopeState = {
      envelopeId: randomUUID(),
      type,
      payload: body,
      deliveries: [],
      gaveUp: false,
    };
    if (opts.acceptsResponsePayload) env.acceptsResponsePayload = true;
    this.envelopes.push(env);
    this.envelopeById.set(env.envelopeId, env);
    this.deliverEnvelope(env, 0, '');
    return env;
  }

  /** Whether some Socket Mode connection is open (hello sent, not draining). */
  get socketConnected(): boolean {
    return this.liveConns().length > 0;
  }

  /** Socket Mode connections, oldest first. */
  get socketConnections(): SlackSocketConnectionInfo[] {
    return [...this.conns.values()].map((c) => ({
      id: c.id,
      ticket: c.ticket,
      openedAt: c.openedAt,
      state: c.state,
      ...(c.closedAt !== undefined ? { closedAt: c.closedAt } : {}),
    }));
  }

  /**
   * Sends `{type:'disconnect', reason}` on every open connection, as Slack does
   * before it recycles a socket (`refresh_requested` every few hours, `warning`
   * about 10 s ahead, `link_disabled` when Socket Mode is switched off). No new
   * envelopes go to those connections; the fake closes each after `closeAfterMs`
   * (default 1000; for `warning` only when given) unless the client closed first.
   */
  disconnectSocket(opts: { reason?: string; closeAfterMs?: number } = {}): void {
    const reason = opts.reason ?? 'refresh_requested';
    const closeAfter = opts.closeAfterMs ?? (reason === 'warning' ? undefined : 1_000);
    for (const c of this.liveConns()) {
      if (reason !== 'warning') c.state = 'draining';
      this.socketRecord({ kind: 'disconnect', connectionId: c.id, reason });
      c.ws.send(slackJson({ type: 'disconnect', reason, debug_info: { host: `applink-fake-${c.id}` } }));
      if (closeAfter !== undefined) {
        setTimeout(() => {
          if (c.state === 'closed') return;
          c.closedByServer = true;
          c.ws.close(1000);
        }, closeAfter).unref();
      }
    }
  }

  /** Cuts every Socket Mode TCP connection without a close frame. */
  dropSocket(): void {
    for (const c of this.conns.values()) {
      if (c.state === 'closed') continue;
      c.closedByServer = true;
      c.ws.terminate();
    }
  }

  /** Waits for an ack of `envelopeId` (or any ack matching `predicate`). */
  waitForAck(what: string | ((a: SlackSocketAck) => boolean), timeoutMs = 5_000): Promise<SlackSocketAck> {
    const match = typeof what === 'string' ? (a: SlackSocketAck) => a.envelopeId === what : what;
    return this.waitUntil(() => this.acks.find(match), timeoutMs, 'a socket ack');
  }

  /** Waits for a socket record of `kind` (or matching `predicate`) at index `since` or later. */
  waitForSocket(
    what: SlackSocketRecordKind | ((r: SlackSocketRecord) => boolean),
    opts: { since?: number; timeoutMs?: number } = {},
  ): Promise<SlackSocketRecord> {
    const match = typeof what === 'string' ? (r: SlackSocketRecord) => r.kind === what : what;
    return this.waitUntil(
      () => this.socketLog.slice(opts.since ?? 0).find(match),
      opts.timeoutMs ?? 5_000,
      `socket ${typeof what === 'string' ? what : 'record'}`,
    );
  }

  // ---------------------------------------------------------------- test API: records and waiting

  /** Calls of one method (or pseudo-method). */
  callsOf(method: string): SlackApiCall[] {
    return this.calls.filter((c) => c.method === method);
  }

  /** Messages the bot created, oldest first; of one channel when given. */
  delivered(channelId?: string): SlackBotMessage[] {
    return channelId ? this.botMessages.filter((m) => m.channel === channelId) : this.botMessages.slice();
  }

  /**
   * Waits until {@link sent} has `count` calls (resolves with them all), or until a
   * sent call matches `predicate` (resolves with it). Rejects after `timeoutMs`.
   */
  waitFor(count: number, timeoutMs?: number): Promise<SlackApiCall[]>;
  waitFor(predicate: (call: SlackApiCall) => boolean, timeoutMs?: number): Promise<SlackApiCall>;
  waitFor(
    what: number | ((call: SlackApiCall) => boolean),
    timeoutMs = 5_000,
  ): Promise<SlackApiCall[] | SlackApiCall> {
    return this.waitUntil(
      () => {
        if (typeof what === 'number') return this.sent.length >= what ? this.sent.slice() : undefined;
        return this.sent.find(what);
      },
      timeoutMs,
      typeof what === 'number'
        ? `${what} chat.postMessage calls (have ${this.sent.length})`
        : 'a matching sent call',
    );
  }

  /** Waits until any call (of any method, uploads and downloads included) matches; checked as each call is answered or stalls. */
  waitForCall(predicate: (call: SlackApiCall) => boolean, timeoutMs = 5_000): Promise<SlackApiCall> {
    return this.waitUntil(() => this.calls.find(predicate), timeoutMs, 'a matching call');
  }

  /** Waits until the bot has created `count` messages (in `channelId` when given); resolves with them. */
  waitForDelivered(count: number, channelId?: string, timeoutMs = 5_000): Promise<SlackBotMessage[]> {
    return this.waitUntil(
      () => {
        const d = this.delivered(channelId);
        return d.length >= count ? d : undefined;
      },
      timeoutMs,
      `${count} delivered messages${channelId ? ` in ${channelId}` : ''}`,
    );
  }

  // ---------------------------------------------------------------- test API: failures

  /** The next call of `method` fails with this answer (queue several for several calls). */
  failNext(method: string, spec: SlackFailureSpec): void {
    const q = this.failures.get(method) ?? [];
    q.push({ ...spec });
    this.failures.set(method, q);
  }

  /** The next call of `method` answers HTTP 429 with `Retry-After: seconds` and `{ok:false, error:'ratelimited'}`. */
  rateLimitNext(
    method: string,
    seconds: number,
    opts: Omit<SlackFailureSpec, 'status' | 'retryAfter'> = {},
  ): void {
    this.failNext(method, { ...opts, status: 429, retryAfter: seconds });
  }

  /** The next call of `method` is recorded but never answered (done first with `process: true`). */
  stallNext(method: string, spec: SlackStallSpec = {}): void {
    const q = this.stalls.get(method) ?? [];
    q.push(spec);
    this.stalls.set(method, q);
  }

  /** Forgets every scripted failure and stall. */
  clearFailures(): void {
    this.failures.clear();
    this.stalls.clear();
  }

  // ---------------------------------------------------------------- internals: waiting

  private waitUntil<T>(check: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    return this.watchers.until(check, timeoutMs, what);
  }

  private notify(): void {
    this.watchers.notify();
  }

  // ---------------------------------------------------------------- internals: model

  private nextTs(): string {
    const m = Math.max(this.lastMicros + 1, Date.now() * 1000);
    this.lastMicros = m;
    return `${Math.floor(m / 1e6)}.${String(m % 1e6).padStart(6, '0')}`;
  }

  private avatarBase(): string {
    return 'https://avatars.slack-edge.com/fake';
  }

  private botProfile(): Record<string, unknown> {
    return {
      id: this.botId,
      deleted: false,
      name: this.botName,
      updated: nowSeconds(),
      app_id: this.appId,
      icons: { image_36: `${this.avatarBase()}/bot_36.png`, image_48: `${this.avatarBase()}/bot_48.png` },
      team_id: this.teamId,
    };
  }

  private userOf(user: string | SlackUser): SlackUser {
    const id = typeof user === 'string' ? user : user.id;
    return this.users.get(id) ?? this.user({ id });
  }

  private storedChannel(id: string): StoredChannel {
    const c = this.channels.get(id);
    if (!c) throw new Error(`FakeSlack: unknown channel ${id}`);
    return c;
  }

  /** A registered channel, or the DM with a registered user. */
  private channelOrDm(id: string): StoredChannel {
    const c = this.channels.get(id);
    if (c) return c;
    if (this.users.has(id)) return this.ensureDm(id);
    throw new Error(`FakeSlack: unknown channel or user ${id}`);
  }

  private ensureDm(userId: string): StoredChannel {
    const existing = this.dmByUser.get(userId);
    if (existing) return this.channels.get(existing)!;
    const c: StoredChannel = {
      id: slackId('D'),
      kind: 'im',
      user: userId,
      isArchived: false,
      isExtShared: false,
      botIsMember: true,
      members: new Set([userId, this.botUserId]),
      created: nowSeconds(),
      messages: [],
    };
    this.channels.set(c.id, c);
    this.dmByUser.set(userId, c.id);
    return c;
  }

  private renderChannel(c: StoredChannel): Record<string, unknown> {
    if (c.kind === 'im') {
      return {
        id: c.id,
        created: c.created,
        is_archived: false,
        is_im: true,
        is_org_shared: false,
        context_team_id: this.teamId,
        updated: c.created * 1000,
        user: c.user,
        is_user_deleted: this.users.get(c.user ?? '')?.deleted ?? false,
        priority: 0,
      };
    }
    return {
      id: c.id,
      name: c.name,
      is_channel: c.kind === 'channel',
      is_group: false,
      is_im: false,
      is_mpim: c.kind === 'mpim',
      is_private: c.kind === 'group' || c.kind === 'mpim',
      created: c.created,
      is_archived: c.isArchived,
      is_general: false,
      unlinked: 0,
      name_normalized: c.name,
      is_shared: c.isExtShared,
      is_org_shared: false,
      is_ext_shared: c.isExtShared,
      is_pending_ext_shared: false,
      pending_shared: [],
      context_team_id: this.teamId,
      updated: c.created * 1000,
      creator: this.botUserId,
      is_member: c.botIsMember,
      ...(c.isExtShared ? { shared_team_ids: [this.teamId] } : {}),
      topic: { value: '', creator: '', last_set: 0 },
      purpose: { value: '', creator: '', last_set: 0 },
    };
  }

  private storeFile(name: string, bytes: Buffer, owner: string, extra: Record<string, unknown>): StoredFile {
    const id = slackId('F');
    const ext = name.includes('.') ? name.slice(name.lastIndexOf('.') + 1).toLowerCase() : '';
    const mimetype = (extra['mimetype'] as string | undefined) ?? mimeOf(ext);
    const filetype = (extra['filetype'] as string | undefined) ?? (ext || 'binary');
    const safe = encodeURIComponent(name);
    const base = `${this.origin}/files-pri/${this.teamId}-${id}`;
    const ownerTeam = this.users.get(owner)?.team_id ?? this.teamId;
    const file: SlackFile = {
      id,
      created: nowSeconds(),
      timestamp: nowSeconds(),
      name,
      title: name,
      mimetype,
      filetype,
      pretty_type: filetype.toUpperCase(),
      user: owner,
      user_team: ownerTeam,
      editable: false,
      size: bytes.length,
      mode: 'hosted',
      is_external: false,
      external_type: '',
      is_public: false,
      public_url_shared: false,
      display_as_bot: false,
      username: '',
      url_private: `${base}/${safe}`,
      url_private_download: `${base}/download/${safe}`,
      permalink: `https://${this.teamDomain}.slack.com/files/${owner}/${id}/${safe}`,
      permalink_public: `https://slack-files.com/${this.teamId}-${id}-${randomBytes(5).toString('hex')}`,
      has_rich_preview: false,
      file_access: 'visible',
      ...extra,
    };
    const s: StoredFile = { file, bytes };
    this.files.set(id, s);
    return s;
  }

  private post(ch: StoredChannel, u: SlackUser, input: SlackMessageInput): SlackMessageEvent {
    const ts = input.ts ?? this.nextTs();
    const text = input.text ?? '';
    const files = (input.files ?? []).map((f) => {
      const s = this.storeFile(f.name, f.bytes, u.id, {
        ...(f.mimetype ? { mimetype: f.mimetype } : {}),
        ...(f.filetype ? { filetype: f.filetype } : {}),
        ...(f.title ? { title: f.title } : {}),
        ...f.fields,
      });
      s.uploaded = true;
      s.completed = true;
      this.share(s, ch, ts, input.threadTs);
      if (input.fileAccess === 'check_file_info') {
        return {
          id: s.file.id,
          mode: 'file_access',
          file_access: 'check_file_info',
          created: s.file.created,
          timestamp: s.file.timestamp,
          user: u.id,
        };
      }
      return structuredClone(s.file);
    });
    const external = u.team_id !== this.teamId;
    const m: SlackMessageEvent = {
      user: u.id,
      type: 'message',
      ...(files.length ? { subtype: 'file_share' } : {}),
      ts,
      ...(files.length ? {} : { client_msg_id: randomUUID() }),
      text,
      team: u.team_id,
      ...(external ? { user_team: u.team_id, source_team: u.team_id } : {}),
      ...(text ? { blocks: richTextBlocks(text) } : {}),
      ...(files.length ? { files, upload: false, display_as_bot: false } : {}),
      ...(input.threadTs
        ? { thread_ts: input.threadTs, parent_user_id: this.parentUser(ch, input.threadTs) }
        : {}),
      channel: ch.id,
      event_ts: ts,
      channel_type: ch.kind,
      ...input.fields,
    };
    ch.messages.push(structuredClone(m));
    return m;
  }

  private parentUser(ch: StoredChannel, threadTs: string): string | undefined {
    const parent = ch.messages.find((m) => m.ts === threadTs);
    return parent?.user ?? parent?.bot_id;
  }

  private share(s: StoredFile, ch: StoredChannel, ts: string, threadTs?: string): void {
    const key = ch.kind === 'channel' ? 'public' : 'private';
    const shares = s.file.shares ?? {};
    const byChannel = shares[key] ?? {};
    const entries = byChannel[ch.id] ?? [];
    entries.push({ ts, ...(threadTs ? { thread_ts: threadTs } : {}) });
    byChannel[ch.id] = entries;
    shares[key] = byChannel;
    s.file.shares = shares;
    const list = ch.kind === 'im' ? 'ims' : ch.kind === 'channel' ? 'channels' : 'groups';
    const arr = (s.file[list] as string[] | undefined) ?? [];
    if (!arr.includes(ch.id)) arr.push(ch.id);
    s.file[list] = arr;
  }

  // ---------------------------------------------------------------- internals: HTTP

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const api = /^\/api\/([A-Za-z0-9_.]+)$/.exec(url.pathname);
    if (api) return this.handleApi(api[1]!, req, res, url);
    const upload = /^\/upload\/v1\/([A-Za-z0-9_-]+)$/.exec(url.pathname);
    if (upload) return this.handleUpload(upload[1]!, req, res, url);
    if (url.pathname.startsWith('/files-pri/')) {
      req.resume();
      return this.serveFile(req, res, url);
    }
    req.resume();
    if (url.pathname === '/' || url.pathname === '/signin') {
      sendHtml(res, signInPage(this.teamName, this.teamDomain));
      return;
    }
    sendHtml(res, notFoundPage(), 404);
  }

  private async handleApi(
    method: string,
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
  ): Promise<void> {
    const call = await readCall(method, req, url);
    this.calls.push(call);
    const bearer = /^Bearer\s+(.+)$/i.exec(call.headers['authorization'] ?? '')?.[1]?.trim();
    const token = bearer ?? (typeof call.params['token'] === 'string' ? call.params['token'] : undefined);
    if (token) {
      call.token = token;
      call.tokenType = token === this.botToken ? 'bot' : token === this.appToken ? 'app' : 'unknown';
    }
    if (method === 'chat.postMessage' && call.tokenType === 'bot' && !this.botTokenError)
      this.sent.push(call);

    const stall = takeScripted(this.stalls.get(method), call);
    if (stall) {
      if (stall.process) this.answerApi(call);
      this.notify();
      return; // never answered; close() ends the connection
    }
    const failure = takeScripted(this.failures.get(method), call);
    if (failure) return this.reply(res, call, failureOf(failure));
    this.reply(res, call, this.answerApi(call));
  }

  private reply(res: ServerResponse, call: SlackApiCall, result: Record<string, unknown> | Failure): void {
    const headers: Record<string, string> = {
      'x-slack-req-id': randomBytes(16).toString('hex'),
      'x-accepted-oauth-scopes': acceptedScopes(call.method),
    };
    if (call.tokenType === 'bot') headers['x-oauth-scopes'] = [...this.scopes].join(',');
    if (call.tokenType === 'app') headers['x-oauth-scopes'] = 'connections:write';
    if (result instanceof Failure) {
      call.status = result.status;
      if (typeof result.body !== 'string') call.response = result.body;
      if (typeof result.body === 'string')
        sendHtml(res, result.body, result.status, { ...headers, ...result.headers });
      else sendJson(res, result.status, result.body, { ...headers, ...result.headers });
    } else {
      call.status = 200;
      call.response = result;
      sendJson(res, 200, result, headers);
    }
    this.notify();
  }

  /** The answer to a Web API call (never throws; errors are `{ok:false}`). */
  private answerApi(call: SlackApiCall): Record<string, unknown> {
    const method = call.method;
    if (RETIRED_METHODS.has(method)) return err('method_deprecated');
    if (!WEB_METHODS.has(method)) return { ok: false, error: 'unknown_method', req_method: method };
    if (!call.token) return err('not_authed');
    if (call.encoding === 'json' && !/^Bearer\s/i.test(call.headers['authorization'] ?? '')) {
      // Slack reads JSON bodies only with the token in the Authorization header.
      return err('not_authed');
    }
    if (call.tokenType === 'unknown') return err('invalid_auth');
    if (method === 'apps.connections.open') {
      if (call.tokenType !== 'app') return err('not_allowed_token_type');
      return this.connectionsOpen();
    }
    if (call.tokenType === 'app') return err('not_allowed_token_type');
    if (this.botTokenError) return err(this.botTokenError);
    const warnings: string[] = [];
    if (call.encoding === 'json' && !/charset=/i.test(call.headers['content-type'] ?? ''))
      warnings.push('missing_charset');
    const result = this.dispatch(method, call.params, call);
    if (warnings.length && result['ok'] === true) {
      result['warning'] = warnings.join(',');
      result['response_metadata'] = { warnings };
    }
    return result;
  }

  private dispatch(method: string, p: Record<string, unknown>, call: SlackApiCall): Record<string, unknown> {
    switch (method) {
      case 'auth.test':
        return {
          ok: true,
          url: `https://${this.teamDomain}.slack.com/`,
          team: this.teamName,
          user: this.botName,
          team_id: this.teamId,
          user_id: this.botUserId,
          bot_id: this.botId,
          ...(this.enterpriseId ? { enterprise_id: this.enterpriseId } : {}),
          is_enterprise_install: false,
        };
      case 'users.info':
        return this.usersInfo(p);
      case 'team.info':
        return this.teamInfo();
      case 'conversations.open':
        return this.conversationsOpen(p);
      case 'conversations.info':
        return this.conversationsInfo(p);
      case 'conversations.history':
        return this.history(p, false);
      case 'conversations.replies':
        return this.history(p, true);
      case 'chat.postMessage':
        return this.postMessage(p, call);
      case 'files.getUploadURLExternal':
        return this.getUploadUrl(p);
      case 'files.completeUploadExternal':
        return this.completeUpload(p, call);
      case 'files.info':
        return this.filesInfo(p);
      default:
        return { ok: false, error: 'unknown_method', req_method: method };
    }
  }

  private usersInfo(p: Record<string, unknown>): Record<string, unknown> {
    const missing = this.needScope('users:read');
    if (missing) return missing;
    const u = typeof p['user'] === 'string' ? this.users.get(p['user']) : undefined;
    if (!u) return err('user_not_found');
    const out = structuredClone(u);
    if (!this.scopes.has('users:read.email')) delete out.profile.email;
    if (p['include_locale'] === true || p['include_locale'] === '1') {
      out.locale = this.userLocales.get(u.id) ?? 'en-US';
    }
    return { ok: true, user: out };
  }

  private teamInfo(): Record<string, unknown> {
    const missing = this.needScope('team:read');
    if (missing) return missing;
    return {
      ok: true,
      team: {
        id: this.teamId,
        name: this.teamName,
        domain: this.teamDomain,
        email_domain: '',
        icon: { image_68: 'https://a.slack-edge.com/fake/team_68.png', image_default: true },
        ...(this.enterpriseId ? { enterprise_id: this.enterpriseId, enterprise_name: 'Fake Org' } : {}),
      },
    };
  }

  private conversationsOpen(p: Record<string, unknown>): Record<string, unknown> {
    const missing = this.needScope('im:write');
    if (missing) return missing;
    const full = p['return_im'] === true || p['return_im'] === '1';
    if (typeof p['channel'] === 'string' && p['channel']) {
      const c = this.channels.get(p['channel']);
      if (!c) return err('channel_not_found');
      return {
        ok: true,
        no_op: true,
        already_open: true,
        channel: full ? this.renderChannel(c) : { id: c.id },
      };
    }
    const users = typeof p['users'] === 'string' ? p['users'].split(',').map((s) => s.trim()) : [];
    if (users.length !== 1) return users.length ? err('not_enough_users') : err('users_list_not_supplied');
    const u = this.users.get(users[0]!);
    if (!u) return err('user_not_found');
    if (u.deleted) return err('user_disabled');
    const c = this.ensureDm(u.id);
    const again = c.opened === true;
    c.opened = true;
    const channel = full ? this.renderChannel(c) : { id: c.id };
    return { ok: true, ...(again ? { no_op: true, already_open: true } : {}), channel };
  }

  private conversationsInfo(p: Record<string, unknown>): Record<string, unknown> {
    const c = typeof p['channel'] === 'string' ? this.channels.get(p['channel']) : undefined;
    if (!c || (c.kind === 'group' && !c.botIsMember)) return err('channel_not_found');
    const missing = this.needScope(`${SCOPE_PREFIX[c.kind]}:read`);
    if (missing) return missing;
    return { ok: true, channel: this.renderChannel(c) };
  }

  private filesInfo(p: Record<string, unknown>): Record<string, unknown> {
    const missing = this.needScope('files:read');
    if (missing) return missing;
    const s = typeof p['file'] === 'string' ? this.files.get(p['file']) : undefined;
    if (!s?.completed) return err('file_not_found');
    return { ok: true, file: structuredClone(s.file), comments: [], response_metadata: { next_cursor: '' } };
  }

  private needScope(scope: string): Record<string, unknown> | undefined {
    if (this.scopes.has(scope)) return undefined;
    return { ok: false, error: 'missing_scope', needed: scope, provided: [...this.scopes].join(',') };
  }

  /** Resolves a channel parameter for posting: ids of channels, DMs, or users (the app's DM with them). */
  private postTarget(channel: unknown): StoredChannel | { ok: false; error: string } {
    const notFound = { ok: false as const, error: 'channel_not_found' };
    if (typeof channel !== 'string' || !channel) return notFound;
    const c = this.channels.get(channel);
    if (c) return c;
    if (/^[UW]/.test(channel) && this.users.has(channel)) return this.ensureDm(channel);
    return notFound;
  }

  private checkPostable(c: StoredChannel): Record<string, unknown> | undefined {
    if (c.kind === 'group' && !c.botIsMember) return err('channel_not_found');
    if (c.isArchived) return err('is_archived');
    if (c.kind === 'channel' && !c.botIsMember && !this.scopes.has('chat:write.public'))
      return err('not_in_channel');
    if (c.kind === 'im' && this.users.get(c.user ?? '')?.deleted) return err('user_not_found');
    return undefined;
  }

  private postMessage(p: Record<string, unknown>, call: SlackApiCall): Record<string, unknown> {
    const missing = this.needScope('chat:write');
    if (missing) return missing;
    const c = this.postTarget(p['channel']);
    if (!('kind' in c)) return c;
    const refused = this.checkPostable(c);
    if (refused) return refused;
    const text = typeof p['text'] === 'string' ? p['text'] : '';
    const blocks = p['blocks'];
    const attachments = p['attachments'];
    if (!text.trim() && !blocks && !attachments) return err('no_text');
    if (text.length > MAX_TEXT) return err('msg_too_long');
    if (blocks !== undefined && (!Array.isArray(blocks) || blocks.length > 50)) return err('invalid_blocks');
    const customize = this.scopes.has('chat:write.customize');
    const threadTs = typeof p['thread_ts'] === 'string' && p['thread_ts'] ? p['thread_ts'] : undefined;
    const ts = this.nextTs();
    const username = customize && typeof p['username'] === 'string' ? p['username'] : undefined;
    const iconUrl = customize && typeof p['icon_url'] === 'string' ? p['icon_url'] : undefined;
    const iconEmoji = customize && typeof p['icon_emoji'] === 'string' ? p['icon_emoji'] : undefined;
    const message: SlackMessage = {
      user: this.botUserId,
      type: 'message',
      ts,
      bot_id: this.botId,
      app_id: this.appId,
      text,
      team: this.teamId,
      bot_profile: this.botProfile(),
      ...(blocks ? { blocks } : {}),
      ...(attachments ? { attachments } : {}),
      ...(username ? { username } : {}),
      ...(iconUrl ? { icons: { image_48: iconUrl } } : iconEmoji ? { icons: { emoji: iconEmoji } } : {}),
      ...(threadTs ? { thread_ts: threadTs, parent_user_id: this.parentUser(c, threadTs) } : {}),
    };
    c.messages.push({ ...structuredClone(message), channel: c.id });
    this.botMessages.push({
      channel: c.id,
      ts,
      text,
      ...(threadTs ? { thread_ts: threadTs } : {}),
      ...(username ? { username } : {}),
      ...(iconUrl ? { icon_url: iconUrl } : {}),
      ...(iconEmoji ? { icon_emoji: iconEmoji } : {}),
      ...(blocks ? { blocks } : {}),
      message: { ...structuredClone(message), channel: c.id },
      call,
    });
    if (this.echoBotMessages) {
      const echo = { ...structuredClone(message), channel: c.id, event_ts: ts, channel_type: c.kind };
      setImmediate(() => {
        this.deliver(echo).catch(() => {});
      });
    }
    return { ok: true, channel: c.id, ts, message };
  }

  private connectionsOpen(): Record<string, unknown> {
    const ticket = randomUUID();
    this.tickets.set(ticket, Date.now() + 60_000);
    return { ok: true, url: `ws://127.0.0.1:${this.port}/link/?ticket=${ticket}&app_id=${this.appId}` };
  }

  private getUploadUrl(p: Record<string, unknown>): Record<string, unknown> {
    const missing = this.needScope('files:write');
    if (missing) return missing;
    const filename = typeof p['filename'] === 'string' ? p['filename'] : '';
    if (!filename) return invalidArguments('missing required field: filename');
    const lengthRaw = p['length'];
    if (lengthRaw === undefined || lengthRaw === '')
      return invalidArguments('missing required field: length');
    const length = Number(lengthRaw);
    if (!Number.isInteger(length) || length < 0) return invalidArguments('invalid value for field: length');
    const s = this.storeFile(filename, Buffer.alloc(0), this.botUserId, {
      ...(typeof p['alt_txt'] === 'string' ? { alt_txt: p['alt_txt'] } : {}),
      ...(typeof p['snippet_type'] === 'string' ? { filetype: p['snippet_type'] } : {}),
    });
    s.file.size = length;
    s.declaredLength = length;
    s.uploadKey = randomBytes(18).toString('base64url');
    this.uploadKeys.set(s.uploadKey, s.file.id);
    return { ok: true, upload_url: `${this.origin}/upload/v1/${s.uploadKey}`, file_id: s.file.id };
  }

  private completeUpload(p: Record<string, unknown>, call: SlackApiCall): Record<string, unknown> {
    const missing = this.needScope('files:write');
    if (missing) return missing;
    const list = p['files'];
    if (!Array.isArray(list) || !list.length) return invalidArguments('missing required field: files');
    const stored: StoredFile[] = [];
    for (const entry of list as { id?: unknown; title?: unknown }[]) {
      const s = typeof entry?.id === 'string' ? this.files.get(entry.id) : undefined;
      if (!s || s.declaredLength === undefined || !s.uploaded) return err('file_not_found');
      if (s.completed) return err('file_not_found');
      stored.push(s);
    }
    const channelIds = [
      ...(typeof p['channel_id'] === 'string' && p['channel_id'] ? [p['channel_id']] : []),
      ...(typeof p['channels'] === 'string' && p['channels']
        ? p['channels'].split(',').map((s) => s.trim())
        : []),
    ];
    const targets: StoredChannel[] = [];
    for (const id of channelIds) {
      const t = this.postTarget(id);
      if (!('kind' in t)) return t;
      const refused = this.checkPostable(t);
      if (refused) return refused;
      targets.push(t);
    }
    const threadTs = typeof p['thread_ts'] === 'string' && p['thread_ts'] ? p['thread_ts'] : undefined;
    if (threadTs && targets.length > 1) return invalidArguments('thread_ts needs exactly one channel');
    list.forEach((entry, i) => {
      const s = stored[i]!;
      const title = (entry as { title?: unknown }).title;
      if (typeof title === 'string' && title) s.file.title = title;
      s.completed = true;
      if (s.uploadKey) this.uploadKeys.delete(s.uploadKey);
    });
    const text = typeof p['initial_comment'] === 'string' ? p['initial_comment'] : '';
    for (const c of targets) {
      const ts = this.nextTs();
      for (const s of stored) this.share(s, c, ts, threadTs);
      const files = stored.map((s) => structuredClone(s.file));
      const message: SlackMessage = {
        user: this.botUserId,
        type: 'message',
        ts,
        bot_id: this.botId,
        app_id: this.appId,
        text,
        team: this.teamId,
        files,
        upload: true,
        display_as_bot: false,
        ...(threadTs ? { thread_ts: threadTs, parent_user_id: this.parentUser(c, threadTs) } : {}),
      };
      c.messages.push({ ...structuredClone(message), channel: c.id });
      this.botMessages.push({
        channel: c.id,
        ts,
        text,
        ...(threadTs ? { thread_ts: threadTs } : {}),
        files,
        message: { ...structuredClone(message), channel: c.id },
        call,
      });
    }
    return { ok: true, files: stored.map((s) => ({ id: s.file.id, title: s.file.title })) };
  }

  private history(p: Record<string, unknown>, replies: boolean): Record<string, unknown> {
    const c = typeof p['channel'] === 'string' ? this.channels.get(p['channel']) : undefined;
    if (!c || (c.kind === 'group' && !c.botIsMember)) return err('channel_not_found');
    const missing = this.needScope(`${SCOPE_PREFIX[c.kind]}:history`);
    if (missing) return missing;
    if (c.kind === 'channel' && !c.botIsMember) return err('not_in_channel');
    const limit = Math.min(999, Math.max(1, Number(p['limit'] ?? (replies ? 1000 : 100)) || 100));
    const offset =
      Number(
        Buffer.from(String(p['cursor'] ?? ''), 'base64url')
          .toString('utf8')
          .replace(/^next:/, ''),
      ) || 0;
    const inclusive = p['inclusive'] === true || p['inclusive'] === '1';
    const oldest = p['oldest'] !== undefined ? Number(p['oldest']) : undefined;
    const latest = p['latest'] !== undefined ? Number(p['latest']) : undefined;
    const inRange = (m: SlackMessageEvent) => {
      const t = Number(m.ts);
      if (oldest !== undefined && (inclusive ? t < oldest : t <= oldest)) return false;
      if (latest !== undefined && (inclusive ? t > latest : t >= latest)) return false;
      return true;
    };
    let list: SlackMessageEvent[];
    if (replies) {
      const ts = String(p['ts'] ?? '');
      const parent = c.messages.find((m) => m.ts === ts);
      if (!parent) return err('thread_not_found');
      const root = parent.thread_ts ?? parent.ts;
      list = c.messages
        .filter((m) => m.ts === root || m.thread_ts === root)
        .filter((m) => m.ts === root || inRange(m));
    } else {
      list = c.messages
        .filter((m) => !m.thread_ts || m.thread_ts === m.ts)
        .filter(inRange)
        .reverse();
    }
    const page = list.slice(offset, offset + limit).map((m) => {
      const out: SlackMessage = this.withThreadInfo(c, m);
      delete out.channel;
      return out;
    });
    const more = offset + limit < list.length;
    return {
      ok: true,
      messages: page,
      has_more: more,
      ...(replies ? {} : { pin_count: 0, channel_actions_ts: null, channel_actions_count: 0 }),
      response_metadata: {
        next_cursor: more ? Buffer.from(`next:${offset + limit}`).toString('base64url') : '',
      },
    };
  }

  private withThreadInfo(c: StoredChannel, m: SlackMessageEvent): SlackMessageEvent {
    const out = structuredClone(m);
    const replies = c.messages.filter((r) => r.thread_ts === m.ts && r.ts !== m.ts);
    if (replies.length) {
      out.thread_ts = m.ts;
      out['reply_count'] = replies.length;
      out['reply_users_count'] = new Set(replies.map((r) => r.user ?? r.bot_id)).size;
      out['latest_reply'] = replies[replies.length - 1]!.ts;
      out['reply_users'] = [...new Set(replies.map((r) => r.user ?? r.bot_id))];
    }
    return out;
  }

  private async handleUpload(
    key: string,
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
  ): Promise<void> {
    const at = Date.now();
    const chunks: Buffer[] = [];
    for await (const c of req as AsyncIterable<Buffer>) chunks.push(c);
    const raw = Buffer.concat(chunks);
    const headers = lowerHeaders(req);
    const call: SlackApiCall = {
      method: SLACK_UPLOAD,
      params: Object.fromEntries(url.searchParams),
      files: [],
      encoding: raw.length ? 'raw' : 'none',
      headers,
      at,
    };
    this.calls.push(call);
    const fileId = this.uploadKeys.get(key);
    const s = fileId ? this.files.get(fileId) : undefined;
    const answer = (status: number, body: string, html = false) => {
      call.status = status;
      if (html) sendHtml(res, body, status);
      else {
        res.writeHead(status, {
          'content-type': 'text/plain; charset=utf-8',
          'content-length': Buffer.byteLength(body),
        });
        res.end(body);
      }
      this.notify();
    };
    let bytes: Buffer = raw;
    let part: { field: string; fileName?: string; contentType?: string } | undefined;
    if (multipartBoundary(headers['content-type'])) {
      call.encoding = 'multipart';
      try {
        const parsed = parseMultipart(raw, headers['content-type']!);
        const p =
          parsed.parts.find((x) => x.name === 'body') ??
          parsed.parts.find((x) => x.name === 'filename') ??
          parsed.files[0];
        if (!p) return answer(400, 'no file part');
        bytes = p.data;
        part = {
          field: p.name,
          ...(p.fileName !== undefined ? { fileName: p.fileName } : {}),
          ...(p.contentType ? { contentType: p.contentType } : {}),
        };
        call.files = parsed.files.map((f) => ({
          field: f.name,
          headers: f.headers,
          bytes: Buffer.from(f.data),
          ...(f.fileName !== undefined ? { fileName: f.fileName } : {}),
          ...(f.contentType ? { contentType: f.contentType } : {}),
        }));
      } catch {
        return answer(400, 'malformed multipart body');
      }
    } else if (raw.length) {
      call.files = [
        {
          field: '',
          headers: {},
          bytes: raw,
          ...(headers['content-type'] ? { contentType: headers['content-type'] } : {}),
        },
      ];
    }
    if (!s || s.completed || s.declaredLength === undefined) return answer(404, notFoundPage(), true);
    const record: SlackUpload = {
      fileId: s.file.id,
      uploadUrl: `${this.origin}/upload/v1/${key}`,
      declaredLength: s.declaredLength,
      bytes: Buffer.from(bytes),
      encoding: call.encoding === 'multipart' ? 'multipart' : 'raw',
      ...(part ?? {}),
      headers,
      status: 0,
      at,
    };
    this.uploads.push(record);
    const stall = takeScripted(this.stalls.get(SLACK_UPLOAD), call);
    const failure = stall ? undefined : takeScripted(this.failures.get(SLACK_UPLOAD), call);
    const accept = () => {
      s.bytes = Buffer.from(bytes);
      s.uploaded = true;
      if (part?.contentType && part.contentType !== 'application/octet-stream')
        s.file.mimetype = part.contentType;
    };
    if (stall) {
      if (stall.process && bytes.length === s.declaredLength) accept();
      this.notify();
      return;
    }
    if (failure) {
      const f = failureOf(failure);
      record.status = f.status;
      call.status = f.status;
      if (typeof f.body === 'string') sendHtml(res, f.body, f.status, f.headers);
      else sendJson(res, f.status, f.body, f.headers);
      this.notify();
      return;
    }
    if (bytes.length !== s.declaredLength) {
      // The fake is strict: the bytes must be exactly the length given to getUploadURLExternal.
      record.status = 400;
      return answer(400, `length mismatch: declared ${s.declaredLength}, received ${bytes.length}`);
    }
    accept();
    record.status = 200;
    answer(200, `OK - ${bytes.length}`);
  }

  private serveFile(req: IncomingMessage, res: ServerResponse, url: URL): void {
    const headers = lowerHeaders(req);
    const m = /^\/files-pri\/([A-Z0-9]+)-([A-Z0-9]+)\/(?:download\/)?(.+)$/.exec(url.pathname);
    const fileId = m?.[2];
    const s = fileId ? this.files.get(fileId) : undefined;
    const bearer = /^Bearer\s+(.+)$/i.exec(headers['authorization'] ?? '')?.[1]?.trim();
    const authorized = bearer === this.botToken && !this.botTokenError && this.scopes.has('files:read');
    const call: SlackApiCall = {
      method: SLACK_DOWNLOAD,
      params: { path: url.pathname },
      files: [],
      encoding: 'none',
      headers,
      ...(bearer
        ? {
            token: bearer,
            tokenType: bearer === this.botToken ? 'bot' : bearer === this.appToken ? 'app' : 'unknown',
          }
        : {}),
      at: Date.now(),
    };
    this.calls.push(call);
    const record: SlackFileRequest = {
      ...(fileId ? { fileId } : {}),
      path: url.pathname,
      authorized,
      status: 0,
      servedHtml: false,
      headers,
      at: call.at,
    };
    this.fileRequests.push(record);
    const done = (status: number, html: boolean) => {
      record.status = status;
      record.servedHtml = html;
      call.status = status;
      this.notify();
    };
    const stall = takeScripted(this.stalls.get(SLACK_DOWNLOAD), call);
    if (stall) {
      this.notify();
      return;
    }
    const failure = takeScripted(this.failures.get(SLACK_DOWNLOAD), call);
    if (failure) {
      const f = failureOf(failure);
      if (typeof f.body === 'string') sendHtml(res, f.body, f.status, f.headers);
      else sendJson(res, f.status, f.body, f.headers);
      done(f.status, typeof f.body === 'string');
      return;
    }
    if (!authorized) {
      if (this.fileAuthFailure === 'redirect') {
        const location = `${this.origin}/?redir=${encodeURIComponent(url.pathname + url.search)}`;
        res.writeHead(302, { location, 'content-type': 'text/html; charset=utf-8', 'content-length': 0 });
        res.end();
        done(302, false);
        return;
      }
      sendHtml(res, signInPage(this.teamName, this.teamDomain));
      done(200, true);
      return;
    }
    if (!s?.completed) {
      sendHtml(res, notFoundPage(), 404);
      done(404, true);
      return;
    }
    const download = /\/download\//.test(url.pathname);
    const status = sendBytes(req, res, s.bytes, s.file.mimetype, download ? s.file.name : undefined);
    done(status, false);
  }

  private async postSigned(
    url: string,
    body: Record<string, unknown>,
    opts: Omit<SlackSendEventOptions, keyof SlackEventOptions>,
  ): Promise<SlackSendEventResult> {
    const rawBody = slackJson(body);
    const now = nowSeconds();
    const ts = opts.timestamp ?? (opts.signature === 'stale' ? now - 6 * 60 : now);
    const secret = opts.signature === 'bad' ? `${this.signingSecret}x` : this.signingSecret;
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': 'Slackbot 1.0 (+https://api.slack.com/robots)',
      accept: '*/*',
      ...(opts.signature === 'none'
        ? {}
        : {
            'x-slack-signature': slackSignature(secret, ts, rawBody),
            'x-slack-request-timestamp': String(ts),
          }),
      ...(opts.retryNum !== undefined
        ? {
            'x-slack-retry-num': String(opts.retryNum),
            'x-slack-retry-reason': opts.retryReason ?? 'http_timeout',
          }
        : {}),
      ...opts.headers,
    };
    const started = Date.now();
    const base = {
      rawBody,
      envelope: body,
      ...(typeof body['event_id'] === 'string' ? { eventId: body['event_id'] } : {}),
    };
    const signal = opts.timeoutMs !== undefined ? AbortSignal.timeout(opts.timeoutMs) : undefined;
    try {
      const res = await fetch(url, { method: 'POST', headers, body: rawBody, ...(signal ? { signal } : {}) });
      const text = await res.text();
      const resHeaders: Record<string, string> = {};
      res.headers.forEach((v, k) => {
        resHeaders[k] = v;
      });
      return {
        ...base,
        status: res.status,
        body: text,
        headers: resHeaders,
        elapsedMs: Date.now() - started,
      };
    } catch (e) {
      const timedOut = signal?.aborted ?? false;
      return {
        ...base,
        status: 0,
        body: '',
        headers: {},
        elapsedMs: Date.now() - started,
        ...(timedOut ? { timedOut: true } : {}),
        error: (e as Error).message,
      };
    }
  }

  // ---------------------------------------------------------------- internals: Socket Mode

  private upgrade(wss: WebSocketServer, req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (url.pathname !== '/link/' && url.pathname !== '/link') {
      socket.end('HTTP/1.1 404 Not Found\r\n\r\n');
      return;
    }
    const ticket = url.searchParams.get('ticket') ?? '';
    const expires = this.tickets.get(ticket);
    if (expires === undefined || expires < Date.now()) {
      // A ticket is good for one connection, shortly after apps.connections.open.
      this.socketRecord({
        kind: 'rejected',
        connectionId: 0,
        reason: expires === undefined ? 'unknown ticket' : 'expired ticket',
      });
      socket.end('HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    this.tickets.delete(ticket);
    wss.handleUpgrade(req, socket, head, (ws) => this.onSocket(ws, ticket));
  }

  private onSocket(ws: WebSocket, ticket: string): void {
    const conn: SocketConn = { id: this.connSeq++, ws, ticket, openedAt: Date.now(), state: 'open' };
    this.conns.set(conn.id, conn);
    this.socketRecord({ kind: 'open', connectionId: conn.id });
    ws.on('message', (data: Buffer, isBinary: boolean) => this.onSocketMessage(conn, data, isBinary));
    ws.on('ping', (data: Buffer) => {
      this.socketRecord({ kind: 'ping', connectionId: conn.id });
      if (this.answerPings) ws.pong(data);
    });
    ws.on('close', (code: number) => {
      clearInterval(conn.pingTimer);
      conn.state = 'closed';
      conn.closedAt = Date.now();
      this.socketRecord({
        kind: 'close',
        connectionId: conn.id,
        code,
        by: conn.closedByServer ? 'server' : 'client',
      });
    });
    ws.on('error', () => {});
    if (this.pingIntervalMs > 0) {
      conn.pingTimer = setInterval(() => {
        if (conn.state !== 'closed') ws.ping(Buffer.from(String(Date.now())));
      }, this.pingIntervalMs);
      conn.pingTimer.unref();
    }
    const live = [...this.conns.values()].filter((c) => c.state !== 'closed').length;
    ws.send(
      slackJson({
        type: 'hello',
        num_connections: live,
        debug_info: { host: `applink-fake-${conn.id}`, build_number: 1, approximate_connection_time: 18060 },
        connection_info: { app_id: this.appId },
      }),
    );
    this.socketRecord({ kind: 'hello', connectionId: conn.id });
    // Envelopes that waited for a connection go out now.
    for (const e of this.envelopeById.values()) {
      if (e.queuedAttempt !== undefined && !e.acked && !e.gaveUp) {
        const attempt = e.queuedAttempt;
        e.queuedAttempt = undefined;
        this.deliverEnvelope(e, attempt, attempt ? 'timeout' : '');
      }
    }
  }

  private onSocketMessage(conn: SocketConn, data: Buffer, isBinary: boolean): void {
    const text = data.toString('utf8');
    let msg: { envelope_id?: unknown; payload?: unknown };
    try {
      if (isBinary) throw new Error('binary');
      msg = JSON.parse(text) as typeof msg;
    } catch {
      this.socketRecord({ kind: 'message', connectionId: conn.id, data: text.slice(0, 500) });
      return;
    }
    if (typeof msg.envelope_id !== 'string') {
      this.socketRecord({ kind: 'message', connectionId: conn.id, data: text.slice(0, 500) });
      return;
    }
    const env = this.envelopeById.get(msg.envelope_id);
    const last = env?.deliveries[env.deliveries.length - 1];
    const at = Date.now();
    const ack: SlackSocketAck = {
      envelopeId: msg.envelope_id,
      at,
      connectionId: conn.id,
      ...(msg.payload !== undefined ? { payload: msg.payload } : {}),
      attempt: last?.attempt ?? 0,
      afterMs: last ? at - last.at : 0,
      ...(!env || env.acked ? { late: true } : {}),
    };
    this.acks.push(ack);
    if (env && !env.acked) {
      env.acked = ack;
      clearTimeout(env.timer);
      env.queuedAttempt = undefined;
    }
    this.socketRecord({
      kind: 'ack',
      connectionId: conn.id,
      envelopeId: msg.envelope_id,
      attempt: ack.attempt,
    });
  }

  private liveConns(): SocketConn[] {
    return [...this.conns.values()].filter((c) => c.state === 'open' && c.ws.readyState === 1);
  }

  private deliverEnvelope(env: EnvelopeState, attempt: number, retryReason: string): void {
    const live = this.liveConns();
    if (!live.length) {
      env.queuedAttempt = attempt;
      return;
    }
    const conn = live[this.roundRobin++ % live.length]!;
    const frame: Record<string, unknown> = {
      envelope_id: env.envelopeId,
      payload: env.payload,
      type: env.type,
      accepts_response_payload: env.acceptsResponsePayload ?? false,
      retry_attempt: attempt,
      retry_reason: retryReason,
    };
    env.deliveries.push({ attempt, at: Date.now(), connectionId: conn.id, retryReason });
    conn.ws.send(slackJson(frame));
    this.socketRecord({ kind: 'envelope', connectionId: conn.id, envelopeId: env.envelopeId, attempt });
    clearTimeout(env.timer);
    env.timer = setTimeout(() => {
      if (env.acked) return;
      if (attempt >= this.maxRedeliveries) {
        env.gaveUp = true;
        this.notify();
        return;
      }
      this.deliverEnvelope(env, attempt + 1, 'timeout');
    }, this.redeliverAfterMs);
    env.timer.unref();
  }

  private socketRecord(r: Omit<SlackSocketRecord, 'index' | 'at'>): void {
    this.socketLog.push({ ...r, index: this.socketLog.length, at: Date.now() });
    this.notify();
  }
}

function acceptedScopes(method: string): string {
  const s = METHOD_SCOPES[method];
  if (!s) return method === 'apps.connections.open' ? 'connections:write' : '';
  return typeof s === 'string' ? s : (['channel', 'group', 'im', 'mpim'] as ChannelKind[]).map(s).join(',');
}

// ---------------------------------------------------------------- helpers

function err(error: string): Record<string, unknown> {
  return { ok: false, error };
}

function invalidArguments(message: string): Record<string, unknown> {
  return { ok: false, error: 'invalid_arguments', response_metadata: { messages: [`[ERROR] ${message}`] } };
}

function digits(n: number): string {
  let s = String(1 + (randomBytes(1)[0]! % 9));
  while (s.length < n) s += String(randomBytes(1)[0]! % 10);
  return s;
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** An opaque event_context like Slack's (`4-` + base64); it always contains a `/`, which Slack writes `\/`. */
function eventContext(): string {
  const b = randomBytes(48).toString('base64').replace(/=+$/, '');
  return `4-${b.slice(0, 10)}/${b.slice(11)}`;
}

/** The rich_text block Slack adds to a user's message. */
function richTextBlocks(text: string): unknown[] {
  return [
    {
      type: 'rich_text',
      block_id: randomBytes(3).toString('base64'),
      elements: [{ type: 'rich_text_section', elements: [{ type: 'text', text }] }],
    },
  ];
}

const MIME: Record<string, string> = {
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  gif: 'image/gif',
  webp: 'image/webp',
  pdf: 'application/pdf',
  txt: 'text/plain',
  mp4: 'video/mp4',
  mov: 'video/quicktime',
  mp3: 'audio/mpeg',
  m4a: 'audio/mp4',
  webm: 'audio/webm',
  ogg: 'audio/ogg',
  zip: 'application/zip',
  json: 'application/json',
  csv: 'text/csv',
};

function mimeOf(ext: string): string {
  return MIME[ext] ?? 'application/octet-stream';
}

/** Takes the first scripted entry whose `when` accepts the call, honouring afterCalls. */
function takeScripted<T extends { when?: (c: SlackApiCall) => boolean; afterCalls?: number }>(
  queue: T[] | undefined,
  call: SlackApiCall,
): T | undefined {
  if (!queue) return undefined;
  const i = queue.findIndex((s) => !s.when || s.when(call));
  if (i < 0) return undefined;
  const spec = queue[i]!;
  if (spec.afterCalls) {
    spec.afterCalls--;
    return undefined;
  }
  queue.splice(i, 1);
  return spec;
}

function failureOf(spec: SlackFailureSpec): Failure {
  const status = spec.status ?? 200;
  if (status === 429) {
    return new Failure(
      429,
      { ok: false, error: spec.error ?? 'ratelimited', ...spec.body },
      { 'retry-after': String(spec.retryAfter ?? 1) },
    );
  }
  if (status >= 500 && !spec.error) return new Failure(status, serverErrorPage(status));
  return new Failure(status, { ok: false, error: spec.error ?? 'fatal_error', ...spec.body });
}

function lowerHeaders(req: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) {
    if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(', ') : v;
  }
  return headers;
}

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  if (res.writableEnded || res.destroyed) return;
  const s = slackJson(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(s),
    ...headers,
  });
  res.end(s);
}

function sendHtml(
  res: ServerResponse,
  html: string,
  status = 200,
  headers: Record<string, string> = {},
): void {
  if (res.writableEnded || res.destroyed) return;
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': Buffer.byteLength(html),
    ...headers,
  });
  res.end(html);
}

function sendBytes(
  req: IncomingMessage,
  res: ServerResponse,
  bytes: Buffer,
  contentType: string,
  downloadName?: string,
): number {
  const range = /^bytes=(\d*)-(\d*)$/.exec(req.headers['range'] ?? '');
  let body = bytes;
  let status = 200;
  const headers: Record<string, string | number> = {
    'content-type': contentType,
    'accept-ranges': 'bytes',
    ...(downloadName
      ? {
          'content-disposition': `attachment; filename="${downloadName.replace(/"/g, '')}"; filename*=UTF-8''${encodeURIComponent(downloadName)}`,
        }
      : {}),
  };
  if (range && (range[1] || range[2])) {
    const size = bytes.length;
    const start = Math.max(0, range[1] ? Number(range[1]) : size - Number(range[2]));
    const end = Math.min(size - 1, range[1] && range[2] ? Number(range[2]) : size - 1);
    if (start > end || start >= size) {
      res.writeHead(416, { 'content-range': `bytes */${size}` });
      res.end();
      return 416;
    }
    body = bytes.subarray(start, end + 1);
    status = 206;
    headers['content-range'] = `bytes ${start}-${end}/${size}`;
  }
  headers['content-length'] = body.length;
  res.writeHead(status, headers);
  res.end(req.method === 'HEAD' ? undefined : body);
  return status;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}

/** The page Slack serves instead of a file when the request has no valid token (or no files:read). */
function signInPage(teamName: string, domain: string): string {
  return `<!DOCTYPE html>
<html lang="en-US" class="supports_custom_scrollbar">
<head>
<meta charset="utf-8">
<title>Slack</title>
<meta name="robots" content="noindex, nofollow">
</head>
<body class="signin">
<div id="page"><div id="page_contents">
<h1>Sign in to ${escapeHtml(teamName)}</h1>
<p>${escapeHtml(domain)}.slack.com</p>
<form id="signin_form" action="/" method="post" accept-encoding="UTF-8">
<input type="hidden" name="signin" value="1">
<input type="email" id="email" name="email" placeholder="you@example.com">
<input type="password" id="password" name="password" placeholder="password">
<button id="signin_btn" type="submit">Sign in</button>
</form>
</div></div>
</body>
</html>
`;
}

function notFoundPage(): string {
  return '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>Not Found | Slack</title></head><body><h1>There’s been a glitch…</h1><p>We’re not quite sure what went wrong.</p></body></html>\n';
}

function serverErrorPage(status: number): string {
  return `<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>Server Error | Slack</title></head><body><h1>${status}</h1><p>Slack is having trouble right now.</p></body></html>\n`;
}

async function readCall(method: string, req: IncomingMessage, url: URL): Promise<SlackApiCall> {
  const at = Date.now();
  const chunks: Buffer[] = [];
  for await (const c of req as AsyncIterable<Buffer>) chunks.push(c);
  const body = Buffer.concat(chunks);
  const headers = lowerHeaders(req);
  const type = headers['content-type'] ?? '';
  const params: Record<string, unknown> = {};
  for (const [k, v] of url.searchParams) params[k] = coerce(k, v);
  let files: SlackReceivedFile[] = [];
  let encoding: SlackApiCall['encoding'] = url.search ? 'query' : 'none';
  if (body.length && /application\/json/i.test(type)) {
    try {
      Object.assign(params, JSON.parse(body.toString('utf8')) as Record<string, unknown>);
      encoding = 'json';
    } catch {
      encoding = 'raw';
    }
  } else if (body.length && /application\/x-www-form-urlencoded/i.test(type)) {
    for (const [k, v] of new URLSearchParams(body.toString('utf8'))) params[k] = coerce(k, v);
    encoding = 'form';
  } else if (body.length && multipartBoundary(type)) {
    const parsed = parseMultipart(body, type);
    for (const [k, v] of Object.entries(parsed.fields)) params[k] = coerce(k, v);
    files = parsed.files.map((f) => ({
      field: f.name,
      headers: f.headers,
      bytes: Buffer.from(f.data),
      ...(f.fileName !== undefined ? { fileName: f.fileName } : {}),
      ...(f.contentType ? { contentType: f.contentType } : {}),
    }));
    encoding = 'multipart';
  } else if (body.length) encoding = 'raw';
  return { method, params, files, encoding, headers, at };
}

function coerce(key: string, v: string): unknown {
  if (JSON_PARAMS.has(key) && /^\s*[[{]/.test(v)) {
    try {
      return JSON.parse(v);
    } catch {
      return v;
    }
  }
  if (v === 'true' || v === 'false') return v === 'true';
  return v;
}
