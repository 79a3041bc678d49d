/** The connector against FakeDiscord for tests: short timeouts and waits, no IDENTIFY throttle. */
import { type DiscordUser, FakeDiscord, type FakeDiscordOptions } from '@kitbridge/testkit';
import { DiscordConnector, type DiscordConnectorOptions } from '../src/connector.js';

// Snowflake-length ids: @discordjs/rest only treats 17-19 digits as ids in its rate-limit buckets.
export const ALICE = '111111111111111111';
export const BOB = '222222222222222222';
export const CAROL = '555555555555555555';
export const GUILD = '333333333333333333';
export const SUPPORT = '444444444444444444';

export function testConnector(
  fake: FakeDiscord,
  extra: Partial<DiscordConnectorOptions> = {},
): DiscordConnector {
  return new DiscordConnector({
    token: fake.token,
    apiUrl: extra.apiUrl ?? fake.apiUrl,
    cdnUrl: extra.cdnUrl ?? fake.cdnUrl,
    rest: { timeoutMs: 1_500, retries: 1, offsetMs: 0, ...extra.rest },
    // discord.js waits 5 s between two IDENTIFYs of one shard; tests re-identify at once.
    client: {
      ws: { buildIdentifyThrottler: () => ({ waitForIdentify: async () => {} }) } as never,
      waitGuildTimeout: 200,
    },
    receiveBackoff: { baseMs: 20, maxMs: 100 },
    reconnectBackoff: { baseMs: 20, maxMs: 200 },
    fatalRetryMs: 200,
    standbyGraceMs: 300,
    startTimeoutMs: 10_000,
    ...extra,
  });
}

/** A started fake with Alice and Bob (and, with `support`, a server with a support channel). */
export async function startFake(
  opts: FakeDiscordOptions & { support?: boolean; premiumTier?: number } = {},
): Promise<FakeDiscord> {
  const { support, premiumTier, ...rest } = opts;
  const fake = await new FakeDiscord({ heartbeatIntervalMs: 1_000, ...rest }).start();
  fake.user(ALICE, {
    username: 'alice',
    global_name: 'Alice Archer',
    avatarBytes: Buffer.from('alice-avatar'),
  });
  fake.user(BOB, { username: 'bob' });
  fake.user(CAROL, { username: 'carol', global_name: 'Carol' });
  if (support) {
    fake.guild({
      id: GUILD,
      name: 'Acme',
      premium_tier: premiumTier ?? 0,
      channels: [{ id: SUPPORT, name: 'support' }],
      members: [ALICE, BOB, CAROL],
    });
  }
  return fake;
}

export type { DiscordUser };
