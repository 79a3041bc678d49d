/**
 * The schema, as numbered steps over the tables of one PostgreSQL schema
 * (`s`, a quoted identifier). Step n (1-based) takes `schema_version` from n-1
 * to n. Steps are append-only: never edit one that has shipped, add a new one.
 * A database whose version is above SCHEMA_VERSION was written by a newer build
 * and is refused rather than guessed at.
 *
 * Times are epoch milliseconds (bigint). Lease expiry is judged by the
 * database's clock, so replicas whose clocks drift still agree on who holds
 * what. JSON is kept as `json` (the text as written: key order and escapes
 * survive, which `jsonb` would not keep).
 */
export const MIGRATIONS: readonly ((s: string) => string)[] = [
  // 1: clients, dedupe keys (with the platform ids of delivered items), outbox, leases, cursors, jobs.
  (s) => `
  CREATE TABLE ${s}.clients (
    client_id    text PRIMARY KEY,
    address      json,
    profile      json,
    first_seen   bigint NOT NULL,
    last_seen    bigint NOT NULL,
    conversation text NOT NULL CHECK (conversation IN ('open', 'closed')),
    close_reason text
  );

  CREATE TABLE ${s}.dedupe (
    leg          text NOT NULL CHECK (leg IN ('inbound', 'outbound')),
    key          text NOT NULL,
    expires_at   bigint NOT NULL,
    platform_ids json,
    PRIMARY KEY (leg, key)
  );
  CREATE INDEX dedupe_expires_at ON ${s}.dedupe (expires_at);

  -- An identity column: ids are never reused, so an operator's "revive 42" never hits another message.
  CREATE TABLE ${s}.outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    leg             text NOT NULL CHECK (leg IN ('inbound', 'outbound')),
    client_id       text NOT NULL,
    key             text NOT NULL,
    payload         json NOT NULL,
    created_at      bigint NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at bigint NOT NULL,
    last_error      text,
    state           text NOT NULL CHECK (state IN ('pending', 'dead')),
    progress        json
  );
  -- Client heads (the lowest pending id of each client) come from this one.
  CREATE INDEX outbox_pending_heads ON ${s}.outbox (leg, client_id, id) WHERE state = 'pending';
  CREATE INDEX outbox_leg_state_id ON ${s}.outbox (leg, state, id);

  -- Fencing numbers of client and job leases: only grow, never reused.
  CREATE SEQUENCE ${s}.fences;

  -- One row per leased client; released leases are deleted. An expired row is still held (by its fence)
  -- until a claim takes it over.
  CREATE TABLE ${s}.leases (
    leg        text NOT NULL,
    client_id  text NOT NULL,
    fence      bigint NOT NULL UNIQUE,
    owner      text NOT NULL,
    expires_at bigint NOT NULL,
    PRIMARY KEY (leg, client_id)
  );

  CREATE TABLE ${s}.checkpoints (
    key   text PRIMARY KEY,
    value text NOT NULL
  );

  CREATE TABLE ${s}.jobs (
    name       text PRIMARY KEY,
    fence      bigint NOT NULL,
    owner      text NOT NULL,
    expires_at bigint NOT NULL
  );
  `,
];

/** The schema_version this build writes and understands. */
export const SCHEMA_VERSION = MIGRATIONS.length;
