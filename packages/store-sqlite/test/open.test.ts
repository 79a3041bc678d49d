import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { openSqliteStore, SCHEMA_VERSION, SqliteStore, StoreOpenError } from '../src/index.js';
import { MIGRATIONS } from '../src/migrations.js';
import { tempDir } from './helpers.js';

const dir = tempDir();

/** Reads a pragma with a plain connection, independent of the store. */
function pragma(file: string, name: string): unknown {
  const db = new Database(file, { readonly: true });
  try {
    return db.pragma(name, { simple: true });
  } finally {
    db.close();
  }
}

function tables(file: string): string[] {
  const db = new Database(file, { readonly: true });
  try {
    return db
      .prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
      )
      .pluck()
      .all() as string[];
  } finally {
    db.close();
  }
}

function openError(file: string, opts?: { readonly?: boolean }): StoreOpenError {
  try {
    SqliteStore.open(file, opts);
  } catch (err) {
    expect(err).toBeInstanceOf(StoreOpenError);
    return err as StoreOpenError;
  }
  throw new Error(`expected opening ${file} to fail`);
}

const item = { leg: 'inbound', clientId: 'c', key: 'k', payload: { x: 1 } } as const;

describe('opening and migrating', () => {
  it('creates the file and missing parent directories, migrated to the current version, in WAL mode', async () => {
    const file = join(dir.path('nested'), 'a', 'b', 'store.db');
    const store = await openSqliteStore(file);
    expect(store.description).toBe(`sqlite:${file}`);
    expect(store.path).toBe(file);
    await store.close();
    expect(SCHEMA_VERSION).toBe(MIGRATIONS.length);
    expect(pragma(file, 'user_version')).toBe(SCHEMA_VERSION);
    expect(pragma(file, 'journal_mode')).toBe('wal');
    expect(tables(file)).toEqual(['checkpoints', 'clients', 'dedupe', 'fence_seq', 'outbox']);
  });

  it('migrates an existing empty file', async () => {
    const file = dir.path('empty.db');
    writeFileSync(file, '');
    const store = SqliteStore.open(file);
    expect(await store.enqueue(item, 1000, 1)).toMatchObject({ id: 1 });
    await store.close();
    expect(pragma(file, 'user_version')).toBe(SCHEMA_VERSION);
  });

  it('describes a relative path by its absolute form', async () => {
    const store = SqliteStore.open(':memory:');
    expect(store.description).toBe('sqlite::memory:');
    await store.close();
    const target = join(dir.root, 'x.db');
    const rel = SqliteStore.open(relative(process.cwd(), target));
    expect(rel.description).toBe(`sqlite:${target}`);
    await rel.close();
  });

  it('re-opens an existing file with its data, without running migrations again', async () => {
    const file = dir.path('reopen.db');
    const first = SqliteStore.open(file);
    const stored = await first.enqueue(item, 60_000, 1000);
    await first.saveClient({ clientId: 'c', firstSeen: 1, lastSeen: 2, conversation: 'open' });
    await first.close();
    // schema_version counts every DDL change: unchanged means nothing was re-run.
    const cookie = pragma(file, 'schema_version');

    const second = SqliteStore.open(file);
    expect(await second.pending('inbound')).toEqual([stored]);
    expect(await second.getClient('c')).toEqual({
      clientId: 'c',
      firstSeen: 1,
      lastSeen: 2,
      conversation: 'open',
    });
    expect(await second.enqueue(item, 60_000, 2000)).toBeUndefined();
    await second.close();
    expect(pragma(file, 'schema_version')).toBe(cookie);
  });

  it('lets two connections share a file (the bridge and an operator command)', async () => {
    const file = dir.path('shared.db');
    const bridge = SqliteStore.open(file);
    const operator = SqliteStore.open(file);
    const a = await bridge.enqueue(item, 60_000, 1, { owner: 'bridge', leaseMs: 30_000 });
    await bridge.bury(a!.id, a!.fence!, 3, 'HTTP 400');
    expect(await operator.revive('all-dead', 5)).toBe(1);
    expect(await bridge.pending('inbound')).toMatchObject([{ id: a!.id, attempts: 0, nextAttemptAt: 5 }]);
    await operator.close();
    await bridge.close();
  });

  it('refuses a file with a newer schema version, and leaves it alone', async () => {
    const file = dir.path('newer.db');
    await SqliteStore.open(file).close();
    const raw = new Database(file);
    raw.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    raw.close();
    const before = readFileSync(file);

    const err = openError(file);
    expect(err.reason).toBe('newer-schema');
    expect(err.path).toBe(file);
    expect(err.message).toContain(file);
    expect(err.message).toContain(`schema version ${SCHEMA_VERSION + 1} is newer`);
    expect(err.message).toContain(`(${SCHEMA_VERSION})`);
    expect(readFileSync(file).equals(before)).toBe(true);
    expect(openError(file, { readonly: true }).reason).toBe('newer-schema');
  });

  it('rolls a failed migration back entirely and says which step failed', () => {
    const file = dir.path('conflict.db');
    // Version 0, with a table our first step also creates: the step fails part way.
    const raw = new Database(file);
    raw.exec('CREATE TABLE outbox (something_else TEXT)');
    raw.close();

    const err = openError(file);
    expect(err.reason).toBe('migration-failed');
    expect(err.message).toContain(file);
    expect(err.message).toContain('migration to schema version 1 failed');
    expect(err.message).toContain('outbox');
    expect(pragma(file, 'user_version')).toBe(0);
    // clients and dedupe were created before the failing statement: rolled back too.
    expect(tables(file)).toEqual(['outbox']);
  });

  it('migrates a version 1 store with items in it: claims go in order', async () => {
    const file = dir.path('v1.db');
    const raw = new Database(file);
    raw.exec(MIGRATIONS[0]!);
    raw.pragma('user_version = 1');
    const insert = raw.prepare(
      `INSERT INTO outbox (leg, client_id, key, payload, created_at, attempts, next_attempt_at, state)
       VALUES (?, ?, ?, '{}', 1, 0, ?, ?)`,
    );
    insert.run('inbound', 'a', 'a1', 1, 'dead');
    insert.run('inbound', 'a', 'a2', 5, 'pending');
    insert.run('inbound', 'a', 'a3', 1, 'pending');
    insert.run('inbound', 'b', 'b1', 3, 'pending');
    insert.run('outbound', 'a', 'o1', 1, 'pending');
    raw.close();

    const store = SqliteStore.open(file, { clock: () => 10 });
    expect(pragma(file, 'user_version')).toBe(SCHEMA_VERSION);
    const claims = await store.claim('inbound', 'w', 10, 1000);
    expect(claims.map((c) => c.item.key)).toEqual(['b1', 'a2']);
    expect((await store.claim('outbound', 'w', 10, 1000)).map((c) => c.item.key)).toEqual(['o1']);
    const a2 = claims.find((c) => c.item.key === 'a2')!;
    expect((await store.complete(a2.item.id, a2.fence, { leaseMs: 1000 }))?.item.key).toBe('a3');
    expect(await store.stats()).toMatchObject([
      { leg: 'inbound', pending: 2, dead: 1, clients: 2 },
      { leg: 'outbound', pending: 1, dead: 0, clients: 1 },
    ]);
    await store.close();
  });

  it('opened read-only, reads but never writes, creates or migrates', async () => {
    const file = dir.path('ro.db');
    const rw = SqliteStore.open(file);
    await rw.enqueue(item, 60_000, 1);

    const ro = SqliteStore.open(file, { readonly: true });
    expect(await ro.list({})).toMatchObject([{ key: 'k' }]);
    await expect(ro.enqueue({ ...item, key: 'k2' }, 60_000, 1)).rejects.toThrow(/readonly/i);
    await expect(ro.drop(1)).rejects.toThrow(/readonly/i);
    await ro.close();
    expect(await rw.list({})).toHaveLength(1);
    await rw.close();

    const missing = join(dir.path('ro-missing'), 'store.db');
    const err = openError(missing, { readonly: true });
    expect(err.reason).toBe('cannot-open');
    expect(err.message).toContain(missing);
    expect(existsSync(missing)).toBe(false);

    const old = dir.path('ro-old.db');
    writeFileSync(old, '');
    const stale = openError(old, { readonly: true });
    expect(stale.reason).toBe('needs-migration');
    expect(stale.message).toMatch(/opened read-only; open it read-write once to migrate/);
  });
});

describe('files that are not a usable store', () => {
  it('refuses a corrupt file (random bytes), naming the path, without touching it', () => {
    const file = dir.path('corrupt.db');
    const bytes = randomBytes(8192);
    writeFileSync(file, bytes);
    for (const readonly of [false, true]) {
      const err = openError(file, { readonly });
      expect(err.reason).toBe('not-a-database');
      expect(err.message).toBe(
        `cannot open the SQLite store ${file}: the file is not a SQLite database (corrupt?)`,
      );
      expect(err.cause).toBeDefined();
    }
    expect(readFileSync(file).equals(bytes)).toBe(true);
  });

  it('refuses a text file', () => {
    const file = dir.path('notes.txt');
    writeFileSync(file, 'KITBRIDGE_STORE=sqlite:./data.db\n'.repeat(20));
    expect(openError(file).reason).toBe('not-a-database');
  });

  // Tests run as root, and chmod does not stop root, so "cannot write here" is
  // made with paths no user can create: under a regular file.
  it('says so when the parent "directory" is a regular file', () => {
    const blocker = dir.path('blocker');
    writeFileSync(blocker, 'x');
    for (const file of [join(blocker, 'store.db'), join(blocker, 'sub', 'store.db')]) {
      const err = openError(file);
      expect(err.reason).toBe('cannot-open');
      expect(err.message).toContain(`cannot open the SQLite store ${file}: cannot create its directory`);
      expect(err.message).toContain('is a file, not a directory');
    }
    expect(readFileSync(blocker, 'utf8')).toBe('x');
  });

  it('says so when the path is a directory', () => {
    const file = dir.path('a-directory');
    mkdirSync(file);
    const err = openError(file);
    expect(err.reason).toBe('cannot-open');
    expect(err.message).toContain(file);
    expect(err.message).toMatch(/cannot be created or opened/);
  });
});
