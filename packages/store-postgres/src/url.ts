/** `postgres://user:password@host:port/db?sslmode=...&schema=...`, read without ever echoing the password. */

/** A store URL taken apart: what node-postgres gets, and what may be shown. */
export interface PostgresUrl {
  /** For node-postgres: the URL without `schema` (it keeps sslmode and the password). */
  connectionString: string;
  /** The PostgreSQL schema holding the tables (default `public`). */
  schema: string;
  /** The URL without its password, for logs and errors. */
  redacted: string;
}

const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
const SSL_MODES = ['disable', 'prefer', 'require', 'verify-ca', 'verify-full', 'no-verify'];

/** Whether `url` names a PostgreSQL store (scheme only; {@link parsePostgresUrl} checks the rest). */
export function isPostgresUrl(url: string): boolean {
  return /^postgres(ql)?:\/\//i.test(url);
}

/**
 * Parses and checks a store URL. Throws a TypeError saying what is wrong; the
 * message never contains the password.
 */
export function parsePostgresUrl(url: string): PostgresUrl {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new TypeError('not a valid URL (expected postgres://user:password@host:port/database)');
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
    throw new TypeError(`expected postgres:// or postgresql://, not ${u.protocol}//`);
  }
  const redactedUrl = new URL(u.href);
  if (redactedUrl.password) redactedUrl.password = '***';
  const redacted = redactedUrl.href;
  if (!u.hostname) throw new TypeError(`no host in ${redacted}`);
  const database = decodeURIComponent(u.pathname.replace(/^\//, ''));
  if (!database || database.includes('/'))
    throw new TypeError(`no database name in ${redacted} (…/DATABASE)`);
  const schema = u.searchParams.get('schema') ?? 'public';
  if (!SCHEMA_NAME.test(schema)) {
    throw new TypeError(
      `schema "${schema}" in ${redacted}: letters, digits and _ only, not starting with a digit`,
    );
  }
  const sslmode = u.searchParams.get('sslmode');
  if (sslmode !== null && !SSL_MODES.includes(sslmode)) {
    throw new TypeError(`sslmode "${sslmode}" in ${redacted}: expected one of ${SSL_MODES.join(', ')}`);
  }
  for (const k of u.searchParams.keys()) {
    if (k !== 'schema' && k !== 'sslmode') throw new TypeError(`unknown parameter "${k}" in ${redacted}`);
  }
  u.searchParams.delete('schema');
  return { connectionString: u.href, schema, redacted };
}
