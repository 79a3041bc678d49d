import type { JsonObject } from '../connector.js';
import {
  type Claim,
  type ClientPatch,
  type ClientRecord,
  type EnqueuedItem,
  LeaseLostError,
  type LeaseRequest,
  type Leg,
  type NewOutboxItem,
  type OutboxItem,
  type OutboxStats,
  type Store,
} from './store.js';

export interface MemoryStoreOptions {
  /** The store's clock, for leases and due times (tests). Default Date.now. */
  clock?: () => number;
}

/** One client's pending items (ids ascending) and its lease. */
interface Queue {
  leg: Leg;
  clientId: string;
  ids: number[];
  owner?: string;
  fence?: number;
  expiresAt: number;
}

/** The Store in process memory: for tests and the demo. Lost on exit. */
export class MemoryStore implements Store {
  readonly description = 'memory';
  private readonly clients = new Map<string, ClientRecord>();
  private readonly keys = new Map<string, number>();
  private readonly items = new Map<number, OutboxItem>();
  /** By `${leg}\n${clientId}`: clients with a pending item or a lease. */
  private readonly queues = new Map<string, Queue>();
  private readonly byFence = new Map<number, Queue>();
  private nextId = 1;
  private lastFence = 0;
  private readonly clock: () => number;

  constructor(opts: MemoryStoreOptions = {}) {
    this.clock = opts.clock ?? Date.now;
  }

  async getClient(clientId: string) {
    const c = this.clients.get(clientId);
    return c && structuredClone(c);
  }

  async saveClient(record: ClientRecord) {
    const old = this.clients.get(record.clientId);
    this.clients.set(record.clientId, {
      ...structuredClone(record),
      firstSeen: old?.firstSeen ?? record.firstSeen,
    });
  }

  async patchClient(clientId: string, patch: ClientPatch, now: number) {
    const next = applyClientPatch(this.clients.get(clientId), clientId, structuredClone(patch), now);
    this.clients.set(clientId, next);
    return structuredClone(next);
  }

  async enqueue(item: NewOutboxItem, dedupeTtlMs: number, now: number, claim?: LeaseRequest) {
    const dk = `${item.leg}\n${item.key}`;
    const until = this.keys.get(dk);
    if (until !== undefined && until > now) return undefined;
    this.keys.set(dk, now + dedupeTtlMs);
    const stored: OutboxItem = {
      ...structuredClone(item),
      id: this.nextId++,
      createdAt: now,
      attempts: 0,
      nextAttemptAt: now,
      state: 'pending',
    };
    this.items.set(stored.id, stored);
    const q = this.queue(item.leg, item.clientId);
    q.ids.push(stored.id);
    const out: EnqueuedItem = structuredClone(stored);
    if (claim && q.ids.length === 1 && q.expiresAt <= this.clock()) {
      out.fence = this.grant(q, claim.owner, claim.leaseMs);
    }
    return out;
  }

  async claim(leg: Leg, owner: string, max: number, leaseMs: number): Promise<Claim[]> {
    const now = this.clock();
    const ready: { q: Queue; at: number }[] = [];
    for (const q of this.queues.values()) {
      if (q.leg !== leg) continue;
      const at = this.readyAt(q);
      if (at !== undefined && at <= now) ready.push({ q, at });
    }
    ready.sort((a, b) => a.at - b.at);
    return ready.slice(0, Math.max(0, max)).map(({ q }) => {
      const fence = this.grant(q, owner, leaseMs);
      return { item: structuredClone(this.items.get(q.ids[0]!)!), fence };
    });
  }

  async renew(leg: Leg, clientId: string, fence: number, leaseMs: number) {
    const q = this.byFence.get(fence);
    if (!q || q.leg !== leg || q.clientId !== clientId) throw new LeaseLostError(fence, 'renew');
    q.expiresAt = this.clock() + leaseMs;
  }

  async nextDue(leg: Leg) {
    let min: number | undefined;
    for (const q of this.queues.values()) {
      if (q.leg !== leg) continue;
      const at = this.readyAt(q);
      if (at !== undefined && (min === undefined || at < min)) min = at;
    }
    return min;
  }

  async complete(id: number, fence: number, handOn?: { leaseMs: number }) {
    const q = this.held(id, fence, 'complete');
    if (this.items.delete(id)) q.ids = q.ids.filter((i) => i !== id);
    const head = q.ids[0] === undefined ? undefined : this.items.get(q.ids[0]);
    if (handOn && head && head.nextAttemptAt <= this.clock()) {
      q.expiresAt = this.clock() + handOn.leaseMs;
      return { item: structuredClone(head), fence };
    }
    this.release(q);
    return undefined;
  }

  async reschedule(id: number, fence: number, attempts: number, nextAttemptAt: number, lastError: string) {
    const q = this.held(id, fence, 'reschedule');
    const i = this.items.get(id);
    if (i) Object.assign(i, { attempts, nextAttemptAt, lastError });
    this.release(q);
  }

  async bury(id: number, fence: number, attempts: number, reason: string) {
    const q = this.held(id, fence, 'bury');
    const i = this.items.get(id);
    if (i && i.state === 'pending') {
      Object.assign(i, { attempts, lastError: reason, state: 'dead' });
      q.ids = q.ids.filter((x) => x !== id);
    }
    this.release(q);
  }

  async saveProgress(id: number, fence: number, progress: JsonObject) {
    this.held(id, fence, 'saveProgress');
    const i = this.items.get(id);
    if (i) i.progress = structuredClone(progress);
  }

  async pending(leg: Leg) {
    return [...this.items.values()]
      .filter((i) => i.leg === leg && i.state === 'pending')
      .map((i) => structuredClone(i));
  }

  async list(filter: { leg?: Leg; state?: 'pending' | 'dead'; limit?: number }) {
    return [...this.items.values()]
      .filter((i) => (!filter.leg || i.leg === filter.leg) && (!filter.state || i.state === filter.state))
      .slice(0, filter.limit ?? 100)
      .map((i) => structuredClone(i));
  }

  async get(id: number) {
    const i = this.items.get(id);
    return i && structuredClone(i);
  }

  async revive(ids: number[] | 'all-dead', now: number) {
    const targets =
      ids === 'all-dead'
        ? [...this.items.values()].filter((i) => i.state === 'dead')
        : [...new Set(ids)].map((id) => this.items.get(id)).filter((i): i is OutboxItem => !!i);
    for (const i of targets) {
      const q = this.queue(i.leg, i.clientId);
      if (i.state === 'dead') q.ids = [...q.ids, i.id].sort((a, b) => a - b);
      Object.assign(i, { state: 'pending', attempts: 0, nextAttemptAt: now });
    }
    return targets.length;
  }

  async drop(id: number) {
    const i = this.items.get(id);
    if (!i) return false;
    this.items.delete(id);
    const q = this.queues.get(`${i.leg}\n${i.clientId}`);
    if (q) {
      q.ids = q.ids.filter((x) => x !== id);
      if (!q.ids.length && q.fence === undefined) this.queues.delete(`${q.leg}\n${q.clientId}`);
    }
    return true;
  }

  async stats(): Promise<OutboxStats[]> {
    return (['inbound', 'outbound'] as const).map((leg) => {
      let pending = 0;
      let dead = 0;
      let oldest: number | undefined;
      for (const i of this.items.values()) {
        if (i.leg !== leg) continue;
        if (i.state === 'dead') dead++;
        else {
          pending++;
          if (oldest === undefined || i.createdAt < oldest) oldest = i.createdAt;
        }
      }
      let clients = 0;
      for (const q of this.queues.values()) if (q.leg === leg && q.ids.length) clients++;
      const s: OutboxStats = { leg, pending, dead, clients };
      if (oldest !== undefined) s.oldestPendingAt = oldest;
      return s;
    });
  }

  async prune(now: number) {
    let n = 0;
    for (const [k, until] of this.keys) {
      if (until <= now) {
        this.keys.delete(k);
        n++;
      }
    }
    return n;
  }

  async close() {}

  // ---------------------------------------------------------------- leases

  private queue(leg: Leg, clientId: string): Queue {
    const k = `${leg}\n${clientId}`;
    let q = this.queues.get(k);
    if (!q) {
      q = { leg, clientId, ids: [], expiresAt: 0 };
      this.queues.set(k, q);
    }
    return q;
  }

  /** When the client can be claimed: its head is due and its lease free; undefined without a head. */
  private readyAt(q: Queue): number | undefined {
    const head = q.ids[0] === undefined ? undefined : this.items.get(q.ids[0]);
    return head && Math.max(head.nextAttemptAt, q.expiresAt);
  }

  private grant(q: Queue, owner: string, leaseMs: number): number {
    if (q.fence !== undefined) this.byFence.delete(q.fence);
    const fence = ++this.lastFence;
    Object.assign(q, { owner, fence, expiresAt: this.clock() + leaseMs });
    this.byFence.set(fence, q);
    return fence;
  }

  private release(q: Queue): void {
    if (q.fence !== undefined) this.byFence.delete(q.fence);
    q.owner = undefined;
    q.fence = undefined;
    q.expiresAt = 0;
    if (!q.ids.length) this.queues.delete(`${q.leg}\n${q.clientId}`);
  }

  /** The lease `fence` holds, when it covers item `id` (or `id` is gone); else LeaseLostError. */
  private held(id: number, fence: number, what: string): Queue {
    const q = this.byFence.get(fence);
    const i = this.items.get(id);
    if (!q || (i && (i.leg !== q.leg || i.clientId !== q.clientId))) throw new LeaseLostError(fence, what);
    return q;
  }
}

/** A client record after `patch` (shared by the stores that merge in process). */
export function applyClientPatch(
  old: ClientRecord | undefined,
  clientId: string,
  patch: ClientPatch,
  now: number,
): ClientRecord {
  const conversation = patch.conversation ?? old?.conversation ?? 'open';
  let profile: JsonObject | undefined =
    patch.profile !== undefined ? { ...old?.profile, ...patch.profile } : old?.profile;
  if (profile && patch.dropProfile?.length) {
    profile = { ...profile };
    for (const k of patch.dropProfile) delete profile[k];
  }
  const address = patch.address ?? old?.address;
  const closeReason =
    patch.conversation === 'open'
      ? undefined
      : patch.conversation === 'closed'
        ? patch.closeReason
        : old?.closeReason;
  return {
    clientId,
    firstSeen: old?.firstSeen ?? now,
    lastSeen: now,
    conversation,
    ...(address ? { address } : {}),
    ...(profile ? { profile } : {}),
    ...(closeReason !== undefined ? { closeReason } : {}),
  };
}
