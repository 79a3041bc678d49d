/**
 * Telegram update -> InboundMessage. Pure functions: no I/O, no state, so every
 * message kind is unit-tested without a server. The connector adds what needs
 * the network (the avatar) and what needs memory (a pending /start utm).
 *
 * Kinds: text; photo (largest size) -> photo; video, video_note, animation ->
 * video; voice, audio -> audio; document -> document; a static sticker -> photo
 * (image/webp), an animated or video sticker -> document, with the sticker's
 * emoji as the text; caption -> text; location -> location; venue -> location
 * with "title, address"; contact -> contact. Anything else (polls, dice, service
 * messages) is skipped with a reason the connector logs at debug level.
 */
import type { AttachmentRef, ClientProfile, InboundItem, InboundMessage } from '@kitbridge/core';
import type { Chat, Message, Update, User } from 'grammy/types';
import { formatClientId } from './client-id.js';

export interface InboundOptions {
  /** Serve group chats (each group is one client); otherwise only private chats. */
  allowGroups: boolean;
}

export type Utm = NonNullable<ClientProfile['utm']>;

export type MappedUpdate =
  /** A customer message for Kit; `userId` is whose avatar to look up (private chats). */
  | { kind: 'message'; message: InboundMessage; userId?: number }
  /** `/start`: nothing to forward; `utm` (when the link carried a payload) goes with the next message. */
  | { kind: 'start'; clientId: string; utm?: Utm }
  | { kind: 'skip'; reason: string };

/** Maps one update; updates other than (edited) messages are skipped. */
export function mapUpdate(update: Update, opts: InboundOptions): MappedUpdate {
  const msg = update.message ?? update.edited_message;
  if (!msg) return { kind: 'skip', reason: `update kind ${updateKind(update)} is not handled` };
  return mapMessage(msg, update.edited_message !== undefined, opts);
}

export function mapMessage(msg: Message, edited: boolean, opts: InboundOptions): MappedUpdate {
  const chat = msg.chat;
  const group = chat.type === 'group' || chat.type === 'supergroup';
  if (chat.type === 'channel') return { kind: 'skip', reason: 'channel posts are not handled' };
  if (group && !opts.allowGroups)
    return { kind: 'skip', reason: 'group chat (TELEGRAM_ALLOW_GROUPS is off)' };
  if (msg.from?.is_bot) return { kind: 'skip', reason: 'message from a bot' };

  const clientId = formatClientId(chat.id);
  const start = !edited && msg.text ? parseStart(msg.text) : undefined;
  if (start) return { kind: 'start', clientId, ...(start.utm ? { utm: start.utm } : {}) };

  const content = mapContent(msg);
  if (!content.text && content.items.length === 0) {
    return { kind: 'skip', reason: 'message kind is not supported (no text, file, location or contact)' };
  }

  const profile: ClientProfile = group ? groupProfile(chat) : userProfile(msg.from);
  const contact = msg.contact;
  if (!group && contact?.user_id !== undefined && contact.user_id === msg.from?.id)
    profile.phone = contact.phone_number;

  let text = content.text;
  // In a group the agent talks to everyone: say who wrote each line.
  if (group && text !== undefined && msg.from) text = `${userName(msg.from)}: ${text}`;
  else if (group && msg.from && content.items.length) text = `${userName(msg.from)}:`;

  const message: InboundMessage = {
    client: { clientId, profile },
    messageId: edited ? `${msg.message_id}:e${msg.edit_date ?? 0}` : String(msg.message_id),
    ...(text !== undefined ? { text } : {}),
    ...(content.items.length ? { items: content.items } : {}),
    ...(edited ? { edited: true } : {}),
  };
  return { kind: 'message', message, ...(!group && msg.from ? { userId: msg.from.id } : {}) };
}

/** The text and items of a message, whatever its kind. */
export function mapContent(msg: Message): { text?: string; items: InboundItem[] } {
  const items: InboundItem[] = [];
  let text = msg.text ?? msg.caption;
  const media = mediaOf(msg);
  if (media) items.push({ type: 'media', ...media.ref });
  if (media?.emoji && text === undefined) text = media.emoji;
  if (msg.venue) {
    const v = msg.venue;
    items.push({
      type: 'location',
      latitude: v.location.latitude,
      longitude: v.location.longitude,
      address: [v.title, v.address].filter(Boolean).join(', '),
    });
  } else if (msg.location) {
    items.push({ type: 'location', latitude: msg.location.latitude, longitude: msg.location.longitude });
  }
  if (msg.contact) {
    const c = msg.contact;
    const name = [c.first_name, c.last_name].filter(Boolean).join(' ');
    items.push({ type: 'contact', ...(name ? { name } : {}), number: c.phone_number });
  }
  return { ...(text !== undefined && text !== '' ? { text } : {}), items };
}

function mediaOf(msg: Message): { ref: AttachmentRef; emoji?: string } | undefined {
  if (msg.photo?.length) {
    const best = msg.photo.reduce((a, b) => (b.width * b.height >= a.width * a.height ? b : a));
    return {
      ref: withSize(
        { ref: best.file_id, kind: 'photo', fileName: `${best.file_unique_id}.jpg`, mimeType: 'image/jpeg' },
        best.file_size,
      ),
    };
  }
  // An animation message also carries `document`: look at it first.
  if (msg.animation) {
    const a = msg.animation;
    return {
      ref: file(
        a.file_id,
        'video',
        a.file_name ?? `${a.file_unique_id}.mp4`,
        a.mime_type ?? 'video/mp4',
        a.file_size,
      ),
    };
  }
  if (msg.video) {
    const v = msg.video;
    return {
      ref: file(
        v.file_id,
        'video',
        v.file_name ?? `${v.file_unique_id}.mp4`,
        v.mime_type ?? 'video/mp4',
        v.file_size,
      ),
    };
  }
  if (msg.video_note) {
    const v = msg.video_note;
    return { ref: file(v.file_id, 'video', `${v.file_unique_id}.mp4`, 'video/mp4', v.file_size) };
  }
  if (msg.voice) {
    const v = msg.voice;
    return {
      ref: file(v.file_id, 'audio', `${v.file_unique_id}.ogg`, v.mime_type ?? 'audio/ogg', v.file_size),
    };
  }
  if (msg.audio) {
    const a = msg.audio;
    return {
      ref: file(
        a.file_id,
        'audio',
        a.file_name ?? `${a.file_unique_id}.mp3`,
        a.mime_type ?? 'audio/mpeg',
        a.file_size,
      ),
    };
  }
  if (msg.document) {
    const d = msg.document;
    return { ref: file(d.file_id, 'document', d.file_name ?? d.file_unique_id, d.mime_type, d.file_size) };
  }
  if (msg.sticker) {
    const s = msg.sticker;
    const ref = s.is_video
      ? file(s.file_id, 'document', `${s.file_unique_id}.webm`, 'video/webm', s.file_size)
      : s.is_animated
        ? file(s.file_id, 'document', `${s.file_unique_id}.tgs`, 'application/x-tgsticker', s.file_size)
        : file(s.file_id, 'photo', `${s.file_unique_id}.webp`, 'image/webp', s.file_size);
    return { ref, ...(s.emoji ? { emoji: s.emoji } : {}) };
  }
  return undefined;
}

function file(
  ref: string,
  kind: AttachmentRef['kind'],
  fileName: string,
  mimeType: string | undefined,
  size: number | undefined,
): AttachmentRef {
  return withSize({ ref, kind, fileName, ...(mimeType ? { mimeType } : {}) }, size);
}

function withSize(ref: AttachmentRef, size: number | undefined): AttachmentRef {
  return size !== undefined ? { ...ref, size } : ref;
}

/** First and last name, else @username, else the numeric id. */
export function userName(user: User): string {
  const name = [user.first_name, user.last_name].filter(Boolean).join(' ').trim();
  if (name) return name;
  return user.username ? `@${user.username}` : String(user.id);
}

function userProfile(user: User | undefined): ClientProfile {
  if (!user) return {};
  return { displayName: userName(user), ...(user.language_code ? { language: user.language_code } : {}) };
}

function groupProfile(chat: Chat): ClientProfile {
  return 'title' in chat && chat.title ? { displayName: chat.title } : {};
}

// ---------------------------------------------------------------- /start and its payload

const UTM_KEYS = ['source', 'campaign', 'medium', 'content', 'term'] as const;
const KEY_ALIASES: Record<string, (typeof UTM_KEYS)[number]> = {
  s: 'source',
  src: 'source',
  source: 'source',
  c: 'campaign',
  campaign: 'campaign',
  m: 'medium',
  medium: 'medium',
  n: 'content',
  content: 'content',
  t: 'term',
  term: 'term',
};

/**
 * Recognises `/start`, `/start <payload>` and `/start@bot <payload>`; undefined
 * for any other text.
 */
export function parseStart(text: string): { utm?: Utm } | undefined {
  const m = /^\/start(?:@\w+)?(?:\s+(\S+))?\s*$/.exec(text);
  if (!m) return undefined;
  const utm = m[1] ? parseStartPayload(m[1]) : undefined;
  return utm ? { utm } : {};
}

/**
 * Deep-link payload (`t.me/<bot>?start=<payload>`, at most 64 of A-Z a-z 0-9 _ -)
 * to UTM fields. Two forms:
 * - keyed, fields joined by `__`, each `key-value`: `source-google__campaign-spring_sale__medium-cpc`
 *   (keys: source|src|s, campaign|c, medium|m, content|n, term|t; unknown keys are ignored);
 * - positional, joined by `-`: `source-campaign-medium-content-term`, e.g. `google-spring-cpc`.
 * Empty fields are left out; undefined when nothing is left.
 */
export function parseStartPayload(payload: string): Utm | undefined {
  const utm: Utm = {};
  if (payload.includes('__')) {
    for (const field of payload.split('__')) {
      const dash = field.indexOf('-');
      if (dash <= 0) continue;
      const key = KEY_ALIASES[field.slice(0, dash).toLowerCase()];
      const value = field.slice(dash + 1);
      if (key && value) utm[key] = value;
    }
  } else {
    payload.split('-').forEach((value, i) => {
      const key = UTM_KEYS[i];
      if (key && value) utm[key] = value;
    });
  }
  return Object.keys(utm).length ? utm : undefined;
}

function updateKind(update: Update): string {
  return Object.keys(update).find((k) => k !== 'update_id') ?? 'unknown';
}
