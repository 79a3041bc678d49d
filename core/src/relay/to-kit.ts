/** Customer message (normalized by a plugin) -> Kit's send_message event. Pure. */
import type { AttachmentRef, ClientProfile, InboundMessage, MediaKind } from '../connector.js';
import { customerEventId } from '../kit/decisions.js';
import type { ClientData, CustomerEvent, PayloadItem } from '../kit/schemas.js';
import { CONTROL_AND_BIDI } from '../media/headers.js';

/** Marks a re-sent edit, since Kit has no notion of editing. */
export const EDITED_PREFIX = '(edited) ';

/** Turns a platform file into a URL Kit can fetch (the signed media proxy). */
export type MediaUrlFor = (clientId: string, file: AttachmentRef) => string;

export interface ToCustomerEventOptions {
  mediaUrlFor: MediaUrlFor;
  /** Largest file of a kind that can be relayed; a larger one becomes a line of text. Default: any. */
  maxFileBytes?: (kind: MediaKind) => number;
  /** Told of each file that became a line of text. */
  onTooLarge?: (file: AttachmentRef, limit: number) => void;
}

export function toCustomerEvent(msg: InboundMessage, opts: ToCustomerEventOptions): CustomerEvent {
  const { mediaUrlFor } = opts;
  const clientId = msg.client.clientId;
  const id = customerEventId(clientId, msg.messageId);
  const payload: PayloadItem[] = [];
  const notices: string[] = [];
  for (const item of msg.items ?? []) {
    if (item.type === 'media') {
      const { type: _t, ...file } = item;
      const limit = opts.maxFileBytes?.(file.kind) ?? Number.POSITIVE_INFINITY;
      if (file.size !== undefined && file.size > limit) {
        notices.push(tooLargeNotice(file, limit));
        opts.onTooLarge?.(file, limit);
        continue;
      }
      payload.push({
        type: file.kind,
        file_name: file.fileName ?? defaultFileName(file),
        file_url: mediaUrlFor(clientId, file),
      });
    } else if (item.type === 'location') {
      payload.push({
        type: 'location',
        latitude: item.latitude,
        longitude: item.longitude,
        ...opt('address', item.address),
      });
    } else {
      payload.push({ type: 'contact', ...opt('name', item.name), ...opt('number', item.number) });
    }
  }
  const said = [msg.text, ...notices].filter((t) => t !== undefined && t !== '').join('\n');
  const text = said && msg.edited ? EDITED_PREFIX + said : said || undefined;
  return {
    client_data: clientDataOf(clientId, msg.client.profile, mediaUrlFor),
    event_id: id,
    event_type: 'send_message',
    event_data: {
      message: { message_id: id, ...opt('text', text), ...(payload.length ? { payload } : {}) },
    },
  };
}

/** A profile as Kit's client_data; the avatar becomes a signed media link. Pure. */
export function clientDataOf(
  clientId: string,
  p: ClientProfile | undefined,
  mediaUrlFor: MediaUrlFor,
): ClientData {
  if (!p) return { client_id: clientId };
  return {
    client_id: clientId,
    ...opt('client_display_name', p.displayName === undefined ? undefined : cleanDisplayName(p.displayName)),
    ...opt('client_phone', p.phone),
    ...opt('client_email', p.email),
    ...opt('client_language', p.language),
    ...(p.avatar ? { client_avatar: mediaUrlFor(clientId, p.avatar) } : {}),
    ...(p.utm ? { utm: p.utm } : {}),
    ...(p.page ? { page: p.page } : {}),
    ...(p.device ? { device: p.device } : {}),
  };
}

/**
 * A customer's display name as agents see it: control characters and bidi
 * overrides removed (a name must not reorder the text around it in Kit's UI),
 * whitespace collapsed, at most 128 characters. Every platform's names pass here.
 */
export function cleanDisplayName(name: string): string {
  return name.replace(CONTROL_AND_BIDI, '').replace(/\s+/g, ' ').trim().slice(0, 128);
}

/** What the agent reads in place of a file that cannot be relayed. */
function tooLargeNotice(file: AttachmentRef, limit: number): string {
  const mb = (n: number) => `${(n / 1024 ** 2).toFixed(1)} MB`;
  return `[${file.kind} not relayed: ${file.fileName ?? defaultFileName(file)}, ${mb(file.size!)}, over the ${mb(limit)} limit]`;
}

const EXT: Record<string, string> = { photo: 'jpg', video: 'mp4', audio: 'ogg', document: 'bin' };
function defaultFileName(f: AttachmentRef): string {
  return `${f.kind}.${EXT[f.kind] ?? 'bin'}`;
}

function opt<K extends string, V>(key: K, value: V | undefined | null): { [P in K]?: V } {
  return value === undefined || value === null || value === '' ? {} : ({ [key]: value } as { [P in K]: V });
}
