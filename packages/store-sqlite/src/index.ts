/**
 * @kitbridge/store-sqlite: the durable Store (outbox, dedupe keys, clients) on
 * a SQLite file, for a single bridge host.
 */
export { type StoreHolder, StoreOpenError, type StoreOpenFailure } from './errors.js';
export { SCHEMA_VERSION } from './migrations.js';
export { openSqliteStore, SqliteStore, type SqliteStoreOptions } from './sqlite-store.js';
