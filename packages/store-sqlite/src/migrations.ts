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
  // 2: per-client queues with leases (several writers), delivery progress.
  `
  ALTER TABLE outbox ADD COLUMN progress TEXT; -- JSON object or NULL

  -- A client's pending items, oldest first: its head is the next to deliver.
  CREATE INDEX outbox_client_pending ON outbox (leg, client_id, id) WHERE state = 'pending';

  -- One row per (leg, client) with a pending item or a lease: the head (lowest-id
  -- pending item, NULL when an operator dropped the last one under a lease), when it
  -- is due, and the lease. ready_at is when a claim may take the client.
  CREATE TABLE queues (
    leg           TEXT NOT NULL CHECK (leg IN ('inbound', 'outbound')),
    client_id     TEXT NOT NULL,
    head_id       INTEGER,
    head_due      INTEGER NOT NULL,
    owner         TEXT,
    fence         INTEGER UNIQUE,      -- NULL while unleased
    lease_expires INTEGER NOT NULL DEFAULT 0,
    ready_at      INTEGER GENERATED ALWAYS AS (MAX(head_due, lease_expires)) STORED,
    PRIMARY KEY (leg, client_id)
  );
  CREATE INDEX queues_ready ON queues (leg, ready_at) WHERE head_id IS NOT NULL;

  -- The last fencing number handed out: fences only grow, across restarts too.
  CREATE TABLE fence_seq (n INTEGER NOT NULL);
  INSERT INTO fence_seq (n) VALUES (0);

  INSERT INTO queues (leg, client_id, head_id, head_due)
    SELECT o.leg, o.client_id, o.id, o.next_attempt_at FROM outbox o
    WHERE o.state = 'pending' AND o.id = (
      SELECT MIN(p.id) FROM outbox p WHERE p.leg = o.leg AND p.client_id = o.client_id AND p.state = 'pending'
    );
  `,
];

/** The user_version this build writes and understands. */
export const SCHEMA_VERSION = MIGRATIONS.length;
