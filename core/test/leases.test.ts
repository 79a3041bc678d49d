/** LocalLeases: the in-process lease book of MemoryStore and SqliteStore; here its rollback. */
import { describe, expect, it } from 'vitest';
import { LocalLeases } from '../src/store/leases.js';
import type { Leg } from '../src/store/store.js';

/** A small deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const LEGS: Leg[] = ['inbound', 'outbound'];

describe('LocalLeases', () => {
  it('rolls a transaction back to exactly where it began, whatever it did', () => {
    for (let seed = 1; seed <= 40; seed++) {
      const random = rng(seed);
      const pick = <T>(xs: T[]): T => xs[Math.floor(random() * xs.length)]!;
      let now = 1_000;
      const book = new LocalLeases(() => now);
      let nextId = 1;
      const pending: number[] = [];
      const fences: number[] = [];
      const clientOf = new Map<number, [Leg, string]>();
      /** One random change; keeps the bookkeeping above in step. */
      const step = () => {
        const r = random();
        if (r < 0.35 || !pending.length) {
          const leg = pick(LEGS);
          const client = `c${Math.floor(random() * 5)}`;
          const id = nextId++;
          const { fence } = book.add(
            leg,
            client,
            id,
            now - Math.floor(random() * 10),
            random() < 0.5 ? { owner: 'w', leaseMs: 50 } : undefined,
          );
          pending.push(id);
          clientOf.set(id, [leg, client]);
          if (fence !== undefined) fences.push(fence);
        } else if (r < 0.5) {
          for (const c of book.claim(pick(LEGS), 'w', 1 + Math.floor(random() * 3), 50)) fences.push(c.fence);
        } else if (r < 0.62) {
          const id = pick(pending);
          book.remove(id);
          pending.splice(pending.indexOf(id), 1);
        } else if (r < 0.72 && fences.length) {
          const f = pick(fences);
          const next = book.handOn(f, random() < 0.5 ? 50 : undefined);
          if (next === undefined) fences.splice(fences.indexOf(f), 1);
        } else if (r < 0.8 && fences.length) {
          const f = pick(fences);
          book.release(f);
          fences.splice(fences.indexOf(f), 1);
        } else if (r < 0.88) {
          const id = pick(pending);
          const [leg, client] = clientOf.get(id)!;
          book.setDue(leg, client, id, now + Math.floor(random() * 40) - 20);
        } else if (r < 0.94 && fences.length) {
          const f = pick(fences);
          const held = book.held(f);
          if (held) book.renew(held.leg, held.clientId, f, 50);
        } else now += Math.floor(random() * 30);
      };
      /** What a store can observe: per leg what a claim would take and when, and every fence's lease. */
      const observe = () => ({
        now,
        legs: LEGS.map((leg) => ({ leg, nextDue: book.nextDue(leg), counts: book.counts(leg) })),
        fences: fences.map((f) => [f, book.held(f) ?? null]),
        items: pending.map((id) => [id, book.clientOf(id) ?? null]),
      });
      for (let n = 0; n < 30; n++) step();
      const before = observe();
      const fencesBefore = [...fences];
      const pendingBefore = [...pending];
      const savedNow = now;
      book.begin();
      for (let n = 0; n < 15; n++) step();
      book.rollback();
      now = savedNow;
      fences.splice(0, fences.length, ...fencesBefore);
      pending.splice(0, pending.length, ...pendingBefore);
      expect(observe(), `seed ${seed}`).toEqual(before);
      // And it still works as before: the same claims come out of it.
      const probe = LEGS.map((leg) => book.claim(leg, 'probe', 10, 50).map((c) => c.headId));
      for (const heads of probe) for (const id of heads) expect(pending).toContain(id);
    }
  });
});
