/** Connector options for tests: the fake's API, no pacing, quick reconnects. */
import type { FakeSlack } from '@kitbridge/testkit';
import { SlackConnector, type SlackConnectorOptions } from '../src/connector.js';

export { agentMessage, FileServer, TestContext, TestDelivery, webhookHost } from '@kitbridge/testkit';

/** Socket Mode by default; `{ mode: 'http' }` for the Events API over HTTP. */
export function testConnector(
  fake: FakeSlack,
  extra: Partial<SlackConnectorOptions> & { mode?: 'socket' | 'http' } = {},
): SlackConnector {
  const { mode = 'socket', ...rest } = extra;
  return new SlackConnector({
    botToken: fake.botToken,
    ...(mode === 'socket' ? { appToken: fake.appToken } : { signingSecret: fake.signingSecret }),
    apiUrl: fake.apiUrl,
    pacing: { perSecond: 0 },
    connectBackoff: { baseMs: 20, maxMs: 100 },
    socket: { clientPingTimeoutMs: 1_000, backoff: { baseMs: 20, maxMs: 200 } },
    ...rest,
  });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
