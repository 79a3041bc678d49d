/** What went wrong when opening a store. */
export type StoreOpenFailure =
  /** The file or its directory cannot be created or opened (path, permissions, read-only). */
  | 'cannot-open'
  /** The file exists but is not a SQLite database (corrupt, or another kind of file). */
  | 'not-a-database'
  /** The file was written by a newer build: its schema version is unknown here. */
  | 'newer-schema'
  /** The file needs a migration but was opened read-only. */
  | 'needs-migration'
  /** A migration step failed; the file was left as it was. */
  | 'migration-failed';

/** Opening a SQLite store failed. The message names the path and the problem. */
export class StoreOpenError extends Error {
  override readonly name = 'StoreOpenError';

  constructor(
    /** Absolute path of the database file. */
    readonly path: string,
    /** Machine-readable kind of failure. */
    readonly reason: StoreOpenFailure,
    problem: string,
    options?: { cause?: unknown },
  ) {
    super(`cannot open the SQLite store ${path}: ${problem}`, options);
  }
}
