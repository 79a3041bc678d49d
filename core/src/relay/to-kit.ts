/** Customer message (normalized by a plugin) -> Kit's send_message event. Pure. */
import type { AttachmentRef, ClientProfile, InboundMessage } from '../connector.js';
import { customerEventId } from '../kit/decisions.js';
import type { ClientData, CustomerEvent, PayloadItem } from '../kit/schemas.js';

/** Marks a re-sent edit, since Kit has no notion of editing. */
export const EDITED_PREFIX = '(edited) ';

/** Turns a platform file into a URL Kit can fetch (the signed media proxy). */
export type MediaUrlFor = (clientId: string, file: AttachmentRef) => string;

export function toCustomerEvent(msg: InboundMessage, mediaUrlFor: MediaUrlFor): CustomerEvent {
  const clientId = msg.client.clientId;
  const id = customerEventId(clientId, msg.messageId);
  const payload: PayloadItem[] = [];
  for (const item of msg.items ?? []) {
    if (item.type === 'media') {
      const { type: _t, ...file } = item;
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
  const text = msg.text !== undefined && msg.edited ? EDITED_PREFIX + msg.text : msg.text;
  return {
    client_data: clientData(clientId, msg.client.profile, mediaUrlFor),
    event_id: id,
    event_type: 'send_message',
    event_data: {
      message: { message_id: id, ...opt('text', text), ...(payload.length ? { payload } : {}) },
    },
  };
}

function clientData(clientId: string, p: ClientProfile | undefined, mediaUrlFor: MediaUrlFor): ClientData {
  if (!p) return { client_id: clientId };
  return {
    client_id: clientId,
    ...opt('client_display_name', p.displayName),
    ...opt('client_phone', p.phone),
    ...opt('client_email', p.email),
    ...opt('client_language', p.language),
    ...(p.avatar ? { client_avatar: mediaUrlFor(clientId, p.avatar) } : {}),
    ...(p.utm ? { utm: p.utm } : {}),
    ...(p.page ? { page: p.page } : {}),
    ...(p.device ? { device: p.device } : {}),
  };
}

const EXT: Record<string, string> = { photo: 'jpg', video: 'mp4', audio: 'ogg', document: 'bin' };
function defaultFileName(f: AttachmentRef): string {
  return `${f.kind}.${EXT[f.kind] ?? 'bin'}`;
}

function opt<K extends string, V>(key: K, value: V | undefined | null): { [P in K]?: V } {
  return value === undefined || value === null || value === '' ? {} : ({ [key]: value } as { [P in K]: V });
}
