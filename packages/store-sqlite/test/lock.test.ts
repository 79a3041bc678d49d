/**
 * `exclusive: true`: one process at a time on a store file (two connectors on
 * one file deliver each other's items), with a lock the OS drops when the
 * holder dies, so a restart after kill -9 is never locked out.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteStore, StoreOpenError } from '../src/index.js';
import { tempDir } from './helpers.js';

const dir = tempDir();
const fixture = fileURLToPath(new URL('./fixtures/hold-exclusive.mjs', import.meta.url));
const built = fileURLToPath(new URL('../dist/index.js', import.meta.url));
const item = { leg: 'inbound', clientId: 'c', key: 'k', payload: {} } as const;

function openError(file: string): StoreOpenError {
  try {
    SqliteStore.open(file, { exclusive: true }).close();
  } catch (err) {
    expect(err).toBeInstanceOf(StoreOpenError);
    return err as StoreOpenError;
  }
  throw new Error(`expected opening ${file} exclusive to fail`);
}

let child: ChildProcess | undefined;
afterEach(() => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

/** Starts the fixture holding `file`; resolves once it holds it. */
function holdInChild(file: string): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [fixture, file], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    let out = '';
    let err = '';
    proc.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes('held\n')) resolve(proc);
    });
    proc.stderr.setEncoding('utf8').on('data', (d: string) => {
      err += d;
    });
    proc.on('error', reject);
    proc.on('exit', (code, signal) => {
      if (!out.includes('held\n')) reject(new Error(`fixture exited (${code ?? signal}) early: ${err}`));
    });
  });
}

describe('exclusive', () => {
  it('refuses a second exclusive open, naming the holder; shared and read-only opens still work', async () => {
    const file = dir.path('one.db');
    const holder = SqliteStore.open(file, { exclusive: true });
    await holder.enqueue(item, 60_000, 1);

    const err = openError(file);
    expect(err.reason).toBe('in-use');
    expect(err.holder).toMatchObject({ pid: process.pid, host: hostname() });
    expect(err.message).toContain(`cannot open the SQLite store ${file}: it is in use by this process`);
    expect(err.message).toContain(`pid ${process.pid} on host ${hostname()}`);

    // Operator tools: a plain read-write connection and a read-only one.
    const operator = SqliteStore.open(file);
    expect(await operator.drop(1)).toBe(true);
    await operator.close();
    const ro = SqliteStore.open(file, { readonly: true });
    expect(await ro.list({})).toEqual([]);
    await ro.close();
    // The failed attempts and the operator's connections left the lock where it was.
    expect(openError(file).reason).toBe('in-use');

    await holder.close();
    expect(existsSync(`${file}-lock.json`)).toBe(false);
    const next = SqliteStore.open(file, { exclusive: true });
    await next.close();
  });

  it('says so when the holder is not known (its note is missing or left by a dead process)', async () => {
    const file = dir.path('anon.db');
    const holder = SqliteStore.open(file, { exclusive: true });
    writeFileSync(`${file}-lock.json`, JSON.stringify({ pid: 2 ** 30, host: hostname(), since: 'then' }));
    expect(openError(file).message).toContain('in use by another process (which one is not known)');
    writeFileSync(`${file}-lock.json`, 'not json');
    expect(openError(file).holder).toBeUndefined();
    await holder.close();
  });

  it('gives the lock back when opening fails after taking it', () => {
    const file = dir.path('corrupt.db');
    writeFileSync(file, Buffer.alloc(8192, 0x5a));
    expect(openError(file).reason).toBe('not-a-database');
    expect(openError(file).reason).toBe('not-a-database');
  });

  it('is not taken by a read-only or a shared open', async () => {
    const file = dir.path('shared.db');
    await SqliteStore.open(file).close();
    const a = SqliteStore.open(file);
    const b = SqliteStore.open(file, { readonly: true });
    const c = SqliteStore.open(file, { exclusive: true });
    await Promise.all([a.close(), b.close(), c.close()]);
    expect(() => SqliteStore.open(file, { readonly: true, exclusive: true })).toThrow(/read-only/);
  });

  it('is released by the OS when the holder is killed with SIGKILL', async () => {
    expect(existsSync(built), `${built} is missing: build the package first (npm run build)`).toBe(true);
    const file = dir.path('killed.db');
    const proc = await holdInChild(file);

    const err = openError(file);
    expect(err.reason).toBe('in-use');
    expect(err.holder).toMatchObject({ pid: proc.pid, host: hostname() });
    expect(err.message).toContain(`in use by another process (pid ${proc.pid} on host ${hostname()}, since `);

    proc.kill('SIGKILL');
    await new Promise((r) => proc.once('exit', r));
    // At once, no waiting for a timeout: the kernel dropped the lock with the process.
    const store = SqliteStore.open(file, { exclusive: true });
    try {
      expect(await store.pending('inbound')).toMatchObject([{ key: 'held' }]);
      // The killed process's note was replaced by ours.
      expect(JSON.parse(readFileSync(`${file}-lock.json`, 'utf8'))).toMatchObject({ pid: process.pid });
    } finally {
      await store.close();
    }
  });
});
