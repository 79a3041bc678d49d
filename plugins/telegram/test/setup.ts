/** Connector options for tests: short waits, the fake's API root. */

import type { FakeTelegram } from '@kitbridge/testkit';
import { TelegramConnector, type TelegramConnectorOptions } from '../src/connector.js';

export function testConnector(
  tg: FakeTelegram,
  extra: Partial<TelegramConnectorOptions> = {},
): TelegramConnector {
  return new TelegramConnector({
    token: tg.token,
    apiRoot: tg.apiRoot,
    pacing: { perChatMs: 5, globalMs: 1 },
    polling: { timeoutSeconds: 2, backoff: { baseMs: 20, maxMs: 100 }, blockedRetryMs: 100 },
    connectBackoff: { baseMs: 20, maxMs: 100 },
    ...extra,
  });
}
