import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../src/index.js';
import { tempDir } from './helpers.js';

const dir = tempDir();
const fixture = fileURLToPath(new URL('./fixtures/enqueue-then-hang.mjs', import.meta.url));
const built = fileURLToPath(new URL('../dist/index.js', import.meta.url));
const N = 200;

let child: ChildProcess | undefined;
afterEach(() => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

/** Runs the fixture, SIGKILLs it as soon as it reports, resolves with how it ended. */
function enqueueAndKill(file: string): Promise<NodeJS.Signals | null> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [fixture, file, String(N)], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    let out = '';
    let err = '';
    proc.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes('enqueued\n')) proc.kill('SIGKILL');
    });
    proc.stderr.setEncoding('utf8').on('data', (d: string) => {
      err += d;
    });
    proc.on('error', reject);
    proc.on('exit', (code, signal) => {
      if (!out.includes('enqueued\n')) reject(new Error(`fixture exited (${code ?? signal}) early: ${err}`));
      else resolve(signal);
    });
  });
}

describe('durability', () => {
  it('keeps every item and dedupe key a killed process had enqueued', async () => {
    expect(existsSync(built), `${built} is missing: build the package first (npm run build)`).toBe(true);
    const file = dir.path('crash.db');
    expect(await enqueueAndKill(file)).toBe('SIGKILL');
    // Never closed: the commits sit in the WAL, which the next open must recover.
    expect(existsSync(`${file}-wal`)).toBe(true);

    const store = SqliteStore.open(file);
    try {
      const items = [...(await store.pending('inbound')), ...(await store.pending('outbound'))].sort(
        (a, b) => a.id - b.id,
      );
      expect(items).toHaveLength(N);
      items.forEach((item, n) => {
        expect(item).toMatchObject({
          leg: n % 2 ? 'outbound' : 'inbound',
          clientId: `c${n % 3}`,
          key: `key-${n}`,
          payload: { n, text: `msg ${n} ✓` },
          createdAt: 1_000 + n,
          state: 'pending',
        });
      });
      // Their keys survived too: a redelivery of any source message is a duplicate.
      for (let n = 0; n < N; n++) {
        const leg = n % 2 ? 'outbound' : 'inbound';
        expect(
          await store.enqueue({ leg, clientId: 'c', key: `key-${n}`, payload: {} }, 1, 5_000),
        ).toBeUndefined();
      }
    } finally {
      await store.close();
    }
  });
});
