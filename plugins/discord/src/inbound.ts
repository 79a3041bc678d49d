/**
 * A Discord message (the raw API shape, as the gateway dispatches it and the
 * REST history returns it) -> the text and items of an InboundMessage. Pure
 * functions: no I/O, no state; the connector decides who the client is.
 *
 * - Mentions and custom emoji made readable: `<@id>` -> `@name` (server nick,
 *   else global name, else username), `<@&role>` -> `@role`, `<#channel>` ->
 *   `#channel`, `<:name:id>` -> `:name:`, `<t:unix:R>` -> a UTC date,
 *   `</cmd:id>` -> `/cmd`.
 * - Attachments by content type: image -> photo, video, audio (voice messages
 *   too), anything else -> document. The ref keeps the attachment's identity
 *   (the message id and the CDN link without its `ex`/`is`/`hm` signature),
 *   never the signed link: it is signed afresh when Kit fetches the file.
 * - Stickers as `[sticker: name]`; a reply quotes (`> `) what it answers;
 *   a forwarded message as `[forwarded]` with the original's text and files.
 */
import type { AttachmentRef, ClientProfile, InboundItem, MediaKind } from '@kitbridge/core';

/** The user fields used (gateway and REST user objects). */
export interface RawUser {
  id: string;
  username: string;
  global_name?: string | null;
  avatar?: string | null;
  bot?: boolean;
  system?: boolean;
  member?: { nick?: string | null };
}

export interface RawAttachment {
  id: string;
  filename: string;
  size?: number;
  url: string;
  proxy_url?: string;
  content_type?: string;
  flags?: number;
}

/** The message fields used. Gateway dispatches add `guild_id`, `member` and (DMs) `channel_type`. */
export interface RawMessage {
  id: string;
  channel_id: string;
  guild_id?: string;
  channel_type?: number;
  author: RawUser;
  member?: { nick?: string | null };
  content?: string;
  edited_timestamp?: string | null;
  mentions?: RawUser[];
  attachments?: RawAttachment[];
  sticker_items?: { id: string; name: string }[];
  type?: number;
  flags?: number;
  webhook_id?: string;
  message_reference?: { type?: number; message_id?: string; channel_id?: string };
  referenced_message?: RawMessage | null;
  message_snapshots?: { message?: Partial<RawMessage> }[];
  poll?: { question?: { text?: string } };
}

/** Names the connector can look up without I/O (its gateway caches). */
export interface NameSource {
  channel?(id: string): string | undefined;
  role?(id: string): string | undefined;
}

/** Message types that are customers writing: DEFAULT and REPLY. The rest are system messages. */
export const CUSTOMER_MESSAGE_TYPES = new Set([0, 19]);

const IS_VOICE_MESSAGE = 1 << 13;
const FORWARD = 1;

/** The customer's name as Discord shows it: global name, else username. */
export function displayName(user: Pick<RawUser, 'username' | 'global_name'>): string {
  return user.global_name?.trim() || user.username;
}

/** `content` with Discord's markup for mentions, emoji, timestamps and commands made readable. */
export function readableContent(content: string, mentions: RawUser[] = [], names: NameSource = {}): string {
  const users = new Map(mentions.map((u) => [u.id, u.member?.nick?.trim() || displayName(u)]));
  return content
    .replace(/<@!?(\d+)>/g, (_m, id: string) => `@${users.get(id) ?? 'unknown-user'}`)
    .replace(/<@&(\d+)>/g, (_m, id: string) => `@${names.role?.(id) ?? 'role'}`)
    .replace(/<#(\d+)>/g, (_m, id: string) => `#${names.channel?.(id) ?? 'channel'}`)
    .replace(/<a?:(\w{1,64}):\d+>/g, (_m, name: string) => `:${name}:`)
    .replace(/<t:(-?\d{1,13})(?::[tTdDfFsSR])?>/g, (m, s: string) => {
      const d = new Date(Number(s) * 1000);
      return Number.isNaN(d.getTime()) ? m : `${d.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
    })
    .replace(/<\/([\w -]{1,100}):\d+>/g, (_m, name: string) => `/${name}`);
}

const EXT_KIND: [RegExp, MediaKind][] = [
  [/\.(jpe?g|png|gif|webp|avif|heic|bmp)$/i, 'photo'],
  [/\.(mp4|mov|webm|mkv|avi|m4v)$/i, 'video'],
  [/\.(mp3|ogg|oga|opus|wav|m4a|aac|flac)$/i, 'audio'],
];

/** Photo, video, audio or document, by content type (else by extension); voice messages are audio. */
export function attachmentKind(a: Pick<RawAttachment, 'content_type' | 'filename' | 'flags'>): MediaKind {
  if (((a.flags ?? 0) & IS_VOICE_MESSAGE) !== 0) return 'audio';
  const type = (a.content_type ?? '').split(';')[0]!.trim().toLowerCase();
  if (type === 'image/svg+xml') return 'document';
  if (type.startsWith('image/')) return 'photo';
  if (type.startsWith('video/')) return 'video';
  if (type.startsWith('audio/')) return 'audio';
  if (!type) for (const [re, kind] of EXT_KIND) if (re.test(a.filename)) return kind;
  return 'document';
}

/** A CDN link without its query (the `ex`/`is`/`hm` signature and anything else). */
export function unsignedUrl(url: string): string {
  const u = new URL(url);
  u.search = '';
  u.hash = '';
  return u.toString();
}

/** `a:<message id>@<unsigned CDN link>`: the attachment's identity, not a secret and never expiring. */
export function attachmentRef(messageId: string, a: RawAttachment): AttachmentRef {
  const contentType = a.content_type?.split(';')[0]?.trim();
  return {
    ref: `a:${messageId}@${unsignedUrl(a.url)}`,
    kind: attachmentKind(a),
    fileName: a.filename,
    ...(contentType ? { mimeType: contentType } : {}),
    ...(typeof a.size === 'number' ? { size: a.size } : {}),
  };
}

export type ParsedRef =
  | {
      kind: 'attachment';
      messageId: string;
      /** Unsigned CDN link. */
      url: string;
      channelId: string;
      attachmentId: string;
    }
  | { kind: 'avatar'; userId: string; hash: string };

/** Reads a ref made by {@link attachmentRef} or {@link avatarRef}; undefined for anything else. */
export function parseRef(ref: string): ParsedRef | undefined {
  const av = /^av:(\d{17,20}):([A-Za-z0-9_]{1,64})$/.exec(ref);
  if (av) return { kind: 'avatar', userId: av[1]!, hash: av[2]! };
  const m = /^a:(\d{17,20})@(https?:\/\/.+)$/.exec(ref);
  if (!m) return undefined;
  let path: string;
  try {
    path = new URL(m[2]!).pathname;
  } catch {
    return undefined;
  }
  const p = /\/attachments\/(\d+)\/(\d+)\/[^/]+$/.exec(path);
  if (!p) return undefined;
  return { kind: 'attachment', messageId: m[1]!, url: m[2]!, channelId: p[1]!, attachmentId: p[2]! };
}

/** The customer's avatar, when they set one (served through the media proxy like any file). */
export function avatarRef(user: Pick<RawUser, 'id' | 'avatar'>): AttachmentRef | undefined {
  if (!user.avatar || !/^[A-Za-z0-9_]{1,64}$/.test(user.avatar)) return undefined;
  return {
    ref: `av:${user.id}:${user.avatar}`,
    kind: 'photo',
    fileName: 'avatar.png',
    mimeType: 'image/png',
  };
}

/** What Discord tells of a customer in every message: no language (Discord does not say it). */
export function profileOf(user: RawUser): ClientProfile {
  const avatar = avatarRef(user);
  return { displayName: displayName(user), ...(avatar ? { avatar } : {}) };
}

/** The Kit message id of a customer message: its snowflake, or `<id>:e<edit time>` for an edit. */
export function kitMessageId(msg: Pick<RawMessage, 'id' | 'edited_timestamp'>, edited: boolean): string {
  if (!edited || !msg.edited_timestamp) return msg.id;
  const at = Date.parse(msg.edited_timestamp);
  return `${msg.id}:e${Number.isNaN(at) ? msg.edited_timestamp : at}`;
}

const QUOTE_LIMIT = 200;

/** The text and items of a message; empty when it has nothing a customer wrote (only embeds, say). */
export function mapContent(msg: RawMessage, names: NameSource = {}): { text?: string; items: InboundItem[] } {
  const items: InboundItem[] = [];
  const lines: string[] = [];
  const ref = msg.message_reference;
  if (msg.type === 19 && msg.referenced_message) {
    lines.push(quote(msg.referenced_message, names));
  } else if (msg.type === 19 && msg.referenced_message === null) {
    lines.push('> (a deleted message)');
  }
  const content = readableContent(msg.content ?? '', msg.mentions, names).trim();
  if (content) lines.push(content);
  if (ref?.type === FORWARD && msg.message_snapshots?.length) {
    for (const snap of msg.message_snapshots) {
      const m = snap.message ?? {};
      const said = readableContent(m.content ?? '', m.mentions, names).trim();
      lines.push(said ? `[forwarded]\n${said}` : '[forwarded]');
      for (const a of m.attachments ?? []) items.push({ type: 'media', ...attachmentRef(msg.id, a) });
    }
  }
  for (const s of msg.sticker_items ?? []) lines.push(`[sticker: ${s.name}]`);
  if (msg.poll?.question?.text) lines.push(`[poll] ${msg.poll.question.text}`);
  for (const a of msg.attachments ?? []) items.push({ type: 'media', ...attachmentRef(msg.id, a) });
  const text = lines.join('\n');
  // A reply with nothing of its own says nothing.
  const said =
    content || items.length || msg.sticker_items?.length || msg.poll || msg.message_snapshots?.length;
  return said && text ? { text, items } : said ? { items } : { items: [] };
}

function quote(m: RawMessage, names: NameSource): string {
  let said = readableContent(m.content ?? '', m.mentions, names).trim();
  if (!said) {
    const parts = [
      ...(m.attachments ?? []).map((a) => `[${attachmentKind(a)}: ${a.filename}]`),
      ...(m.sticker_items ?? []).map((s) => `[sticker: ${s.name}]`),
    ];
    said = parts.join(' ') || '(a message without text)';
  }
  if (said.length > QUOTE_LIMIT) said = `${said.slice(0, QUOTE_LIMIT).replace(/\s+\S*$/, '')}…`;
  return said
    .split('\n')
    .slice(0, 4)
    .map((l) => `> ${l}`)
    .join('\n');
}

/** Why a message is not a customer's (undefined: it is). `selfId` is the bot. */
export function skipReason(msg: RawMessage, selfId: string | undefined): string | undefined {
  if (!msg.author) return 'no author';
  if (msg.author.id === selfId) return 'the bot itself';
  if (msg.author.bot) return 'another bot';
  if (msg.author.system) return 'a system message';
  if (msg.webhook_id) return 'a webhook';
  if (msg.type !== undefined && !CUSTOMER_MESSAGE_TYPES.has(msg.type)) return `message type ${msg.type}`;
  return undefined;
}
