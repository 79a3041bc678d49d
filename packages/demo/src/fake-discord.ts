/**
 * A fake Discord on 127.0.0.1 that speaks the real wire protocol, so discord.js 14
 * (or any Discord client) runs unmodified against it: the REST API under
 * `/api/v10`, a CDN with signed, expiring attachment links, and a gateway
 * (websocket, `encoding=json`, no compression) with HELLO, IDENTIFY, READY,
 * heartbeats, dispatches with sequence numbers, RESUME and INVALID_SESSION.
 *
 * Point discord.js at it with
 * `new Client({ intents, partials, rest: { api: fake.apiUrl, cdn: fake.cdnUrl, agent } })`
 * and `client.login(fake.token)`; the gateway URL comes from `GET /gateway/bot`.
 * Tests register users, guilds and channels, write as customers ({@link FakeDiscord.dm},
 * {@link FakeDiscord.guildMessage}), read what the bot posted ({@link FakeDiscord.sent},
 * {@link FakeDiscord.delivered}), script REST failures, and cut or invalidate the
 * gateway session.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { type WebSocket, WebSocketServer } from 'ws';
import { multipartBoundary, parseMultipart } from './multipart.js';
import { Watchers } from './watchers.js';

// ---------------------------------------------------------------- constants

/** Gateway intent bits (the ones a chat connector uses). */
export const DiscordIntents = {
  Guilds: 1 << 0,
  GuildMembers: 1 << 1,
  GuildPresences: 1 << 8,
  GuildMessages: 1 << 9,
  DirectMessages: 1 << 12,
  MessageContent: 1 << 15,
} as const;

/** The privileged intents (switched on per application in the developer portal). */
export const PRIVILEGED_INTENTS =
  DiscordIntents.GuildMembers | DiscordIntents.GuildPresences | DiscordIntents.MessageContent;

/** Channel types used here. */
export const DiscordChannelType = {
  GuildText: 0,
  DM: 1,
  GuildAnnouncement: 5,
  AnnouncementThread: 10,
  PublicThread: 11,
  PrivateThread: 12,
} as const;

/** Ready-made failures for {@link FakeDiscord.failNext}. */
export const DiscordErrors = {
  cannotSendToUser: { status: 403, code: 50007, message: 'Cannot send messages to this user' },
  missingAccess: { status: 403, code: 50001, message: 'Missing Access' },
  missingPermissions: { status: 403, code: 50013, message: 'Missing Permissions' },
  unknownChannel: { status: 404, code: 10003, message: 'Unknown Channel' },
  unknownMessage: { status: 404, code: 10008, message: 'Unknown Message' },
  internal: { status: 500, code: 0, message: '500: Internal Server Error' },
  badGateway: { status: 502, code: 0, message: '502: Bad Gateway' },
} as const satisfies Record<string, DiscordFailureSpec>;

const DISCORD_EPOCH = 1420070400000n;
const THREAD_TYPES: number[] = [
  DiscordChannelType.AnnouncementThread,
  DiscordChannelType.PublicThread,
  DiscordChannelType.PrivateThread,
];
const MiB = 1024 * 1024;
/** A 1×1 transparent PNG, served for avatars, stickers and emoji that have no bytes of their own. */
const PLACEHOLDER_PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=',
  'base64',
);
const GONE_TEXT = 'This content is no longer available.';

// ---------------------------------------------------------------- wire shapes (the subset used)

export interface DiscordUser {
  id: string;
  username: string;
  discriminator: string;
  global_name: string | null;
  avatar: string | null;
  bot?: boolean;
  system?: boolean;
  public_flags?: number;
}

export interface DiscordAttachment {
  id: string;
  filename: string;
  size: number;
  /** A signed CDN link (`?ex=&is=&hm=`) that expires. */
  url: string;
  proxy_url: string;
  content_type?: string;
  width?: number;
  height?: number;
  duration_secs?: number;
  waveform?: string;
  description?: string;
  flags?: number;
}

export interface DiscordStickerItem {
  id: string;
  name: string;
  /** 1 PNG, 2 APNG, 3 LOTTIE, 4 GIF. */
  format_type: number;
}

export interface DiscordMessage {
  id: string;
  channel_id: string;
  guild_id?: string;
  author: DiscordUser;
  content: string;
  timestamp: string;
  edited_timestamp: string | null;
  tts: boolean;
  mention_everyone: boolean;
  mentions: DiscordUser[];
  mention_roles: string[];
  attachments: DiscordAttachment[];
  embeds: unknown[];
  components: unknown[];
  pinned: boolean;
  /** 0 default, 19 reply. */
  type: number;
  flags: number;
  nonce?: string | number;
  sticker_items?: DiscordStickerItem[];
  message_reference?: { type: number; message_id: string; channel_id: string; guild_id?: string };
  referenced_message?: DiscordMessage | null;
  [field: string]: unknown;
}

export interface DiscordChannel {
  id: string;
  type: number;
  flags: number;
  last_message_id: string | null;
  guild_id?: string;
  name?: string;
  parent_id?: string | null;
  recipients?: DiscordUser[];
  owner_id?: string;
  thread_metadata?: {
    archived: boolean;
    auto_archive_duration: number;
    archive_timestamp: string;
    locked: boolean;
    invitable?: boolean;
    create_timestamp: string;
  };
  [field: string]: unknown;
}

// ---------------------------------------------------------------- test inputs

/** A file a customer attaches; registered on the fake CDN. */
export interface DiscordAttachmentInput {
  filename: string;
  bytes: Buffer;
  contentType?: string;
  width?: number;
  height?: number;
  duration_secs?: number;
  waveform?: string;
  description?: string;
  flags?: number;
}

/** What a customer writes (all optional; a plain string is `{ content }`). */
export interface DiscordMessageInput {
  content?: string;
  attachments?: DiscordAttachmentInput[];
  /** `id` and `format_type` default to a fresh id and 1 (PNG). */
  sticker_items?: (Partial<DiscordStickerItem> & { name: string })[];
  /** The id of the message (in the same channel) this one replies to: sets message_reference, referenced_message and type 19. */
  replyTo?: string;
  /** Users mentioned (by id or object); the content is taken as given (write `<@id>` yourself). */
  mentions?: (string | DiscordUser)[];
  embeds?: unknown[];
  flags?: number;
  /** An explicit snowflake (default: a fresh one, after every earlier id). */
  id?: string;
  /** Extra wire fields, passed through as given. */
  fields?: Record<string, unknown>;
}

export interface DiscordGuildInput {
  id: string;
  name?: string;
  /** Boost level 0-3; 2 raises the upload limit to 50 MiB, 3 to 100 MiB. */
  premium_tier?: number;
  owner_id?: string;
  /** Text channels (type 0 unless given). */
  channels?: { id: string; name?: string; type?: number; parent_id?: string | null }[];
  /** Member user ids (users are registered when unknown). */
  members?: string[];
}

// ---------------------------------------------------------------- records

/** One file part of a multipart message POST (`files[n]`). */
export interface DiscordUploadedFile {
  /** The form field, `files[0]` … */
  field: string;
  /** n of `files[n]`; -1 for a part of another name. */
  index: number;
  fileName?: string;
  contentType?: string;
  /** From the payload_json `attachments` entry with this index. */
  description?: string;
  /** The part's headers as they arrived (names in lower case). */
  headers: Record<string, string>;
  bytes: Buffer;
}

/** One REST call the bot made. */
export interface DiscordApiCall {
  method: string;
  /** The route template, e.g. `POST /channels/:channel/messages`; `unknown` when no route matched. */
  route: DiscordRoute | 'unknown';
  /** The path after `/api/v10`. */
  path: string;
  /** Path parameters by name (`channel`, `message`, `user`, `guild`). */
  params: Record<string, string>;
  query: Record<string, string>;
  /** The JSON body (for multipart: payload_json, or the form fields). */
  body: unknown;
  files: DiscordUploadedFile[];
  encoding: 'json' | 'multipart' | 'none' | 'other';
  /** Request headers, names in lower case. */
  headers: Record<string, string>;
  /** Whether `Authorization: Bot <token>` matched. */
  authorized: boolean;
  /** The status answered; undefined while unanswered (stalled). */
  status?: number;
  /** Date.now() when the request arrived. */
  at: number;
}

/** A message the bot created (deduplicated by nonce): what the customer sees. */
export interface DiscordBotMessage {
  channelId: string;
  content: string;
  nonce?: string | number;
  files: DiscordUploadedFile[];
  /** The message as answered to the POST. */
  message: DiscordMessage;
  call: DiscordApiCall;
}

/** A scripted REST failure. */
export interface DiscordFailureSpec {
  status: number;
  /** The JSON error code (50007, 10003, …); 0 by default. */
  code?: number;
  message?: string;
  /** Seconds (429): the body's retry_after and the Retry-After / X-RateLimit-Reset-After headers. */
  retry_after?: number;
  /** A global 429 (X-RateLimit-Global, scope global). */
  global?: boolean;
  /** X-RateLimit-Scope (default `user`, `global` when global). */
  scope?: 'user' | 'global' | 'shared';
  /** Let this many matching calls succeed first. */
  afterCalls?: number;
  /** Only calls this accepts consume the failure (e.g. one channel). */
  when?: (call: DiscordApiCall) => boolean;
  /** Extra body fields (e.g. `errors` of an Invalid Form Body). */
  body?: Record<string, unknown>;
}

export interface DiscordStallSpec {
  /** Process the call (create the message, dispatch it) before hanging: a POST that reached Discord whose answer got lost. */
  process?: boolean;
  when?: (call: DiscordApiCall) => boolean;
}

export type GatewayRecordKind =
  | 'open'
  | 'identify'
  | 'ready'
  | 'resume'
  | 'resumed'
  | 'invalid-session'
  | 'heartbeat'
  | 'dispatch'
  | 'close'
  | 'receive';

/** Something that happened on the gateway. */
export interface GatewayRecord {
  kind: GatewayRecordKind;
  /** Position in {@link FakeDiscord.gatewayLog}. */
  index: number;
  at: number;
  sessionId?: string;
  /** open: the path and query the client connected to. */
  url?: string;
  /** identify: the token and intents sent. */
  token?: string;
  intents?: number;
  /** identify: the whole `d`. */
  payload?: unknown;
  /** resume: the seq sent; dispatch / ready / resumed: the s assigned. */
  seq?: number;
  /** dispatch: the event name. */
  t?: string;
  /** dispatch: false when the session was disconnected (kept for a RESUME). */
  delivered?: boolean;
  /** resume: how many events were replayed. */
  replayed?: number;
  /** close: the code, and who closed. */
  code?: number;
  by?: 'server' | 'client';
  /** invalid-session: the d sent. */
  resumable?: boolean;
  /** receive: an op the fake only records (3 presence, 8 request members, …). */
  op?: number;
}

export interface GatewaySessionInfo {
  id: string;
  intents: number;
  /** The last s assigned. */
  seq: number;
  /** live: connected; disconnected: resumable; invalid: gone (only a fresh IDENTIFY helps). */
  state: 'live' | 'disconnected' | 'invalid';
}

export interface FakeDiscordOptions {
  /** Default: a random token of the real shape for the bot's id. */
  token?: string;
  bot?: Partial<DiscordUser>;
  /** Privileged intents switched on for the application (default: all three). */
  privilegedIntents?: number;
  /** HELLO's heartbeat_interval (default 41250, as Discord). */
  heartbeatIntervalMs?: number;
  /** How long a signed CDN link works (default 24 h). */
  cdnLinkTtlMs?: number;
  /** How long a nonce with enforce_nonce dedupes a repeat (default 5 min). */
  nonceWindowMs?: number;
  /** The per-file upload limit outside boosted servers (default 10 MiB). */
  uploadLimitBytes?: number;
  guilds?: DiscordGuildInput[];
}

/** Every REST route the fake answers. */
export type DiscordRoute =
  | 'GET /gateway'
  | 'GET /gateway/bot'
  | 'GET /users/@me'
  | 'GET /users/:user'
  | 'POST /users/@me/channels'
  | 'GET /applications/@me'
  | 'GET /channels/:channel'
  | 'DELETE /channels/:channel'
  | 'GET /channels/:channel/messages'
  | 'POST /channels/:channel/messages'
  | 'GET /channels/:channel/messages/:message'
  | 'PATCH /channels/:channel/messages/:message'
  | 'DELETE /channels/:channel/messages/:message'
  | 'POST /channels/:channel/typing'
  | 'POST /channels/:channel/threads'
  | 'POST /channels/:channel/messages/:message/threads'
  | 'PUT /channels/:channel/thread-members/:user'
  | 'GET /channels/:channel/thread-members/:user'
  | 'DELETE /channels/:channel/thread-members/:user'
  | 'GET /channels/:channel/threads/archived/private'
  | 'GET /channels/:channel/threads/archived/public'
  | 'GET /guilds/:guild'
  | 'GET /guilds/:guild/channels'
  | 'GET /guilds/:guild/threads/active'
  | 'GET /guilds/:guild/members/:user'
  | 'POST /attachments/refresh-urls';

const ROUTES: { method: string; re: RegExp; route: DiscordRoute; names: string[] }[] = (
  [
    ['GET /gateway', /^\/gateway$/],
    ['GET /gateway/bot', /^\/gateway\/bot$/],
    ['GET /users/@me', /^\/users\/@me$/],
    ['POST /users/@me/channels', /^\/users\/@me\/channels$/],
    ['GET /users/:user', /^\/users\/(\d+)$/],
    ['GET /applications/@me', /^\/applications\/@me$/],
    ['GET /channels/:channel', /^\/channels\/(\d+)$/],
    ['DELETE /channels/:channel', /^\/channels\/(\d+)$/],
    ['GET /channels/:channel/messages', /^\/channels\/(\d+)\/messages$/],
    ['POST /channels/:channel/messages', /^\/channels\/(\d+)\/messages$/],
    ['GET /channels/:channel/messages/:message', /^\/channels\/(\d+)\/messages\/(\d+)$/],
    ['PATCH /channels/:channel/messages/:message', /^\/channels\/(\d+)\/messages\/(\d+)$/],
    ['DELETE /channels/:channel/messages/:message', /^\/channels\/(\d+)\/messages\/(\d+)$/],
    ['POST /channels/:channel/typing', /^\/channels\/(\d+)\/typing$/],
    ['POST /channels/:channel/threads', /^\/channels\/(\d+)\/threads$/],
    ['POST /channels/:channel/messages/:message/threads', /^\/channels\/(\d+)\/messages\/(\d+)\/threads$/],
    ['PUT /channels/:channel/thread-members/:user', /^\/channels\/(\d+)\/thread-members\/(\d+|@me)$/],
    ['GET /channels/:channel/thread-members/:user', /^\/channels\/(\d+)\/thread-members\/(\d+|@me)$/],
    ['DELETE /channels/:channel/thread-members/:user', /^\/channels\/(\d+)\/thread-members\/(\d+|@me)$/],
    ['GET /channels/:channel/threads/archived/private', /^\/channels\/(\d+)\/threads\/archived\/private$/],
    ['GET /channels/:channel/threads/archived/public', /^\/channels\/(\d+)\/threads\/archived\/public$/],
    ['GET /guilds/:guild', /^\/guilds\/(\d+)$/],
    ['GET /guilds/:guild/channels', /^\/guilds\/(\d+)\/channels$/],
    ['GET /guilds/:guild/threads/active', /^\/guilds\/(\d+)\/threads\/active$/],
    ['GET /guilds/:guild/members/:user', /^\/guilds\/(\d+)\/members\/(\d+)$/],
    ['POST /attachments/refresh-urls', /^\/attachments\/refresh-urls$/],
  ] as [DiscordRoute, RegExp][]
).map(([route, re]) => ({
  method: route.slice(0, route.indexOf(' ')),
  re,
  route,
  names: [...route.matchAll(/:([a-z]+)/g)].map((m) => m[1]!),
}));

// ---------------------------------------------------------------- internal state

interface StoredAttachment {
  id: string;
  channelId: string;
  filename: string;
  bytes: Buffer;
  contentType?: string;
  extra: Partial<Omit<DiscordAttachment, 'id' | 'filename' | 'size' | 'url' | 'proxy_url' | 'content_type'>>;
}

interface StoredMessage {
  id: string;
  channelId: string;
  guildId?: string;
  authorId: string;
  content: string;
  createdAt: number;
  editedAt: number | null;
  attachmentIds: string[];
  mentionIds: string[];
  stickers?: DiscordStickerItem[];
  referenceId?: string;
  nonce?: string | number;
  type: number;
  flags: number;
  embeds: unknown[];
  extra: Record<string, unknown>;
  threadId?: string;
}

interface StoredChannel {
  id: string;
  type: number;
  guildId?: string;
  name?: string;
  parentId?: string | null;
  recipientId?: string;
  ownerId?: string;
  members: Map<string, number>;
  archived: boolean;
  locked: boolean;
  invitable?: boolean;
  autoArchive: number;
  archivedAt: number;
  createdAt: number;
  messages: StoredMessage[];
  messageCount: number;
}

interface StoredGuild {
  id: string;
  name: string;
  premiumTier: number;
  ownerId: string;
  members: Map<string, number>;
  channelIds: string[];
}

interface GatewayPayload {
  op: number;
  d: unknown;
  s: number | null;
  t: string | null;
}

interface Session {
  id: string;
  token: string;
  intents: number;
  seq: number;
  state: 'live' | 'disconnected' | 'invalid';
  conn?: Conn;
  buffer: GatewayPayload[];
}

interface Conn {
  ws: WebSocket;
  session?: Session;
  /** Set when the fake closes the connection: whether the session survives. */
  closing?: { resumable: boolean; code: number };
}

class Failure {
  constructor(
    readonly status: number,
    readonly body: Record<string, unknown>,
    readonly headers: Record<string, string> = {},
  ) {}
}

interface Answer {
  status: number;
  body?: unknown;
}

/** A token of the shape Discord gives: base64(bot id).timestamp.hmac. */
export function fakeDiscordToken(botId: string = snowflakeAt(Date.now())): string {
  return `${Buffer.from(botId).toString('base64url')}.${randomBytes(4).toString('base64url')}.${randomBytes(28).toString('base64url')}`;
}

/** The snowflake of a millisecond timestamp (worker, process and increment 0). */
export function snowflakeAt(ms: number, increment = 0): string {
  return (((BigInt(ms) - DISCORD_EPOCH) << 22n) | BigInt(increment & 0xfff)).toString();
}

/** The creation time of a snowflake. */
export function snowflakeTime(id: string): number {
  return Number((BigInt(id) >> 22n) + DISCORD_EPOCH);
}

export class FakeDiscord {
  readonly token: string;
  readonly bot: DiscordUser;
  readonly applicationId: string;
  /** Privileged intents switched on in the "developer portal"; IDENTIFY asking for another closes 4014. */
  privilegedIntents: number;
  /** HELLO's heartbeat_interval for new connections. */
  heartbeatIntervalMs: number;
  /** How long a CDN link signed from now on works. */
  cdnLinkTtlMs: number;
  nonceWindowMs: number;
  uploadLimitBytes: number;
  /** When false, heartbeats are not acknowledged (a zombie connection: discord.js reconnects). */
  ackHeartbeats = true;

  /** Every REST call, in arrival order (unauthorized ones too, with authorized: false). */
  readonly calls: DiscordApiCall[] = [];
  /** Every authorized message POST (`POST /channels/:channel/messages`), retries and failures included. */
  readonly sent: DiscordApiCall[] = [];
  /** Every CDN request: the path, the status answered. */
  readonly cdnCalls: { path: string; status: number; at: number }[] = [];
  /** Everything that happened on the gateway, in order. */
  readonly gatewayLog: GatewayRecord[] = [];

  private server?: Server;
  private wss?: WebSocketServer;
  private port = 0;
  private lastSnowflake = 0n;
  private readonly users = new Map<string, DiscordUser>();
  private readonly avatars = new Map<string, Buffer>();
  private readonly channels = new Map<string, StoredChannel>();
  private readonly dmByUser = new Map<string, string>();
  private readonly guilds = new Map<string, StoredGuild>();
  private readonly attachments = new Map<string, StoredAttachment>();
  private readonly signed = new Map<string, { attachmentId: string; expiresAt: number }>();
  private readonly closedDms = new Set<string>();
  private readonly nonces = new Map<string, { at: number; messageId: string; channelId: string }>();
  private readonly botMessages: DiscordBotMessage[] = [];
  private readonly failures = new Map<string, DiscordFailureSpec[]>();
  private readonly stalls = new Map<string, DiscordStallSpec[]>();
  private readonly sessions = new Map<string, Session>();
  private readonly conns = new Set<Conn>();
  private readonly watchers = new Watchers('FakeDiscord');

  constructor(opts: FakeDiscordOptions = {}) {
    const botId = opts.bot?.id ?? this.snowflake();
    this.token = opts.token ?? fakeDiscordToken(botId);
    this.bot = {
      id: botId,
      username: 'kitbridge-fake',
      discriminator: '0',
      global_name: null,
      avatar: null,
      bot: true,
      public_flags: 0,
      ...opts.bot,
    };
    this.applicationId = botId;
    this.users.set(botId, this.bot);
    this.privilegedIntents = opts.privilegedIntents ?? PRIVILEGED_INTENTS;
    this.heartbeatIntervalMs = opts.heartbeatIntervalMs ?? 41_250;
    this.cdnLinkTtlMs = opts.cdnLinkTtlMs ?? 24 * 3600_000;
    this.nonceWindowMs = opts.nonceWindowMs ?? 5 * 60_000;
    this.uploadLimitBytes = opts.uploadLimitBytes ?? 10 * MiB;
    for (const g of opts.guilds ?? []) this.guild(g);
  }

  // ---------------------------------------------------------------- lifecycle and addresses

  /** `http://127.0.0.1:<port>`. */
  get origin(): string {
    if (!this.server) throw new Error('FakeDiscord is not started');
    return `http://127.0.0.1:${this.port}`;
  }

  /** The REST base for discord.js's `rest.api` (it appends `/v10`). */
  get apiUrl(): string {
    return `${this.origin}/api`;
  }

  /** The CDN base for discord.js's `rest.cdn` (attachments, avatars, stickers, emoji). */
  get cdnUrl(): string {
    return `${this.origin}/cdn`;
  }

  /** The gateway URL that `GET /gateway/bot` gives. */
  get gatewayUrl(): string {
    return `ws://127.0.0.1:${this.port}/gateway`;
  }

  /** READY's resume_gateway_url (a different path, to see which one a client used). */
  get resumeGatewayUrl(): string {
    return `ws://127.0.0.1:${this.port}/gateway-resume`;
  }

  /** Listens on 127.0.0.1, on `port` (default: any free port). */
  async start(port = 0): Promise<this> {
    const server = createServer((req, res) => {
      this.handle(req, res).catch((err: Error) => {
        if (!res.headersSent) json(res, 500, { message: `fake: ${err.message}`, code: 0 });
        else res.destroy();
      });
    });
    const wss = new WebSocketServer({ noServer: true });
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const path = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
      if (path !== '/gateway' && path !== '/gateway-resume') {
        socket.end('HTTP/1.1 404 Not Found\r\n\r\n');
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => this.onConnection(ws, req.url ?? path));
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

  /** Ends every connection (gateway and HTTP, stalled calls included) and stops listening. */
  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    for (const c of this.conns) c.ws.terminate();
    this.conns.clear();
    this.wss?.close();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  // ---------------------------------------------------------------- test API: people and places

  /** Registers (or updates) a user; `avatarBytes` sets the avatar served on the CDN (hash derived unless given). */
  user(id: string, fields: Partial<Omit<DiscordUser, 'id'>> & { avatarBytes?: Buffer } = {}): DiscordUser {
    const { avatarBytes, ...rest } = fields;
    const prev = this.users.get(id);
    const u: DiscordUser = {
      id,
      username: `user${id.slice(-4)}`,
      discriminator: '0',
      global_name: null,
      avatar: null,
      public_flags: 0,
      ...prev,
      ...rest,
    };
    if (avatarBytes) {
      u.avatar = rest.avatar ?? createHash('md5').update(avatarBytes).digest('hex');
      this.avatars.set(`${id}/${u.avatar}`, avatarBytes);
    }
    this.users.set(id, u);
    return u;
  }

  /** Registers a guild with its text channels and members; after READY it is dispatched (GUILD_CREATE) to sessions with the Guilds intent. */
  guild(input: DiscordGuildInput): { id: string; name: string } {
    const g: StoredGuild = this.guilds.get(input.id) ?? {
      id: input.id,
      name: input.name ?? `guild ${input.id.slice(-4)}`,
      premiumTier: 0,
      ownerId: input.owner_id ?? this.bot.id,
      members: new Map([[this.bot.id, Date.now()]]),
      channelIds: [],
    };
    if (input.name) g.name = input.name;
    if (input.premium_tier !== undefined) g.premiumTier = input.premium_tier;
    if (input.owner_id) g.ownerId = input.owner_id;
    this.guilds.set(g.id, g);
    for (const m of input.members ?? []) this.addMember(g, m);
    for (const c of input.channels ?? []) {
      if (this.channels.has(c.id)) continue;
      this.channels.set(c.id, {
        ...this.newChannel(c.id, c.type ?? DiscordChannelType.GuildText),
        guildId: g.id,
        name: c.name ?? `channel-${c.id.slice(-4)}`,
        parentId: c.parent_id ?? null,
      });
      g.channelIds.push(c.id);
    }
    if (this.server) this.dispatch('GUILD_CREATE', () => this.renderGuild(g, true), DiscordIntents.Guilds);
    return { id: g.id, name: g.name };
  }

  /** The DM channel with a user, opened if needed (as `POST /users/@me/channels` would). */
  dmChannel(user: string | DiscordUser): DiscordChannel {
    return this.renderChannel(this.ensureDm(this.userOf(user)));
  }

  /** A channel (DM, guild channel or thread) as `GET /channels/:id` answers it; undefined when unknown. */
  channel(id: string): DiscordChannel | undefined {
    const c = this.channels.get(id);
    return c ? this.renderChannel(c) : undefined;
  }

  /** Every thread, in creation order. */
  get threads(): DiscordChannel[] {
    return [...this.channels.values()]
      .filter((c) => THREAD_TYPES.includes(c.type))
      .map((c) => this.renderChannel(c));
  }

  /** User ids that are members of a thread. */
  threadMembers(threadId: string): string[] {
    return [...(this.channels.get(threadId)?.members.keys() ?? [])];
  }

  /** Creates a thread as if someone else had (e.g. before a restart); dispatched THREAD_CREATE. */
  createThread(
    parentId: string,
    opts: { name: string; type?: number; ownerId?: string; members?: string[]; id?: string },
  ): DiscordChannel {
    const parent = this.channels.get(parentId);
    if (!parent?.guildId) throw new Error(`FakeDiscord: ${parentId} is not a guild channel`);
    const t = this.addThread(parent, {
      name: opts.name,
      type: opts.type ?? DiscordChannelType.PrivateThread,
      ownerId: opts.ownerId ?? this.bot.id,
      ...(opts.id ? { id: opts.id } : {}),
    });
    for (const m of opts.members ?? []) t.members.set(m, Date.now());
    return this.renderChannel(t);
  }

  /** Archives (or unarchives) a thread; dispatched THREAD_UPDATE. */
  archiveThread(threadId: string, archived = true): void {
    const t = this.channels.get(threadId);
    if (!t || !THREAD_TYPES.includes(t.type)) throw new Error(`FakeDiscord: ${threadId} is not a thread`);
    t.archived = archived;
    t.archivedAt = Date.now();
    this.dispatch('THREAD_UPDATE', () => this.renderChannel(t), DiscordIntents.Guilds);
  }

  /** The user closes their DMs (or blocks the bot): every message to their DM channel gets 403 50007. */
  closeDms(userId: string, closed = true): void {
    if (closed) this.closedDms.add(userId);
    else this.closedDms.delete(userId);
  }

  // ---------------------------------------------------------------- test API: customers write

  /** A DM from `user` to the bot: stored in the DM channel's history and dispatched (MESSAGE_CREATE with channel_type 1) to connected sessions. */
  dm(user: string | DiscordUser, input: string | DiscordMessageInput): DiscordMessage {
    const u = this.userOf(user);
    const ch = this.ensureDm(u);
    return this.post(ch, u.id, typeof input === 'string' ? { content: input } : input);
  }

  /** A message from `user` in a guild channel or thread (the user becomes a member); dispatched with guild_id and member. */
  guildMessage(
    channelId: string,
    user: string | DiscordUser,
    input: string | DiscordMessageInput,
  ): DiscordMessage {
    const ch = this.channels.get(channelId);
    if (!ch?.guildId) throw new Error(`FakeDiscord: ${channelId} is not a guild channel or thread`);
    const u = this.userOf(user);
    const g = this.guilds.get(ch.guildId)!;
    if (!g.members.has(u.id)) this.addMember(g, u.id);
    if (THREAD_TYPES.includes(ch.type)) {
      if (!ch.members.has(u.id)) ch.members.set(u.id, Date.now());
      if (ch.archived && !ch.locked) this.archiveThread(ch.id, false);
    }
    return this.post(ch, u.id, typeof input === 'string' ? { content: input } : input);
  }

  /** Edits a stored message (content and/or other fields); dispatched MESSAGE_UPDATE. */
  editMessage(channelId: string, messageId: string, input: string | DiscordMessageInput): DiscordMessage {
    const m = this.stored(channelId, messageId);
    if (!m) throw new Error(`FakeDiscord: no message ${messageId} in ${channelId}`);
    this.applyInput(m, typeof input === 'string' ? { content: input } : input);
    m.editedAt = Date.now();
    this.dispatchMessage('MESSAGE_UPDATE', m);
    return this.renderMessage(m);
  }

  /** Deletes a stored message; dispatched MESSAGE_DELETE. */
  deleteMessage(channelId: string, messageId: string): void {
    const ch = this.channels.get(channelId);
    const i = ch?.messages.findIndex((m) => m.id === messageId) ?? -1;
    if (!ch || i < 0) throw new Error(`FakeDiscord: no message ${messageId} in ${channelId}`);
    const [m] = ch.messages.splice(i, 1);
    // Discord removes a deleted message's files from the CDN: old links and refresh-urls stop working.
    for (const id of m!.attachmentIds) this.attachments.delete(id);
    for (const [hm, sig] of this.signed)
      if (m!.attachmentIds.includes(sig.attachmentId)) this.signed.delete(hm);
    this.dispatch(
      'MESSAGE_DELETE',
      () => ({ id: messageId, channel_id: channelId, ...(ch.guildId ? { guild_id: ch.guildId } : {}) }),
      this.messageIntent(ch),
    );
  }

  /** A channel's history, oldest first (the bot's messages included). */
  messagesIn(channelId: string): DiscordMessage[] {
    return (this.channels.get(channelId)?.messages ?? []).map((m) => this.renderMessage(m));
  }

  /** One stored message; undefined when unknown. */
  message(channelId: string, messageId: string): DiscordMessage | undefined {
    const m = this.stored(channelId, messageId);
    return m ? this.renderMessage(m) : undefined;
  }

  // ---------------------------------------------------------------- test API: what the bot did

  /** Messages the bot created (a nonce repeat is not a new one), oldest first; of one channel when given. */
  delivered(channelId?: string): DiscordBotMessage[] {
    return channelId ? this.botMessages.filter((m) => m.channelId === channelId) : this.botMessages.slice();
  }

  /** REST calls of one route (`POST /channels/:channel/messages`, …). */
  callsTo(route: DiscordRoute): DiscordApiCall[] {
    return this.calls.filter((c) => c.route === route);
  }

  /**
   * Waits until {@link sent} has `count` calls (resolves with them all), or until a sent
   * call matches `predicate` (resolves with it). Rejects after `timeoutMs`.
   */
  waitFor(count: number, timeoutMs?: number): Promise<DiscordApiCall[]>;
  waitFor(predicate: (call: DiscordApiCall) => boolean, timeoutMs?: number): Promise<DiscordApiCall>;
  waitFor(
    what: number | ((call: DiscordApiCall) => boolean),
    timeoutMs = 5_000,
  ): Promise<DiscordApiCall[] | DiscordApiCall> {
    return this.waitUntil(
      () => {
        if (typeof what === 'number') return this.sent.length >= what ? this.sent.slice() : undefined;
        return this.sent.find(what);
      },
      timeoutMs,
      typeof what === 'number' ? `${what} sent calls (have ${this.sent.length})` : 'a matching sent call',
    );
  }

  /** Waits until any REST call matches (and has been answered, unless it stalls). */
  waitForCall(predicate: (call: DiscordApiCall) => boolean, timeoutMs = 5_000): Promise<DiscordApiCall> {
    return this.waitUntil(() => this.calls.find(predicate), timeoutMs, 'a matching call');
  }

  /** Waits until the bot has created `count` messages (in `channelId` when given); resolves with them. */
  waitForDelivered(count: number, channelId?: string, timeoutMs = 5_000): Promise<DiscordBotMessage[]> {
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

  /** The next call of `route` fails with this answer (queue several for several calls). */
  failNext(route: DiscordRoute, spec: DiscordFailureSpec): void {
    const q = this.failures.get(route) ?? [];
    q.push({ ...spec });
    this.failures.set(route, q);
  }

  /** The next call of `route` answers 429 with `retry_after` seconds and the rate-limit headers. */
  rateLimitNext(
    route: DiscordRoute,
    retryAfterSeconds: number,
    opts: Omit<DiscordFailureSpec, 'status' | 'retry_after'> = {},
  ): void {
    this.failNext(route, { ...opts, status: 429, retry_after: retryAfterSeconds });
  }

  /** The next call of `route` is recorded but never answered (processed first with `process: true`): to test timeouts and retries. */
  stallNext(route: DiscordRoute, spec: DiscordStallSpec = {}): void {
    const q = this.stalls.get(route) ?? [];
    q.push(spec);
    this.stalls.set(route, q);
  }

  /** Forgets every scripted failure and stall. */
  clearFailures(): void {
    this.failures.clear();
    this.stalls.clear();
  }

  // ---------------------------------------------------------------- test API: CDN

  /** Registers a file on the CDN under a channel (what a customer's attachment is). */
  addAttachment(channelId: string, input: DiscordAttachmentInput): DiscordAttachment {
    return this.signAttachment(this.storeAttachment(channelId, input));
  }

  /** The bytes of an attachment (a customer's or one the bot uploaded); undefined when unknown. */
  attachmentBytes(attachmentId: string): Buffer | undefined {
    return this.attachments.get(attachmentId)?.bytes;
  }

  /** Every CDN link handed out so far stops working (404), as links do after their `ex`; fresh ones come from refresh-urls or re-reading the message. */
  expireCdnLinks(): void {
    this.signed.clear();
  }

  // ---------------------------------------------------------------- test API: gateway

  /** The sessions, newest last. */
  get gatewaySessions(): GatewaySessionInfo[] {
    return [...this.sessions.values()].map((s) => ({
      id: s.id,
      intents: s.intents,
      seq: s.seq,
      state: s.state,
    }));
  }

  /** Whether some session is connected and identified (or resumed). */
  get connected(): boolean {
    return [...this.sessions.values()].some((s) => s.state === 'live');
  }

  /** The IDENTIFY payloads received. */
  get identifies(): GatewayRecord[] {
    return this.gatewayLog.filter((r) => r.kind === 'identify');
  }

  /** Waits for a gateway record of `kind` (or matching `predicate`) at index `since` or later. */
  waitForGateway(
    what: GatewayRecordKind | ((r: GatewayRecord) => boolean),
    opts: { since?: number; timeoutMs?: number } = {},
  ): Promise<GatewayRecord> {
    const since = opts.since ?? 0;
    const match = typeof what === 'string' ? (r: GatewayRecord) => r.kind === what : what;
    return this.waitUntil(
      () => this.gatewayLog.slice(since).find(match),
      opts.timeoutMs ?? 5_000,
      `gateway ${typeof what === 'string' ? what : 'record'}`,
    );
  }

  /**
   * Closes every live gateway connection. `resumable: true` (code 4000 by default)
   * keeps the session: dispatches meanwhile are kept and replayed on RESUME.
   * `resumable: false` (code 4009 by default; 4007 also works) ends it: a RESUME gets
   * INVALID_SESSION d:false, the client must IDENTIFY afresh, and what happens before
   * that is only in channel history.
   */
  disconnect(opts: { resumable: boolean; code?: number }): void {
    const code = opts.code ?? (opts.resumable ? 4000 : 4009);
    for (const s of this.sessions.values()) {
      if (s.state !== 'live' || !s.conn) continue;
      const conn = s.conn;
      conn.closing = { resumable: opts.resumable, code };
      s.state = opts.resumable ? 'disconnected' : 'invalid';
      s.conn = undefined;
      conn.ws.close(code, opts.resumable ? 'fake: disconnect' : 'fake: session ended');
    }
  }

  /** Cuts the TCP connections without a close frame (the client sees 1006 and resumes). */
  dropConnection(): void {
    for (const c of this.conns) {
      c.closing = { resumable: true, code: 1006 };
      if (c.session?.conn === c) {
        c.session.state = 'disconnected';
        c.session.conn = undefined;
      }
      c.ws.terminate();
    }
  }

  /** Sends op 9 INVALID_SESSION to live connections; `resumable: false` (default) ends their sessions. */
  invalidateSession(resumable = false): void {
    for (const s of this.sessions.values()) {
      if (s.state !== 'live' || !s.conn) continue;
      if (!resumable) s.state = 'invalid';
      this.log({ kind: 'invalid-session', sessionId: s.id, resumable });
      this.send(s.conn, { op: 9, d: resumable, s: null, t: null });
    }
  }

  /** Sends op 7 RECONNECT: the client closes and resumes. */
  requestReconnect(): void {
    for (const s of this.sessions.values()) {
      if (s.state === 'live' && s.conn) this.send(s.conn, { op: 7, d: null, s: null, t: null });
    }
  }

  // ---------------------------------------------------------------- internals: waiting

  private waitUntil<T>(check: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    return this.watchers.until(check, timeoutMs, what);
  }

  private notify(): void {
    this.watchers.notify();
  }

  // ---------------------------------------------------------------- internals: model

  private snowflake(at = Date.now()): string {
    let v = BigInt(snowflakeAt(at));
    if (v <= this.lastSnowflake) v = this.lastSnowflake + 1n;
    this.lastSnowflake = v;
    return v.toString();
  }

  private userOf(user: string | DiscordUser): DiscordUser {
    if (typeof user !== 'string') return this.users.get(user.id) ?? this.user(user.id, user);
    return this.users.get(user) ?? this.user(user);
  }

  private addMember(g: StoredGuild, userId: string): void {
    if (!this.users.has(userId)) this.user(userId);
    g.members.set(userId, Date.now());
  }

  private newChannel(id: string, type: number): StoredChannel {
    return {
      id,
      type,
      members: new Map(),
      archived: false,
      locked: false,
      autoArchive: 4320,
      archivedAt: Date.now(),
      createdAt: Date.now(),
      messages: [],
      messageCount: 0,
    };
  }

  private ensureDm(u: DiscordUser): StoredChannel {
    const existing = this.dmByUser.get(u.id);
    if (existing) return this.channels.get(existing)!;
    const ch: StoredChannel = {
      ...this.newChannel(this.snowflake(), DiscordChannelType.DM),
      recipientId: u.id,
    };
    this.channels.set(ch.id, ch);
    this.dmByUser.set(u.id, ch.id);
    return ch;
  }

  private addThread(
    parent: StoredChannel,
    opts: {
      name: string;
      type: number;
      ownerId: string;
      id?: string;
      invitable?: boolean;
      autoArchive?: number;
    },
  ): StoredChannel {
    const t: StoredChannel = {
      ...this.newChannel(opts.id ?? this.snowflake(), opts.type),
      guildId: parent.guildId!,
      name: opts.name,
      parentId: parent.id,
      ownerId: opts.ownerId,
      ...(opts.type === DiscordChannelType.PrivateThread ? { invitable: opts.invitable ?? true } : {}),
      autoArchive: opts.autoArchive ?? 4320,
    };
    t.members.set(opts.ownerId, Date.now());
    this.channels.set(t.id, t);
    this.dispatch(
      'THREAD_CREATE',
      () => ({ ...this.renderChannel(t), newly_created: true }),
      DiscordIntents.Guilds,
    );
    return t;
  }

  private storeAttachment(channelId: string, input: DiscordAttachmentInput): StoredAttachment {
    const a: StoredAttachment = {
      id: this.snowflake(),
      channelId,
      filename: input.filename,
      bytes: input.bytes,
      extra: {},
    };
    if (input.contentType) a.contentType = input.contentType;
    for (const k of ['width', 'height', 'duration_secs', 'waveform', 'description', 'flags'] as const) {
      if (input[k] !== undefined) (a.extra as Record<string, unknown>)[k] = input[k];
    }
    this.attachments.set(a.id, a);
    return a;
  }

  private post(ch: StoredChannel, authorId: string, input: DiscordMessageInput): DiscordMessage {
    const id = input.id ?? this.snowflake();
    const m: StoredMessage = {
      id,
      channelId: ch.id,
      authorId,
      content: '',
      createdAt: snowflakeTime(id),
      editedAt: null,
      attachmentIds: [],
      mentionIds: [],
      type: 0,
      flags: 0,
      embeds: [],
      extra: {},
    };
    if (ch.guildId) m.guildId = ch.guildId;
    this.applyInput(m, input);
    this.store(ch, m);
    this.dispatchMessage('MESSAGE_CREATE', m);
    return this.renderMessage(m);
  }

  private applyInput(m: StoredMessage, input: DiscordMessageInput): void {
    if (input.content !== undefined) m.content = input.content;
    if (input.attachments)
      m.attachmentIds = input.attachments.map((a) => this.storeAttachment(m.channelId, a).id);
    if (input.sticker_items)
      m.stickers = input.sticker_items.map((s) => ({
        id: s.id ?? this.snowflake(),
        name: s.name,
        format_type: s.format_type ?? 1,
      }));
    if (input.mentions) m.mentionIds = input.mentions.map((u) => this.userOf(u).id);
    if (input.embeds) m.embeds = input.embeds;
    if (input.flags !== undefined) m.flags = input.flags;
    if (input.replyTo) {
      if (!this.stored(m.channelId, input.replyTo))
        throw new Error(`FakeDiscord: replyTo ${input.replyTo} is not in ${m.channelId}`);
      m.referenceId = input.replyTo;
      m.type = 19;
    }
    if (input.fields) Object.assign(m.extra, input.fields);
  }

  private store(ch: StoredChannel, m: StoredMessage): void {
    const big = BigInt(m.id);
    let i = ch.messages.length;
    while (i > 0 && BigInt(ch.messages[i - 1]!.id) > big) i--;
    ch.messages.splice(i, 0, m);
    ch.messageCount++;
  }

  private stored(channelId: string, messageId: string): StoredMessage | undefined {
    return this.channels.get(channelId)?.messages.find((m) => m.id === messageId);
  }

  private messageIntent(ch: StoredChannel): number {
    return ch.type === DiscordChannelType.DM ? DiscordIntents.DirectMessages : DiscordIntents.GuildMessages;
  }

  private dispatchMessage(t: 'MESSAGE_CREATE' | 'MESSAGE_UPDATE', m: StoredMessage): void {
    const ch = this.channels.get(m.channelId)!;
    this.dispatch(
      t,
      (s) => {
        const msg = this.renderMessage(m, {
          member: true,
          stripContent: !(s.intents & DiscordIntents.MessageContent),
        });
        return ch.type === DiscordChannelType.DM ? { ...msg, channel_type: DiscordChannelType.DM } : msg;
      },
      this.messageIntent(ch),
    );
  }

  // ---------------------------------------------------------------- internals: rendering

  private signAttachment(a: StoredAttachment): DiscordAttachment {
    const now = Date.now();
    const expiresAt = now + this.cdnLinkTtlMs;
    const hm = randomBytes(32).toString('hex');
    this.signed.set(hm, { attachmentId: a.id, expiresAt });
    const path = `attachments/${a.channelId}/${a.id}/${encodeURIComponent(a.filename)}`;
    const query = `?ex=${Math.floor(expiresAt / 1000).toString(16)}&is=${Math.floor(now / 1000).toString(16)}&hm=${hm}&`;
    return {
      id: a.id,
      filename: a.filename,
      size: a.bytes.length,
      url: `${this.cdnUrl}/${path}${query}`,
      proxy_url: `${this.origin}/media/${path}${query}`,
      ...(a.contentType ? { content_type: a.contentType } : {}),
      ...a.extra,
    };
  }

  private renderMessage(
    m: StoredMessage,
    opts: { member?: boolean; stripContent?: boolean; nested?: boolean } = {},
  ): DiscordMessage {
    const author = this.users.get(m.authorId)!;
    // Without MessageContent, Discord empties guild messages that neither mention the bot nor are its own.
    const strip =
      opts.stripContent &&
      m.guildId !== undefined &&
      m.authorId !== this.bot.id &&
      !m.mentionIds.includes(this.bot.id);
    const msg: DiscordMessage = {
      id: m.id,
      channel_id: m.channelId,
      ...(m.guildId ? { guild_id: m.guildId } : {}),
      author,
      content: strip ? '' : m.content,
      timestamp: new Date(m.createdAt).toISOString(),
      edited_timestamp: m.editedAt === null ? null : new Date(m.editedAt).toISOString(),
      tts: false,
      mention_everyone: false,
      mentions: m.mentionIds.map((id) => this.users.get(id)!),
      mention_roles: [],
      attachments: strip ? [] : m.attachmentIds.map((id) => this.signAttachment(this.attachments.get(id)!)),
      embeds: strip ? [] : m.embeds,
      components: [],
      pinned: false,
      type: m.type,
      flags: m.flags,
      ...(m.nonce !== undefined ? { nonce: m.nonce } : {}),
      ...(m.stickers ? { sticker_items: m.stickers } : {}),
      ...m.extra,
    };
    if (m.referenceId) {
      msg.message_reference = {
        type: 0,
        message_id: m.referenceId,
        channel_id: m.channelId,
        ...(m.guildId ? { guild_id: m.guildId } : {}),
      };
      const ref = this.stored(m.channelId, m.referenceId);
      if (!opts.nested)
        msg.referenced_message = ref
          ? this.renderMessage(ref, { ...opts, nested: true, member: false })
          : null;
    }
    if (m.threadId) {
      const t = this.channels.get(m.threadId);
      if (t) msg['thread'] = this.renderChannel(t);
    }
    if (opts.member && m.guildId) {
      const joined = this.guilds.get(m.guildId)?.members.get(m.authorId);
      if (joined !== undefined) msg['member'] = renderMember(joined);
    }
    return msg;
  }

  private renderChannel(c: StoredChannel): DiscordChannel {
    const last = c.messages.at(-1)?.id ?? null;
    if (c.type === DiscordChannelType.DM) {
      return {
        id: c.id,
        type: c.type,
        flags: 0,
        last_message_id: last,
        recipients: [this.users.get(c.recipientId!)!],
      };
    }
    const base: DiscordChannel = {
      id: c.id,
      type: c.type,
      flags: 0,
      last_message_id: last,
      guild_id: c.guildId!,
      name: c.name ?? '',
      parent_id: c.parentId ?? null,
      rate_limit_per_user: 0,
    };
    if (!THREAD_TYPES.includes(c.type)) {
      return { ...base, position: 0, permission_overwrites: [], nsfw: false, topic: null };
    }
    return {
      ...base,
      owner_id: c.ownerId!,
      message_count: c.messageCount,
      total_message_sent: c.messageCount,
      member_count: Math.min(50, c.members.size),
      thread_metadata: {
        archived: c.archived,
        auto_archive_duration: c.autoArchive,
        archive_timestamp: new Date(c.archivedAt).toISOString(),
        locked: c.locked,
        ...(c.invitable !== undefined ? { invitable: c.invitable } : {}),
        create_timestamp: new Date(c.createdAt).toISOString(),
      },
    };
  }

  private renderThreadMember(t: StoredChannel, userId: string): Record<string, unknown> {
    return {
      id: t.id,
      user_id: userId,
      join_timestamp: new Date(t.members.get(userId) ?? Date.now()).toISOString(),
      flags: 0,
    };
  }

  private renderGuild(g: StoredGuild, full: boolean): Record<string, unknown> {
    const base: Record<string, unknown> = {
      id: g.id,
      name: g.name,
      icon: null,
      splash: null,
      discovery_splash: null,
      banner: null,
      description: null,
      owner_id: g.ownerId,
      afk_channel_id: null,
      afk_timeout: 300,
      verification_level: 0,
      default_message_notifications: 0,
      explicit_content_filter: 0,
      mfa_level: 0,
      nsfw_level: 0,
      premium_tier: g.premiumTier,
      premium_subscription_count: [0, 2, 7, 14][g.premiumTier] ?? 0,
      preferred_locale: 'en-US',
      system_channel_id: null,
      system_channel_flags: 0,
      rules_channel_id: null,
      public_updates_channel_id: null,
      vanity_url_code: null,
      features: [],
      // @everyone (the guild id) may do everything, so discord.js's permission checks pass.
      roles: [
        {
          id: g.id,
          name: '@everyone',
          color: 0,
          hoist: false,
          position: 0,
          permissions: '2199023255551',
          managed: false,
          mentionable: false,
          flags: 0,
        },
      ],
      emojis: [],
      stickers: [],
      max_members: 500000,
      premium_progress_bar_enabled: false,
    };
    if (!full) return base;
    const channels = g.channelIds.map((id) => this.channels.get(id)!);
    const threads = [...this.channels.values()].filter(
      (c) => c.guildId === g.id && THREAD_TYPES.includes(c.type) && !c.archived,
    );
    return {
      ...base,
      joined_at: new Date(g.members.get(this.bot.id) ?? Date.now()).toISOString(),
      large: false,
      unavailable: false,
      member_count: g.members.size,
      members: [{ ...renderMember(g.members.get(this.bot.id) ?? Date.now()), user: this.bot }],
      channels: channels.map((c) => {
        const { guild_id: _omit, ...rest } = this.renderChannel(c);
        return rest;
      }),
      threads: threads.map((t) => this.renderChannel(t)),
      voice_states: [],
      presences: [],
      stage_instances: [],
      guild_scheduled_events: [],
      soundboard_sounds: [],
    };
  }

  private uploadLimitFor(ch: StoredChannel): number {
    const tier = ch.guildId ? (this.guilds.get(ch.guildId)?.premiumTier ?? 0) : 0;
    return tier >= 3 ? 100 * MiB : tier === 2 ? 50 * MiB : this.uploadLimitBytes;
  }

  // ---------------------------------------------------------------- the HTTP server

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (url.pathname.startsWith('/cdn/') || url.pathname.startsWith('/media/')) {
      req.resume();
      return this.serveCdn(req, res, url);
    }
    const api = /^\/api\/v(\d+)(\/.*)$/.exec(url.pathname);
    if (!api) {
      req.resume();
      return json(res, 404, { message: '404: Not Found', code: 0 });
    }
    const call = await readCall(req, url, api[2]!);
    const match = ROUTES.find((r) => r.method === call.method && r.re.test(call.path));
    if (match) {
      call.route = match.route;
      const m = match.re.exec(call.path)!;
      match.names.forEach((n, i) => {
        call.params[n] = m[i + 1]!;
      });
    }
    const auth = req.headers['authorization'] ?? '';
    call.authorized = auth === `Bot ${this.token}`;
    this.calls.push(call);
    if (call.route !== 'GET /gateway' && !call.authorized) {
      return this.answer(res, call, new Failure(401, { message: '401: Unauthorized', code: 0 }));
    }
    if (api[1] !== '10') {
      return this.answer(res, call, new Failure(400, { message: '400: Bad Request', code: 0 }));
    }
    if (call.route === 'POST /channels/:channel/messages') this.sent.push(call);
    if (call.route === 'unknown') {
      return this.answer(res, call, new Failure(404, { message: '404: Not Found', code: 0 }));
    }
    if (call.encoding === 'other') {
      return this.answer(
        res,
        call,
        new Failure(400, { message: 'The request body contains invalid JSON.', code: 50109 }),
      );
    }

    const stall = takeScripted(this.stalls.get(call.route), call);
    if (stall) {
      if (stall.process) this.route(call);
      this.notify();
      return; // never answered; close() ends the connection
    }
    const failure = takeScripted(this.failures.get(call.route), call);
    if (failure) return this.answer(res, call, failureOf(failure, call.route));
    return this.answer(res, call, this.route(call));
  }

  private answer(res: ServerResponse, call: DiscordApiCall, result: Answer | Failure): void {
    if (result instanceof Failure) {
      call.status = result.status;
      json(res, result.status, result.body, result.headers);
    } else {
      call.status = result.status;
      if (result.body === undefined) {
        res.writeHead(result.status);
        res.end();
      } else json(res, result.status, result.body);
    }
    this.notify();
  }

  private route(call: DiscordApiCall): Answer | Failure {
    const p = call.params;
    const body = (call.body ?? {}) as Record<string, unknown>;
    switch (call.route) {
      case 'GET /gateway':
        return ok({ url: this.gatewayUrl });
      case 'GET /gateway/bot': {
        const used = this.identifies.length;
        return ok({
          url: this.gatewayUrl,
          shards: 1,
          session_start_limit: {
            total: 1000,
            remaining: Math.max(0, 1000 - used),
            reset_after: 86_400_000,
            max_concurrency: 1,
          },
        });
      }
      case 'GET /users/@me':
        return ok({ ...this.bot, flags: 0, mfa_enabled: false, verified: true });
      case 'GET /users/:user': {
        const u = this.users.get(p['user']!);
        return u ? ok(u) : fail(404, 10013, 'Unknown User');
      }
      case 'POST /users/@me/channels': {
        const u = this.users.get(String(body['recipient_id'] ?? ''));
        if (!u || u.id === this.bot.id) return fail(400, 50033, 'Invalid Recipient(s)');
        return ok(this.renderChannel(this.ensureDm(u)));
      }
      case 'GET /channels/:channel': {
        const c = this.channels.get(p['channel']!);
        return c ? ok(this.renderChannel(c)) : fail(404, 10003, 'Unknown Channel');
      }
      case 'DELETE /channels/:channel': {
        const c = this.channels.get(p['channel']!);
        if (!c) return fail(404, 10003, 'Unknown Channel');
        if (c.type === DiscordChannelType.DM)
          return fail(400, 50003, 'Cannot execute action on a DM channel');
        const rendered = this.renderChannel(c);
        this.channels.delete(c.id);
        if (c.guildId) {
          const g = this.guilds.get(c.guildId);
          if (g) g.channelIds = g.channelIds.filter((id) => id !== c.id);
        }
        const thread = THREAD_TYPES.includes(c.type);
        this.dispatch(
          thread ? 'THREAD_DELETE' : 'CHANNEL_DELETE',
          () =>
            thread
              ? { id: c.id, guild_id: c.guildId, parent_id: c.parentId ?? null, type: c.type }
              : rendered,
          DiscordIntents.Guilds,
        );
        return ok(rendered);
      }
      case 'GET /applications/@me':
        return ok({
          id: this.applicationId,
          name: this.bot.username,
          bot_public: true,
          bot_require_code_grant: false,
          // GATEWAY_PRESENCE, GATEWAY_GUILD_MEMBERS, GATEWAY_MESSAGE_CONTENT as switched on in the portal.
          flags:
            (this.privilegedIntents & DiscordIntents.GuildPresences ? 1 << 12 : 0) |
            (this.privilegedIntents & DiscordIntents.GuildMembers ? 1 << 14 : 0) |
            (this.privilegedIntents & DiscordIntents.MessageContent ? 1 << 18 : 0),
        });
      case 'GET /channels/:channel/messages':
        return this.listMessages(call);
      case 'POST /channels/:channel/messages':
        return this.createMessage(call);
      case 'GET /channels/:channel/messages/:message': {
        const c = this.channels.get(p['channel']!);
        if (!c) return fail(404, 10003, 'Unknown Channel');
        const m = this.stored(c.id, p['message']!);
        return m
          ? ok(this.renderMessage(m, { stripContent: this.noContent() }))
          : fail(404, 10008, 'Unknown Message');
      }
      case 'PATCH /channels/:channel/messages/:message': {
        const m = this.stored(p['channel']!, p['message']!);
        if (!m) return fail(404, 10008, 'Unknown Message');
        if (m.authorId !== this.bot.id)
          return fail(403, 50005, 'Cannot edit a message authored by another user');
        if (typeof body['content'] === 'string') {
          if (body['content'].length > 2000) return tooLong();
          m.content = body['content'];
        }
        m.editedAt = Date.now();
        this.dispatchMessage('MESSAGE_UPDATE', m);
        return ok(this.renderMessage(m));
      }
      case 'DELETE /channels/:channel/messages/:message': {
        const c = this.channels.get(p['channel']!);
        if (!c) return fail(404, 10003, 'Unknown Channel');
        if (!this.stored(c.id, p['message']!)) return fail(404, 10008, 'Unknown Message');
        this.deleteMessage(c.id, p['message']!);
        return { status: 204 };
      }
      case 'POST /channels/:channel/typing':
        return this.channels.has(p['channel']!) ? { status: 204 } : fail(404, 10003, 'Unknown Channel');
      case 'POST /channels/:channel/threads':
      case 'POST /channels/:channel/messages/:message/threads':
        return this.startThread(call);
      case 'PUT /channels/:channel/thread-members/:user':
      case 'GET /channels/:channel/thread-members/:user':
      case 'DELETE /channels/:channel/thread-members/:user': {
        const t = this.channels.get(p['channel']!);
        if (!t) return fail(404, 10003, 'Unknown Channel');
        if (!THREAD_TYPES.includes(t.type))
          return fail(400, 50024, 'Cannot execute action on this channel type');
        const userId = p['user'] === '@me' ? this.bot.id : p['user']!;
        if (!this.users.has(userId)) return fail(404, 10013, 'Unknown User');
        if (call.method === 'GET') {
          return t.members.has(userId)
            ? ok(this.renderThreadMember(t, userId))
            : fail(404, 10033, 'Unknown Member');
        }
        if (call.method === 'PUT') {
          if (t.archived) return fail(400, 50083, 'Thread is archived');
          if (!t.members.has(userId)) {
            t.members.set(userId, Date.now());
            this.dispatch(
              'THREAD_MEMBERS_UPDATE',
              () => ({
                id: t.id,
                guild_id: t.guildId,
                member_count: t.members.size,
                added_members: [this.renderThreadMember(t, userId)],
              }),
              DiscordIntents.GuildMembers,
            );
          }
        } else t.members.delete(userId);
        return { status: 204 };
      }
      case 'GET /channels/:channel/threads/archived/private':
      case 'GET /channels/:channel/threads/archived/public': {
        const parent = this.channels.get(p['channel']!);
        if (!parent) return fail(404, 10003, 'Unknown Channel');
        const type = call.route.endsWith('private')
          ? [DiscordChannelType.PrivateThread]
          : [DiscordChannelType.PublicThread, DiscordChannelType.AnnouncementThread];
        const threads = [...this.channels.values()]
          .filter((c) => c.parentId === parent.id && c.archived && (type as number[]).includes(c.type))
          .sort((a, b) => b.archivedAt - a.archivedAt);
        return ok({
          threads: threads.map((t) => this.renderChannel(t)),
          members: threads
            .filter((t) => t.members.has(this.bot.id))
            .map((t) => this.renderThreadMember(t, this.bot.id)),
          has_more: false,
        });
      }
      case 'GET /guilds/:guild': {
        const g = this.guilds.get(p['guild']!);
        if (!g) return fail(404, 10004, 'Unknown Guild');
        const counts =
          call.query['with_counts'] === 'true'
            ? { approximate_member_count: g.members.size, approximate_presence_count: 0 }
            : {};
        return ok({ ...this.renderGuild(g, false), ...counts });
      }
      case 'GET /guilds/:guild/channels': {
        const g = this.guilds.get(p['guild']!);
        if (!g) return fail(404, 10004, 'Unknown Guild');
        return ok(g.channelIds.map((id) => this.renderChannel(this.channels.get(id)!)));
      }
      case 'GET /guilds/:guild/threads/active': {
        const g = this.guilds.get(p['guild']!);
        if (!g) return fail(404, 10004, 'Unknown Guild');
        const threads = [...this.channels.values()].filter(
          (c) => c.guildId === g.id && THREAD_TYPES.includes(c.type) && !c.archived,
        );
        return ok({
          threads: threads.map((t) => this.renderChannel(t)),
          members: threads
            .filter((t) => t.members.has(this.bot.id))
            .map((t) => this.renderThreadMember(t, this.bot.id)),
        });
      }
      case 'GET /guilds/:guild/members/:user': {
        const g = this.guilds.get(p['guild']!);
        if (!g) return fail(404, 10004, 'Unknown Guild');
        const joined = g.members.get(p['user']!);
        if (joined === undefined) return fail(404, 10007, 'Unknown Member');
        return ok({ ...renderMember(joined), user: this.users.get(p['user']!) });
      }
      case 'POST /attachments/refresh-urls':
        return this.refreshUrls(body);
      default:
        return fail(404, 0, '404: Not Found');
    }
  }

  private noContent(): boolean {
    return !(this.privilegedIntents & DiscordIntents.MessageContent);
  }

  private listMessages(call: DiscordApiCall): Answer | Failure {
    const c = this.channels.get(call.params['channel']!);
    if (!c) return fail(404, 10003, 'Unknown Channel');
    const q = call.query;
    const limit = q['limit'] === undefined ? 50 : Number(q['limit']);
    if (!Number.isInteger(limit) || limit < 1 || limit > 100) {
      return fail(400, 50035, 'Invalid Form Body', {
        errors: { limit: { _errors: [{ code: 'NUMBER_TYPE_MAX', message: 'int value should be <= 100.' }] } },
      });
    }
    const all = c.messages;
    let picked: StoredMessage[];
    if (q['after'] !== undefined) {
      const after = BigInt(q['after']);
      picked = all.filter((m) => BigInt(m.id) > after).slice(0, limit);
    } else if (q['before'] !== undefined) {
      const before = BigInt(q['before']);
      picked = all.filter((m) => BigInt(m.id) < before).slice(-limit);
    } else if (q['around'] !== undefined) {
      const around = BigInt(q['around']);
      const i = all.findIndex((m) => BigInt(m.id) >= around);
      const at = i < 0 ? all.length : i;
      const start = Math.max(0, at - Math.floor(limit / 2));
      picked = all.slice(start, start + limit);
    } else picked = all.slice(-limit);
    // Discord answers newest first, whichever way the window was chosen.
    return ok(
      picked
        .slice()
        .reverse()
        .map((m) => this.renderMessage(m, { stripContent: this.noContent() })),
    );
  }

  private createMessage(call: DiscordApiCall): Answer | Failure {
    const c = this.channels.get(call.params['channel']!);
    if (!c) return fail(404, 10003, 'Unknown Channel');
    if (c.type !== DiscordChannelType.DM && !c.guildId)
      return fail(400, 50008, 'Cannot send messages in a non-text channel');
    const body = (call.body ?? {}) as Record<string, unknown>;
    const content = body['content'] === undefined || body['content'] === null ? '' : String(body['content']);
    if (content.length > 2000) return tooLong();
    const nonce = body['nonce'] as string | number | undefined;
    if (
      nonce !== undefined &&
      nonce !== null &&
      !(typeof nonce === 'string' ? nonce.length <= 25 : Number.isInteger(nonce))
    ) {
      return fail(400, 50035, 'Invalid Form Body', {
        errors: {
          nonce: { _errors: [{ code: 'BASE_TYPE_BAD_LENGTH', message: 'Must be 25 or fewer in length.' }] },
        },
      });
    }
    if (c.type === DiscordChannelType.DM && this.closedDms.has(c.recipientId!)) {
      return fail(403, 50007, 'Cannot send messages to this user');
    }
    if (THREAD_TYPES.includes(c.type) && c.locked) return fail(403, 50083, 'Thread is locked');
    const limit = this.uploadLimitFor(c);
    if (call.files.some((f) => f.bytes.length > limit)) return fail(413, 40005, 'Request entity too large');
    const stickers = Array.isArray(body['sticker_ids']) ? (body['sticker_ids'] as string[]) : [];
    const embeds = Array.isArray(body['embeds']) ? body['embeds'] : [];
    if (!content.trim() && !call.files.length && !stickers.length && !embeds.length) {
      return fail(400, 50006, 'Cannot send an empty message');
    }
    const ref = body['message_reference'] as
      | { message_id?: string; channel_id?: string; fail_if_not_exists?: boolean }
      | undefined;
    let referenceId: string | undefined;
    if (ref?.message_id) {
      const found = this.stored(ref.channel_id ?? c.id, ref.message_id);
      if (found) referenceId = found.id;
      else if (ref.fail_if_not_exists !== false) {
        return fail(400, 50035, 'Invalid Form Body', {
          errors: {
            message_reference: {
              _errors: [{ code: 'MESSAGE_REFERENCE_UNKNOWN_MESSAGE', message: 'Unknown message' }],
            },
          },
        });
      }
    }
    const enforce = body['enforce_nonce'] === true || body['enforce_nonce'] === 'true';
    const key = nonce !== undefined && nonce !== null ? `${c.id}:${String(nonce)}` : undefined;
    if (key && enforce) {
      const prev = this.nonces.get(key);
      if (prev && Date.now() - prev.at < this.nonceWindowMs) {
        const m = this.stored(prev.channelId, prev.messageId);
        if (m) return ok(this.renderMessage(m));
      }
    }
    if (THREAD_TYPES.includes(c.type) && c.archived) {
      c.archived = false;
      c.archivedAt = Date.now();
      this.dispatch('THREAD_UPDATE', () => this.renderChannel(c), DiscordIntents.Guilds);
    }

    const payloadAttachments = Array.isArray(body['attachments'])
      ? (body['attachments'] as { id?: string | number; filename?: string; description?: string }[])
      : [];
    const id = this.snowflake();
    const m: StoredMessage = {
      id,
      channelId: c.id,
      authorId: this.bot.id,
      content,
      createdAt: snowflakeTime(id),
      editedAt: null,
      attachmentIds: [],
      mentionIds: [],
      type: referenceId ? 19 : 0,
      flags: typeof body['flags'] === 'number' ? body['flags'] : 0,
      embeds,
      extra: {},
    };
    if (c.guildId) m.guildId = c.guildId;
    if (referenceId) m.referenceId = referenceId;
    if (nonce !== undefined && nonce !== null) m.nonce = nonce;
    for (const f of call.files) {
      const meta = payloadAttachments.find((a) => String(a.id) === String(f.index));
      if (meta?.description) f.description = meta.description;
      const a = this.storeAttachment(c.id, {
        filename: meta?.filename ?? f.fileName ?? `file${f.index}`,
        bytes: f.bytes,
        ...(f.contentType ? { contentType: f.contentType } : {}),
        ...(meta?.description ? { description: meta.description } : {}),
      });
      m.attachmentIds.push(a.id);
    }
    this.store(c, m);
    if (key) this.nonces.set(key, { at: Date.now(), messageId: m.id, channelId: c.id });
    const rendered = this.renderMessage(m);
    this.botMessages.push({
      channelId: c.id,
      content,
      ...(m.nonce !== undefined ? { nonce: m.nonce } : {}),
      files: call.files,
      message: rendered,
      call,
    });
    this.dispatchMessage('MESSAGE_CREATE', m);
    return ok(rendered);
  }

  private startThread(call: DiscordApiCall): Answer | Failure {
    const parent = this.channels.get(call.params['channel']!);
    if (!parent) return fail(404, 10003, 'Unknown Channel');
    if (
      !parent.guildId ||
      (parent.type !== DiscordChannelType.GuildText && parent.type !== DiscordChannelType.GuildAnnouncement)
    ) {
      return fail(400, 50024, 'Cannot execute action on this channel type');
    }
    const body = (call.body ?? {}) as Record<string, unknown>;
    const name = typeof body['name'] === 'string' ? body['name'] : '';
    if (!name || name.length > 100) {
      return fail(400, 50035, 'Invalid Form Body', {
        errors: {
          name: {
            _errors: [{ code: 'BASE_TYPE_BAD_LENGTH', message: 'Must be between 1 and 100 in length.' }],
          },
        },
      });
    }
    const auto = typeof body['auto_archive_duration'] === 'number' ? body['auto_archive_duration'] : 4320;
    const fromMessage = call.params['message'];
    let type: number;
    if (fromMessage) {
      const m = this.stored(parent.id, fromMessage);
      if (!m) return fail(404, 10008, 'Unknown Message');
      if (m.threadId) return fail(400, 160004, 'A thread has already been created for this message');
      type =
        parent.type === DiscordChannelType.GuildAnnouncement
          ? DiscordChannelType.AnnouncementThread
          : DiscordChannelType.PublicThread;
      const t = this.addThread(parent, { name, type, ownerId: this.bot.id, id: m.id, autoArchive: auto });
      m.threadId = t.id;
      return ok({ ...this.renderChannel(t), member: this.renderThreadMember(t, this.bot.id) });
    }
    type = typeof body['type'] === 'number' ? body['type'] : DiscordChannelType.PrivateThread;
    if (!THREAD_TYPES.includes(type)) {
      return fail(400, 50035, 'Invalid Form Body', {
        errors: {
          type: { _errors: [{ code: 'BASE_TYPE_CHOICES', message: 'Value must be one of {10, 11, 12}.' }] },
        },
      });
    }
    const t = this.addThread(parent, {
      name,
      type,
      ownerId: this.bot.id,
      autoArchive: auto,
      ...(typeof body['invitable'] === 'boolean' ? { invitable: body['invitable'] } : {}),
    });
    return ok({ ...this.renderChannel(t), member: this.renderThreadMember(t, this.bot.id) });
  }

  private refreshUrls(body: Record<string, unknown>): Answer | Failure {
    const urls = body['attachment_urls'];
    if (!Array.isArray(urls) || urls.length === 0 || urls.length > 50) {
      return fail(400, 50035, 'Invalid Form Body', {
        errors: {
          attachment_urls: {
            _errors: [{ code: 'BASE_TYPE_BAD_LENGTH', message: 'Must be between 1 and 50 in length.' }],
          },
        },
      });
    }
    const refreshed_urls = urls.map((original: unknown) => {
      const s = String(original);
      const a = this.attachmentOfUrl(s);
      if (!a) return { original: s, refreshed: s };
      const fresh = this.signAttachment(a);
      return { original: s, refreshed: s.includes('/media/') ? fresh.proxy_url : fresh.url };
    });
    return ok({ refreshed_urls });
  }

  private attachmentOfUrl(s: string): StoredAttachment | undefined {
    let path: string;
    try {
      path = new URL(s).pathname;
    } catch {
      return undefined;
    }
    const m = /^\/(?:cdn|media)\/attachments\/(\d+)\/(\d+)\/([^/]+)$/.exec(path);
    if (!m) return undefined;
    const a = this.attachments.get(m[2]!);
    if (!a || a.channelId !== m[1] || a.filename !== safeDecode(m[3]!)) return undefined;
    return a;
  }

  private serveCdn(req: IncomingMessage, res: ServerResponse, url: URL): void {
    const record = (status: number) => {
      this.cdnCalls.push({ path: url.pathname + url.search, status, at: Date.now() });
      this.notify();
    };
    const path = url.pathname;
    const gone = () => {
      record(404);
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(req.method === 'HEAD' ? undefined : GONE_TEXT);
    };
    const att = /^\/(?:cdn|media)\/attachments\/\d+\/\d+\/[^/]+$/.test(path)
      ? this.attachmentOfUrl(url.href)
      : null;
    if (att !== null) {
      const hm = url.searchParams.get('hm') ?? '';
      const sig = this.signed.get(hm);
      if (!att || !sig || sig.attachmentId !== att.id || Date.now() >= sig.expiresAt) {
        gone();
        return;
      }
      sendBytes(req, res, att.bytes, att.contentType ?? 'application/octet-stream', record);
      return;
    }
    const avatar = /^\/cdn\/avatars\/(\d+)\/([A-Za-z0-9_]+)\.(png|webp|jpg|jpeg|gif)$/.exec(path);
    if (avatar) {
      const u = this.users.get(avatar[1]!);
      if (!u || u.avatar !== avatar[2]) {
        gone();
        return;
      }
      const bytes = this.avatars.get(`${u.id}/${u.avatar}`) ?? PLACEHOLDER_PNG;
      sendBytes(req, res, bytes, `image/${avatar[3] === 'jpg' ? 'jpeg' : avatar[3]}`, record);
      return;
    }
    if (/^\/cdn\/(embed\/avatars\/\d+|stickers\/\d+|emojis\/\d+)\.(png|webp|gif|jpg)$/.test(path)) {
      sendBytes(req, res, PLACEHOLDER_PNG, 'image/png', record);
      return;
    }
    gone();
  }

  // ---------------------------------------------------------------- the gateway

  private log(r: Omit<GatewayRecord, 'index' | 'at'>): void {
    this.gatewayLog.push({ ...r, index: this.gatewayLog.length, at: Date.now() });
    this.notify();
  }

  private send(conn: Conn, payload: GatewayPayload): void {
    if (conn.ws.readyState === conn.ws.OPEN) conn.ws.send(JSON.stringify(payload));
  }

  private closeConn(conn: Conn, code: number, reason: string): void {
    conn.closing = { resumable: false, code };
    if (conn.session?.conn === conn) {
      conn.session.state = 'invalid';
      conn.session.conn = undefined;
    }
    conn.ws.close(code, reason);
  }

  private onConnection(ws: WebSocket, url: string): void {
    const conn: Conn = { ws };
    this.conns.add(conn);
    this.log({ kind: 'open', url });
    ws.on('message', (data: Buffer, isBinary: boolean) => this.onGatewayMessage(conn, data, isBinary));
    ws.on('close', (code: number) => {
      this.conns.delete(conn);
      const s = conn.session;
      if (s && s.conn === conn) {
        s.conn = undefined;
        // A client closing with 1000/1001 ends its session; any other code keeps it resumable.
        s.state = code === 1000 || code === 1001 ? 'invalid' : 'disconnected';
      }
      this.log({
        kind: 'close',
        code: conn.closing?.code ?? code,
        by: conn.closing ? 'server' : 'client',
        ...(s ? { sessionId: s.id } : {}),
      });
    });
    ws.on('error', () => {});
    this.send(conn, { op: 10, d: { heartbeat_interval: this.heartbeatIntervalMs }, s: null, t: null });
  }

  private onGatewayMessage(conn: Conn, data: Buffer, isBinary: boolean): void {
    if (conn.closing) return;
    let payload: { op?: unknown; d?: unknown };
    try {
      if (isBinary) throw new Error('etf/compressed payloads are not supported');
      payload = JSON.parse(data.toString('utf8')) as { op?: unknown; d?: unknown };
    } catch {
      this.closeConn(conn, 4002, 'Error while decoding payload.');
      return;
    }
    const d = (payload.d ?? {}) as Record<string, unknown>;
    switch (payload.op) {
      case 1: {
        this.log({
          kind: 'heartbeat',
          ...(typeof payload.d === 'number' ? { seq: payload.d } : {}),
          ...(conn.session ? { sessionId: conn.session.id } : {}),
        });
        if (this.ackHeartbeats) this.send(conn, { op: 11, d: null, s: null, t: null });
        return;
      }
      case 2:
        this.identify(conn, d);
        return;
      case 6:
        this.resume(conn, d);
        return;
      case 3:
      case 4:
      case 8:
      case 31:
        if (!conn.session) {
          this.closeConn(conn, 4003, 'Not authenticated.');
          return;
        }
        this.log({
          kind: 'receive',
          op: payload.op as number,
          payload: payload.d,
          sessionId: conn.session.id,
        });
        return;
      default:
        this.closeConn(conn, 4001, 'Unknown opcode.');
        return;
    }
  }

  private identify(conn: Conn, d: Record<string, unknown>): void {
    const token = String(d['token'] ?? '').replace(/^Bot\s+/i, '');
    const intents = d['intents'];
    this.log({
      kind: 'identify',
      token,
      ...(typeof intents === 'number' ? { intents } : {}),
      payload: d,
    });
    if (conn.session) {
      this.closeConn(conn, 4005, 'Already authenticated.');
      return;
    }
    if (token !== this.token) {
      this.closeConn(conn, 4004, 'Authentication failed.');
      return;
    }
    if (typeof intents !== 'number' || !Number.isInteger(intents) || intents < 0 || intents >= 1 << 26) {
      this.closeConn(conn, 4013, 'Invalid intent(s).');
      return;
    }
    const shard = d['shard'];
    if (Array.isArray(shard) && (shard[0] !== 0 || shard[1] !== 1)) {
      this.closeConn(conn, 4010, 'Invalid shard.');
      return;
    }
    if (intents & PRIVILEGED_INTENTS & ~this.privilegedIntents) {
      this.closeConn(conn, 4014, 'Disallowed intent(s).');
      return;
    }
    const session: Session = {
      id: randomBytes(16).toString('hex'),
      token,
      intents,
      seq: 0,
      state: 'live',
      conn,
      buffer: [],
    };
    this.sessions.set(session.id, session);
    conn.session = session;
    const guilds = [...this.guilds.values()];
    this.push(session, 'READY', {
      v: 10,
      user: { ...this.bot, flags: 0, mfa_enabled: false, verified: true },
      guilds: guilds.map((g) => ({ id: g.id, unavailable: true })),
      session_id: session.id,
      session_type: 'normal',
      resume_gateway_url: this.resumeGatewayUrl,
      shard: [0, 1],
      application: { id: this.applicationId, flags: 0 },
      private_channels: [],
      presences: [],
      relationships: [],
      guild_join_requests: [],
      geo_ordered_rtc_regions: [],
      user_settings: {},
      auth: {},
    });
    this.log({ kind: 'ready', sessionId: session.id, seq: session.seq });
    if (intents & DiscordIntents.Guilds) {
      for (const g of guilds) this.push(session, 'GUILD_CREATE', this.renderGuild(g, true));
    }
  }

  private resume(conn: Conn, d: Record<string, unknown>): void {
    const token = String(d['token'] ?? '').replace(/^Bot\s+/i, '');
    const sessionId = String(d['session_id'] ?? '');
    const seq = Number(d['seq'] ?? 0);
    this.log({ kind: 'resume', sessionId, seq });
    if (token !== this.token) {
      this.closeConn(conn, 4004, 'Authentication failed.');
      return;
    }
    const s = this.sessions.get(sessionId);
    if (conn.session && conn.session !== s) {
      this.closeConn(conn, 4005, 'Already authenticated.');
      return;
    }
    const first = s?.buffer[0]?.s ?? (s ? s.seq + 1 : 0);
    if (!s || s.state === 'invalid' || seq > s.seq || seq < first - 1) {
      if (s) s.state = 'invalid';
      this.log({ kind: 'invalid-session', sessionId, resumable: false });
      this.send(conn, { op: 9, d: false, s: null, t: null });
      return;
    }
    if (s.conn && s.conn !== conn) {
      s.conn.closing = { resumable: true, code: 4000 };
      s.conn.ws.close(4000, 'fake: session resumed elsewhere');
    }
    s.conn = conn;
    s.state = 'live';
    conn.session = s;
    const missed = s.buffer.filter((p) => (p.s ?? 0) > seq);
    for (const p of missed) this.send(conn, p);
    this.push(s, 'RESUMED', {});
    this.log({ kind: 'resumed', sessionId: s.id, seq: s.seq, replayed: missed.length });
  }

  /** Numbers a dispatch for a session, keeps it for RESUME, sends it when connected. */
  private push(s: Session, t: string, d: unknown): void {
    const payload: GatewayPayload = { op: 0, t, s: ++s.seq, d };
    s.buffer.push(payload);
    if (s.buffer.length > 1000) s.buffer.shift();
    const live = s.state === 'live' && s.conn !== undefined;
    if (live) this.send(s.conn!, payload);
    if (t !== 'READY' && t !== 'RESUMED') {
      this.log({ kind: 'dispatch', t, seq: payload.s!, sessionId: s.id, delivered: live });
    }
  }

  /** A dispatch to every session that has one of the `intents` (0: every session); invalid sessions miss it. */
  private dispatch(t: string, d: (s: Session) => unknown, intents: number): void {
    for (const s of this.sessions.values()) {
      if (s.state === 'invalid') continue;
      if (intents && !(s.intents & intents)) continue;
      this.push(s, t, d(s));
    }
  }
}

// ---------------------------------------------------------------- helpers

function ok(body: unknown): Answer {
  return { status: 200, body };
}

function fail(status: number, code: number, message: string, extra: Record<string, unknown> = {}): Failure {
  return new Failure(status, { message, code, ...extra });
}

function tooLong(): Failure {
  return fail(400, 50035, 'Invalid Form Body', {
    errors: {
      content: { _errors: [{ code: 'BASE_TYPE_MAX_LENGTH', message: 'Must be 2000 or fewer in length.' }] },
    },
  });
}

function renderMember(joinedAt: number): Record<string, unknown> {
  return {
    roles: [],
    nick: null,
    avatar: null,
    premium_since: null,
    joined_at: new Date(joinedAt).toISOString(),
    pending: false,
    deaf: false,
    mute: false,
    flags: 0,
    communication_disabled_until: null,
  };
}

/** Takes the first scripted entry whose `when` accepts the call, honouring afterCalls. */
function takeScripted<T extends { when?: (c: DiscordApiCall) => boolean; afterCalls?: number }>(
  queue: T[] | undefined,
  call: DiscordApiCall,
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

function failureOf(spec: DiscordFailureSpec, route: string): Failure {
  if (spec.status === 429) {
    const retryAfter = spec.retry_after ?? 1;
    const scope = spec.scope ?? (spec.global ? 'global' : 'user');
    const headers: Record<string, string> = {
      'retry-after': String(retryAfter),
      'x-ratelimit-limit': '5',
      'x-ratelimit-remaining': '0',
      'x-ratelimit-reset': ((Date.now() + retryAfter * 1000) / 1000).toFixed(3),
      'x-ratelimit-reset-after': String(retryAfter),
      'x-ratelimit-bucket': createHash('sha1').update(route).digest('hex').slice(0, 32),
      'x-ratelimit-scope': scope,
      ...(spec.global ? { 'x-ratelimit-global': 'true' } : {}),
    };
    return new Failure(
      429,
      {
        message: spec.message ?? 'You are being rate limited.',
        retry_after: retryAfter,
        global: spec.global ?? false,
        ...(spec.code !== undefined ? { code: spec.code } : {}),
        ...spec.body,
      },
      headers,
    );
  }
  const message =
    spec.message ??
    (spec.status >= 500
      ? `${spec.status}: ${spec.status === 502 ? 'Bad Gateway' : 'Internal Server Error'}`
      : 'Error');
  return new Failure(spec.status, { message, code: spec.code ?? 0, ...spec.body });
}

function json(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  if (res.writableEnded || res.destroyed) return;
  const s = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(s),
    ...headers,
  });
  res.end(s);
}

function sendBytes(
  req: IncomingMessage,
  res: ServerResponse,
  bytes: Buffer,
  contentType: string,
  record: (status: number) => void,
): void {
  const range = /^bytes=(\d*)-(\d*)$/.exec(req.headers['range'] ?? '');
  let body = bytes;
  let status = 200;
  const headers: Record<string, string | number> = { 'content-type': contentType, 'accept-ranges': 'bytes' };
  if (range && (range[1] || range[2])) {
    const size = bytes.length;
    let start = range[1] ? Number(range[1]) : size - Number(range[2]);
    let end = range[1] && range[2] ? Number(range[2]) : size - 1;
    start = Math.max(0, start);
    end = Math.min(size - 1, end);
    if (start > end || start >= size) {
      record(416);
      res.writeHead(416, { 'content-range': `bytes */${size}` });
      res.end();
      return;
    }
    body = bytes.subarray(start, end + 1);
    status = 206;
    headers['content-range'] = `bytes ${start}-${end}/${size}`;
  }
  headers['content-length'] = body.length;
  record(status);
  res.writeHead(status, headers);
  res.end(req.method === 'HEAD' ? undefined : body);
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

async function readCall(req: IncomingMessage, url: URL, path: string): Promise<DiscordApiCall> {
  const at = Date.now();
  const chunks: Buffer[] = [];
  for await (const c of req as AsyncIterable<Buffer>) chunks.push(c);
  const raw = Buffer.concat(chunks);
  const type = req.headers['content-type'] ?? '';
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) {
    if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(', ') : v;
  }
  const query: Record<string, string> = {};
  for (const [k, v] of url.searchParams) query[k] = v;
  const call: DiscordApiCall = {
    method: (req.method ?? 'GET').toUpperCase(),
    route: 'unknown',
    path,
    params: {},
    query,
    body: undefined,
    files: [],
    encoding: 'none',
    headers,
    authorized: false,
    at,
  };
  if (!raw.length) return call;
  if (multipartBoundary(type)) {
    call.encoding = 'multipart';
    try {
      const parsed = parseMultipart(raw, type);
      const fields: Record<string, unknown> = { ...parsed.fields };
      if (typeof parsed.fields['payload_json'] === 'string') {
        call.body = JSON.parse(parsed.fields['payload_json']);
      } else call.body = fields;
      call.files = parsed.files.map((f) => {
        const n = /^files\[(\d+)\]$/.exec(f.name);
        return {
          field: f.name,
          index: n ? Number(n[1]) : -1,
          headers: f.headers,
          bytes: Buffer.from(f.data),
          ...(f.fileName !== undefined ? { fileName: f.fileName } : {}),
          ...(f.contentType ? { contentType: f.contentType } : {}),
        };
      });
    } catch {
      call.encoding = 'other';
    }
    return call;
  }
  try {
    call.body = JSON.parse(raw.toString('utf8'));
    call.encoding = 'json';
  } catch {
    call.encoding = 'other';
    call.body = raw.toString('utf8');
  }
  return call;
}
