#!/usr/bin/env node
// Every package installs alone and works, as a consumer gets it: packs every
// published workspace package, checks what the tarballs hold, installs them into
// an empty folder outside the repository (beside zod 3 and the newest vitest),
// runs `kitbridge demo` there, typechecks the README's "Write a plugin" sample
// against the installed types (strict, NodeNext), and runs testkit's store
// conformance kit under that vitest. VITEST picks the version (default: latest).
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const work = mkdtempSync(join(tmpdir(), 'kitbridge-pack-'));
const app = join(work, 'app');
const vitest = process.env.VITEST ?? 'latest';
const started = Date.now();
const step = (s) => console.log(`\npack-check: ${s} (${Math.round((Date.now() - started) / 1000)}s)`);
const sh = (cmd, args, cwd = app) =>
  execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
const problems = [];

try {
  step('npm pack');
  const dirs = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
    .workspaces.flatMap((w) =>
      w.endsWith('/*') ? readdirSync(join(root, w.slice(0, -2))).map((d) => `${w.slice(0, -2)}/${d}`) : [w],
    )
    .filter((d) => !JSON.parse(readFileSync(join(root, d, 'package.json'), 'utf8')).private);
  const packed = JSON.parse(
    sh('npm', ['pack', '--json', '--pack-destination', work, ...dirs.flatMap((d) => ['-w', d])], root),
  );
  for (const p of packed) {
    const files = p.files.map((f) => f.path);
    for (const f of files) {
      if (/(^|\/)(test|tests|__tests__)\/|\.test\.[cm]?[jt]s$|\.tsbuildinfo$/.test(f))
        problems.push(`${p.name}: ships a test or build file ${f}`);
      if (f.endsWith('.map')) {
        const map = JSON.parse(sh('tar', ['-xOzf', join(work, p.filename), `package/${f}`], work));
        const ok = map.sourcesContent?.length === map.sources.length && map.sourcesContent.every(Boolean);
        if (!ok) problems.push(`${p.name}: ${f} points at sources it does not ship`);
      }
    }
    for (const must of ['LICENSE', 'README.md', 'package.json'])
      if (!files.includes(must)) problems.push(`${p.name}: no ${must}`);
    const pkg = JSON.parse(readFileSync(join(root, dirs[packed.indexOf(p)], 'package.json'), 'utf8'));
    for (const field of ['repository', 'homepage', 'bugs', 'keywords', 'license'])
      if (!pkg[field]) problems.push(`${p.name}: package.json has no ${field}`);
    console.log(`${p.name}: ${files.length} files, ${Math.round(p.size / 1024)} kB`);
  }
  if (problems.length) throw new Error(problems.join('\n'));

  // First what an operator installs (no demo, no testkit), beside the newest vitest and zod 3.
  const tgz = (names) => packed.filter((p) => names.includes(p.name)).map((p) => join(work, p.filename));
  const later = ['@kitbridge/demo', '@kitbridge/testkit'];
  step(`npm install the operator's tarballs beside zod@3 and vitest@${vitest}, in ${app}`);
  mkdirSync(app);
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify({
      name: 'consumer',
      private: true,
      type: 'module',
      allowScripts: { 'better-sqlite3': true },
    }),
  );
  const npmInstall = (...what) => sh('npm', ['install', '--no-audit', '--no-fund', ...what]);
  npmInstall(
    ...tgz(packed.map((p) => p.name).filter((n) => !later.includes(n))),
    'zod@^3.25.0',
    `vitest@${vitest}`,
    'typescript@~5.9.3',
    '@types/node@^22',
  );
  const help = sh('npx', ['--no-install', 'kitbridge', 'run', '--help']);
  if (!help.startsWith('Usage: kitbridge run')) throw new Error(`kitbridge run --help:\n${help}`);

  step('without @kitbridge/demo, kitbridge demo says how to get it');
  try {
    execFileSync('npx', ['--no-install', 'kitbridge', 'demo'], { cwd: app, encoding: 'utf8', stdio: 'pipe' });
    throw new Error('kitbridge demo ran without @kitbridge/demo');
  } catch (err) {
    if (!String(err.stderr).includes('npm install @kitbridge/demo')) throw err;
  }

  step('typecheck the README plugin sample against the installed types, with zod 3');
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const sample = /## Write a plugin[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  if (!sample) throw new Error('README.md: no ts sample under "Write a plugin"');
  writeFileSync(join(app, 'plugin.ts'), sample);
  writeFileSync(
    join(app, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        target: 'ES2022',
        noEmit: true,
        skipLibCheck: false,
        types: ['node'],
      },
      files: ['plugin.ts'],
    }),
  );
  const zod = JSON.parse(readFileSync(join(app, 'node_modules/zod/package.json'), 'utf8')).version;
  if (!zod.startsWith('3.')) throw new Error(`the consumer's zod is ${zod}, not 3`);
  sh('npx', ['--no-install', 'tsc', '-p', '.']);
  console.log(`plugin.ts compiles (zod ${zod})`);

  step('npm install @kitbridge/demo and @kitbridge/testkit');
  npmInstall(...tgz(later));
  for (const demo of ['telegram', 'discord', 'slack']) {
    step(`npx kitbridge demo ${demo}`);
    const out = sh('npx', ['--no-install', 'kitbridge', 'demo', demo]);
    if (!out.includes('Both legs worked.')) throw new Error(`kitbridge demo ${demo}:\n${out}`);
  }

  step(`testkit's store conformance kit under vitest ${vitest}`);
  writeFileSync(
    join(app, 'conformance.test.js'),
    `import { SqliteStore } from '@kitbridge/store-sqlite';
import { describeStoreConformance } from '@kitbridge/testkit/store-conformance';
describeStoreConformance('SqliteStore, installed', async ({ clock }) => SqliteStore.open(':memory:', { clock }));
`,
  );
  const v = JSON.parse(readFileSync(join(app, 'node_modules/vitest/package.json'), 'utf8')).version;
  console.log(
    sh('npx', ['--no-install', 'vitest', 'run', 'conformance.test.js']).split('\n').slice(-6).join('\n'),
  );
  console.log(`vitest ${v}: the conformance kit passes`);
  step('every package installs alone and works');
} finally {
  rmSync(work, { recursive: true, force: true });
}
