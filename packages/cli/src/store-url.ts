/**
 * KITBRIDGE_STORE: where durable state lives. `sqlite:PATH` (default, one
 * process), `postgres://` / `postgresql://` (shared by replicas), or `memory:`.
 */
import { MemoryStore, type Store } from '@kitbridge/core';
import { isPostgresUrl, openPostgresStore, parsePostgresUrl } from '@kitbridge/store-postgres';
import { openSqliteStore } from '@kitbridge/store-sqlite';
import { z } from 'zod';

export const DEFAULT_STORE = 'sqlite:./kitbridge.db';

export const storeEnvSchema = z.object({
  KITBRIDGE_STORE: z
    .string()
    .default(DEFAULT_STORE)
    .superRefine((v, ctx) => {
      if (isPostgresUrl(v)) {
        try {
          parsePostgresUrl(v);
        } catch (err) {
          ctx.addIssue({ code: 'custom', message: (err as Error).message });
        }
      } else if (v !== 'memory:' && !/^sqlite:.+/.test(v)) {
        ctx.addIssue({
          code: 'custom',
          message:
            'expected sqlite:PATH (e.g. sqlite:./kitbridge.db), postgres://user:password@host:port/db or memory:',
        });
      }
    })
    .describe(
      'Durable store: sqlite:PATH (one process), postgres://user:password@host:port/db[?schema=&sslmode=] (shared by replicas), or memory: for tests and the demo',
    ),
});

/** The password in a PostgreSQL store URL, for the logger's redaction list (none for other stores). */
export function storeSecrets(url: string): string[] {
  if (!isPostgresUrl(url)) return [];
  try {
    const password = decodeURIComponent(new URL(url).password);
    return password ? [password] : [];
  } catch {
    return [];
  }
}

/**
 * Opens the store at `url`. `exclusive` (`kitbridge run` on SQLite): hold it
 * for this process alone; another `run` on the same file fails with a message
 * naming this one. Operator commands open it shared. PostgreSQL is always
 * shared: replicas of one connector run on one database, and the store's
 * leases keep them from delivering one item twice.
 */
export async function openStore(url: string, opts: { exclusive?: boolean } = {}): Promise<Store> {
  if (url === 'memory:') return new MemoryStore();
  if (isPostgresUrl(url)) return openPostgresStore(url);
  return openSqliteStore(url.slice('sqlite:'.length), { exclusive: opts.exclusive ?? false });
}
