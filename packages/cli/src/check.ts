/**
 * `kitbridge check <platform>`: everything `run` checks before it starts, plus a
 * login to Kit and the platform's own credential check, without starting intake
 * or the HTTP server. Prints one line per check; exit 0 only when all passed.
 */
import {
  isConfigValidating,
  isSelfChecking,
  KIT_LOGIN_HINT,
  KitAuthError,
  KitUnavailableError,
  kitClientFor,
} from '@kitbridge/core';
import { prepare } from './run.js';

export async function check(
  platformName: string | undefined,
  env: NodeJS.ProcessEnv,
  print: (s: string) => void,
): Promise<number> {
  const { config, store, connector, platform } = await prepare(platformName, env, 'silent');
  print(`ok    configuration (${platform}), store ${store.description}`);
  let failed = 0;
  const step = async (name: string, fn: () => Promise<string>) => {
    try {
      print(`ok    ${name}: ${await fn()}`);
    } catch (err) {
      failed++;
      print(`FAIL  ${name}: ${(err as Error).message}`);
    }
  };
  let settingsFailed = false;
  try {
    if (isConfigValidating(connector)) {
      await step(`${platform} settings`, async () => {
        const problems = connector.validateConfig();
        settingsFailed = problems.length > 0;
        if (settingsFailed) throw new Error(problems.join('; '));
        return 'consistent';
      });
    }
    const kit = kitClientFor(config.kit, { maxAttempts: 2 });
    await step('Kit login', async () => {
      try {
        await kit.login();
        return `account ${config.kit.account}, channel ${config.kit.channelUuid} at ${config.kit.baseUrl}`;
      } catch (err) {
        if (err instanceof KitAuthError) {
          throw new Error(`${err.message}; ${KIT_LOGIN_HINT}`);
        }
        if (err instanceof KitUnavailableError) {
          // The URL without its query: the login's query carries the API token.
          throw new Error(
            `${err.message}; tried ${config.kit.baseUrl}/api/v3/botService/login (KIT_IM_URL, or KIT_REGION when it is unset)`,
          );
        }
        throw err;
      } finally {
        await kit.close();
      }
    });
    // With settings that cannot work, asking the platform proves nothing (and may go where it should not).
    if (isSelfChecking(connector)) {
      if (settingsFailed) print(`skip  ${platform}: fix its settings first`);
      else await step(platform, () => connector.selfCheck());
    }
  } finally {
    await store.close();
  }
  return failed ? 1 : 0;
}
