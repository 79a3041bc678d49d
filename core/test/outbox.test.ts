import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../src/logger.js';
import { type FailureKind, Outbox, type OutboxOptions } from '../src/outbox.js';
import { MemoryStore } from '../src/store/memory.js';
import type { OutboxItem } from '../src/store/store.js';

class Permanent extends Error {}

function make(deliver: (i: OutboxItem) => Promise<void>, over: Partial<OutboxOptions> = {}) {
  const store = new MemoryStore();
  const outbox = new Outbox({
    leg: 'inbound',
    store,
    logger: silentLogger,
    dedupeTtlMs: 60_000,
    concurrency: 4,
    maxAttempts: 5,
    maxAgeMs: 60_000,
    backoff: { baseMs: 5, maxMs: 20 },
    syncIntervalMs: 0,
    lagLogIntervalMs: 0,
    deliver,
    classify: (err): FailureKind =>
      err instanceof Permanent
        ? { permanent: true, reason: err.message }
        : { permanent: false, reason: String(err) },
    ...over,
  });
  return { store, outbox };
}

const item = (clientId: string, key: string) => ({
  leg: 'inbound' as const,
  clientId,
  key,
  payload: { key },
});
const outboxes: Outbox[] = [];
afterEach(async () => {
  await Promise.all(outboxes.splice(0).map((o) => o.stop(100)));
});

describe('Outbox', () => {
  it('delivers each client in order, clients in parallel, never two at once for one client', async () => {
    const seen = new Map<string, string[]>();
    const active = new Set<string>();
    let overlap = false;
    let maxParallel = 0;
    const { outbox } = make(async (i) => {
      if (active.has(i.clientId)) overlap = true;
      active.add(i.clientId);
      maxParallel = Math.max(maxParallel, active.size);
      await new Promise((r) => setTimeout(r, Math.random() * 3));
      active.delete(i.clientId);
      seen.set(i.clientId, [...(seen.get(i.clientId) ?? []), i.key]);
    });
    outboxes.push(outbox);
    await outbox.start();
    const clients = ['a', 'b', 'c', 'd', 'e', 'f'];
    await Promise.all(
      clients.flatMap((c) => Array.from({ length: 30 }, (_, n) => outbox.enqueue(item(c, `${c}${n}`)))),
    );
    await outbox.idle();
    expect(overlap).toBe(false);
    expect(maxParallel).toBeGreaterThan(1);
    expect(maxParallel).toBeLessThanOrEqual(4);
    for (const c of clients) expect(seen.get(c)).toEqual(Array.from({ length: 30 }, (_, n) => `${c}${n}`));
  });

  it('drops a duplicate key and keeps the first', async () => {
    const keys: string[] = [];
    const { outbox } = make(async (i) => void keys.push(i.key));
    outboxes.push(outbox);
    await outbox.start();
    expect(await outbox.enqueue(item('a', 'k1'))).toBe('accepted');
    expect(await outbox.enqueue(item('a', 'k1'))).toBe('duplicate');
    await outbox.idle();
    expect(keys).toEqual(['k1']);
  });

  it('retries a failing head while later items of that client wait, and others go on', async () => {
    let failures = 2;
    const order: string[] = [];
    const { outbox, store } = make(async (i) => {
      if (i.key === 'a1' && failures-- > 0) throw new Error('Kit down');
      order.push(i.key);
    });
    outboxes.push(outbox);
    await outbox.start();
    await outbox.enqueue(item('a', 'a1'));
    await outbox.enqueue(item('a', 'a2'));
    await outbox.enqueue(item('b', 'b1'));
    await outbox.idle();
    expect(order.filter((k) => k.startsWith('a'))).toEqual(['a1', 'a2']);
    expect(order.indexOf('b1')).toBeLessThan(order.indexOf('a1'));
    expect(await store.list({})).toEqual([]);
  });

  it('dead-letters a permanent failure at once and goes on with the next item', async () => {
    const attempts: string[] = [];
    const { outbox, store } = make(async (i) => {
      attempts.push(i.key);
      if (i.key === 'x1') throw new Permanent('blocked');
    });
    outboxes.push(outbox);
    await outbox.start();
    await outbox.enqueue(item('x', 'x1'));
    await outbox.enqueue(item('x', 'x2'));
    await outbox.idle();
    expect(attempts).toEqual(['x1', 'x2']);
    const dead = await store.list({ state: 'dead' });
    expect(dead.map((d) => [d.key, d.lastError, d.attempts])).toEqual([['x1', 'blocked', 1]]);
  });

  it('dead-letters after maxAttempts with the last error', async () => {
    const { outbox, store } = make(async () => {
      throw new Error('still down');
    });
    outboxes.push(outbox);
    await outbox.start();
    await outbox.enqueue(item('y', 'y1'));
    await outbox.idle();
    const [dead] = await store.list({ state: 'dead' });
    expect(dead?.attempts).toBe(5);
    expect(dead?.lastError).toMatch(/gave up after 5 attempts: Error: still down/);
  });

  it('honours the retry-after the far side asked for', async () => {
    const times: number[] = [];
    const { outbox } = make(
      async () => {
        times.push(Date.now());
        if (times.length === 1) throw new Error('429');
      },
      { classify: () => ({ permanent: false, reason: '429', retryAfterMs: 150 }) },
    );
    outboxes.push(outbox);
    await outbox.start();
    await outbox.enqueue(item('z', 'z1'));
    await outbox.idle();
    expect(times).toHaveLength(2);
    expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(140);
  });

  it('picks up on start what a previous run left pending, in order', async () => {
    const store = new MemoryStore();
    for (const k of ['p1', 'p2', 'p3']) await store.enqueue(item('p', k), 60_000, Date.now());
    const keys: string[] = [];
    const { outbox } = make(async (i) => void keys.push(i.key), { store });
    outboxes.push(outbox);
    await outbox.start();
    await outbox.idle();
    expect(keys).toEqual(['p1', 'p2', 'p3']);
  });

  it('stop() leaves undelivered items in the store', async () => {
    const { outbox, store } = make(
      async () => {
        throw new Error('down');
      },
      { backoff: { baseMs: 10_000, maxMs: 10_000 } },
    );
    await outbox.start();
    await outbox.enqueue(item('s', 's1'));
    await new Promise((r) => setTimeout(r, 30));
    await outbox.stop(100);
    const [left] = await store.pending('inbound');
    expect(left?.key).toBe('s1');
    expect(left?.attempts).toBe(1);
  });
});

describe('Outbox and operators', () => {
  it('picks up an item an operator revived, without a restart', async () => {
    let fail = true;
    const keys: string[] = [];
    const { outbox, store } = make(
      async (i) => {
        if (fail) throw new Permanent('blocked');
        keys.push(i.key);
      },
      { syncIntervalMs: 30 },
    );
    outboxes.push(outbox);
    await outbox.start();
    await outbox.enqueue(item('o', 'o1'));
    await outbox.idle();
    expect(await store.list({ state: 'dead' })).toHaveLength(1);
    fail = false;
    await store.revive('all-dead', Date.now());
    await new Promise((r) => setTimeout(r, 150));
    await outbox.idle();
    expect(keys).toEqual(['o1']);
    expect(await store.list({})).toEqual([]);
  });
});
