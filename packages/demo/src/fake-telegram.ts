/**
 * A fake Telegram Bot API server on 127.0.0.1 that speaks the real wire protocol,
 * so grammy (or any Bot API client) runs unmodified against it: point the client's
 * API root at {@link FakeTelegram.apiRoot}.
 *
 * Serves `POST|GET /bot<token>/<method>` (JSON, form-urlencoded, multipart or query
 * parameters) and `GET /file/bot<token>/<path>`. Long polling honours offset, limit
 * and timeout like Telegram: updates below the offset are confirmed and dropped, a
 * request waits until an update arrives or its timeout passes, and a second
 * concurrent getUpdates ends the first with 409. Tests enqueue updates, read what
 * the bot sent, and script failures.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { multipartBoundary, parseMultipart } from './multipart.js';
import { Watchers } from './watchers.js';

// ---------------------------------------------------------------- Bot API shapes (the subset used)

export interface TgUser {
  id: number;
  is_bot: boolean;
  first_name: string;
  last_name?: string;
  username?: string;
  language_code?: string;
}

export interface TgChat {
  id: number;
  type: 'private' | 'group' | 'supergroup' | 'channel';
  title?: string;
  first_name?: string;
  last_name?: string;
  username?: string;
}

/** A Bot API Message; fields beyond the listed ones pass through as given. */
export interface TgMessage {
  message_id: number;
  date: number;
  chat: TgChat;
  from?: TgUser;
  text?: string;
  caption?: string;
  edit_date?: number;
  [field: string]: unknown;
}

export interface TgUpdate {
  update_id: number;
  message?: TgMessage;
  edited_message?: TgMessage;
  [field: string]: unknown;
}

/** An update before the fake numbers it. */
export type UpdateInput = Omit<TgUpdate, 'update_id'> & { update_id?: number };

// ---------------------------------------------------------------- records

export interface ReceivedFile {
  /** The form field: `photo`, `document`, or the attach:// id grammy chose. */
  field: string;
  /** The API parameter it was attached to (`photo`, `document`, …). */
  param?: string;
  fileName?: string;
  contentType?: string;
  /** The part's headers as they arrived (names in lower case): to check what a client wrote. */
  headers: Record<string, string>;
  bytes: Buffer;
}

/** One Bot API call the bot made. */
export interface ApiCall {
  method: string;
  /** Parameters, whatever the encoding; numeric ids as numbers, JSON-looking values parsed. */
  params: Record<string, unknown>;
  files: ReceivedFile[];
  /** `json`, `form`, `multipart` or `query`. */
  encoding: string;
  /** Date.now() when the request arrived. */
  at: number;
}

export interface StoredFile {
  file_id: string;
  file_unique_id: string;
  file_path: string;
  bytes: Buffer;
  fileName?: string;
  mimeType?: string;
  /** What getFile reports; defaults to the byte length (set it to fake a file too big to download). */
  file_size: number;
}

/** A scripted failure for the next call of a method. */
export interface FailureSpec {
  error_code: number;
  description?: string;
  /** Seconds, for 429. */
  retry_after?: number;
  migrate_to_chat_id?: number;
  /** Let this many calls of the method succeed first. */
  afterCalls?: number;
}

export interface FakeTelegramOptions {
  /** Default: a random token of the real shape. */
  token?: string;
  bot?: Partial<TgUser>;
}

/** Methods that post a message to a chat (what {@link FakeTelegram.sent} records). */
const SEND_METHODS = new Set([
  'sendMessage',
  'sendPhoto',
  'sendVideo',
  'sendAudio',
  'sendVoice',
  'sendDocument',
  'sendAnimation',
  'sendVideoNote',
  'sendSticker',
  'sendLocation',
  'sendVenue',
  'sendContact',
  'sendMediaGroup',
]);
const FILE_PARAMS = ['photo', 'video', 'audio', 'voice', 'document', 'animation', 'video_note', 'sticker'];
const NUMERIC = new Set([
  'chat_id',
  'user_id',
  'message_id',
  'offset',
  'limit',
  'timeout',
  'latitude',
  'longitude',
  'reply_to_message_id',
  'message_thread_id',
]);

/** A fresh token of the shape BotFather gives. */
export function fakeBotToken(botId = 100000 + Math.floor(Math.random() * 900000)): string {
  return `${botId}:${randomBytes(27).toString('base64url')}`;
}

export class FakeTelegram {
  readonly token: string;
  readonly bot: TgUser;
  /** Every call, in arrival order (getUpdates included). */
  readonly calls: ApiCall[] = [];
  /** The message-posting calls (sendMessage, sendPhoto, …), in arrival order. */
  readonly sent: ApiCall[] = [];
  /** The message-posting calls that succeeded: what the customers actually got. */
  readonly delivered: ApiCall[] = [];
  /** Offsets of every getUpdates, in order. */
  readonly pollOffsets: number[] = [];
  /** Set by setWebhook, cleared by deleteWebhook. */
  webhook?: { url: string; secret_token?: string };
  /** When true, every getUpdates answers 409 as when another instance polls. */
  conflict = false;

  private server?: Server;
  private port = 0;
  private pending: TgUpdate[] = [];
  private nextUpdateId = 1;
  private nextMessageId = 1;
  private fileSeq = 1;
  private readonly files = new Map<string, StoredFile>();
  private readonly filesByPath = new Map<string, StoredFile>();
  private readonly profilePhotos = new Map<number, StoredFile[]>();
  private readonly failures = new Map<string, FailureSpec[]>();
  private readonly stalls = new Map<string, number>();
  private poll?: { res: ServerResponse; wake: () => void };
  private readonly watchers = new Watchers('FakeTelegram');

  constructor(opts: FakeTelegramOptions = {}) {
    this.token = opts.token ?? fakeBotToken();
    const id = Number(this.token.split(':')[0]);
    this.bot = { id, is_bot: true, first_name: 'Fake Bot', username: 'fake_kitbridge_bot', ...opts.bot };
  }

  /** `http://127.0.0.1:<port>`: the client's API root (no trailing slash). */
  get apiRoot(): string {
    if (!this.server) throw new Error('FakeTelegram is not started');
    return `http://127.0.0.1:${this.port}`;
  }

  /** Listens on 127.0.0.1, on `port` (default: any free port). */
  async start(port = 0): Promise<this> {
    const server = createServer((req, res) => {
      this.handle(req, res).catch((err: Error) => {
        if (!res.headersSent)
          reply(res, 500, { ok: false, error_code: 500, description: `fake: ${err.message}` });
        else res.destroy();
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
    return this;
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    this.poll?.wake();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  // ---------------------------------------------------------------- test API: updates

  /** Enqueues an update for getUpdates; numbers it when it has no update_id. */
  pushUpdate(update: UpdateInput): TgUpdate {
    const u = this.number(update);
    this.pending.push(u);
    this.poll?.wake();
    return u;
  }

  /** Updates not yet confirmed by an offset. */
  get pendingUpdates(): readonly TgUpdate[] {
    return this.pending;
  }

  /** A private chat message from `user`, enqueued. `fields` adds or overrides message fields. */
  messageFrom(user: TgUser, fields: Partial<TgMessage> = {}): TgUpdate {
    return this.pushUpdate({ message: this.buildMessage(user, fields) });
  }

  textFrom(user: TgUser, text: string, fields: Partial<TgMessage> = {}): TgUpdate {
    return this.messageFrom(user, { text, ...fields });
  }

  /** A photo (the bytes registered as a file, in two sizes) with an optional caption. */
  photoFrom(
    user: TgUser,
    bytes: Buffer,
    opts: { caption?: string; fields?: Partial<TgMessage> } = {},
  ): TgUpdate {
    return this.messageFrom(user, {
      photo: this.photoSizes(bytes),
      ...(opts.caption ? { caption: opts.caption } : {}),
      ...opts.fields,
    });
  }

  /** A document with its file name and MIME type. */
  documentFrom(
    user: TgUser,
    bytes: Buffer,
    opts: { fileName: string; mimeType?: string; caption?: string; fields?: Partial<TgMessage> },
  ): TgUpdate {
    const f = this.addFile(bytes, {
      fileName: opts.fileName,
      ...(opts.mimeType ? { mimeType: opts.mimeType } : {}),
    });
    return this.messageFrom(user, {
      document: { ...f, file_name: opts.fileName, ...(opts.mimeType ? { mime_type: opts.mimeType } : {}) },
      ...(opts.caption ? { caption: opts.caption } : {}),
      ...opts.fields,
    });
  }

  /** An edit of an earlier message (edited_message update). */
  editedTextFrom(user: TgUser, messageId: number, text: string, editDate = nowSeconds()): TgUpdate {
    return this.pushUpdate({
      edited_message: { ...this.buildMessage(user, { text }), message_id: messageId, edit_date: editDate },
    });
  }

  /** A message object (not enqueued) in the private chat with `user`; message_id and date filled in. */
  buildMessage(user: TgUser, fields: Partial<TgMessage> = {}): TgMessage {
    const chat: TgChat = {
      id: user.id,
      type: 'private',
      first_name: user.first_name,
      ...(user.last_name ? { last_name: user.last_name } : {}),
      ...(user.username ? { username: user.username } : {}),
    };
    return { message_id: this.nextMessageId++, date: nowSeconds(), chat, from: user, ...fields };
  }

  /** A group chat message (`chat` given by the test). */
  groupMessageFrom(user: TgUser, chat: TgChat, fields: Partial<TgMessage> = {}): TgUpdate {
    return this.pushUpdate({ message: { ...this.buildMessage(user, fields), chat } });
  }

  /** Photo sizes of one image, as Telegram lists them (small to large); each size is a registered file. */
  photoSizes(
    bytes: Buffer,
  ): { file_id: string; file_unique_id: string; file_size: number; width: number; height: number }[] {
    const thumb = this.addFile(bytes.subarray(0, Math.max(1, Math.floor(bytes.length / 4))), {
      mimeType: 'image/jpeg',
    });
    const full = this.addFile(bytes, { mimeType: 'image/jpeg', fileName: 'photo.jpg' });
    return [
      { ...pick(thumb), width: 90, height: 60 },
      { ...pick(full), width: 1280, height: 853 },
    ];
  }

  /** Numbers an update (for webhook delivery) without enqueuing it. */
  number(update: UpdateInput): TgUpdate {
    const update_id = update.update_id ?? this.nextUpdateId;
    this.nextUpdateId = Math.max(this.nextUpdateId, update_id + 1);
    return { ...update, update_id };
  }

  /**
   * POSTs an update to the registered webhook as Telegram does, with the
   * registered secret (or `secret` when given: pass a wrong one to test refusal).
   */
  async deliverWebhook(
    update: UpdateInput,
    opts: { secret?: string | null } = {},
  ): Promise<{ status: number; body: string }> {
    if (!this.webhook) throw new Error('no webhook is set (setWebhook was not called)');
    const secret = opts.secret === undefined ? this.webhook.secret_token : opts.secret;
    const res = await fetch(this.webhook.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(secret ? { 'x-telegram-bot-api-secret-token': secret } : {}),
      },
      body: JSON.stringify(this.number(update)),
    });
    return { status: res.status, body: await res.text() };
  }

  // ---------------------------------------------------------------- test API: files, profiles, failures

  /** Registers a file the bot can getFile and download. */
  addFile(
    bytes: Buffer,
    opts: { fileName?: string; mimeType?: string; reportedSize?: number } = {},
  ): { file_id: string; file_unique_id: string; file_size: number } {
    const n = this.fileSeq++;
    const ext = opts.fileName?.includes('.') ? opts.fileName.slice(opts.fileName.lastIndexOf('.')) : '';
    const f: StoredFile = {
      file_id: `FILE${n}_${randomBytes(6).toString('hex')}`,
      file_unique_id: `U${n}`,
      file_path: `documents/file_${n}${ext}`,
      bytes,
      file_size: opts.reportedSize ?? bytes.length,
      ...(opts.fileName ? { fileName: opts.fileName } : {}),
      ...(opts.mimeType ? { mimeType: opts.mimeType } : {}),
    };
    this.files.set(f.file_id, f);
    this.filesByPath.set(f.file_path, f);
    return pick(f);
  }

  file(fileId: string): StoredFile | undefined {
    return this.files.get(fileId);
  }

  /** Forgets a file: getFile then answers 400 as for an expired file_id. */
  removeFile(fileId: string): void {
    const f = this.files.get(fileId);
    this.files.delete(fileId);
    if (f) this.filesByPath.delete(f.file_path);
  }

  /** Gives `userId` a profile photo (what getUserProfilePhotos returns). */
  setProfilePhoto(userId: number, bytes: Buffer): { file_id: string } {
    const sizes = [this.addFile(bytes, { mimeType: 'image/jpeg', fileName: 'avatar.jpg' })];
    this.profilePhotos.set(
      userId,
      sizes.map((s) => this.files.get(s.file_id)!),
    );
    return { file_id: sizes[0]!.file_id };
  }

  /**
   * The next call of `method` is recorded but never answered (a server that
   * accepts the connection and hangs): to test deadlines.
   */
  stallNext(method: string): void {
    this.stalls.set(method, (this.stalls.get(method) ?? 0) + 1);
  }

  /** The next call of `method` fails with this error (queue several for several calls). */
  failNext(method: string, spec: FailureSpec): void {
    const q = this.failures.get(method) ?? [];
    q.push(spec);
    this.failures.set(method, q);
  }

  /** Forgets every scripted failure. */
  clearFailures(): void {
    this.failures.clear();
    this.stalls.clear();
  }

  /** Calls of one method. */
  callsOf(method: string): ApiCall[] {
    return this.calls.filter((c) => c.method === method);
  }

  /**
   * Waits until `sent` has `count` calls (resolves with them all), or until a sent
   * call matches `predicate` (resolves with it). Rejects after `timeoutMs`.
   */
  waitFor(count: number, timeoutMs?: number): Promise<ApiCall[]>;
  waitFor(predicate: (call: ApiCall) => boolean, timeoutMs?: number): Promise<ApiCall>;
  waitFor(what: number | ((call: ApiCall) => boolean), timeoutMs = 5_000): Promise<ApiCall[] | ApiCall> {
    return this.waitUntil(
      () => {
        if (typeof what === 'number') return this.sent.length >= what ? this.sent.slice() : undefined;
        return this.sent.find(what);
      },
      timeoutMs,
      typeof what === 'number' ? `${what} sent calls (have ${this.sent.length})` : 'a matching sent call',
    );
  }

  /** Waits until any call (getUpdates, getFile, …) matches. */
  waitForCall(predicate: (call: ApiCall) => boolean, timeoutMs = 5_000): Promise<ApiCall> {
    return this.waitUntil(() => this.calls.find(predicate), timeoutMs, 'a matching call');
  }

  private waitUntil<T>(check: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    return this.watchers.until(check, timeoutMs, what);
  }

  // ---------------------------------------------------------------- the server

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const file = /^\/file\/bot([^/]+)\/(.+)$/.exec(url.pathname);
    if (file) return this.serveFile(decodeURIComponent(file[1]!), decodeURIComponent(file[2]!), res);
    const api = /^\/bot([^/]+)\/([A-Za-z]+)$/.exec(url.pathname);
    if (!api) return reply(res, 404, { ok: false, error_code: 404, description: 'Not Found' });
    if (decodeURIComponent(api[1]!) !== this.token) {
      req.resume();
      return reply(res, 401, { ok: false, error_code: 401, description: 'Unauthorized' });
    }
    const call = await readCall(api[2]!, req, url);
    this.calls.push(call);
    if (SEND_METHODS.has(call.method)) this.sent.push(call);

    const stalls = this.stalls.get(call.method) ?? 0;
    if (stalls > 0) {
      this.stalls.set(call.method, stalls - 1);
      this.notify();
      return; // never answered; close() ends the connection
    }
    const queue = this.failures.get(call.method);
    const head = queue?.[0];
    let failure: FailureSpec | undefined;
    if (head?.afterCalls) head.afterCalls--;
    else failure = queue?.shift();
    if (failure) {
      this.notify();
      return reply(res, failure.error_code, failureBody(failure));
    }
    if (call.method === 'getUpdates') return this.getUpdates(call, req, res);
    const result = this.answer(call);
    if (!(result instanceof ApiFailure) && SEND_METHODS.has(call.method)) this.delivered.push(call);
    this.notify();
    if (result instanceof ApiFailure) return reply(res, result.spec.error_code, failureBody(result.spec));
    reply(res, 200, { ok: true, result });
  }

  private answer(call: ApiCall): unknown {
    const p = call.params;
    switch (call.method) {
      case 'getMe':
        return {
          ...this.bot,
          can_join_groups: true,
          can_read_all_group_messages: false,
          supports_inline_queries: false,
        };
      case 'deleteWebhook':
        this.webhook = undefined;
        if (truthy(p['drop_pending_updates'])) this.pending = [];
        return true;
      case 'setWebhook': {
        const url = String(p['url'] ?? '');
        if (!url)
          return new ApiFailure({ error_code: 400, description: 'Bad Request: bad webhook: URL is empty' });
        this.webhook = { url, ...(p['secret_token'] ? { secret_token: String(p['secret_token']) } : {}) };
        return true;
      }
      case 'getWebhookInfo':
        return {
          url: this.webhook?.url ?? '',
          has_custom_certificate: false,
          pending_update_count: this.pending.length,
        };
      case 'getFile': {
        const f = this.files.get(String(p['file_id']));
        if (!f) return new ApiFailure({ error_code: 400, description: 'Bad Request: invalid file_id' });
        if (f.file_size > 20 * 1024 * 1024)
          return new ApiFailure({ error_code: 400, description: 'Bad Request: file is too big' });
        return { ...pick(f), file_path: f.file_path };
      }
      case 'getUserProfilePhotos': {
        const photos = this.profilePhotos.get(Number(p['user_id'])) ?? [];
        return {
          total_count: photos.length ? 1 : 0,
          photos: photos.length ? [photos.map((f) => ({ ...pick(f), width: 640, height: 640 }))] : [],
        };
      }
      case 'sendChatAction':
        return true;
      default:
        if (SEND_METHODS.has(call.method)) return this.sentMessage(call);
        return new ApiFailure({ error_code: 404, description: 'Not Found: method not found' });
    }
  }

  private sentMessage(call: ApiCall): TgMessage | ApiFailure {
    const p = call.params;
    const chatId = p['chat_id'];
    if (chatId === undefined || chatId === '') {
      return new ApiFailure({ error_code: 400, description: 'Bad Request: chat_id is empty' });
    }
    const id = Number(chatId);
    const msg: TgMessage = {
      message_id: this.nextMessageId++,
      date: nowSeconds(),
      chat: { id, type: id > 0 ? 'private' : 'group' },
      from: this.bot,
    };
    if (call.method === 'sendMessage') {
      const text = String(p['text'] ?? '');
      if (!text.trim())
        return new ApiFailure({ error_code: 400, description: 'Bad Request: message text is empty' });
      if (text.length > 4096)
        return new ApiFailure({ error_code: 400, description: 'Bad Request: message is too long' });
      msg.text = text;
    }
    if (p['caption'] !== undefined) msg.caption = String(p['caption']);
    for (const param of FILE_PARAMS) {
      const f = call.files.find((x) => x.param === param);
      if (!f) continue;
      const stored = this.addFile(f.bytes, {
        ...(f.fileName ? { fileName: f.fileName } : {}),
        ...(f.contentType ? { mimeType: f.contentType } : {}),
      });
      msg[param] =
        param === 'photo' ? [{ ...stored, width: 1280, height: 853 }] : { ...stored, file_name: f.fileName };
    }
    if (call.method === 'sendLocation')
      msg['location'] = { latitude: p['latitude'], longitude: p['longitude'] };
    if (call.method === 'sendContact') {
      msg['contact'] = { phone_number: p['phone_number'], first_name: p['first_name'] };
    }
    return msg;
  }

  private getUpdates(call: ApiCall, req: IncomingMessage, res: ServerResponse): void {
    const offset = Number(call.params['offset'] ?? 0);
    const limit = Math.min(100, Math.max(1, Number(call.params['limit'] ?? 100)));
    const timeout = Math.max(0, Number(call.params['timeout'] ?? 0));
    this.pollOffsets.push(offset);
    this.notify();
    const conflict = this.conflict
      ? 'Conflict: terminated by other getUpdates request; make sure that only one bot instance is running'
      : this.webhook
        ? "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"
        : undefined;
    if (conflict) {
      reply(res, 409, failureBody({ error_code: 409, description: conflict }));
      return;
    }
    // Telegram confirms every update below the offset.
    if (offset > 0) this.pending = this.pending.filter((u) => u.update_id >= offset);
    // A newer getUpdates ends an older one that is still waiting.
    const older = this.poll;
    if (older) {
      this.poll = undefined;
      older.wake = () => {};
      reply(
        older.res,
        409,
        failureBody({
          error_code: 409,
          description:
            'Conflict: terminated by other getUpdates request; make sure that only one bot instance is running',
        }),
      );
    }
    const take = () => this.pending.filter((u) => u.update_id >= offset).slice(0, limit);
    const now = take();
    if (now.length || timeout === 0) {
      reply(res, 200, { ok: true, result: now });
      return;
    }

    const finish = () => {
      clearTimeout(timer);
      if (this.poll?.res === res) this.poll = undefined;
      if (!res.writableEnded && !res.destroyed) reply(res, 200, { ok: true, result: take() });
    };
    const timer = setTimeout(finish, timeout * 1000);
    this.poll = { res, wake: finish };
    req.socket.once('close', () => {
      clearTimeout(timer);
      if (this.poll?.res === res) this.poll = undefined;
    });
  }

  private serveFile(token: string, path: string, res: ServerResponse): void {
    if (token !== this.token) {
      reply(res, 401, { ok: false, error_code: 401, description: 'Unauthorized' });
      return;
    }
    const f = this.filesByPath.get(path);
    if (!f) {
      reply(res, 404, { ok: false, error_code: 404, description: 'Not Found' });
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': f.bytes.length });
    res.end(f.bytes);
  }

  private notify(): void {
    this.watchers.notify();
  }
}

// ---------------------------------------------------------------- helpers

class ApiFailure {
  constructor(readonly spec: FailureSpec) {}
}

/** A customer; ids are positive, as private chat ids are. */
export function tgUser(id: number, firstName: string, extra: Partial<TgUser> = {}): TgUser {
  return { id, is_bot: false, first_name: firstName, ...extra };
}

function pick(f: { file_id: string; file_unique_id: string; file_size: number }) {
  return { file_id: f.file_id, file_unique_id: f.file_unique_id, file_size: f.file_size };
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

function truthy(v: unknown): boolean {
  return v === true || v === 'true' || v === 1 || v === '1';
}

function failureBody(spec: FailureSpec): Record<string, unknown> {
  const description =
    spec.description ??
    (spec.error_code === 429
      ? `Too Many Requests: retry after ${spec.retry_after ?? 1}`
      : spec.error_code === 403
        ? 'Forbidden: bot was blocked by the user'
        : 'Bad Request');
  const parameters = {
    ...(spec.retry_after !== undefined ? { retry_after: spec.retry_after } : {}),
    ...(spec.migrate_to_chat_id !== undefined ? { migrate_to_chat_id: spec.migrate_to_chat_id } : {}),
  };
  return {
    ok: false,
    error_code: spec.error_code,
    description,
    ...(Object.keys(parameters).length ? { parameters } : {}),
  };
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  if (res.writableEnded || res.destroyed) return;
  const s = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(s) });
  res.end(s);
}

async function readCall(method: string, req: IncomingMessage, url: URL): Promise<ApiCall> {
  const at = Date.now();
  const chunks: Buffer[] = [];
  for await (const c of req as AsyncIterable<Buffer>) chunks.push(c);
  const body = Buffer.concat(chunks);
  const type = req.headers['content-type'] ?? '';
  const params: Record<string, unknown> = {};
  for (const [k, v] of url.searchParams) params[k] = coerce(k, v);
  let files: ReceivedFile[] = [];
  let encoding = 'query';
  if (body.length && /application\/json/i.test(type)) {
    Object.assign(params, JSON.parse(body.toString('utf8')) as Record<string, unknown>);
    encoding = 'json';
  } else if (body.length && /application\/x-www-form-urlencoded/i.test(type)) {
    for (const [k, v] of new URLSearchParams(body.toString('utf8'))) params[k] = coerce(k, v);
    encoding = 'form';
  } else if (body.length && multipartBoundary(type)) {
    const parsed = parseMultipart(body, type);
    for (const [k, v] of Object.entries(parsed.fields)) params[k] = coerce(k, v);
    files = parsed.files.map((f) => ({
      field: f.name,
      headers: f.headers,
      bytes: f.data,
      ...(f.fileName !== undefined ? { fileName: f.fileName } : {}),
      ...(f.contentType ? { contentType: f.contentType } : {}),
    }));
    encoding = 'multipart';
  }
  // Link each file to its parameter: `photo=attach://<id>` or a part named after the parameter.
  for (const f of files) {
    const param = Object.entries(params).find(([, v]) => v === `attach://${f.field}`)?.[0];
    f.param = param ?? f.field;
  }
  return { method, params, files, encoding, at };
}

function coerce(key: string, v: string): unknown {
  if (NUMERIC.has(key) && /^-?\d+(\.\d+)?$/.test(v)) return Number(v);
  if (/^[[{]/.test(v)) {
    try {
      return JSON.parse(v);
    } catch {
      return v;
    }
  }
  if (v === 'true' || v === 'false') return v === 'true';
  return v;
}
