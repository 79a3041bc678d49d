/** The `kitbridge` command. */

import { createRequire } from 'node:module';
import { ConfigError } from '@kitbridge/core';
import { check } from './check.js';
import { outboxCommand } from './outbox.js';
import { PLATFORM_NAMES } from './platforms.js';
import { run, stopOnSignals } from './run.js';

const HELP = `kitbridge — connect chat platforms to Voximplant Kit's custom channel

Usage:
  kitbridge run <platform>      start a connector (${PLATFORM_NAMES.join(', ')}); configured by environment variables
  kitbridge check <platform>    validate the configuration, log in to Kit, check the platform token; start nothing
  kitbridge demo [platform]     an offline demo: fake Kit + fake Telegram (or discord, slack) + the real connector
  kitbridge outbox [status]     pending and dead items per leg
  kitbridge outbox list [--dead]
  kitbridge outbox retry <id|--dead>
  kitbridge outbox drop <id>
  kitbridge --version

Configuration: see the README's table (KIT_*, KITBRIDGE_*, TELEGRAM_*, DISCORD_*, SLACK_*).`;

export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const [cmd, ...rest] = argv;
  const print = (s: string) => process.stdout.write(`${s}\n`);
  try {
    switch (cmd) {
      case 'run': {
        const bridge = await run(rest[0], env);
        return stopOnSignals(bridge);
      }
      case 'check':
        return await check(rest[0], env, print);
      case 'demo': {
        if (rest[0] === 'discord') {
          const { demoDiscord } = await import('./demo-discord.js');
          return demoDiscord(print);
        }
        if (rest[0] === 'slack') {
          const { demoSlack } = await import('./demo-slack.js');
          return demoSlack(print);
        }
        if (rest[0] !== undefined && rest[0] !== 'telegram') {
          process.stderr.write(`no demo for "${rest[0]}"; choose telegram (the default), discord or slack\n`);
          return 1;
        }
        const { demo } = await import('./demo.js');
        return demo(print);
      }
      case 'outbox':
        return await outboxCommand(rest, env, print);
      case '--version':
      case '-v':
        print(createRequire(import.meta.url)('../package.json').version);
        return 0;
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        print(HELP);
        return cmd === undefined ? 1 : 0;
      default:
        process.stderr.write(`unknown command "${cmd}"\n\n${HELP}\n`);
        return 1;
    }
  } catch (err) {
    process.stderr.write(`kitbridge: ${err instanceof ConfigError ? err.message : (err as Error).message}\n`);
    return err instanceof ConfigError ? 2 : 1;
  }
}
