/**
 * An Events API `event_callback` (over HTTP or Socket Mode) -> the message core
 * stores, or a reason to skip it. Pure: no I/O, so it runs before Slack gets
 * its acknowledgement.
 *
 * - DMs to the app (`channel_type: 'im'`): the client is the author, the
 *   address the DM channel.
 * - The support channel (SLACK_SUPPORT_CHANNEL_ID): the client is the author,
 *   the address the channel and the thread: a top-level message opens a
 *   thread of its own (`thread_ts` = its `ts`), a reply keeps its thread.
 * - Everything else is skipped: other channels, group DMs, the app's own
 *   messages and other bots' (no echo loops), joins and other system subtypes,
 *   deletions, and `message_changed` events that change no text (unfurls,
 *   thread reply counts).
 *
 * A message's id is its channel plus its `ts` (a `ts` is unique only within a
 * channel); an edit adds the edit's own ts. Slack's retries and redelivered
 * envelopes carry the same message, so core sees a duplicate.
 */
import type { AttachmentRef, InboundItem, InboundMessage, JsonObject, MediaKind } from '@kitbridge/core';
import { type AuthorTeams, clientTeam, type EnvelopeTeams, formatClientId } from './client-id.js';
import { mrkdwnToPlain, type NameLookup } from './mrkdwn.js';

/** The subset of a Slack file object the connector reads. */
export interface SlackFileObject {
  id?: string;
  name?: string;
  title?: string;
  mimetype?: string;
  size?: number;
  mode?: string;
  file_access?: string;
  url_private?: string;
  url_private_download?: string;
}

/** The subset of a message (event or nested in message_changed) the connector reads. */
export interface SlackMessageObject extends AuthorTeams {
  type?: string;
  subtype?: string;
  user?: string;
  bot_id?: string;
  app_id?: string;
  bot_profile?: unknown;
  text?: string;
  ts?: string;
  thread_ts?: string;
  channel?: string;
  channel_type?: string;
  files?: SlackFileObject[];
  edited?: { ts?: string };
  user_profile?: { team?: string; display_name?: string; real_name?: string; name?: string };
  message?: SlackMessageObject;
  previous_message?: SlackMessageObject;
}

export interface EventCallback extends EnvelopeTeams {
  type?: string;
  api_app_id?: string;
  event_id?: string;
  event?: SlackMessageObject;
}

export interface InboundOptions {
  /** The app's bot user (auth.test's user_id): its own messages are ignored. */
  botUserId?: string;
  botId?: string;
  appId?: string;
  /** The support channel, when that mode is on. */
  supportChannelId?: string;
  /** Workspaces known to be ours besides the envelope's (auth.test's team). */
  ownTeams?: readonly string[];
  names?: NameLookup;
}

export type Mapped =
  | {
      kind: 'message';
      message: InboundMessage;
      /** User and channel ids the text mentions: worth learning the names of, after the ack. */
      mentions: { users: string[]; channels: string[] };
    }
  | { kind: 'skip'; reason: string };

/** Subtypes that are a customer writing; everything else (joins, topic changes, bots…) is skipped. */
const WRITTEN = new Set([undefined, 'file_share', 'thread_broadcast', 'me_message']);

export function mapEventCallback(body: EventCallback, opts: InboundOptions = {}): Mapped {
  const event = body.event;
  if (!event || typeof event !== 'object') return skip('no event');
  if (event.type !== 'message') return skip(`event type ${String(event.type)}`);
  const channel = event.channel;
  if (typeof channel !== 'string' || !channel) return skip('no channel');

  let m: SlackMessageObject = event;
  let edited = false;
  if (event.subtype === 'bot_message') return skip('a bot or the app itself');
  if (event.subtype === 'message_changed') {
    const now = event.message;
    if (!now || typeof now !== 'object') return skip('edit without a message');
    const before = event.previous_message;
    if (before && (before.text ?? '') === (now.text ?? '')) return skip('edit that changes no text');
    m = now;
    edited = true;
  } else if (!WRITTEN.has(event.subtype)) return skip(`subtype ${event.subtype}`);

  if (isBot(m, opts, body.api_app_id)) return skip('a bot or the app itself');
  const user = m.user;
  if (typeof user !== 'string' || !/^[UW][A-Z0-9]+$/.test(user)) return skip('no user');
  const ts = m.ts;
  if (typeof ts !== 'string' || !/^\d+\.\d+$/.test(ts)) return skip('no ts');

  let address: JsonObject;
  if (event.channel_type === 'im') address = { channel };
  else if (opts.supportChannelId && channel === opts.supportChannelId) {
    const thread = typeof m.thread_ts === 'string' && m.thread_ts ? m.thread_ts : ts;
    address = { channel, thread_ts: thread };
  } else return skip('not a DM to the app nor the support channel');

  const team = clientTeam(body, m, opts.ownTeams);
  if (!team) return skip('no team');

  const raw = typeof m.text === 'string' ? m.text : '';
  const text = mrkdwnToPlain(raw, opts.names).trim();
  // An edit resends the words; its files were sent with the original.
  const items = edited ? [] : fileItems(m.files);
  if (!text && !items.length) return skip(edited ? 'edit without text' : 'nothing to forward');

  const editTs = edited ? (m.edited?.ts ?? (event as { ts?: string }).ts ?? '') : '';
  const messageId = edited ? `${channel}:${ts}:e${editTs}` : `${channel}:${ts}`;
  const displayName = m.user_profile?.display_name || m.user_profile?.real_name || undefined;
  return {
    kind: 'message',
    message: {
      client: {
        clientId: formatClientId(team, user),
        address,
        ...(displayName ? { profile: { displayName } } : {}),
      },
      messageId,
      ...(text ? { text } : {}),
      ...(items.length ? { items } : {}),
      ...(edited ? { edited: true } : {}),
    },
    mentions: mentionsIn(raw),
  };
}

function skip(reason: string): Mapped {
  return { kind: 'skip', reason };
}

function isBot(m: SlackMessageObject, opts: InboundOptions, appIdOf?: string): boolean {
  if (m.subtype === 'bot_message' || m.bot_id || m.bot_profile) return true;
  if (opts.botUserId && m.user === opts.botUserId) return true;
  // Our own app's messages; posts another app made for a user on their behalf remain the user's.
  const ours = opts.appId ?? appIdOf;
  return typeof m.app_id === 'string' && m.app_id === ours;
}

/** Kind by MIME type: Slack's own clips (slack_audio, slack_video) are audio/* and video/*. */
export function kindOf(mimetype: string | undefined): MediaKind {
  const t = (mimetype ?? '').toLowerCase();
  if (/^image\/(png|jpe?g|gif|webp|heic|heif|bmp)$/.test(t)) return 'photo';
  if (t.startsWith('video/')) return 'video';
  if (t.startsWith('audio/')) return 'audio';
  return 'document';
}

/**
 * The files of a message as media items. The ref is the file id, with the
 * file's url_private_download when the event carries it (Slack Connect stubs
 * carry only the id: files.info gives the rest later). Neither is a secret:
 * the URL answers only with the bot token, which stays in the connector.
 */
export function fileItems(files: SlackFileObject[] | undefined): InboundItem[] {
  const items: InboundItem[] = [];
  for (const f of Array.isArray(files) ? files : []) {
    if (!f || typeof f.id !== 'string' || !/^F[A-Z0-9]+$/.test(f.id)) continue;
    // Tombstones (deleted) and files hidden by a free workspace's history limit cannot be fetched.
    if (f.mode === 'tombstone' || f.file_access === 'hidden_by_limit') continue;
    const url = f.url_private_download || f.url_private;
    const ref: AttachmentRef = {
      ref: encodeFileRef(f.id, url),
      kind: kindOf(f.mimetype),
      ...(f.name ? { fileName: f.name } : {}),
      ...(f.mimetype ? { mimeType: f.mimetype } : {}),
      ...(typeof f.size === 'number' && Number.isSafeInteger(f.size) && f.size >= 0 ? { size: f.size } : {}),
    };
    items.push({ type: 'media', ...ref });
  }
  return items;
}

// ---------------------------------------------------------------- refs

/** `F123` or `F123|https://files.slack.com/…`. */
export function encodeFileRef(id: string, url?: string): string {
  return url ? `${id}|${url}` : id;
}

/** An avatar: `avatar|https://…`. */
export function encodeAvatarRef(url: string): string {
  return `avatar|${url}`;
}

export type DecodedRef = { type: 'file'; id: string; url?: string } | { type: 'avatar'; url: string };

export function decodeRef(ref: string): DecodedRef | undefined {
  const bar = ref.indexOf('|');
  const head = bar === -1 ? ref : ref.slice(0, bar);
  const tail = bar === -1 ? undefined : ref.slice(bar + 1);
  if (head === 'avatar') return tail && URL.canParse(tail) ? { type: 'avatar', url: tail } : undefined;
  if (!/^F[A-Z0-9]+$/.test(head)) return undefined;
  if (tail !== undefined && !URL.canParse(tail)) return undefined;
  return { type: 'file', id: head, ...(tail ? { url: tail } : {}) };
}

/** User and channel ids mentioned in raw mrkdwn (`<@U…>`, `<#C…>` without a label). */
export function mentionsIn(text: string): { users: string[]; channels: string[] } {
  const users = new Set<string>();
  const channels = new Set<string>();
  for (const m of text.matchAll(/<([@#])([A-Z0-9]+)(\|[^>]*)?>/g)) {
    if (m[3] && m[3].length > 1) continue; // the sequence names itself
    (m[1] === '@' ? users : channels).add(m[2]!);
  }
  return { users: [...users], channels: [...channels] };
}
