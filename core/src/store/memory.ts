import type { JsonObject } from '../connector.js';
import { LocalLeases } from './leases.js';
import { LocalJobLeases } from './local-jobs.js';
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

/** The Store in process memory: for tests and the demo. Lost on exit. */
export class MemoryStore implements Store {
  readonly description = 'memory';
  private readonly clients = new Map<string, ClientRecord>();
  private readonly keys = new Map<string, number>();
  /** Platform message ids of delivered items, by dedupe key; pruned with the key. */
  private readonly sent = new Map<string, string[]>();
  private readonly items = new Map<number, OutboxItem>();
  private readonly leases: LocalLeases;
  /** Dead letters per leg. */
  private readonly dead: Record<Leg, number> = { inbound: 0, outbound: 0 };
  private readonly jobs: LocalJobLeases;
  private readonly checkpoints = new Map<string, string>();
  private nextId = 1;

  constructor(opts: MemoryStoreOptions = {}) {
    this.leases = new LocalLeases(opts.clock ?? Date.now);
    this.jobs = new LocalJobLeases(opts.clock ?? Date.now);
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
    this.sent.delete(dk);
    const stored: OutboxItem = {
      ...structuredClone(item),
      id: this.nextId++,
      createdAt: now,
      attempts: 0,
      nextAttemptAt: now,
      state: 'pending',
    };
    this.items.set(stored.id, stored);
    const out: EnqueuedItem = structuredClone(stored);
    const { fence } = this.leases.add(item.leg, item.clientId, stored.id, now, claim);
    if (fence !== undefined) out.fence = fence;
    return out;
  }

  async claim(leg: Leg, owner: string, max: number, leaseMs: number): Promise<Claim[]> {
    return this.leases
      .claim(leg, owner, max, leaseMs)
      .map(({ fence, headId }) => ({ item: structuredClone(this.items.get(headId)!), fence }));
  }

  async renew(leg: Leg, clientId: string, fence: number, leaseMs: number) {
    if (!this.leases.renew(leg, clientId, fence, leaseMs)) throw new LeaseLostError(fence, 'renew');
  }

  async nextDue(leg: Leg) {
    return this.leases.nextDue(leg);
  }

  async complete(id: number, fence: number, handOn?: { leaseMs: number }, platformIds?: readonly string[]) {
    this.assertCovers(id, fence, 'complete');
    const done = this.items.get(id);
    if (done && platformIds?.length) this.sent.set(`${done.leg}\n${done.key}`, [...platformIds]);
    this.items.delete(id);
    this.leases.remove(id);
    const next = this.leases.handOn(fence, handOn?.leaseMs);
    return next === undefined ? undefined : { item: structuredClone(this.items.get(next)!), fence };
  }

  async reschedule(id: number, fence: number, attempts: number, nextAttemptAt: number, lastError: string) {
    this.assertCovers(id, fence, 'reschedule');
    const i = this.items.get(id);
    if (i) {
      Object.assign(i, { attempts, nextAttemptAt, lastError });
      if (i.state === 'pending') this.leases.setDue(i.leg, i.clientId, id, nextAttemptAt);
    }
    this.leases.release(fence);
  }

  async bury(id: number, fence: number, attempts: number, reason: string) {
    this.assertCovers(id, fence, 'bury');
    const i = this.items.get(id);
    if (i && i.state === 'pending') {
      Object.assign(i, { attempts, lastError: reason, state: 'dead' });
      this.dead[i.leg]++;
      this.leases.remove(id);
    }
    this.leases.release(fence);
  }

  async saveProgress(id: number, fence: number, progress: JsonObject) {
    this.assertCovers(id, fence, 'saveProgress');
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
      if (i.state === 'dead') this.dead[i.leg]--;
      Object.assign(i, { state: 'pending', attempts: 0, nextAttemptAt: now });
      this.leases.setDue(i.leg, i.clientId, i.id, now);
    }
    return targets.length;
  }

  async drop(id: number) {
    const i = this.items.get(id);
    if (!i) return false;
    this.items.delete(id);
    if (i.state === 'dead') this.dead[i.leg]--;
    this.leases.remove(id);
    return true;
  }

  /** From the lease index (no walk over the items): the oldest pending item is the lowest pending id. */
  async stats(): Promise<OutboxStats[]> {
    return (['inbound', 'outbound'] as const).map((leg) => {
      const { clients, pending, oldestId } = this.leases.counts(leg);
      const s: OutboxStats = { leg, pending, dead: this.dead[leg], clients };
      if (oldestId !== undefined) s.oldestPendingAt = this.items.get(oldestId)!.createdAt;
      return s;
    });
  }

  async deliveredIds(leg: Leg, key: string) {
    const ids = this.sent.get(`${leg}\n${key}`);
    return ids && [...ids];
  }

  async prune(now: number) {
    let n = 0;
    for (const [k, until] of this.keys) {
      if (until <= now) {
        this.keys.delete(k);
        this.sent.delete(k);
        n++;
      }
    }
    return n;
  }

  async getCheckpoint(key: string) {
    return this.checkpoints.get(key);
  }

  async setCheckpoint(key: string, value: string) {
    this.checkpoints.set(key, value);
  }

  async acquireJob(name: string, owner: string, leaseMs: number) {
    return this.jobs.acquire(name, owner, leaseMs);
  }

  async renewJob(name: string, fence: number, leaseMs: number) {
    this.jobs.renew(name, fence, leaseMs);
  }

  async releaseJob(name: string, fence: number) {
    this.jobs.release(name, fence);
  }

  async close() {}

  /** LeaseLostError unless `fence` holds the lease of item `id`'s client (or `id` is gone). */
  private assertCovers(id: number, fence: number, what: string): void {
    if (!this.leases.covers(fence, id)) throw new LeaseLostError(fence, what);
  }
}

/** A client record after `patch` (for stores that merge in process). */
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
