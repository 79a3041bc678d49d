/**
 * The per-client queues and leases of a store that serves one process
 * (MemoryStore, and SqliteStore under its exclusive open): which items each
 * client has pending (ids ascending, each with its due time), the lease on
 * each client, and which clients a claim may take, by when. The rows stay in
 * the store; this is their index, kept in memory beside them, so that claims,
 * leases and fences cost no store round trip. A store shared by several
 * processes (PostgreSQL) keeps the same in its database instead.
 *
 * Rules (the Store contract): a client's head is its lowest-id pending item; a
 * claim takes clients whose head is due and whose lease is free (none, or
 * expired), longest-waiting first; a live lease is never granted again. A
 * lease is held with a fence while the client's lease carries that fence.
 *
 * For a store with transactions: `begin()` before the writes of one
 * transaction, then `commit()` or `rollback()`; a rollback undoes every change
 * the transaction made, in reverse.
 *
 * Cost: unleased clients with a head sit in a heap by due time; leased ones do
 * not (a worker holds only a few at a time: claims look for expired leases
 * among them), so the common life of an item (enqueued and leased at once,
 * completed, released) touches no heap.
 */
import type { Leg } from './store.js';

interface Queue {
  leg: Leg;
  clientId: string;
  /** Pending item ids, ascending. */
  ids: number[];
  owner?: string;
  fence?: number;
  expiresAt: number;
  /** Bumped whenever its heap entry goes stale. */
  v: number;
}

interface Entry {
  at: number;
  q: Queue;
  v: number;
}

/** A pending item as the index needs it. */
export interface PendingRef {
  id: number;
  leg: Leg;
  clientId: string;
  /** nextAttemptAt. */
  due: number;
}

/** The lease a fence holds. */
export interface HeldLease {
  leg: Leg;
  clientId: string;
  /** The client's head now, if it has a pending item. */
  headId: number | undefined;
}

type Lease = { owner: string | undefined; fence: number | undefined; expiresAt: number };

export class LocalLeases {
  private readonly queues: Record<Leg, Map<string, Queue>> = { inbound: new Map(), outbound: new Map() };
  private readonly byFence = new Map<number, Queue>();
  /** Pending items: their queue and due time. */
  private readonly items = new Map<number, { q: Queue; due: number }>();
  private heaps: Record<Leg, MinHeap> = { inbound: new MinHeap(), outbound: new MinHeap() };
  /** While a transaction runs: how to undo each change it made, in order, and the queues it touched. */
  private undo?: (() => void)[];
  private touched?: Set<Queue>;
  private lastFence = 0;
  private fenceLimit = 0;

  constructor(
    private readonly clock: () => number,
    /** Called for a new block of fences: returns the first number of a block of `size` never handed out before. */
    private readonly reserveFences: (size: number) => number = makeCounter(),
  ) {}

  // ---------------------------------------------------------------- transactions

  begin(): void {
    this.undo = [];
    this.touched = new Set();
  }

  commit(): void {
    this.undo = undefined;
    this.touched = undefined;
  }

  /** Undoes every change since begin(). */
  rollback(): void {
    const undo = this.undo;
    const touched = this.touched;
    this.undo = undefined;
    this.touched = undefined;
    if (!undo || !touched) return;
    for (let i = undo.length - 1; i >= 0; i--) undo[i]!();
    for (const q of touched) if (this.queues[q.leg].get(q.clientId) === q) this.reheap(q);
  }

  // ---------------------------------------------------------------- items

  /** Replaces the pending items with `items` (rows read back from the store); leases stay. */
  load(items: Iterable<PendingRef>): void {
    for (const leg of LEGS) for (const q of this.queues[leg].values()) q.ids = [];
    this.items.clear();
    for (const it of items) {
      const q = this.queue(it.leg, it.clientId);
      q.ids.push(it.id);
      this.items.set(it.id, { q, due: it.due });
    }
    this.heaps = { inbound: new MinHeap(), outbound: new MinHeap() };
    for (const leg of LEGS) {
      for (const q of [...this.queues[leg].values()]) {
        q.ids.sort((a, b) => a - b);
        if (!q.ids.length && q.fence === undefined) this.queues[leg].delete(q.clientId);
        else this.reheap(q);
      }
    }
  }

  /**
   * A new pending item (the highest id so far). With `claim`, when it is its
   * client's head and the client is free, the lease is granted in the same step:
   * its fence is returned.
   */
  add(
    leg: Leg,
    clientId: string,
    id: number,
    due: number,
    claim?: { owner: string; leaseMs: number },
  ): { head: boolean; fence?: number } {
    const q = this.queue(leg, clientId);
    this.touch(q);
    q.ids.push(id);
    this.items.set(id, { q, due });
    this.undo?.push(() => {
      q.ids.pop();
      this.items.delete(id);
    });
    if (q.ids.length !== 1) return { head: false };
    if (claim && q.expiresAt <= this.clock())
      return { head: true, fence: this.grant(q, claim.owner, claim.leaseMs) };
    this.reheap(q);
    return { head: true };
  }

  /** A pending item (again) with this due time: revived, or rescheduled. */
  setDue(leg: Leg, clientId: string, id: number, due: number): void {
    const known = this.items.get(id);
    if (known) {
      this.touch(known.q);
      const old = known.due;
      known.due = due;
      this.undo?.push(() => {
        known.due = old;
      });
      if (known.q.ids[0] === id) this.reheap(known.q);
      return;
    }
    const q = this.queue(leg, clientId);
    this.touch(q);
    let at = q.ids.findIndex((x) => x > id);
    if (at < 0) at = q.ids.length;
    q.ids.splice(at, 0, id);
    this.items.set(id, { q, due });
    this.undo?.push(() => {
      q.ids.splice(at, 1);
      this.items.delete(id);
    });
    if (at === 0) this.reheap(q);
  }

  /** The item is no longer pending (delivered, dead, dropped). */
  remove(id: number): void {
    const known = this.items.get(id);
    if (!known) return;
    const { q } = known;
    this.touch(q);
    this.items.delete(id);
    const at = q.ids[0] === id ? 0 : q.ids.indexOf(id);
    if (at === 0) q.ids.shift();
    else q.ids.splice(at, 1);
    this.undo?.push(() => {
      q.ids.splice(at, 0, id);
      this.items.set(id, known);
    });
    if (!q.ids.length && q.fence === undefined) this.drop(q);
    else if (at === 0) this.reheap(q);
  }

  /** The client whose pending item `id` is, if it is pending. */
  clientOf(id: number): { leg: Leg; clientId: string } | undefined {
    const known = this.items.get(id);
    return known && { leg: known.q.leg, clientId: known.q.clientId };
  }

  /** Clients with a pending item, pending items, and the lowest pending id (the oldest item), of a leg. */
  counts(leg: Leg): { clients: number; pending: number; oldestId?: number } {
    let clients = 0;
    let pending = 0;
    let oldestId: number | undefined;
    for (const q of this.queues[leg].values()) {
      const head = q.ids[0];
      if (head === undefined) continue;
      clients++;
      pending += q.ids.length;
      if (oldestId === undefined || head < oldestId) oldestId = head;
    }
    return oldestId === undefined ? { clients, pending } : { clients, pending, oldestId };
  }

  // ---------------------------------------------------------------- leases

  /** Up to `max` due, free clients of `leg`, longest-waiting first, each leased to `owner`. */
  claim(leg: Leg, owner: string, max: number, leaseMs: number): { fence: number; headId: number }[] {
    const now = this.clock();
    const out: { fence: number; headId: number }[] = [];
    const expired = this.expiredLeases(leg, now);
    const heap = this.heaps[leg];
    let e = 0;
    while (out.length < max) {
      const top = this.validTop(leg);
      const fromHeap = top && top.at <= now ? top : undefined;
      const lapsed = expired[e];
      if (!fromHeap && !lapsed) break;
      let q: Queue;
      if (fromHeap && (!lapsed || fromHeap.at <= lapsed.at)) {
        heap.pop();
        q = fromHeap.q;
      } else {
        e++;
        q = lapsed!.q;
      }
      out.push({ fence: this.grant(q, owner, leaseMs), headId: q.ids[0]! });
    }
    return out;
  }

  /** When a claim of `leg` could next return something; undefined when it has no pending item. */
  nextDue(leg: Leg): number | undefined {
    let at = this.validTop(leg)?.at;
    for (const q of this.byFence.values()) {
      if (q.leg !== leg || !q.ids.length) continue;
      const ready = this.readyAt(q);
      if (at === undefined || ready < at) at = ready;
    }
    return at;
  }

  /** What `fence` holds, if the lease still carries it. */
  held(fence: number): HeldLease | undefined {
    const q = this.byFence.get(fence);
    return q && { leg: q.leg, clientId: q.clientId, headId: q.ids[0] };
  }

  /**
   * Whether `fence` may write item `id`: its lease is held, and `id` is a
   * pending item of that client or no pending item at all (gone or dead).
   */
  covers(fence: number, id: number): boolean {
    const q = this.byFence.get(fence);
    if (!q) return false;
    const known = this.items.get(id);
    return !known || known.q === q;
  }

  renew(leg: Leg, clientId: string, fence: number, leaseMs: number): boolean {
    const q = this.byFence.get(fence);
    if (!q || q.leg !== leg || q.clientId !== clientId) return false;
    this.setLease(q, { owner: q.owner, fence, expiresAt: this.clock() + leaseMs });
    return true;
  }

  /**
   * After the holder's item is done: when the client's head is due, the lease
   * passes to it (same fence, until now + leaseMs) and its id is returned; else
   * the lease is released.
   */
  handOn(fence: number, leaseMs: number | undefined): number | undefined {
    const q = this.byFence.get(fence);
    if (!q) return undefined;
    const head = q.ids[0];
    const now = this.clock();
    if (leaseMs !== undefined && head !== undefined && this.items.get(head)!.due <= now) {
      this.setLease(q, { owner: q.owner, fence, expiresAt: now + leaseMs });
      return head;
    }
    this.release(fence);
    return undefined;
  }

  release(fence: number): void {
    const q = this.byFence.get(fence);
    if (!q) return;
    this.setLease(q, { owner: undefined, fence: undefined, expiresAt: 0 });
    if (!q.ids.length) this.drop(q);
    else this.reheap(q);
  }

  // ---------------------------------------------------------------- internals

  private queue(leg: Leg, clientId: string): Queue {
    const map = this.queues[leg];
    let q = map.get(clientId);
    if (!q) {
      const created: Queue = { leg, clientId, ids: [], expiresAt: 0, v: 0 };
      map.set(clientId, created);
      this.undo?.push(() => {
        if (map.get(clientId) === created) map.delete(clientId);
      });
      q = created;
    }
    return q;
  }

  /** Forgets a queue with no item and no lease. */
  private drop(q: Queue): void {
    this.queues[q.leg].delete(q.clientId);
    q.v++;
    this.undo?.push(() => this.queues[q.leg].set(q.clientId, q));
  }

  private grant(q: Queue, owner: string, leaseMs: number): number {
    if (this.lastFence >= this.fenceLimit) {
      const first = this.reserveFences(FENCE_BLOCK);
      this.lastFence = Math.max(this.lastFence, first - 1);
      this.fenceLimit = this.lastFence + FENCE_BLOCK;
    }
    const fence = ++this.lastFence;
    // Leased: its heap entry (if any) goes stale; claims find it again only when the lease lapses.
    q.v++;
    this.setLease(q, { owner, fence, expiresAt: this.clock() + leaseMs });
    return fence;
  }

  /** Sets `q`'s lease (fence undefined: none), undoably. */
  private setLease(q: Queue, lease: Lease): void {
    this.touch(q);
    const old: Lease = { owner: q.owner, fence: q.fence, expiresAt: q.expiresAt };
    this.applyLease(q, lease);
    this.undo?.push(() => this.applyLease(q, old));
  }

  private applyLease(q: Queue, l: Lease): void {
    if (q.fence !== undefined && this.byFence.get(q.fence) === q) this.byFence.delete(q.fence);
    q.owner = l.owner;
    q.fence = l.fence;
    q.expiresAt = l.expiresAt;
    if (l.fence !== undefined) this.byFence.set(l.fence, q);
  }

  /** Notes a queue the running transaction changed (its heap entry is renewed after a rollback). */
  private touch(q: Queue): void {
    this.touched?.add(q);
  }

  private readyAt(q: Queue): number {
    return Math.max(this.items.get(q.ids[0]!)!.due, q.expiresAt);
  }

  /** A fresh heap entry for `q` when it is unleased with a head (older entries go stale). */
  private reheap(q: Queue): void {
    q.v++;
    if (q.fence !== undefined || !q.ids.length) return;
    const heap = this.heaps[q.leg];
    heap.push({ at: this.readyAt(q), q, v: q.v });
    // Stale entries are dropped when they surface; rebuild when they pile up.
    const live = this.queues[q.leg];
    if (heap.size > 4 * live.size + 1024) {
      const fresh = new MinHeap();
      for (const x of live.values()) {
        if (x.fence === undefined && x.ids.length) fresh.push({ at: this.readyAt(x), q: x, v: x.v });
      }
      this.heaps[q.leg] = fresh;
    }
  }

  private validTop(leg: Leg): Entry | undefined {
    const heap = this.heaps[leg];
    for (;;) {
      const top = heap.peek();
      if (!top) return undefined;
      const q = top.q;
      if (top.v === q.v && q.fence === undefined && q.ids.length && this.queues[leg].get(q.clientId) === q)
        return top;
      heap.pop();
    }
  }

  /** Leased clients of `leg` with a head whose lease ran out, by when they became claimable. */
  private expiredLeases(leg: Leg, now: number): { at: number; q: Queue }[] {
    const out: { at: number; q: Queue }[] = [];
    for (const q of this.byFence.values()) {
      if (q.leg !== leg || !q.ids.length || q.expiresAt > now) continue;
      const at = this.readyAt(q);
      if (at <= now) out.push({ at, q });
    }
    return out.length > 1 ? out.sort((a, b) => a.at - b.at) : out;
  }
}

const LEGS: readonly Leg[] = ['inbound', 'outbound'];

/** Fences are reserved from the store in blocks of this many. */
const FENCE_BLOCK = 1024;

function makeCounter(): (size: number) => number {
  let next = 1;
  return (size) => {
    const first = next;
    next += size;
    return first;
  };
}

/** A binary min-heap of entries by `at`. */
class MinHeap {
  private readonly a: Entry[] = [];

  get size(): number {
    return this.a.length;
  }

  peek(): Entry | undefined {
    return this.a[0];
  }

  push(e: Entry): void {
    const a = this.a;
    a.push(e);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p]!.at <= e.at) break;
      a[i] = a[p]!;
      i = p;
    }
    a[i] = e;
  }

  pop(): Entry | undefined {
    const a = this.a;
    const top = a[0];
    const last = a.pop();
    if (a.length && last) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= a.length) break;
        const r = l + 1;
        const c = r < a.length && a[r]!.at < a[l]!.at ? r : l;
        if (a[c]!.at >= last.at) break;
        a[i] = a[c]!;
        i = c;
      }
      a[i] = last;
    }
    return top;
  }
}
