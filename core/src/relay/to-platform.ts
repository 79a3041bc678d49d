/**
 * Kit's agent message -> the AgentMessage a connector delivers. Files are opened
 * here, before the connector sees them, so that the platform's limits are checked
 * in one place: a file that cannot go becomes a notice with its link, never a
 * silent drop.
 */
import type {
  AgentMessage,
  FetchedFile,
  MediaKind,
  MediaLimit,
  MediaLimits,
  OutboundAttachment,
} from '../connector.js';
import type { AgentMessageCallback } from '../kit/schemas.js';
import type { Logger } from '../logger.js';
import { MediaFetchError, type MediaFetcher } from '../media/fetch.js';
import { transportFileName } from '../media/headers.js';

export interface ToAgentMessageOptions {
  fetcher: MediaFetcher;
  limits: MediaLimits;
  showAgentName: boolean;
  logger: Logger;
  /** Put in every line logged here, so the message can be followed: leg, clientId, eventId. */
  logFields?: Record<string, string>;
}

const MEDIA_KINDS = new Set(['photo', 'video', 'audio', 'document']);

export interface PreparedMessage {
  message: AgentMessage;
  /** Closes pre-opened file streams the connector did not take. Call after deliver, success or not. */
  dispose(): void;
  /** Files that go as a link instead (the notices above), one `"name": why` each: the agent is told. */
  replaced: string[];
}

export async function toAgentMessage(
  event: AgentMessageCallback,
  opts: ToAgentMessageOptions,
): Promise<PreparedMessage> {
  const disposers: (() => void)[] = [];
  const replaced: string[] = [];
  const { message, sender_data: s } = event.event_data;
  const name = s?.sender_display_name || s?.sender_username || undefined;
  let text = message.text ?? undefined;
  if (text && opts.showAgentName && name) text = `${name}: ${text}`;
  const out: AgentMessage = {
    eventId: event.event_id,
    ...(text ? { text } : {}),
    sender: {
      ...(s?.sender_id !== undefined && s?.sender_id !== null ? { id: String(s.sender_id) } : {}),
      ...(name ? { displayName: name } : {}),
      ...(s?.sender_type ? { type: s.sender_type } : {}),
    },
    attachments: [],
    locations: [],
    contacts: [],
    notices: [],
  };
  for (const raw of message.payload ?? []) {
    const item = raw as Record<string, unknown>;
    const type = String(item.type);
    if (MEDIA_KINDS.has(type) && typeof item.file_url === 'string') {
      const fileName = typeof item.file_name === 'string' && item.file_name ? item.file_name : undefined;
      const r = await openAttachment(type as MediaKind, item.file_url, fileName, opts);
      if ('notice' in r) {
        out.notices.push(r.notice);
        replaced.push(`"${fileName ?? 'file'}": ${r.why}`);
      } else {
        out.attachments.push(r.attachment);
        disposers.push(r.dispose);
      }
    } else if (
      type === 'location' &&
      typeof item.latitude === 'number' &&
      typeof item.longitude === 'number'
    ) {
      out.locations.push({
        latitude: item.latitude,
        longitude: item.longitude,
        ...(typeof item.address === 'string' && item.address ? { address: item.address } : {}),
      });
    } else if (type === 'contact') {
      out.contacts.push({
        ...(typeof item.name === 'string' ? { name: item.name } : {}),
        ...(typeof item.number === 'string' ? { number: item.number } : {}),
      });
    } else {
      opts.logger.warn(
        { eventId: event.event_id, ...opts.logFields, type },
        'agent payload item of an unsupported type skipped',
      );
    }
  }
  return {
    message: out,
    replaced,
    dispose: () => {
      for (const d of disposers) d();
    },
  };
}

async function openAttachment(
  kind: MediaKind,
  url: string,
  fileName: string | undefined,
  opts: ToAgentMessageOptions,
): Promise<{ attachment: OutboundAttachment; dispose(): void } | { notice: string; why: string }> {
  const label = fileName ?? 'file';
  const limit = opts.limits[kind];
  let first: FetchedFile;
  try {
    first = await opts.fetcher.open(url, {
      maxBytes: limit.maxUploadBytes,
      ...(fileName ? { fileName } : {}),
    });
  } catch (err) {
    const code = err instanceof MediaFetchError ? err.code : 'network';
    opts.logger.warn(
      { ...opts.logFields, kind, code, reason: (err as Error).message },
      'agent file not sent; the customer gets a link',
    );
    return code === 'too-large'
      ? { notice: `${label} (too large to send here): ${url}`, why: 'too large for the platform' }
      : { notice: `${label}: ${url}`, why: `could not be fetched (${code})` };
  }
  // A type the platform refuses for this kind still goes, as a document, when documents take it.
  let sendAs = kind;
  if (!mimeAllowed(limit, first.contentType)) {
    const doc = opts.limits.document;
    if (
      kind !== 'document' &&
      mimeAllowed(doc, first.contentType) &&
      (first.size ?? 0) <= doc.maxUploadBytes
    ) {
      sendAs = 'document';
    } else {
      first.stream.destroy();
      opts.logger.warn(
        { ...opts.logFields, kind, contentType: first.contentType },
        'agent file type not accepted by the platform; sent as a link',
      );
      return {
        notice: `${label}: ${url}`,
        why: `type ${first.contentType ?? 'unknown'} not accepted by the platform`,
      };
    }
  }
  let pending: FetchedFile | undefined = first;
  const maxBytes = opts.limits[sendAs].maxUploadBytes;
  // Names come from Kit, the file's server or its URL: made safe once, here, for every plugin's upload.
  const safeName = transportFileName(first.fileName);
  const attachment: OutboundAttachment = {
    kind: sendAs,
    fileName: safeName,
    url,
    ...(first.size !== undefined ? { size: first.size } : {}),
    ...(first.contentType ? { contentType: first.contentType } : {}),
    // The first call gets the stream opened above; a retry fetches again.
    open: async () => {
      const f = pending;
      pending = undefined;
      return f ?? opts.fetcher.open(url, { maxBytes, fileName: safeName });
    },
  };
  return {
    attachment,
    dispose: () => {
      pending?.stream.destroy();
      pending = undefined;
    },
  };
}

export function mimeAllowed(limit: MediaLimit, contentType: string | undefined): boolean {
  if (!limit.mimeTypes?.length) return true;
  if (!contentType) return false;
  const ct = contentType.split(';')[0]!.trim().toLowerCase();
  return limit.mimeTypes.some((m) => (m.endsWith('/*') ? ct.startsWith(m.slice(0, -1)) : ct === m));
}
