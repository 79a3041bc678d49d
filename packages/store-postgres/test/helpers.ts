import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll } from 'vitest';

/** The test server: KITBRIDGE_TEST_PG, else the local one `.ci/run` starts (trust auth). */
export const PG_ADMIN_URL = process.env.KITBRIDGE_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/test';

/**
 * A database of its own for this test file, dropped after all its tests.
 * `url(schema)` names a schema in it (each test may take a fresh one).
 */
export function tempDatabase(): { url: (schema?: string) => string; name: string; ready: Promise<void> } {
  const name = `kb_test_${randomBytes(6).toString('hex')}`;
  const admin = () => new pg.Client({ connectionString: PG_ADMIN_URL });
  const ready = (async () => {
    const c = admin();
    await c.connect();
    try {
      await c.query(`CREATE DATABASE ${name}`);
    } finally {
      await c.end();
    }
  })();
  afterAll(async () => {
    await ready.catch(() => {});
    const c = admin();
    await c.connect();
    try {
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    } finally {
      await c.end();
    }
  });
  const base = new URL(PG_ADMIN_URL);
  base.pathname = `/${name}`;
  return {
    name,
    ready,
    url: (schema) => {
      const u = new URL(base.href);
      if (schema) u.searchParams.set('schema', schema);
      return u.href;
    },
  };
}
