import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';

/** A temp directory for this test file, removed after all its tests. */
export function tempDir(): { path: (name: string) => string; root: string } {
  const root = mkdtempSync(join(tmpdir(), 'kitbridge-sqlite-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  let n = 0;
  return { root, path: (name: string) => join(root, `${n++}-${name}`) };
}
