/** KITBRIDGE_STORE: where durable state lives. `sqlite:PATH` (default) or `memory:`. */
import { MemoryStore, type Store } from '@kitbridge/core';
import { openSqliteStore } from '@kitbridge/store-sqlite';
import { z } from 'zod';

export const DEFAULT_STORE = 'sqlite:./kitbridge.db';

export const storeEnvSchema = z.object({
  KITBRIDGE_STORE: z
    .string()
    .default(DEFAULT_STORE)
    .refine((v) => v === 'memory:' || /^sqlite:.+/.test(v), {
      message: 'expected sqlite:PATH (e.g. sqlite:./kitbridge.db) or memory:',
    })
    .describe('Durable store: sqlite:PATH, or memory: for tests and the demo'),
});

/**
 * Opens the store at `url`. `exclusive` (`kitbridge run`): hold it for this
 * process alone; another `run` on the same file fails with a message naming
 * this one. Operator commands open it shared.
 */
export async function openStore(url: string, opts: { exclusive?: boolean } = {}): Promise<Store> {
  if (url === 'memory:') return new MemoryStore();
  return openSqliteStore(url.slice('sqlite:'.length), { exclusive: opts.exclusive ?? false });
}
