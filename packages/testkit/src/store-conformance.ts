/**
 * The Store conformance suite: the behaviour core's Outbox, Relay and the
 * operator commands rely on, checked against any Store implementation,
 * including the lease rules that let several workers share one store.
 *
 * ```ts
 * describeStoreConformance('MyStore', async ({ clock }) => new MyStore({ clock, ... }));
 * ```
 *
 * Each test gets a fresh, empty store from `makeStore` and closes it after.
 * The store must read leases' and due times' "now" from `clock` (the suite
 * moves it). Requires vitest (an optional peer dependency of @kitbridge/testkit).
 */
import {
  type Claim,
  type ClientRecord,
  type JsonObject,
  LeaseLostError,
  type Leg,
  type NewOutboxItem,
  type OutboxItem,
  type Store,
} from '@kitbridge/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

const T0 = 1_700_000_000_000;
const TTL = 60_000;
const LEASE = 30_000;

/** What the suite hands `makeStore`. */
export interface StoreTestOptions {
  /** The store's clock: leases and due times must be judged by it. Starts at T0 (1_700_000_000_000). */
  clock: () => number;
}

function item(key: string, over: Partial<NewOutboxItem> = {}): NewOutboxItem {
  return { leg: 'inbound', clientId: 'c1', key, payload: { text: key }, ...over };
}

/** A payload that any lossy encoding would mangle. */
const AWKWARD_PAYLOAD: JsonObject = {
  text: 'héllo 世界 مرحبا 👩‍👩‍👧‍👦 e\u0301 \u200d\u2028\u2029 "quoted" \\ back\\slash \n\t\r',
  astral: '𝄞𝟘🀄',
  lone: '\ud800 and \udfff',
  nul: 'a\u0000b',
  empty: '',
  numbers: [0, 1, -1, 0.1, 1e-7, 1.7976931348623157e308, Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER],
  flags: [true, false, null],
  nested: { deep: { deeper: [[], {}, [{ a: [1, { b: 'c' }] }]] } },
  'key with spaces': 1,
  ключ: 'значение',
  zeta: 1,
  alpha: 2,
};

/** Registers the Store conformance tests under `describe(name)`. */
export function describeStoreConformance(
  name: string,
  makeStore: (opts: StoreTestOptions) => Promise<Store>,
): void {
  describe(`Store conformance: ${name}`, () => {
    let store: Store;
    let now = T0;
    const clock = () => now;

    beforeEach(async () => {
      now = T0;
      store = await makeStore({ clock });
    });
    afterEach(async () => {
      await store.close();
    });

    async function enqueueOk(i: NewOutboxItem, at = T0, ttl = TTL): Promise<OutboxItem> {
      const stored = await store.enqueue(i, ttl, at);
      expect(stored, `enqueue of ${i.leg}/${i.key} was refused`).toBeDefined();
      return stored!;
    }

    /** Claims every due client of the leg as `owner`; the fence of each claimed item, by item id. */
    async function claimAll(leg: Leg = 'inbound', owner = 'w1'): Promise<Map<number, number>> {
      const claims = await store.claim(leg, owner, 1000, LEASE);
      return new Map(claims.map((c) => [c.item.id, c.fence]));
    }

    /** The fence of a claim of `i` (its client's head) as `owner`. */
    async function hold(i: OutboxItem, owner = 'w1'): Promise<number> {
      const fence = (await claimAll(i.leg, owner)).get(i.id);
      expect(fence, `item ${i.key} was not claimed`).toBeTypeOf('number');
      return fence!;
    }

    const ids = (items: OutboxItem[]) => items.map((i) => i.id);
    const keysOf = (claims: Claim[]) => claims.map((c) => c.item.key).sort();

    it('has a description', () => {
      expect(typeof store.description).toBe('string');
      expect(store.description.length).toBeGreaterThan(0);
    });

    describe('enqueue and dedupe', () => {
      it('stores a new item as pending, due now, with no attempts', async () => {
        const stored = await enqueueOk(item('k1', { clientId: 'alice', payload: { a: 1 } }));
        expect(stored).toEqual({
          id: expect.any(Number),
          leg: 'inbound',
          clientId: 'alice',
          key: 'k1',
          payload: { a: 1 },
          createdAt: T0,
          attempts: 0,
          nextAttemptAt: T0,
          state: 'pending',
        });
        expect(stored.lastError).toBeUndefined();
        expect(await store.get(stored.id)).toEqual(stored);
        expect(await store.pending('inbound')).toEqual([stored]);
      });

      it('refuses the same key within its TTL and changes nothing', async () => {
        const first = await enqueueOk(item('k1'));
        expect(await store.enqueue(item('k1', { payload: { other: true } }), TTL, T0)).toBeUndefined();
        expect(await store.enqueue(item('k1', { clientId: 'c2' }), TTL, T0 + TTL - 1)).toBeUndefined();
        expect(await store.pending('inbound')).toEqual([first]);
      });

      it('keeps the platform ids a completion was given with the key, until the key is pruned', async () => {
        const a = await enqueueOk(item('a', { leg: 'outbound', clientId: 'ca' }));
        const b = await enqueueOk(item('b', { leg: 'outbound', clientId: 'cb' }));
        const fences = await claimAll('outbound');
        await store.complete(a.id, fences.get(a.id)!, undefined, ['m1', 'm2']);
        await store.complete(b.id, fences.get(b.id)!);
        expect(await store.deliveredIds('outbound', 'a')).toEqual(['m1', 'm2']);
        expect(await store.deliveredIds('outbound', 'b')).toBeUndefined();
        expect(await store.deliveredIds('inbound', 'a')).toBeUndefined();
        expect(await store.deliveredIds('outbound', 'nope')).toBeUndefined();
        await store.prune(T0 + TTL);
        expect(await store.deliveredIds('outbound', 'a')).toBeUndefined();
        // The key used again after its TTL starts with no ids.
        const again = await enqueueOk(item('a', { leg: 'outbound', clientId: 'ca' }), T0 + TTL + 1);
        now = T0 + TTL + 1;
        await store.complete(again.id, await hold(again));
        expect(await store.deliveredIds('outbound', 'a')).toBeUndefined();
      });

      it('starts a key used again after its TTL with no platform ids', async () => {
        const a = await enqueueOk(item('a', { leg: 'outbound' }));
        await store.complete(a.id, await hold(a), undefined, ['m1']);
        // Not pruned: the expired key is claimed again by the new item.
        const again = await enqueueOk(item('a', { leg: 'outbound' }), T0 + TTL + 1);
        expect(await store.deliveredIds('outbound', 'a')).toBeUndefined();
        now = T0 + TTL + 1;
        await store.complete(again.id, await hold(again), undefined, ['m9']);
        expect(await store.deliveredIds('outbound', 'a')).toEqual(['m9']);
      });

      it('keeps the key after the item is completed, dropped or buried', async () => {
        const a = await enqueueOk(item('a', { clientId: 'ca' }));
        const b = await enqueueOk(item('b', { clientId: 'cb' }));
        const c = await enqueueOk(item('c', { clientId: 'cc' }));
        const fences = await claimAll();
        await store.complete(a.id, fences.get(a.id)!);
        await store.drop(b.id);
        await store.bury(c.id, fences.get(c.id)!, 1, 'no');
        for (const k of ['a', 'b', 'c']) expect(await store.enqueue(item(k), TTL, T0 + 1)).toBeUndefined();
        expect(await store.list({})).toHaveLength(1);
      });

      it('accepts the same key again once its TTL has run out, with a fresh TTL', async () => {
        const first = await enqueueOk(item('k1'));
        const again = await enqueueOk(item('k1', { payload: { second: true } }), T0 + TTL);
        expect(again.id).toBeGreaterThan(first.id);
        expect(again.createdAt).toBe(T0 + TTL);
        expect(again.payload).toEqual({ second: true });
        // Both are in the outbox: the store never merges items.
        expect(ids(await store.pending('inbound'))).toEqual([first.id, again.id]);
        // The new TTL counts from the second enqueue.
        expect(await store.enqueue(item('k1'), TTL, T0 + 2 * TTL - 1)).toBeUndefined();
        await enqueueOk(item('k1'), T0 + 2 * TTL);
      });

      it('honours the TTL given with each enqueue', async () => {
        await enqueueOk(item('short'), T0, 10);
        await enqueueOk(item('long'), T0, 10_000);
        await enqueueOk(item('short'), T0 + 10);
        expect(await store.enqueue(item('long'), TTL, T0 + 10)).toBeUndefined();
      });

      it('keeps one key space per leg, shared by all clients of a leg', async () => {
        const inbound = await enqueueOk(item('k', { leg: 'inbound' }));
        const outbound = await enqueueOk(item('k', { leg: 'outbound' }));
        expect(outbound.id).not.toBe(inbound.id);
        expect(
          await store.enqueue(item('k', { leg: 'inbound', clientId: 'other' }), TTL, T0),
        ).toBeUndefined();
        expect(
          await store.enqueue(item('k', { leg: 'outbound', clientId: 'other' }), TTL, T0),
        ).toBeUndefined();
        expect(await store.pending('inbound')).toEqual([inbound]);
        expect(await store.pending('outbound')).toEqual([outbound]);
      });

      it('treats keys as opaque strings', async () => {
        const keys = ['', ' ', 'a\nb', 'a\u0000b', '👍', 'inbound', 'outbound\ninbound', 'x'.repeat(2000)];
        for (const k of keys) await enqueueOk(item(k));
        for (const k of keys) expect(await store.enqueue(item(k), TTL, T0)).toBeUndefined();
        expect((await store.pending('inbound')).map((i) => i.key)).toEqual(keys);
      });

      it('accepts exactly one of concurrent enqueues of one key', async () => {
        const results = await Promise.all(
          Array.from({ length: 10 }, (_, n) => store.enqueue(item('same', { payload: { n } }), TTL, T0)),
        );
        expect(results.filter((r) => r !== undefined)).toHaveLength(1);
        expect(await store.pending('inbound')).toHaveLength(1);
      });

      it('gives increasing ids, never reusing one after a delete', async () => {
        const a = await enqueueOk(item('a'));
        const b = await enqueueOk(item('b', { leg: 'outbound' }));
        await store.complete(b.id, await hold(b));
        const c = await enqueueOk(item('c'));
        expect(b.id).toBeGreaterThan(a.id);
        expect(c.id).toBeGreaterThan(b.id);
      });

      it('round-trips the payload exactly, unicode and all', async () => {
        const stored = await enqueueOk(item('json', { payload: AWKWARD_PAYLOAD }));
        for (const got of [stored, await store.get(stored.id), (await store.pending('inbound'))[0]]) {
          expect(got?.payload).toEqual(AWKWARD_PAYLOAD);
          expect(JSON.stringify(got?.payload)).toBe(JSON.stringify(AWKWARD_PAYLOAD));
        }
      });

      it('hands out copies: mutating a returned item changes nothing stored', async () => {
        const stored = await enqueueOk(item('k', { payload: { list: [1] } }));
        (stored.payload.list as number[]).push(2);
        stored.attempts = 99;
        const [again] = await store.pending('inbound');
        again!.state = 'dead';
        expect(await store.get(stored.id)).toMatchObject({
          payload: { list: [1] },
          attempts: 0,
          state: 'pending',
        });
      });
    });

    describe('pending', () => {
      it('returns the pending items of one leg by id, whatever their due time', async () => {
        const a = await enqueueOk(item('a', { clientId: 'x' }));
        await enqueueOk(item('o', { leg: 'outbound' }));
        const b = await enqueueOk(item('b', { clientId: 'y' }), T0 + 5);
        const c = await enqueueOk(item('c', { clientId: 'x' }), T0 + 1);
        const dead = await enqueueOk(item('d'));
        const fences = await claimAll();
        await store.bury(dead.id, fences.get(dead.id)!, 1, 'gone');
        await store.reschedule(a.id, fences.get(a.id)!, 1, T0 + 1_000_000, 'later');
        expect(ids(await store.pending('inbound'))).toEqual([a.id, b.id, c.id]);
        expect((await store.pending('outbound')).map((i) => i.key)).toEqual(['o']);
      });

      it('is empty for an empty store', async () => {
        expect(await store.pending('inbound')).toEqual([]);
        expect(await store.pending('outbound')).toEqual([]);
      });
    });

    describe('delivery outcomes', () => {
      it('reschedule records the attempt, the due time and the error', async () => {
        const a = await enqueueOk(item('a'));
        await store.reschedule(a.id, await hold(a), 1, T0 + 500, 'HTTP 503');
        now = T0 + 500;
        await store.reschedule(a.id, await hold(a), 2, T0 + 1500, 'timeout');
        const expected = { ...a, attempts: 2, nextAttemptAt: T0 + 1500, lastError: 'timeout' };
        expect(await store.get(a.id)).toEqual(expected);
        expect(await store.pending('inbound')).toEqual([expected]);
      });

      it('complete removes the item', async () => {
        const a = await enqueueOk(item('a'));
        const b = await enqueueOk(item('b'));
        expect(await store.complete(a.id, await hold(a))).toBeUndefined();
        expect(await store.get(a.id)).toBeUndefined();
        expect(ids(await store.pending('inbound'))).toEqual([b.id]);
      });

      it('bury moves the item to the dead letters with its reason', async () => {
        const a = await enqueueOk(item('a'));
        await store.reschedule(a.id, await hold(a), 1, T0 + 10, 'first');
        now = T0 + 10;
        await store.bury(a.id, await hold(a), 5, 'gave up after 5 attempts: HTTP 500');
        const dead = await store.get(a.id);
        expect(dead).toEqual({
          ...a,
          attempts: 5,
          nextAttemptAt: T0 + 10,
          lastError: 'gave up after 5 attempts: HTTP 500',
          state: 'dead',
        });
        expect(await store.pending('inbound')).toEqual([]);
        expect(await store.list({ state: 'dead' })).toEqual([dead]);
      });

      it('takes an item an operator dropped under the lease as done, and releases the lease', async () => {
        const a = await enqueueOk(item('a'));
        const b = await enqueueOk(item('b'));
        const fence = await hold(a);
        expect(await store.drop(a.id)).toBe(true);
        await store.saveProgress(a.id, fence, { sent: 1 });
        await store.reschedule(a.id, fence, 1, T0, 'x');
        // Released: b, the client's head now, is claimable.
        const [next] = await store.claim('inbound', 'w2', 10, LEASE);
        expect(next?.item.id).toBe(b.id);
        await store.bury(a.id, next!.fence, 1, 'x');
        expect(await store.list({})).toEqual([b]);
      });
    });

    describe('claims and leases', () => {
      it('claims due client heads, one item per client, with fences, the longest-waiting first', async () => {
        const a1 = await enqueueOk(item('a1', { clientId: 'a' }), T0 - 5);
        await enqueueOk(item('a2', { clientId: 'a' }), T0 - 4);
        const b1 = await enqueueOk(item('b1', { clientId: 'b' }), T0 - 9);
        await enqueueOk(item('o1', { clientId: 'a', leg: 'outbound' }));
        const claims = await store.claim('inbound', 'w1', 10, LEASE);
        expect(claims.map((c) => c.item)).toEqual([b1, a1]);
        expect(new Set(claims.map((c) => c.fence)).size).toBe(2);
        for (const c of claims) expect(Number.isSafeInteger(c.fence)).toBe(true);
      });

      it('honours max, and gives nothing for max 0 or an empty leg', async () => {
        for (const c of ['a', 'b', 'c']) await enqueueOk(item(`${c}1`, { clientId: c }));
        expect(await store.claim('inbound', 'w1', 0, LEASE)).toEqual([]);
        expect(await store.claim('outbound', 'w1', 10, LEASE)).toEqual([]);
        expect(await store.claim('inbound', 'w1', 2, LEASE)).toHaveLength(2);
        expect(keysOf(await store.claim('inbound', 'w2', 2, LEASE))).toHaveLength(1);
      });

      it('never grants a live lease again, to another owner or its own', async () => {
        const a = await enqueueOk(item('a1', { clientId: 'a' }));
        await hold(a, 'w1');
        expect(await store.claim('inbound', 'w2', 10, LEASE)).toEqual([]);
        expect(await store.claim('inbound', 'w1', 10, LEASE)).toEqual([]);
        now = T0 + LEASE - 1;
        expect(await store.claim('inbound', 'w2', 10, LEASE)).toEqual([]);
      });

      it('two claimants at once never hold one client', async () => {
        for (let n = 0; n < 20; n++) await enqueueOk(item(`k${n}`, { clientId: `c${n % 7}` }));
        const rounds = await Promise.all(
          Array.from({ length: 6 }, (_, w) => store.claim('inbound', `w${w}`, 3, LEASE)),
        );
        const clients = rounds.flat().map((c) => c.item.clientId);
        expect(clients).toHaveLength(7);
        expect(new Set(clients).size).toBe(7);
        const fences = rounds.flat().map((c) => c.fence);
        expect(new Set(fences).size).toBe(fences.length);
      });

      it('keeps per-client order: a second item is never claimed while the first is pending', async () => {
        const a1 = await enqueueOk(item('a1', { clientId: 'a' }));
        const a2 = await enqueueOk(item('a2', { clientId: 'a' }));
        const f1 = await hold(a1, 'w1');
        // Its lease expires: the next claim gets the first item again, not the second.
        now = T0 + LEASE;
        const [again] = await store.claim('inbound', 'w2', 10, LEASE);
        expect(again?.item.id).toBe(a1.id);
        await expect(store.complete(a1.id, f1)).rejects.toBeInstanceOf(LeaseLostError);
        // Failed and waiting for its backoff, the first still holds the second back.
        await store.reschedule(a1.id, again!.fence, 1, T0 + LEASE + 1000, 'HTTP 503');
        expect(await store.claim('inbound', 'w2', 10, LEASE)).toEqual([]);
        now = T0 + LEASE + 1000;
        const f3 = await hold(a1, 'w3');
        expect(await store.complete(a1.id, f3)).toBeUndefined();
        const [second] = await store.claim('inbound', 'w3', 10, LEASE);
        expect(second?.item.id).toBe(a2.id);
      });

      it('claims respect nextAttemptAt by the store clock', async () => {
        const a = await enqueueOk(item('a1', { clientId: 'a' }));
        await store.reschedule(a.id, await hold(a), 1, T0 + 5000, 'later');
        expect(await store.claim('inbound', 'w1', 10, LEASE)).toEqual([]);
        now = T0 + 4999;
        expect(await store.claim('inbound', 'w1', 10, LEASE)).toEqual([]);
        now = T0 + 5000;
        const [c] = await store.claim('inbound', 'w1', 10, LEASE);
        expect(c?.item).toMatchObject({
          id: a.id,
          attempts: 1,
          nextAttemptAt: T0 + 5000,
          lastError: 'later',
        });
      });

      it('hands an expired lease to another owner with a larger fence, and refuses the stale one', async () => {
        const a1 = await enqueueOk(item('a1', { clientId: 'a' }));
        const old = await hold(a1, 'w1');
        now = T0 + LEASE;
        const [taken] = await store.claim('inbound', 'w2', 10, LEASE);
        expect(taken?.item.id).toBe(a1.id);
        expect(taken!.fence).toBeGreaterThan(old);
        const lost = (p: Promise<unknown>) => expect(p).rejects.toBeInstanceOf(LeaseLostError);
        await lost(store.complete(a1.id, old));
        await lost(store.complete(a1.id, old, { leaseMs: LEASE }));
        await lost(store.reschedule(a1.id, old, 1, T0, 'stale'));
        await lost(store.bury(a1.id, old, 1, 'stale'));
        await lost(store.saveProgress(a1.id, old, { stale: true }));
        await lost(store.renew('inbound', 'a', old, LEASE));
        // Nothing the stale holder tried changed the item.
        expect(await store.get(a1.id)).toEqual(a1);
        // The new holder's writes go through.
        await store.saveProgress(a1.id, taken!.fence, { sent: 1 });
        await store.renew('inbound', 'a', taken!.fence, LEASE);
        expect(await store.complete(a1.id, taken!.fence)).toBeUndefined();
        expect(await store.get(a1.id)).toBeUndefined();
      });

      it('refuses a fence once its lease was released, and a fence of another client', async () => {
        const a1 = await enqueueOk(item('a1', { clientId: 'a' }));
        const a2 = await enqueueOk(item('a2', { clientId: 'a' }));
        const b1 = await enqueueOk(item('b1', { clientId: 'b' }));
        const fences = await claimAll();
        const fa = fences.get(a1.id)!;
        const fb = fences.get(b1.id)!;
        // A fence covers its own client's items only.
        await expect(store.complete(a1.id, fb)).rejects.toBeInstanceOf(LeaseLostError);
        await expect(store.saveProgress(b1.id, fa, {})).rejects.toBeInstanceOf(LeaseLostError);
        await expect(store.renew('inbound', 'b', fa, LEASE)).rejects.toBeInstanceOf(LeaseLostError);
        await store.reschedule(a1.id, fa, 1, T0, 'x');
        // Released: the same fence is refused now, even for the same item.
        await expect(store.complete(a1.id, fa)).rejects.toBeInstanceOf(LeaseLostError);
        await expect(store.saveProgress(a1.id, fa, {})).rejects.toBeInstanceOf(LeaseLostError);
        await expect(store.renew('inbound', 'a', fa, LEASE)).rejects.toBeInstanceOf(LeaseLostError);
        await expect(store.bury(a1.id, fa, 1, 'x')).rejects.toBeInstanceOf(LeaseLostError);
        expect(await store.get(a1.id)).toMatchObject({ state: 'pending', attempts: 1 });
        expect(await store.get(a2.id)).toEqual(a2);
        await expect(store.complete(a1.id, 987_654_321)).rejects.toBeInstanceOf(LeaseLostError);
      });

      it('releases the lease on complete, reschedule and bury: another owner may claim at once', async () => {
        const items = [];
        for (let n = 1; n <= 4; n++) items.push(await enqueueOk(item(`a${n}`, { clientId: 'a' })));
        const [i1, i2, i3, i4] = items as [OutboxItem, OutboxItem, OutboxItem, OutboxItem];
        await store.complete(i1.id, await hold(i1, 'w1'));
        await store.bury(i2.id, await hold(i2, 'w2'), 1, 'blocked');
        await store.reschedule(i3.id, await hold(i3, 'w3'), 1, T0, 'retry');
        const f3 = await hold(i3, 'w4');
        expect(await store.complete(i3.id, f3)).toBeUndefined();
        expect((await store.claim('inbound', 'w5', 10, LEASE)).map((c) => c.item.id)).toEqual([i4.id]);
      });

      it('complete with handOn passes the lease to the next due item, same fence, renewed', async () => {
        const a1 = await enqueueOk(item('a1', { clientId: 'a' }));
        const a2 = await enqueueOk(item('a2', { clientId: 'a', payload: { n: 2 } }));
        const fence = await hold(a1);
        now = T0 + 1000;
        const next = await store.complete(a1.id, fence, { leaseMs: LEASE });
        expect(next).toEqual({ item: a2, fence });
        // The handed-on lease runs from the completion: still live just before it ends.
        now = T0 + 1000 + LEASE - 1;
        expect(await store.claim('inbound', 'w2', 10, LEASE)).toEqual([]);
        expect(await store.complete(a2.id, fence, { leaseMs: LEASE })).toBeUndefined();
        // No next item: the lease is released.
        await expect(store.renew('inbound', 'a', fence, LEASE)).rejects.toBeInstanceOf(LeaseLostError);
        const a3 = await enqueueOk(item('a3', { clientId: 'a' }));
        expect((await store.claim('inbound', 'w2', 10, LEASE)).map((c) => c.item.id)).toEqual([a3.id]);
      });

      it('renew extends a lease from the store clock', async () => {
        const a1 = await enqueueOk(item('a1', { clientId: 'a' }));
        const fence = await hold(a1);
        now = T0 + LEASE - 1;
        await store.renew('inbound', 'a', fence, LEASE);
        now = T0 + LEASE + 100;
        expect(await store.claim('inbound', 'w2', 10, LEASE)).toEqual([]);
        now = T0 + 2 * LEASE - 1;
        const [c] = await store.claim('inbound', 'w2', 10, LEASE);
        expect(c?.item.id).toBe(a1.id);
      });

      it('hands out strictly increasing fences', async () => {
        const seen: number[] = [];
        for (let n = 0; n < 5; n++) {
          const i = await enqueueOk(item(`k${n}`, { clientId: `c${n}` }));
          const fence = await hold(i);
          seen.push(fence);
          if (n % 2) await store.complete(i.id, fence);
        }
        expect([...seen].sort((a, b) => a - b)).toEqual(seen);
        expect(new Set(seen).size).toBe(seen.length);
      });

      it('dead letters do not block a client; a revived one takes its place by id under the lease', async () => {
        const a1 = await enqueueOk(item('a1', { clientId: 'a' }));
        const a2 = await enqueueOk(item('a2', { clientId: 'a' }));
        await store.bury(a1.id, await hold(a1), 1, 'blocked');
        const f2 = await hold(a2);
        // Revived while a2 is being delivered: it waits for the lease, then comes first.
        expect(await store.revive([a1.id], T0)).toBe(1);
        expect(await store.claim('inbound', 'w2', 10, LEASE)).toEqual([]);
        expect((await store.complete(a2.id, f2, { leaseMs: LEASE }))?.item.id).toBe(a1.id);
      });

      it('drops an item under a lease without releasing it', async () => {
        const a1 = await enqueueOk(item('a1', { clientId: 'a' }));
        const fence = await hold(a1);
        await store.drop(a1.id);
        const a2 = await enqueueOk(item('a2', { clientId: 'a' }));
        // Still leased: a2 waits; completing the dropped item hands on or releases as usual.
        expect(await store.claim('inbound', 'w2', 10, LEASE)).toEqual([]);
        expect((await store.complete(a1.id, fence, { leaseMs: LEASE }))?.item.id).toBe(a2.id);
      });

      it('round-trips delivery progress through claim, get and list, and keeps it across attempts', async () => {
        const a1 = await enqueueOk(item('a1', { clientId: 'a' }));
        const fence = await hold(a1);
        await store.saveProgress(a1.id, fence, { sent: 1, ids: ['m1'] });
        await store.saveProgress(a1.id, fence, AWKWARD_PAYLOAD);
        expect((await store.get(a1.id))?.progress).toEqual(AWKWARD_PAYLOAD);
        expect((await store.list({}))[0]?.progress).toEqual(AWKWARD_PAYLOAD);
        await store.reschedule(a1.id, fence, 1, T0, 'HTTP 502');
        const [again] = await store.claim('inbound', 'w2', 10, LEASE);
        expect(again?.item.progress).toEqual(AWKWARD_PAYLOAD);
        expect(JSON.stringify(again?.item.progress)).toBe(JSON.stringify(AWKWARD_PAYLOAD));
        (again!.item.progress!.nested as JsonObject).x = 1;
        expect((await store.get(a1.id))?.progress).toEqual(AWKWARD_PAYLOAD);
        const other = await enqueueOk(item('b1', { clientId: 'b' }));
        expect((await store.get(other.id))?.progress).toBeUndefined();
      });

      it('enqueue with a claim takes the lease of a free client in the same step', async () => {
        const got = await store.enqueue(item('a1', { clientId: 'a' }), TTL, T0, {
          owner: 'w1',
          leaseMs: LEASE,
        });
        expect(got?.fence).toBeTypeOf('number');
        expect(await store.claim('inbound', 'w2', 10, LEASE)).toEqual([]);
        // The client has a pending item now: the next one waits, without a fence.
        const second = await store.enqueue(item('a2', { clientId: 'a' }), TTL, T0, {
          owner: 'w1',
          leaseMs: LEASE,
        });
        expect(second?.fence).toBeUndefined();
        // A duplicate is still a duplicate.
        expect(
          await store.enqueue(item('a1', { clientId: 'a' }), TTL, T0, { owner: 'w1', leaseMs: LEASE }),
        ).toBeUndefined();
        expect((await store.complete(got!.id, got!.fence!, { leaseMs: LEASE }))?.item.id).toBe(second!.id);
      });

      it('enqueue with a claim waits when another owner leases the client', async () => {
        const a1 = await enqueueOk(item('a1', { clientId: 'a' }));
        const fence = await hold(a1, 'w1');
        await store.drop(a1.id);
        const a2 = await store.enqueue(item('a2', { clientId: 'a' }), TTL, T0, {
          owner: 'w2',
          leaseMs: LEASE,
        });
        expect(a2?.fence).toBeUndefined();
        await store.complete(a1.id, fence);
        expect((await store.claim('inbound', 'w2', 10, LEASE)).map((c) => c.item.id)).toEqual([a2!.id]);
      });

      it('nextDue says when a claim could next return something', async () => {
        expect(await store.nextDue('inbound')).toBeUndefined();
        const a1 = await enqueueOk(item('a1', { clientId: 'a' }), T0 - 10);
        const b1 = await enqueueOk(item('b1', { clientId: 'b' }), T0 - 5);
        expect(await store.nextDue('inbound')).toBe(T0 - 10);
        expect(await store.nextDue('outbound')).toBeUndefined();
        const [ca] = await store.claim('inbound', 'w1', 1, LEASE);
        expect(ca?.item.id).toBe(a1.id);
        expect(await store.nextDue('inbound')).toBe(T0 - 5);
        const [cb] = await store.claim('inbound', 'w1', 1, LEASE);
        expect(cb?.item.id).toBe(b1.id);
        // Both leased: due when the first lease runs out.
        expect(await store.nextDue('inbound')).toBe(T0 + LEASE);
        await store.reschedule(b1.id, cb!.fence, 1, T0 + 500, 'x');
        expect(await store.nextDue('inbound')).toBe(T0 + 500);
        await store.complete(a1.id, ca!.fence);
        expect(await store.nextDue('inbound')).toBe(T0 + 500);
        now = T0 + 500;
        await store.bury(b1.id, await hold(b1), 2, 'dead');
        expect(await store.nextDue('inbound')).toBeUndefined();
      });
    });

    describe('operator commands', () => {
      /** p1 stays leased; d1 and d2 are dead; p2 waits behind d1's client. */
      async function seed() {
        const p1 = await enqueueOk(item('p1'));
        const d1 = await enqueueOk(item('d1', { leg: 'outbound' }));
        const p2 = await enqueueOk(item('p2', { leg: 'outbound' }), T0 + 1);
        const d2 = await enqueueOk(item('d2', { clientId: 'c2' }), T0 + 2);
        now = T0 + 2;
        const inbound = await claimAll('inbound', 'seed');
        await store.bury(d1.id, await hold(d1, 'seed'), 3, 'HTTP 400');
        await store.bury(d2.id, inbound.get(d2.id)!, 4, 'blocked');
        return { p1, d1, p2, d2, p1Fence: inbound.get(p1.id)! };
      }

      it('get returns undefined for an unknown id', async () => {
        expect(await store.get(12345)).toBeUndefined();
      });

      it('list filters by leg and state, by id ascending, and honours limit', async () => {
        const { p1, d1, p2, d2 } = await seed();
        expect(ids(await store.list({}))).toEqual([p1.id, d1.id, p2.id, d2.id]);
        expect(ids(await store.list({ leg: 'inbound' }))).toEqual([p1.id, d2.id]);
        expect(ids(await store.list({ leg: 'outbound' }))).toEqual([d1.id, p2.id]);
        expect(ids(await store.list({ state: 'dead' }))).toEqual([d1.id, d2.id]);
        expect(ids(await store.list({ state: 'pending' }))).toEqual([p1.id, p2.id]);
        expect(ids(await store.list({ leg: 'outbound', state: 'dead' }))).toEqual([d1.id]);
        expect(ids(await store.list({ limit: 3 }))).toEqual([p1.id, d1.id, p2.id]);
        expect(ids(await store.list({ state: 'dead', limit: 1 }))).toEqual([d1.id]);
        expect(await store.list({ limit: 0 })).toEqual([]);
      });

      it('list returns at most 100 items by default', async () => {
        for (let n = 0; n < 105; n++) await enqueueOk(item(`k${n}`));
        const listed = await store.list({});
        expect(listed).toHaveLength(100);
        expect(listed[0]!.key).toBe('k0');
        expect(listed[99]!.key).toBe('k99');
      });

      it('revive by ids: back to pending, due now, attempts reset; counts what it found', async () => {
        const { p1, d1, d2, p1Fence } = await seed();
        await store.reschedule(p1.id, p1Fence, 2, T0 + 9999, 'slow');
        const now = T0 + 50_000;
        expect(await store.revive([d1.id, p1.id, 999_999], now)).toBe(2);
        expect(await store.get(d1.id)).toMatchObject({ state: 'pending', attempts: 0, nextAttemptAt: now });
        expect(await store.get(p1.id)).toMatchObject({ state: 'pending', attempts: 0, nextAttemptAt: now });
        expect(await store.get(d2.id)).toMatchObject({ state: 'dead', attempts: 4, lastError: 'blocked' });
        // d1 is outbound and keeps its place by id.
        expect((await store.pending('outbound')).map((i) => i.key)).toEqual(['d1', 'p2']);
        expect(await store.revive([], now)).toBe(0);
      });

      it("revive 'all-dead' revives every dead item and nothing else", async () => {
        const { p1, p2, d1, d2 } = await seed();
        await store.reschedule(p2.id, await hold(p2), 1, T0 + 777, 'wait');
        const now = T0 + 60_000;
        expect(await store.revive('all-dead', now)).toBe(2);
        expect(await store.list({ state: 'dead' })).toEqual([]);
        for (const d of [d1, d2]) {
          expect(await store.get(d.id)).toMatchObject({ state: 'pending', attempts: 0, nextAttemptAt: now });
        }
        expect(await store.get(p1.id)).toEqual(p1);
        expect(await store.get(p2.id)).toMatchObject({ attempts: 1, nextAttemptAt: T0 + 777 });
        expect(await store.revive('all-dead', now)).toBe(0);
      });

      it('drop removes pending or dead items and says whether it found one', async () => {
        const { p1, d1 } = await seed();
        expect(await store.drop(p1.id)).toBe(true);
        expect(await store.drop(d1.id)).toBe(true);
        expect(await store.drop(d1.id)).toBe(false);
        expect(await store.drop(424242)).toBe(false);
        expect(await store.get(p1.id)).toBeUndefined();
        expect(await store.list({})).toHaveLength(2);
      });

      it('stats counts pending and dead per leg, with the oldest pending createdAt', async () => {
        const byLeg = async () => {
          const s = await store.stats();
          expect(s.map((x) => x.leg).sort()).toEqual(['inbound', 'outbound']);
          return Object.fromEntries(s.map((x) => [x.leg, x])) as Record<Leg, (typeof s)[number]>;
        };
        let s = await byLeg();
        expect(s.inbound).toMatchObject({ pending: 0, dead: 0, clients: 0 });
        expect(s.inbound.oldestPendingAt).toBeUndefined();
        expect(s.outbound.oldestPendingAt).toBeUndefined();

        const { p1, p1Fence } = await seed();
        await enqueueOk(item('p3'), T0 + 10);
        s = await byLeg();
        expect(s.inbound).toEqual({ leg: 'inbound', pending: 2, dead: 1, clients: 1, oldestPendingAt: T0 });
        expect(s.outbound).toEqual({
          leg: 'outbound',
          pending: 1,
          dead: 1,
          clients: 1,
          oldestPendingAt: T0 + 1,
        });

        await store.complete(p1.id, p1Fence);
        s = await byLeg();
        expect(s.inbound).toEqual({
          leg: 'inbound',
          pending: 1,
          dead: 1,
          clients: 1,
          oldestPendingAt: T0 + 10,
        });

        await store.revive('all-dead', T0 + 100);
        s = await byLeg();
        expect(s.inbound).toMatchObject({ pending: 2, dead: 0, clients: 2 });
        expect(s.outbound).toMatchObject({ pending: 2, dead: 0, clients: 1, oldestPendingAt: T0 });
      });
    });

    describe('prune', () => {
      it('removes expired keys only, and never touches the outbox', async () => {
        const a = await enqueueOk(item('a'), T0, 100);
        await enqueueOk(item('b', { leg: 'outbound' }), T0, 200);
        await enqueueOk(item('c'), T0, 1000);
        expect(await store.prune(T0 + 99)).toBe(0);
        expect(await store.prune(T0 + 200)).toBe(2);
        expect(await store.prune(T0 + 200)).toBe(0);
        expect(await store.list({})).toHaveLength(3);
        expect(await store.get(a.id)).toEqual(a);
        // The unexpired key still dedupes; pruned ones are accepted again.
        expect(await store.enqueue(item('c'), TTL, T0 + 201)).toBeUndefined();
        await enqueueOk(item('a'), T0 + 201);
        expect(await store.prune(T0 + 10_000_000)).toBe(2);
      });

      it('returns 0 for an empty store', async () => {
        expect(await store.prune(T0)).toBe(0);
      });
    });

    describe('clients', () => {
      const alice: ClientRecord = {
        clientId: 'tg:42',
        address: { chatId: 42, thread: null, title: 'Алиса 👋' },
        profile: { name: 'Alice', tags: ['vip'], nested: { ok: true } },
        firstSeen: T0,
        lastSeen: T0,
        conversation: 'open',
      };

      it('returns undefined for an unknown client', async () => {
        expect(await store.getClient('nobody')).toBeUndefined();
      });

      it('saves and reads a record, JSON fields exactly', async () => {
        await store.saveClient(alice);
        expect(await store.getClient('tg:42')).toEqual(alice);
        const awkward = {
          ...alice,
          clientId: 'c\u0000👩‍👩‍👧',
          address: AWKWARD_PAYLOAD,
          profile: AWKWARD_PAYLOAD,
        };
        await store.saveClient(awkward);
        expect(await store.getClient(awkward.clientId)).toEqual(awkward);
      });

      it('saves a record without address or profile', async () => {
        const bare: ClientRecord = { clientId: 'b', firstSeen: 1, lastSeen: 2, conversation: 'closed' };
        await store.saveClient(bare);
        const got = await store.getClient('b');
        expect(got).toEqual(bare);
        expect(got?.address).toBeUndefined();
        expect(got?.profile).toBeUndefined();
        expect(got?.closeReason).toBeUndefined();
      });

      it('updates a record but keeps its firstSeen', async () => {
        await store.saveClient(alice);
        await store.saveClient({
          ...alice,
          firstSeen: T0 + 5000,
          lastSeen: T0 + 5000,
          profile: { name: 'Alice B.' },
          conversation: 'closed',
          closeReason: 'agent closed',
        });
        expect(await store.getClient('tg:42')).toEqual({
          ...alice,
          lastSeen: T0 + 5000,
          profile: { name: 'Alice B.' },
          conversation: 'closed',
          closeReason: 'agent closed',
        });
        // Re-opened: a record without closeReason clears it.
        await store.saveClient({ ...alice, lastSeen: T0 + 9000 });
        expect(await store.getClient('tg:42')).toEqual({ ...alice, lastSeen: T0 + 9000 });
      });

      it('patchClient creates a record: first and last seen now, open, with what the patch gives', async () => {
        const got = await store.patchClient('p:1', { profile: { name: 'Ann' } }, T0);
        const expected: ClientRecord = {
          clientId: 'p:1',
          firstSeen: T0,
          lastSeen: T0,
          conversation: 'open',
          profile: { name: 'Ann' },
        };
        expect(got).toEqual(expected);
        expect(await store.getClient('p:1')).toEqual(expected);
      });

      it('patchClient changes only what it is given', async () => {
        await store.saveClient(alice);
        const got = await store.patchClient(
          'tg:42',
          { profile: { name: 'Alice B.', utm: { source: 'ad' } }, address: { chatId: 43 } },
          T0 + 10,
        );
        const expected: ClientRecord = {
          ...alice,
          lastSeen: T0 + 10,
          address: { chatId: 43 },
          profile: { name: 'Alice B.', tags: ['vip'], nested: { ok: true }, utm: { source: 'ad' } },
        };
        expect(got).toEqual(expected);
        expect(await store.getClient('tg:42')).toEqual(expected);
        // An empty patch only touches lastSeen.
        expect(await store.patchClient('tg:42', {}, T0 + 20)).toEqual({ ...expected, lastSeen: T0 + 20 });
      });

      it('patchClient closes with a reason and drops profile fields; opening clears the reason', async () => {
        await store.saveClient({ ...alice, profile: { name: 'Alice', utm: { source: 'ad' } } });
        const closed = await store.patchClient(
          'tg:42',
          { conversation: 'closed', closeReason: 'CLOSED_BY_AGENT', dropProfile: ['utm', 'absent'] },
          T0 + 1,
        );
        expect(closed).toMatchObject({ conversation: 'closed', closeReason: 'CLOSED_BY_AGENT' });
        expect(closed.profile).toEqual({ name: 'Alice' });
        const opened = await store.patchClient('tg:42', { conversation: 'open' }, T0 + 2);
        expect(opened.conversation).toBe('open');
        expect(opened.closeReason).toBeUndefined();
        expect(await store.getClient('tg:42')).toEqual(opened);
      });

      it('concurrent patches of different fields all land', async () => {
        await Promise.all([
          ...Array.from({ length: 10 }, (_, n) =>
            store.patchClient('c', { profile: { [`f${n}`]: n } }, T0 + n),
          ),
          store.patchClient('c', { address: { chat: 1 } }, T0),
          store.patchClient('c', { conversation: 'closed', closeReason: 'x' }, T0),
        ]);
        const got = await store.getClient('c');
        expect(got?.profile).toEqual(Object.fromEntries(Array.from({ length: 10 }, (_, n) => [`f${n}`, n])));
        expect(got).toMatchObject({ address: { chat: 1 }, conversation: 'closed', closeReason: 'x' });
      });

      it('keeps clients apart and hands out copies', async () => {
        await store.saveClient(alice);
        await store.saveClient({ ...alice, clientId: 'tg:43', profile: { name: 'Bob' } });
        const got = await store.getClient('tg:42');
        got!.profile!.name = 'Mallory';
        expect((await store.getClient('tg:42'))?.profile).toEqual(alice.profile);
        expect((await store.getClient('tg:43'))?.profile).toEqual({ name: 'Bob' });
      });
    });

    describe('checkpoints', () => {
      it('reads undefined for a key never set, then the last value set, per key', async () => {
        expect(await store.getCheckpoint!('discord:dm:1')).toBeUndefined();
        await store.setCheckpoint!('discord:dm:1', '1100');
        await store.setCheckpoint!('discord:dm:2', '2200');
        await store.setCheckpoint!('discord:dm:1', '1101');
        expect(await store.getCheckpoint!('discord:dm:1')).toBe('1101');
        expect(await store.getCheckpoint!('discord:dm:2')).toBe('2200');
      });

      it('keeps any string, unicode and long ones', async () => {
        const value = `ü🙂${'x'.repeat(5_000)}`;
        await store.setCheckpoint!('k', value);
        expect(await store.getCheckpoint!('k')).toBe(value);
      });
    });

    describe('job leases', () => {
      it('grants a free job with a fence and refuses it to anyone while the lease lives', async () => {
        const fence = await store.acquireJob!('telegram:polling', 'a', LEASE);
        expect(fence).toBeTypeOf('number');
        expect(await store.acquireJob!('telegram:polling', 'b', LEASE)).toBeUndefined();
        expect(await store.acquireJob!('telegram:polling', 'a', LEASE)).toBeUndefined();
        // Another job is independent.
        expect(await store.acquireJob!('discord:gateway', 'b', LEASE)).toBeTypeOf('number');
      });

      it('hands an expired lease over with a larger fence; the old holder can no longer renew', async () => {
        const first = (await store.acquireJob!('j', 'a', LEASE))!;
        now = T0 + LEASE + 1;
        const second = await store.acquireJob!('j', 'b', LEASE);
        expect(second).toBeGreaterThan(first);
        await expect(store.renewJob!('j', first, LEASE)).rejects.toBeInstanceOf(LeaseLostError);
        await store.renewJob!('j', second!, LEASE);
      });

      it('renew extends the lease from the store clock; release frees it at once', async () => {
        const fence = (await store.acquireJob!('j', 'a', LEASE))!;
        now = T0 + LEASE - 1;
        await store.renewJob!('j', fence, LEASE);
        now = T0 + LEASE + 1;
        expect(await store.acquireJob!('j', 'b', LEASE)).toBeUndefined();
        await store.releaseJob!('j', fence);
        expect(await store.acquireJob!('j', 'b', LEASE)).toBeTypeOf('number');
        // Releasing with a stale fence changes nothing.
        await store.releaseJob!('j', fence);
        expect(await store.acquireJob!('j', 'c', LEASE)).toBeUndefined();
      });
    });
  });
}
