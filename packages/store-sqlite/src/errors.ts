/** The process holding a store opened `exclusive`, as it described itself. */
export interface StoreHolder {
  pid: number;
  host: string;
  /** When it took the store, ISO 8601. */
  since: string;
}

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
  | 'migration-failed'
  /** Opened `exclusive` while another process (or connection) holds the store: see {@link StoreOpenError.holder}. */
  | 'in-use';

/** Opening a SQLite store failed. The message names the path and the problem. */
export class StoreOpenError extends Error {
  override readonly name = 'StoreOpenError';
  /** For `in-use`: the process holding the store, when it is known. */
  readonly holder?: StoreHolder;

  constructor(
    /** Absolute path of the database file. */
    readonly path: string,
    /** Machine-readable kind of failure. */
    readonly reason: StoreOpenFailure,
    problem: string,
    options?: { cause?: unknown; holder?: StoreHolder },
  ) {
    super(`cannot open the SQLite store ${path}: ${problem}`, options);
    if (options?.holder) this.holder = options.holder;
  }
}
