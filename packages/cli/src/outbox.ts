/**
 * `kitbridge outbox`: what waits and what died, for operators.
 *   kitbridge outbox                 counts per leg, oldest age, the dead letters
 *   kitbridge outbox list [--dead]   the items themselves
 *   kitbridge outbox retry <id|--dead>
 *   kitbridge outbox drop <id>
 * A running connector picks up retried and dropped items within 30 s.
 */
import { existsSync } from 'node:fs';
import { formatAge, type OutboxItem, parseEnv } from '@kitbridge/core';
import { openStore, storeEnvSchema } from './store-url.js';

export async function outboxCommand(
  args: string[],
  env: NodeJS.ProcessEnv,
  print: (s: string) => void,
): Promise<number> {
  const { KITBRIDGE_STORE } = parseEnv(storeEnvSchema, env);
  inspectable(KITBRIDGE_STORE);
  const store = await openStore(KITBRIDGE_STORE);
  try {
    const [verb = 'status', arg] = args;
    if (verb === 'status') {
      const now = Date.now();
      for (const s of await store.stats()) {
        const age = s.oldestPendingAt ? ` oldest ${formatAge(now - s.oldestPendingAt)}` : '';
        print(`${s.leg.padEnd(8)} pending ${s.pending}  dead ${s.dead}${age}`);
      }
      const dead = await store.list({ state: 'dead', limit: 20 });
      if (dead.length) print('\ndead letters:');
      for (const i of dead) print(line(i));
      return 0;
    }
    if (verb === 'list') {
      const items = await store.list({ state: arg === '--dead' ? 'dead' : 'pending', limit: 1000 });
      for (const i of items) print(line(i));
      if (!items.length) print('(none)');
      return 0;
    }
    if (verb === 'retry') {
      const n =
        arg === '--dead'
          ? await store.revive('all-dead', Date.now())
          : await store.revive([parseId(arg)], Date.now());
      print(`${n} item(s) due again`);
      return n > 0 || arg === '--dead' ? 0 : 1;
    }
    if (verb === 'drop') {
      const ok = await store.drop(parseId(arg));
      print(ok ? 'dropped' : 'no such item');
      return ok ? 0 : 1;
    }
    throw new Error(
      `unknown outbox command "${verb}"; use status, list [--dead], retry <id|--dead> or drop <id>`,
    );
  } finally {
    await store.close();
  }
}

/**
 * An operator inspects a store that exists: opening a mistyped SQLite path would
 * create an empty database and report no backlog.
 */
function inspectable(url: string): void {
  if (url === 'memory:') {
    throw new Error(
      'KITBRIDGE_STORE is memory:, which lives inside the running process and ends with it: there is nothing to inspect from here. Point KITBRIDGE_STORE at the store the connector uses (sqlite:PATH or postgres://...)',
    );
  }
  const path = url.startsWith('sqlite:') ? url.slice('sqlite:'.length) : undefined;
  if (path !== undefined && !existsSync(path)) {
    throw new Error(
      `KITBRIDGE_STORE: there is no store at ${path} (nothing was created); give the path the connector runs with (relative paths are from ${process.cwd()})`,
    );
  }
}

function parseId(v: string | undefined): number {
  const n = Number(v);
  if (!v || !Number.isInteger(n) || n <= 0) throw new Error('expected an item id (a positive whole number)');
  return n;
}

function line(i: OutboxItem): string {
  const err = i.lastError ? `  last error: ${i.lastError}` : '';
  return `#${i.id} ${i.leg} ${i.state} client=${i.clientId} key=${i.key} attempts=${i.attempts} age=${formatAge(Date.now() - i.createdAt)}${err}`;
}
