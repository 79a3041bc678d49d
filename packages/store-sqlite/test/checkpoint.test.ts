/** Group commit and off-thread WAL checkpoints: the two things that keep SQLite off the event loop's critical path. */
import { statSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SqliteStore } from '../src/index.js';
import { tempDir } from './helpers.js';

const dir = tempDir();
const item = (n: number) => ({
  leg: 'inbound' as const,
  clientId: `c${n % 7}`,
  key: `k${n}`,
  payload: { n, text: 'x'.repeat(1000) },
});

describe('SqliteStore write path', () => {
  it('commits writes of one event-loop turn together, each settling with its own result', async () => {
    const store = SqliteStore.open(dir.path('group.db'), { checkpointIntervalMs: 0 });
    const now = Date.now();
    const results = await Promise.all([
      store.enqueue(item(1), 60_000, now),
      store.enqueue(item(2), 60_000, now),
      store.enqueue(item(1), 60_000, now), // same key in the same batch: a duplicate
    ]);
    expect(results.map((r) => r?.key)).toEqual(['k1', 'k2', undefined]);
    const [claim] = await store.claim('inbound', 'w', 1, 30_000);
    expect(claim?.item.key).toBe('k1');
    await store.complete(results[0]!.id, claim!.fence);
    expect((await store.pending('inbound')).map((i) => i.key)).toEqual(['k2']);
    await store.close();
  });

  it('a write that fails fails alone: the rest of its batch commits, and it leaves nothing behind', async () => {
    const store = SqliteStore.open(dir.path('fail-alone.db'), { checkpointIntervalMs: 0 });
    const now = Date.now();
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    const results = await Promise.allSettled([
      store.enqueue(item(1), 60_000, now),
      store.enqueue({ ...item(2), payload: circular as never }, 60_000, now),
      store.enqueue(item(3), 60_000, now),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((await store.pending('inbound')).map((i) => i.key)).toEqual(['k1', 'k3']);
    // Its dedupe key was not claimed: the same message, stored properly, is accepted.
    expect((await store.enqueue(item(2), 60_000, now))?.key).toBe('k2');
    await store.close();
  });

  it('checkpoints the WAL from a worker thread, so the database file fills without a commit doing it', async () => {
    const path = dir.path('ckpt.db');
    const store = SqliteStore.open(path, { checkpointIntervalMs: 50 });
    const before = statSync(path).size;
    const now = Date.now();
    await Promise.all(Array.from({ length: 1500 }, (_, n) => store.enqueue(item(n), 60_000, now)));
    // Auto-checkpoint is off on the writing connection: only the worker moves pages into the file.
    const end = Date.now() + 10_000;
    while (statSync(path).size <= before + 1_000_000 && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(statSync(path).size).toBeGreaterThan(before + 1_000_000);
    await store.close();
  });

  it('runs the worker only while there is something to checkpoint', async () => {
    const path = dir.path('lazy.db');
    const store = SqliteStore.open(path, { checkpointIntervalMs: 20, checkpointIdleTicks: 3 });
    await new Promise((r) => setTimeout(r, 100));
    expect(store.checkpointing).toBe(false);
    const before = statSync(path).size;
    await Promise.all(Array.from({ length: 500 }, (_, n) => store.enqueue(item(n), 60_000, Date.now())));
    expect(store.checkpointing).toBe(true);
    const end = Date.now() + 10_000;
    while (store.checkpointing && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    // It ended on its own, after moving every page into the file.
    expect(store.checkpointing).toBe(false);
    expect(statSync(path).size).toBeGreaterThan(before + 400_000);
    // The next write starts another.
    await store.enqueue(item(1000), 60_000, Date.now());
    expect(store.checkpointing).toBe(true);
    await store.close();
    expect(store.checkpointing).toBe(false);
  });

  it('keeps the worker while writes go on, however quickly it keeps up with them', async () => {
    // 200 ms without a write end the worker: room for a stalled timer on a loaded machine, while the
    // writes go on for well over that (a worker that counted "kept up" as idle would end midway).
    const store = SqliteStore.open(dir.path('busy.db'), {
      checkpointIntervalMs: 20,
      checkpointIdleTicks: 10,
    });
    let ended = 0;
    for (let n = 0; n < 60; n++) {
      // Checked before each write: a worker that ended since the last one would show here.
      if (n > 0 && !store.checkpointing) ended++;
      await store.enqueue(item(n), 60_000, Date.now());
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(ended).toBe(0);
    await store.close();
  });

  it('without the worker, the file does not fill until SQLite checkpoints on its own', async () => {
    const path = dir.path('no-ckpt.db');
    const store = SqliteStore.open(path, { checkpointIntervalMs: 0 });
    const before = statSync(path).size;
    await Promise.all(Array.from({ length: 100 }, (_, n) => store.enqueue(item(n), 60_000, Date.now())));
    await new Promise((r) => setTimeout(r, 200));
    // 100 items stay below the 1000-page auto-checkpoint: all still in the WAL.
    expect(statSync(path).size).toBe(before);
    await store.close();
  });
});

describe('SqliteStore beside an operator connection', () => {
  it("sees another connection's revive at once: nextDue and claim find the item", async () => {
    const path = dir.path('rev.db');
    const worker = SqliteStore.open(path, { checkpointIntervalMs: 0 });
    const operator = SqliteStore.open(path, { checkpointIntervalMs: 0 });
    const it1 = await worker.enqueue(item(1), 60_000, Date.now());
    const [c] = await worker.claim('inbound', 'w', 10, 30_000);
    await worker.bury(it1!.id, c!.fence, 1, 'x');
    expect(await worker.nextDue('inbound')).toBeUndefined();
    const at = Date.now();
    await operator.revive('all-dead', at);
    expect(await worker.nextDue('inbound')).toBe(at);
    expect((await worker.claim('inbound', 'w', 10, 30_000)).map((x) => x.item.id)).toEqual([it1!.id]);
    await operator.close();
    await worker.close();
  });
});

describe('SqliteStore leases', () => {
  it('live in the process: a store opened after a holder was killed claims its clients at once', async () => {
    const path = dir.path('takeover.db');
    const dead = SqliteStore.open(path, { checkpointIntervalMs: 0 });
    const a = await dead.enqueue(item(1), 60_000, Date.now(), { owner: 'dead', leaseMs: 3_600_000 });
    expect(a?.fence).toBeTypeOf('number');
    // Never closed: as if killed.
    const next = SqliteStore.open(path, { checkpointIntervalMs: 0, exclusive: true });
    const [c] = await next.claim('inbound', 'w', 10, 30_000);
    expect(c?.item.id).toBe(a!.id);
    expect(c!.fence).toBeGreaterThan(a!.fence!);
    await next.close();
    await dead.close();
  });

  it('keeps fences growing across reopens', async () => {
    const path = dir.path('fences.db');
    let last = 0;
    for (let n = 0; n < 3; n++) {
      const store = SqliteStore.open(path, { checkpointIntervalMs: 0 });
      const i = await store.enqueue(item(n), 60_000, Date.now(), { owner: 'w', leaseMs: 30_000 });
      expect(i!.fence!).toBeGreaterThan(last);
      last = i!.fence!;
      await store.complete(i!.id, i!.fence!);
      await store.close();
    }
  });

  it('rolls the leases back with a failed write: the rerun write takes the lease, none is lost', async () => {
    const store = SqliteStore.open(dir.path('rollback.db'), { checkpointIntervalMs: 0 });
    const now = Date.now();
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    const lease = { owner: 'w', leaseMs: 30_000 };
    const [a, bad] = await Promise.allSettled([
      store.enqueue(item(1), 60_000, now, lease),
      store.enqueue({ ...item(2), clientId: 'other', payload: circular as never }, 60_000, now, lease),
    ]);
    expect(bad.status).toBe('rejected');
    const got = (a as PromiseFulfilledResult<Awaited<ReturnType<SqliteStore['enqueue']>>>).value!;
    expect(got.fence).toBeTypeOf('number');
    expect(await store.claim('inbound', 'x', 10, 30_000)).toEqual([]);
    expect(await store.complete(got.id, got.fence!)).toBeUndefined();
    expect(await store.nextDue('inbound')).toBeUndefined();
    await store.close();
  });
});
