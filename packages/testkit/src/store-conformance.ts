/**
 * The Store conformance suite: the behaviour core's Outbox, Relay and the
 * operator commands rely on, checked against any Store implementation.
 *
 * ```ts
 * describeStoreConformance('MyStore', async () => new MyStore(...));
 * ```
 *
 * Each test gets a fresh, empty store from `makeStore` and closes it after.
 * Requires vitest (an optional peer dependency of @kitbridge/testkit).
 */
import type { ClientRecord, JsonObject, Leg, NewOutboxItem, OutboxItem, Store } from '@kitbridge/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

const T0 = 1_700_000_000_000;
const TTL = 60_000;

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
export function describeStoreConformance(name: string, makeStore: () => Promise<Store>): void {
  describe(`Store conformance: ${name}`, () => {
    let store: Store;

    beforeEach(async () => {
      store = await makeStore();
    });
    afterEach(async () => {
      await store.close();
    });

    async function enqueueOk(i: NewOutboxItem, now = T0, ttl = TTL): Promise<OutboxItem> {
      const stored = await store.enqueue(i, ttl, now);
      expect(stored, `enqueue of ${i.leg}/${i.key} was refused`).toBeDefined();
      return stored!;
    }

    const ids = (items: OutboxItem[]) => items.map((i) => i.id);

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

      it('keeps the key after the item is completed, dropped or buried', async () => {
        const a = await enqueueOk(item('a'));
        const b = await enqueueOk(item('b'));
        const c = await enqueueOk(item('c'));
        await store.complete(a.id);
        await store.drop(b.id);
        await store.bury(c.id, 1, 'no');
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
        await store.complete(b.id);
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
        await store.bury(dead.id, 1, 'gone');
        await store.reschedule(a.id, 1, T0 + 1_000_000, 'later');
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
        await store.reschedule(a.id, 1, T0 + 500, 'HTTP 503');
        await store.reschedule(a.id, 2, T0 + 1500, 'timeout');
        const expected = { ...a, attempts: 2, nextAttemptAt: T0 + 1500, lastError: 'timeout' };
        expect(await store.get(a.id)).toEqual(expected);
        expect(await store.pending('inbound')).toEqual([expected]);
      });

      it('complete removes the item', async () => {
        const a = await enqueueOk(item('a'));
        const b = await enqueueOk(item('b'));
        await store.complete(a.id);
        expect(await store.get(a.id)).toBeUndefined();
        expect(ids(await store.pending('inbound'))).toEqual([b.id]);
      });

      it('bury moves the item to the dead letters with its reason', async () => {
        const a = await enqueueOk(item('a'));
        await store.reschedule(a.id, 1, T0 + 10, 'first');
        await store.bury(a.id, 5, 'gave up after 5 attempts: HTTP 500');
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

      it('ignores unknown ids', async () => {
        const a = await enqueueOk(item('a'));
        await store.reschedule(a.id + 100, 1, T0, 'x');
        await store.complete(a.id + 100);
        await store.bury(a.id + 100, 1, 'x');
        expect(await store.list({})).toEqual([a]);
      });
    });

    describe('operator commands', () => {
      async function seed() {
        const p1 = await enqueueOk(item('p1'));
        const d1 = await enqueueOk(item('d1', { leg: 'outbound' }));
        const p2 = await enqueueOk(item('p2', { leg: 'outbound' }), T0 + 1);
        const d2 = await enqueueOk(item('d2'), T0 + 2);
        await store.bury(d1.id, 3, 'HTTP 400');
        await store.bury(d2.id, 4, 'blocked');
        return { p1, d1, p2, d2 };
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
        const { p1, d1, d2 } = await seed();
        await store.reschedule(p1.id, 2, T0 + 9999, 'slow');
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
        await store.reschedule(p2.id, 1, T0 + 777, 'wait');
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

      it("revision moves with revive and drop, not with the outbox's own writes", async () => {
        const { p1, d1 } = await seed();
        const r0 = await store.revision();
        await store.reschedule(p1.id, 1, T0 + 10, 'x');
        await store.complete(p1.id);
        await enqueueOk(item('p3'));
        expect(await store.revision()).toBe(r0);
        await store.revive([d1.id], T0);
        const r1 = await store.revision();
        expect(r1).not.toBe(r0);
        await store.drop(d1.id);
        expect(await store.revision()).not.toBe(r1);
      });

      it('stats counts pending and dead per leg, with the oldest pending createdAt', async () => {
        const byLeg = async () => {
          const s = await store.stats();
          expect(s.map((x) => x.leg).sort()).toEqual(['inbound', 'outbound']);
          return Object.fromEntries(s.map((x) => [x.leg, x])) as Record<Leg, (typeof s)[number]>;
        };
        let s = await byLeg();
        expect(s.inbound).toMatchObject({ pending: 0, dead: 0 });
        expect(s.inbound.oldestPendingAt).toBeUndefined();
        expect(s.outbound.oldestPendingAt).toBeUndefined();

        const { p1 } = await seed();
        await enqueueOk(item('p3'), T0 + 10);
        s = await byLeg();
        expect(s.inbound).toEqual({ leg: 'inbound', pending: 2, dead: 1, oldestPendingAt: T0 });
        expect(s.outbound).toEqual({ leg: 'outbound', pending: 1, dead: 1, oldestPendingAt: T0 + 1 });

        await store.complete(p1.id);
        s = await byLeg();
        expect(s.inbound).toEqual({ leg: 'inbound', pending: 1, dead: 1, oldestPendingAt: T0 + 10 });

        await store.revive('all-dead', T0 + 100);
        s = await byLeg();
        expect(s.inbound).toMatchObject({ pending: 2, dead: 0 });
        expect(s.outbound).toMatchObject({ pending: 2, dead: 0, oldestPendingAt: T0 });
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

      it('keeps clients apart and hands out copies', async () => {
        await store.saveClient(alice);
        await store.saveClient({ ...alice, clientId: 'tg:43', profile: { name: 'Bob' } });
        const got = await store.getClient('tg:42');
        got!.profile!.name = 'Mallory';
        expect((await store.getClient('tg:42'))?.profile).toEqual(alice.profile);
        expect((await store.getClient('tg:43'))?.profile).toEqual({ name: 'Bob' });
      });
    });
  });
}
