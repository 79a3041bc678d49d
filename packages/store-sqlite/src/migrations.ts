/**
 * The schema, as numbered steps. Step n (1-based) takes `PRAGMA user_version`
 * from n-1 to n. Steps are append-only: never edit one that has shipped, add a
 * new one. A file whose user_version is above SCHEMA_VERSION was written by a
 * newer build and is refused rather than guessed at.
 */
export const MIGRATIONS: readonly string[] = [
  // 1: clients, dedupe keys, outbox.
  `
  CREATE TABLE clients (
    client_id    TEXT PRIMARY KEY,
    address      TEXT,               -- JSON object or NULL
    profile      TEXT,               -- JSON object or NULL
    first_seen   INTEGER NOT NULL,
    last_seen    INTEGER NOT NULL,
    conversation TEXT NOT NULL CHECK (conversation IN ('open', 'closed')),
    close_reason TEXT
  );

  CREATE TABLE dedupe (
    leg        TEXT NOT NULL CHECK (leg IN ('inbound', 'outbound')),
    key        TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (leg, key)
  ) WITHOUT ROWID;
  CREATE INDEX dedupe_expires_at ON dedupe (expires_at);

  -- AUTOINCREMENT: ids are never reused, even after the newest item is deleted,
  -- so an operator's "revive 42" can never hit a different message.
  CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    leg             TEXT NOT NULL CHECK (leg IN ('inbound', 'outbound')),
    client_id       TEXT NOT NULL,
    key             TEXT NOT NULL,
    payload         TEXT NOT NULL,   -- JSON object
    created_at      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'dead'))
  );
  CREATE INDEX outbox_leg_state_id ON outbox (leg, state, id);
  `,
  // 2: delivery progress; the fence sequence. (Leases live in the one process that
  // holds the store: the exclusive open.)
  `
  ALTER TABLE outbox ADD COLUMN progress TEXT; -- JSON object or NULL

  -- The highest fencing number reserved so far: fences only grow, across restarts too.
  CREATE TABLE fence_seq (n INTEGER NOT NULL);
  INSERT INTO fence_seq (n) VALUES (0);
  `,
  // 3: connectors' durable cursors (ctx.checkpoints: a Discord channel's last message seen).
  `
  CREATE TABLE checkpoints (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
  ) WITHOUT ROWID;
  `,
  // 4: the platform's message ids of a delivered item, kept with its dedupe key (Store.deliveredIds).
  `
  ALTER TABLE dedupe ADD COLUMN platform_ids TEXT; -- JSON array or NULL
  `,
];

/** The user_version this build writes and understands. */
export const SCHEMA_VERSION = MIGRATIONS.length;
