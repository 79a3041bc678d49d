/** Opening a PostgreSQL store failed. The message names the store (without its password) and the problem. */
export class PostgresStoreOpenError extends Error {
  override readonly name = 'PostgresStoreOpenError';

  constructor(
    /** The store URL with its password masked. */
    readonly url: string,
    problem: string,
    options?: { cause?: unknown },
  ) {
    super(`cannot open the PostgreSQL store ${url}: ${problem}`, options);
  }
}

/** What a node-postgres or socket error means to an operator, in a few words. */
export function describePgError(err: unknown): string {
  const e = err as { code?: string; message?: string; address?: string; port?: number };
  const where = e.address ? ` ${e.address}${e.port ? `:${e.port}` : ''}` : '';
  switch (e.code) {
    case 'ECONNREFUSED':
      return `connection refused at${where} (is PostgreSQL running there?)`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'the host name does not resolve';
    case 'ETIMEDOUT':
      return `no answer from${where || ' the server'} (firewall? wrong host?)`;
    case '28P01':
    case '28000':
      return `authentication failed: ${e.message}`;
    case '3D000':
      return `${e.message} (create it, or fix the database name)`;
    case '42501':
      return `permission denied: ${e.message}`;
    case '25006':
      return 'the database is read-only (a standby? default_transaction_read_only?)';
    case '57P03':
      return 'the server is starting up or shutting down';
    default:
      return e.message ?? String(err);
  }
}

/** An error of the server (it has a SQLSTATE), not of the connection: the connection may be kept. */
export function isServerError(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code);
}

/** Deadlock or serialization failure: the transaction may simply be run again. */
export function isRetryable(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return code === '40P01' || code === '40001';
}

/**
 * The database cannot be reached or is going away: a socket error, a
 * connection node-postgres gave up on (ended, timed out), a connection
 * exception (SQLSTATE 08), or the server shutting down or starting (57P).
 */
export function isConnectionError(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown };
  if (typeof e.code === 'string') return /^E[A-Z]+$/.test(e.code) || /^(08|57P)/.test(e.code);
  return /connection|timeout|terminated|not queryable/i.test(String(e.message));
}
