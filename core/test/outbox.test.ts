import { afterEach, describe, expect, it } from 'vitest';
import type { JsonObject } from '../src/connector.js';
import { silentLogger } from '../src/logger.js';
import {
  DeliveryTimeoutError,
  type FailureKind,
  Outbox,
  type OutboxOptions,
  OutboxStoppingError,
} from '../src/outbox.js';
import { MemoryStore } from '../src/store/memory.js';
import { LeaseLostError } from '../src/store/store.js';

class Permanent extends Error {}

function make(deliver: OutboxOptions['deliver'], over: Partial<OutboxOptions> = {}) {
  const store = (over.store as MemoryStore | undefined) ?? new MemoryStore();
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

  it('wakeUp claims a revived item at once, with no polling at all', async () => {
    let fail = true;
    let delivered!: (key: string) => void;
    const redelivery = new Promise<string>((r) => {
      delivered = r;
    });
    // syncIntervalMs 0: the worker never polls, so only wakeUp can make it look (idle() would look too).
    const { outbox, store } = make(async (i) => {
      if (fail) throw new Permanent('blocked');
      delivered(i.key);
    });
    outboxes.push(outbox);
    await outbox.start();
    await outbox.enqueue(item('w', 'w1'));
    await until(async () => (await store.list({ state: 'dead' })).length === 1, 'the dead letter');
    const [dead] = await store.list({ state: 'dead' });
    fail = false;
    await store.revive([dead!.id], Date.now());
    outbox.wakeUp();
    expect(await redelivery).toBe('w1');
    await until(async () => (await store.list({})).length === 0, 'the item completed');
  });
});

/** A MemoryStore whose named methods fail the next `n` calls (a store that hiccups). */
class FlakyStore extends MemoryStore {
  readonly failures = new Map<string, number>();
  readonly calls = new Map<string, number>();
  failNext(method: string, n = 1): void {
    this.failures.set(method, n);
  }
  private hit(method: string): void {
    this.calls.set(method, (this.calls.get(method) ?? 0) + 1);
    const n = this.failures.get(method) ?? 0;
    if (n > 0) {
      this.failures.set(method, n - 1);
      throw new Error(`store ${method} failed (injected)`);
    }
  }
  override async complete(...args: Parameters<MemoryStore['complete']>) {
    this.hit('complete');
    return super.complete(...args);
  }
  override async reschedule(...args: Parameters<MemoryStore['reschedule']>) {
    this.hit('reschedule');
    return super.reschedule(...args);
  }
  override async claim(...args: Parameters<MemoryStore['claim']>) {
    this.hit('claim');
    return super.claim(...args);
  }
}

const until = async (check: () => boolean | Promise<boolean>, what: string, ms = 3000) => {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
};

describe('Outbox: the outcome of an attempt is written, not redone', () => {
  it('completes a delivered item again when the completion failed, and never delivers it twice', async () => {
    const store = new FlakyStore();
    const delivered: string[] = [];
    const { outbox } = make(async (i) => void delivered.push(i.key), { store });
    outboxes.push(outbox);
    await outbox.start();
    store.failNext('complete', 2);
    await outbox.enqueue(item('a', 'a1'));
    await outbox.enqueue(item('a', 'a2'));
    await outbox.idle();
    expect(delivered).toEqual(['a1', 'a2']);
    expect(store.calls.get('complete')).toBe(4);
    expect(await store.list({})).toEqual([]);
  });

  it('writes a failed attempt again when its reschedule failed, and retries the delivery only after', async () => {
    const store = new FlakyStore();
    let n = 0;
    const { outbox } = make(
      async () => {
        if (n++ === 0) throw new Error('Kit down');
      },
      { store },
    );
    outboxes.push(outbox);
    await outbox.start();
    store.failNext('reschedule', 1);
    await outbox.enqueue(item('a', 'a1'));
    await outbox.idle();
    expect(n).toBe(2);
    expect(store.calls.get('reschedule')).toBe(2);
  });
});

describe('Outbox: deadlines and stop', () => {
  it('aborts an attempt at its deadline and retries it, even when the work ignores the signal', async () => {
    const signals: AbortSignal[] = [];
    const { outbox, store } = make(
      (_i, work) => {
        signals.push(work.signal);
        // The first attempt hangs for good, deaf to its signal.
        return signals.length === 1 ? new Promise(() => {}) : Promise.resolve();
      },
      { deliveryTimeoutMs: 60 },
    );
    outboxes.push(outbox);
    await outbox.start();
    const t0 = Date.now();
    await outbox.enqueue(item('h', 'h1'));
    await outbox.idle();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(55);
    expect(signals).toHaveLength(2);
    expect(signals[0]!.aborted).toBe(true);
    expect(signals[0]!.reason).toBeInstanceOf(DeliveryTimeoutError);
    expect(signals[1]!.aborted).toBe(false);
    expect(await store.list({})).toEqual([]);
  }, 5000);

  it('counts a timed-out attempt as a transient failure: dead-lettered after maxAttempts', async () => {
    const { outbox, store } = make(() => new Promise(() => {}), { deliveryTimeoutMs: 20, maxAttempts: 2 });
    outboxes.push(outbox);
    await outbox.start();
    await outbox.enqueue(item('h', 'h1'));
    await outbox.idle();
    const [dead] = await store.list({ state: 'dead' });
    expect(dead?.attempts).toBe(2);
    expect(dead?.lastError).toMatch(/gave up after 2 attempts: delivery attempt timed out after 20 ms/);
  }, 5000);

  it('on stop, aborts what runs past the grace, leaves it due and uncounted, and waits until it can no longer write', async () => {
    let finished = false;
    let signal: AbortSignal | undefined;
    const { outbox, store } = make(async (_i, work) => {
      signal = work.signal;
      await new Promise<void>((resolve) => work.signal.addEventListener('abort', () => resolve()));
      // Honours the signal, but winds down with a last bit of work.
      await new Promise((r) => setTimeout(r, 50));
      finished = true;
    });
    await outbox.start();
    await outbox.enqueue(item('s', 's1'));
    await until(() => signal !== undefined, 'the attempt to start');
    const t0 = Date.now();
    await outbox.stop(30);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(25);
    expect(signal!.reason).toBeInstanceOf(OutboxStoppingError);
    expect(finished).toBe(true);
    const [left] = await store.pending('inbound');
    expect(left).toMatchObject({ key: 's1', attempts: 0 });
    // Released: whoever starts next claims it at once.
    expect((await store.claim('inbound', 'next', 10, 1000)).map((c) => c.item.key)).toEqual(['s1']);
  });

  it('stop() resolves at once when nothing runs', async () => {
    const { outbox } = make(async () => {});
    await outbox.start();
    const t0 = Date.now();
    await outbox.stop(5_000);
    expect(Date.now() - t0).toBeLessThan(100);
  });
});

describe('Outbox: leases', () => {
  it('drops an item whose lease another worker took over, without delivering or writing it again', async () => {
    const store = new (class extends MemoryStore {
      // A stalled worker: its renewals never reach the store.
      override async renew() {}
    })();
    let calls = 0;
    let release!: () => void;
    const { outbox } = make(
      async () => {
        calls++;
        await new Promise<void>((r) => {
          release = r;
        });
      },
      { store, leaseMs: 40 },
    );
    outboxes.push(outbox);
    await outbox.start();
    await outbox.enqueue(item('l', 'l1'));
    await until(() => calls === 1, 'the attempt');
    await new Promise((r) => setTimeout(r, 60));
    const [taken] = await store.claim('inbound', 'other', 10, 60_000);
    expect(taken?.item.key).toBe('l1');
    release();
    await new Promise((r) => setTimeout(r, 50));
    expect(calls).toBe(1);
    // The other worker's lease is intact: its completion goes through.
    expect(await store.get(taken!.item.id)).toMatchObject({ state: 'pending', attempts: 0 });
    await store.complete(taken!.item.id, taken!.fence);
    await outbox.idle();
  });

  it('aborts an attempt whose lease renewal is refused, and writes nothing for it', async () => {
    const store = new (class extends MemoryStore {
      // Another worker took the client over.
      override async renew(_l: unknown, _c: unknown, fence: number): Promise<void> {
        throw new LeaseLostError(fence, 'renew');
      }
    })();
    let signal: AbortSignal | undefined;
    const { outbox } = make(
      async (_i, work) => {
        signal = work.signal;
        await new Promise<void>((_, reject) =>
          work.signal.addEventListener('abort', () => reject(work.signal.reason)),
        );
      },
      { store, leaseMs: 30 },
    );
    outboxes.push(outbox);
    await outbox.start();
    await outbox.enqueue(item('r', 'r1'));
    await until(() => signal?.aborted === true, 'the abort');
    expect(signal!.reason).toBeInstanceOf(LeaseLostError);
    await new Promise((r) => setTimeout(r, 30));
    expect(await store.list({})).toMatchObject([{ key: 'r1', state: 'pending', attempts: 0 }]);
    expect((await store.list({}))[0]?.lastError).toBeUndefined();
  });

  it('keeps delivery progress across attempts', async () => {
    const seen: (JsonObject | undefined)[] = [];
    const { outbox, store } = make(async (_i, work) => {
      seen.push(work.progress.done);
      if (seen.length === 1) {
        await work.progress.save({ sent: 1 });
        throw new Error('second send failed');
      }
    });
    outboxes.push(outbox);
    await outbox.start();
    await outbox.enqueue(item('p', 'p1'));
    await outbox.idle();
    expect(seen).toEqual([undefined, { sent: 1 }]);
    expect(await store.list({})).toEqual([]);
  });

  it('keeps the platform message ids a delivery returned with its key', async () => {
    const { outbox, store } = make(async (i) =>
      i.key === 'two' ? { platformMessageIds: ['m1', 'm2'] } : undefined,
    );
    outboxes.push(outbox);
    await outbox.start();
    await outbox.enqueue(item('p', 'two'));
    await outbox.enqueue(item('p', 'none'));
    await outbox.idle();
    expect(await store.deliveredIds('inbound', 'two')).toEqual(['m1', 'm2']);
    expect(await store.deliveredIds('inbound', 'none')).toBeUndefined();
  });

  it('claims an item enqueued with a free slot in the same store write, and hands a client on', async () => {
    const store = new FlakyStore();
    const keys: string[] = [];
    const { outbox } = make(async (i) => void keys.push(i.key), { store });
    outboxes.push(outbox);
    await outbox.start();
    const claimsAtStart = store.calls.get('claim') ?? 0;
    for (let n = 0; n < 5; n++) await outbox.enqueue(item('q', `q${n}`));
    await Promise.all(Array.from({ length: 5 }, (_, n) => outbox.enqueue(item('r', `r${n}`))));
    await outbox.idle();
    expect(keys.filter((k) => k.startsWith('q'))).toEqual(['q0', 'q1', 'q2', 'q3', 'q4']);
    expect(keys.filter((k) => k.startsWith('r'))).toEqual(['r0', 'r1', 'r2', 'r3', 'r4']);
    expect(store.calls.get('claim') ?? 0).toBe(claimsAtStart);
  });

  it('finds work another writer put in the store (another replica, an operator) by polling', async () => {
    const keys: string[] = [];
    const { outbox, store } = make(async (i) => void keys.push(i.key), { syncIntervalMs: 20 });
    outboxes.push(outbox);
    await outbox.start();
    await store.enqueue(item('w', 'w1'), 60_000, Date.now());
    await until(() => keys.length === 1, 'the delivery', 1000);
    expect(keys).toEqual(['w1']);
  });

  it('shows the backlog as the store has it', async () => {
    const { outbox } = make(
      async () => {
        throw new Error('down');
      },
      { backoff: { baseMs: 10_000, maxMs: 10_000 } },
    );
    outboxes.push(outbox);
    await outbox.start();
    await outbox.enqueue(item('b', 'b1'));
    await outbox.enqueue(item('b', 'b2'));
    await outbox.enqueue(item('c', 'c1'));
    await until(() => outbox.backlog().pending === 3, 'the backlog');
    expect(outbox.backlog()).toMatchObject({ pending: 3, clients: 2 });
  });
});
