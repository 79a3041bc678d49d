/**
 * What the operator page shows, read fresh for every request: the bridge's
 * connection state, the backlog of each leg and the dead letters, with their
 * payloads cut to a short excerpt that holds no secret.
 */
import type { ConnectionStatus, JsonObject } from '../connector.js';
import { makeScrubber } from '../logger.js';
import type { Leg, OutboxItem, OutboxStats, Store } from '../store/store.js';

/** The bridge's state as `/readyz` tells it. */
export interface AdminStatus {
  ready: boolean;
  stopping: boolean;
  kit: boolean;
  connector: ConnectionStatus;
}

export interface DeadLetter {
  id: number;
  leg: Leg;
  clientId: string;
  key: string;
  attempts: number;
  createdAt: number;
  /** Why it was given up on (from Kit, the platform or the outbox: untrusted text). */
  reason: string;
  /** The start of its payload as JSON, secret-looking fields and known secrets replaced. */
  excerpt: string;
}

export interface AdminView {
  now: number;
  status: AdminStatus;
  /** Both legs, always in this order. */
  legs: OutboxStats[];
  dead: DeadLetter[];
  /** Dead letters in the store (more than `dead` holds when they are many). */
  deadTotal: number;
}

/** Dead letters listed on the page; the rest are counted (`kitbridge outbox list --dead` has them all). */
export const DEAD_SHOWN = 100;
/** Longest payload excerpt, characters. */
export const EXCERPT_MAX = 240;
const LEGS: Leg[] = ['inbound', 'outbound'];
/** Payload fields whose values are never shown, whatever they hold. */
const SECRET_KEY = /token|secret|password|passwd|authorization|salt|signature|cookie/i;

export interface ViewSource {
  store: Store;
  status: () => AdminStatus;
  /** Values never shown (the core's secrets and the admin token). */
  secrets: readonly string[];
  now: () => number;
}

export async function readView(src: ViewSource): Promise<AdminView> {
  const [stats, items] = await Promise.all([
    src.store.stats(),
    src.store.list({ state: 'dead', limit: DEAD_SHOWN }),
  ]);
  const legs = LEGS.map(
    (leg) => stats.find((s) => s.leg === leg) ?? { leg, pending: 0, dead: 0, clients: 0 },
  );
  const scrub = makeScrubber(src.secrets);
  return {
    now: src.now(),
    status: src.status(),
    legs,
    dead: items.map((i) => deadLetter(i, scrub)),
    deadTotal: legs.reduce((n, s) => n + s.dead, 0),
  };
}

function deadLetter(i: OutboxItem, scrub: (s: string) => string): DeadLetter {
  return {
    id: i.id,
    leg: i.leg,
    clientId: i.clientId,
    key: i.key,
    attempts: i.attempts,
    createdAt: i.createdAt,
    reason: scrub(i.lastError ?? ''),
    excerpt: excerpt(i.payload, scrub),
  };
}

/**
 * What the item says, cut to {@link EXCERPT_MAX}: for a message (either leg's
 * Kit event), its type, text and file names (never the file URLs); else the
 * payload as JSON. Secret-looking fields and known secret values are replaced.
 */
export function excerpt(payload: JsonObject, scrub: (s: string) => string): string {
  const message = findMessage(payload, 4);
  const s = message ? describeMessage(payload, message) : JSON.stringify(payload, redact);
  // Scrubbed before the cut, so a secret is never left half-shown at the edge.
  const safe = scrub(s);
  return safe.length <= EXCERPT_MAX ? safe : `${safe.slice(0, EXCERPT_MAX)}…`;
}

function redact(key: string, value: unknown): unknown {
  return key && SECRET_KEY.test(key) ? '[redacted]' : value;
}

type Json = JsonObject[string];

function isObject(v: Json | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The first `message` object with a text or files, at most `depth` levels down. */
function findMessage(o: JsonObject, depth: number): JsonObject | undefined {
  const m = o['message'];
  if (isObject(m) && (typeof m['text'] === 'string' || Array.isArray(m['payload']))) return m;
  if (depth === 0) return undefined;
  for (const v of Object.values(o)) {
    const found = isObject(v) ? findMessage(v, depth - 1) : undefined;
    if (found) return found;
  }
  return undefined;
}

/** `send_message: "text" [document invoice.pdf]`. */
function describeMessage(payload: JsonObject, message: JsonObject): string {
  const event = isObject(payload['event']) ? payload['event'] : payload;
  const kind = String(payload['kind'] ?? event['event_type'] ?? 'message');
  const text =
    typeof message['text'] === 'string' && message['text'] ? ` ${JSON.stringify(message['text'])}` : '';
  const files = Array.isArray(message['payload'])
    ? message['payload']
        .filter(isObject)
        .map((f) => ` [${[f['type'], f['file_name']].filter((x) => typeof x === 'string').join(' ')}]`)
        .join('')
    : '';
  return `${kind}:${text}${files}`;
}
