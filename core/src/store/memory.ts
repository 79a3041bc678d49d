import type { ClientRecord, Leg, NewOutboxItem, OutboxItem, OutboxStats, Store } from './store.js';

/** The Store in process memory: for tests and the demo. Lost on exit. */
export class MemoryStore implements Store {
  readonly description = 'memory';
  private readonly clients = new Map<string, ClientRecord>();
  private readonly keys = new Map<string, number>();
  private readonly items = new Map<number, OutboxItem>();
  private nextId = 1;
  private rev = 0;

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

  async enqueue(item: NewOutboxItem, dedupeTtlMs: number, now: number) {
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
    return structuredClone(stored);
  }

  async pending(leg: Leg) {
    return [...this.items.values()]
      .filter((i) => i.leg === leg && i.state === 'pending')
      .map((i) => structuredClone(i));
  }

  async reschedule(id: number, attempts: number, nextAttemptAt: number, lastError: string) {
    const i = this.items.get(id);
    if (i) Object.assign(i, { attempts, nextAttemptAt, lastError });
  }

  async complete(id: number) {
    this.items.delete(id);
  }

  async bury(id: number, attempts: number, reason: string) {
    const i = this.items.get(id);
    if (i) Object.assign(i, { attempts, lastError: reason, state: 'dead' });
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
        : ids.map((id) => this.items.get(id)).filter((i): i is OutboxItem => !!i);
    for (const i of targets) Object.assign(i, { state: 'pending', attempts: 0, nextAttemptAt: now });
    this.rev++;
    return targets.length;
  }

  async drop(id: number) {
    this.rev++;
    return this.items.delete(id);
  }

  async revision() {
    return this.rev;
  }

  async stats(): Promise<OutboxStats[]> {
    return (['inbound', 'outbound'] as const).map((leg) => {
      const all = [...this.items.values()].filter((i) => i.leg === leg);
      const pending = all.filter((i) => i.state === 'pending');
      return {
        leg,
        pending: pending.length,
        dead: all.length - pending.length,
        oldestPendingAt: pending.length ? Math.min(...pending.map((i) => i.createdAt)) : undefined,
      };
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
}
