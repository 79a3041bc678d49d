/**
 * @kitbridge/store-postgres: the shared Store on PostgreSQL, for several
 * replicas of one connector (and operator tools) at once.
 */
export { PostgresStoreOpenError } from './errors.js';
export { SCHEMA_VERSION } from './migrations.js';
export { openPostgresStore, PostgresStore, type PostgresStoreOptions } from './postgres-store.js';
export { isPostgresUrl, type PostgresUrl, parsePostgresUrl } from './url.js';
