/** A CoreConfig for tests: loopback, port 0, private media fetching allowed, short backoffs. */
import { createServer } from 'node:net';
import type { CoreConfig } from '@kitbridge/core';

/** A free TCP port on 127.0.0.1 (so a bridge's public URL is known before it starts). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export interface TestKitCredentials {
  url: string;
  account: string;
  apiToken: string;
  channelUuid: string;
  salt: string;
}

/**
 * With `port`, the bridge listens there and its public URL points at it (media links work).
 * The drain window on stop is 50 ms (tests that look at draining set their own).
 */
export function testCoreConfig(
  kit: TestKitCredentials,
  port = 0,
  over: Partial<CoreConfig> = {},
): CoreConfig {
  return {
    kit: {
      baseUrl: kit.url,
      account: kit.account,
      apiToken: kit.apiToken,
      channelUuid: kit.channelUuid,
      salt: kit.salt,
    },
    http: { host: '127.0.0.1', port },
    publicUrl: `http://127.0.0.1:${port}`,
    media: {
      secret: 'test-media-secret-0123456789abcdef0123',
      ttlMs: 60 * 60_000,
      maxBytes: 50 * 1024 * 1024,
      allowPrivate: true,
    },
    edits: 'resend',
    showAgentName: false,
    outbox: { concurrency: 8, maxAttempts: 5, maxAgeMs: 60_000, backoff: { baseMs: 20, maxMs: 200 } },
    drainMs: 50,
    ...over,
  };
}
