/** The `kitbridge` command. */

import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import { ConfigError } from '@kitbridge/core';
import { check } from './check.js';
import { COMMAND_HELP, HELP } from './help.js';
import { outboxCommand } from './outbox.js';
import { run, stopOnSignals } from './run.js';

const OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' },
  dead: { type: 'boolean' },
} as const;

const DEMOS = ['telegram', 'discord', 'slack'];

export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const print = (s: string) => process.stdout.write(`${s}\n`);
  const fail = (s: string, code = 1) => {
    process.stderr.write(`kitbridge: ${s}\n`);
    return code;
  };
  let values: { help?: boolean; version?: boolean; dead?: boolean };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true }));
  } catch (err) {
    return fail(`${(err as Error).message}\n\n${HELP}`);
  }
  const [cmd, ...rest] = positionals;
  const usage = (s: string) => fail(`${s}\n\n${(cmd && COMMAND_HELP[cmd]) || HELP}`);

  if (values.version) {
    print(createRequire(import.meta.url)('../package.json').version);
    return 0;
  }
  if (cmd === 'help' || values.help) {
    const topic = cmd === 'help' ? rest[0] : cmd;
    if (topic !== undefined && !COMMAND_HELP[topic]) return fail(`unknown command "${topic}"\n\n${HELP}`);
    print(topic ? COMMAND_HELP[topic]! : HELP);
    return 0;
  }
  if (values.dead && cmd !== 'outbox') return usage('--dead belongs to kitbridge outbox list and retry');
  if (cmd !== 'outbox' && rest.length > 1) return usage(`unexpected argument "${rest[1]}"`);
  try {
    switch (cmd) {
      case 'run':
        // The handlers go in before start-up, so an early SIGTERM drains too.
        return await stopOnSignals(run(rest[0], env));
      case 'check':
        return await check(rest[0], env, print);
      case 'demo': {
        const platform = rest[0] ?? 'telegram';
        if (!DEMOS.includes(platform)) {
          return fail(`no demo for "${platform}"; choose telegram (the default), discord or slack`);
        }
        const { demo } = await import('./demo.js');
        return demo(platform, print);
      }
      case 'outbox':
        return await outboxCommand(values.dead ? [...rest, '--dead'] : rest, env, print);
      case undefined:
        print(HELP);
        return 1;
      default:
        return fail(`unknown command "${cmd}"\n\n${HELP}`);
    }
  } catch (err) {
    return fail((err as Error).message, err instanceof ConfigError ? 2 : 1);
  }
}
