/**
 * The lock of {@link SqliteStoreOptions.exclusive}: one process at a time on a
 * store file, released by the operating system when that process dies.
 *
 * Node has no flock, but SQLite's unix VFS locks with POSIX fcntl locks, which
 * the kernel drops with the process (kill -9, OOM kill). So the lock is a
 * SQLite database beside the store, `<store>-lock`, held by a connection of
 * its own in `locking_mode = EXCLUSIVE` after one exclusive transaction: no
 * other connection, in this process or another, can read or lock it until
 * that connection closes or the process ends. The store itself is not locked,
 * so operator tools (`kitbridge outbox`) keep working beside the holder.
 *
 * Who holds it (pid, host, since when) is written to `<store>-lock.json` for
 * the message a second process prints; the lock file itself must never be
 * opened by anything but SQLite in the holding process (closing any
 * descriptor of a file drops the process's fcntl locks on it), and is never
 * deleted (a process that opened it just before would lock a file nobody else
 * sees).
 */
import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import Database from 'better-sqlite3';
import { type StoreHolder, StoreOpenError } from './errors.js';

export class StoreLock {
  private constructor(
    private readonly db: Database.Database,
    private readonly infoPath: string,
  ) {}

  /** Path of the lock file of the store at `storePath`. */
  static pathFor(storePath: string): string {
    return `${storePath}-lock`;
  }

  /**
   * Takes the lock of the store at `storePath` (absolute), at once or not at all.
   * Throws {@link StoreOpenError} `in-use` naming the holder where known, or
   * `cannot-open` when the lock file cannot be created.
   */
  static acquire(storePath: string): StoreLock {
    const lockPath = StoreLock.pathFor(storePath);
    const infoPath = `${lockPath}.json`;
    let db: Database.Database;
    try {
      db = new Database(lockPath, { timeout: 0 });
    } catch (err) {
      throw new StoreOpenError(
        storePath,
        'cannot-open',
        `its lock file ${lockPath} cannot be created or opened (permissions? read-only directory?)`,
        { cause: err },
      );
    }
    try {
      db.pragma('locking_mode = EXCLUSIVE');
      // Nothing is ever written: no journal file beside it (EXCLUSIVE mode would keep one).
      db.pragma('journal_mode = MEMORY');
      // Held from here until the connection closes: EXCLUSIVE mode never gives a lock back.
      db.exec('BEGIN EXCLUSIVE; COMMIT');
    } catch (err) {
      db.close();
      if (!isBusy(err)) {
        throw new StoreOpenError(
          storePath,
          'cannot-open',
          `its lock file ${lockPath}: ${(err as Error).message}`,
          {
            cause: err,
          },
        );
      }
      const holder = readHolder(infoPath);
      throw new StoreOpenError(
        storePath,
        'in-use',
        `it is in use by ${describeHolder(holder)}; one process at a time may run on a store: stop that one first, or give this one a file of its own`,
        {
          cause: err,
          ...(holder ? { holder } : {}),
        },
      );
    }
    const holder: StoreHolder = { pid: process.pid, host: hostname(), since: new Date().toISOString() };
    try {
      writeFileSync(infoPath, `${JSON.stringify(holder)}\n`);
    } catch {
      // Only the message of a second process needs it; the lock holds without it.
    }
    return new StoreLock(db, infoPath);
  }

  /** Gives the lock back. Idempotent. */
  release(): void {
    if (!this.db.open) return;
    // Before the lock goes: once it is free, the file belongs to the next holder.
    try {
      unlinkSync(this.infoPath);
    } catch {}
    this.db.close();
  }
}

function isBusy(err: unknown): boolean {
  const code = err instanceof Database.SqliteError ? err.code : undefined;
  return code !== undefined && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'));
}

/** The holder's own description, unless missing, unreadable or left by a process that is gone. */
function readHolder(infoPath: string): StoreHolder | undefined {
  let h: Partial<StoreHolder>;
  try {
    h = JSON.parse(readFileSync(infoPath, 'utf8')) as Partial<StoreHolder>;
  } catch {
    return undefined;
  }
  if (!Number.isSafeInteger(h.pid) || typeof h.host !== 'string' || typeof h.since !== 'string')
    return undefined;
  const holder = { pid: h.pid!, host: h.host, since: h.since };
  // Left by a holder that was killed, before the live one wrote its own.
  if (holder.host === hostname() && !alive(holder.pid)) return undefined;
  return holder;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function describeHolder(h: StoreHolder | undefined): string {
  if (!h) return 'another process (which one is not known)';
  const who = h.pid === process.pid && h.host === hostname() ? 'this process' : 'another process';
  return `${who} (pid ${h.pid} on host ${h.host}, since ${h.since})`;
}
