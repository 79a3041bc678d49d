#!/usr/bin/env node
// Adds up the JSON reports each package's vitest run leaves in .vitest-result.json and
// prints one closing line, "N passed, N failed", for the whole repository.
// With --clean, removes old reports first so a stale one is never counted. The line names the
// Node version; with KITBRIDGE_TEST_SUMMARY set (CI) it is appended to that file too.
import { appendFileSync, existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const dirs = [];
for (const pattern of pkg.workspaces) {
  if (pattern.endsWith('/*')) {
    const base = pattern.slice(0, -2);
    for (const d of readdirSync(join(root, base))) dirs.push(join(root, base, d));
  } else dirs.push(join(root, pattern));
}
const reports = dirs.map((d) => join(d, '.vitest-result.json'));

if (process.argv.includes('--clean')) {
  for (const r of reports) rmSync(r, { force: true });
  process.exit(0);
}

let passed = 0;
let failed = 0;
let skipped = 0;
for (const r of reports) {
  if (!existsSync(r)) continue;
  const j = JSON.parse(readFileSync(r, 'utf8'));
  passed += j.numPassedTests ?? 0;
  failed += j.numFailedTests ?? 0;
  // A file that failed to load has no failed tests but does fail the run.
  if (j.success === false && !j.numFailedTests) failed += 1;
  skipped += (j.numPendingTests ?? 0) + (j.numTodoTests ?? 0);
}
// turbo's own exit code (--turbo-exit=$?): a package that failed before vitest reported fails the run.
const turboExit = Number(process.argv.find((a) => a.startsWith('--turbo-exit='))?.split('=')[1] ?? 0);
if (turboExit !== 0 && failed === 0) failed = 1;
const summary = `Node ${process.version}: ${passed} passed, ${failed} failed, ${skipped} skipped${turboExit ? ` (turbo exited ${turboExit})` : ''}`;
console.log(`\n${summary}`);
if (process.env.KITBRIDGE_TEST_SUMMARY) appendFileSync(process.env.KITBRIDGE_TEST_SUMMARY, `${summary}\n`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
