/** The relay's delivery functions over a MemoryStore: what a failed store write after a platform call does. */
import { afterEach, describe, expect, it } from 'vitest';
import type { CoreConfig } from '../src/config.js';
import type { ChannelConnector, DeliveryTarget } from '../src/connector.js';
import type { KitClient } from '../src/kit/client.js';
import { silentLogger } from '../src/logger.js';
import { MediaFetcher } from '../src/media/fetch.js';
import { MediaSigner } from '../src/media/token.js';
import { Relay } from '../src/relay/relay.js';
import { MemoryStore } from '../src/store/memory.js';

const config: CoreConfig = {
  kit: { baseUrl: 'http://127.0.0.1:9', account: 'a', apiToken: 't', channelUuid: 'chan-0001', salt: 's' },
  http: { host: '127.0.0.1', port: 0 },
  publicUrl: 'http://127.0.0.1:9',
  media: { secret: 'x'.repeat(32), ttlMs: 60_000, maxBytes: 1024, allowPrivate: true },
  edits: 'resend',
  showAgentName: false,
  closeMessage: 'Thanks, bye',
};

/** Client-record writes fail while `failing` is above 0 (each failure counts it down). */
class RecordsFailStore extends MemoryStore {
  failing = 0;
  private check(): void {
    if (this.failing > 0) {
      this.failing--;
      throw new Error('client record write failed (injected)');
    }
  }
  override async saveClient(...a: Parameters<MemoryStore['saveClient']>) {
    this.check();
    return super.saveClient(...a);
  }
  override async patchClient(...a: Parameters<MemoryStore['patchClient']>) {
    this.check();
    return super.patchClient(...a);
  }
}

function connectorStub() {
  const closed: { target: DeliveryTarget; reason: string; text?: string; signal?: AbortSignal }[] = [];
  const delivered: { text?: string; signal?: AbortSignal }[] = [];
  const connector = {
    name: 'stub',
    ownsClient: (id: string) => id.startsWith('st:'),
    mediaLimits: {
      photo: { maxUploadBytes: 1024 },
      video: { maxUploadBytes: 1024 },
      audio: { maxUploadBytes: 1024 },
      document: { maxUploadBytes: 1024 },
    },
    start: async () => {},
    stop: async () => {},
    status: () => ({ state: 'connected' as const }),
    deliver: async (_t: DeliveryTarget, m: { text?: string }, work?: { signal: AbortSignal }) => {
      delivered.push({ ...(m.text ? { text: m.text } : {}), ...(work ? { signal: work.signal } : {}) });
    },
    closeConversation: async (
      target: DeliveryTarget,
      reason: string,
      text?: string,
      work?: { signal: AbortSignal },
    ) => {
      closed.push({ target, reason, ...(text ? { text } : {}), ...(work ? { signal: work.signal } : {}) });
    },
    resolveAttachment: async () => {
      throw new Error('no files here');
    },
  } as unknown as ChannelConnector;
  return { connector, closed, delivered };
}

const relays: Relay[] = [];
afterEach(async () => {
  await Promise.all(relays.splice(0).map((r) => r.stop(100)));
});

function makeRelay(store: MemoryStore, connector: ChannelConnector) {
  const relay = new Relay({
    config,
    outbox: {
      concurrency: 4,
      maxAttempts: 5,
      maxAgeMs: 60_000,
      backoff: { baseMs: 5, maxMs: 20 },
      deliveryTimeoutMs: 5_000,
    },
    connector,
    store,
    kit: {} as KitClient,
    signer: new MediaSigner(config.media.secret, config.media.ttlMs),
    fetcher: new MediaFetcher({ allowPrivate: true }),
    logger: silentLogger,
  });
  relays.push(relay);
  return relay;
}

const closeEvent = (clientId: string) => ({
  kind: 'close_conversation' as const,
  event: {
    client_data: { client_id: clientId },
    event_id: `close-${clientId}`,
    event_type: 'close_conversation' as const,
    event_data: { close_reason: 'CLOSED_BY_AGENT' },
  },
});

describe('Relay, Kit -> customer', () => {
  it('tells the customer of a close once when the client record write after it fails, and writes the record on the retry', async () => {
    const store = new RecordsFailStore();
    await store.saveClient({
      clientId: 'st:1',
      firstSeen: 1,
      lastSeen: 1,
      conversation: 'open',
      profile: { displayName: 'Ann', utm: { source: 'ad' } },
    });
    const { connector, closed } = connectorStub();
    const relay = makeRelay(store, connector);
    await relay.outbound.start();
    store.failing = 1;
    expect(await relay.handleCallback(closeEvent('st:1'))).toBe('accepted');
    await relay.outbound.idle();
    expect(closed.map((c) => c.text)).toEqual(['Thanks, bye']);
    expect(await store.getClient('st:1')).toMatchObject({
      conversation: 'closed',
      closeReason: 'CLOSED_BY_AGENT',
      profile: { displayName: 'Ann' },
    });
    expect(await store.list({})).toEqual([]);
  });

  it('tells the customer once even when neither the progress nor the record can be written', async () => {
    const store = new (class extends RecordsFailStore {
      override async saveProgress(): Promise<void> {
        throw new Error('store down (injected)');
      }
    })();
    await store.saveClient({ clientId: 'st:2', firstSeen: 1, lastSeen: 1, conversation: 'open' });
    const { connector, closed } = connectorStub();
    const relay = makeRelay(store, connector);
    await relay.outbound.start();
    store.failing = 1;
    await relay.handleCallback(closeEvent('st:2'));
    await relay.outbound.idle();
    expect(closed).toHaveLength(1);
    expect(await store.list({})).toEqual([]);
  });

  it("hands the attempt's signal to the connector", async () => {
    const store = new MemoryStore();
    const { connector, closed, delivered } = connectorStub();
    const relay = makeRelay(store, connector);
    await relay.outbound.start();
    await relay.handleCallback({
      kind: 'send_message',
      event: {
        client_data: { client_id: 'st:3' },
        event_id: 'm-1',
        event_type: 'send_message',
        event_data: { message: { message_id: 'm-1', text: 'hello', payload: [] } },
      },
    } as never);
    await relay.handleCallback(closeEvent('st:3'));
    await relay.outbound.idle();
    expect(delivered).toHaveLength(1);
    expect(delivered[0]?.signal).toBeInstanceOf(AbortSignal);
    expect(closed[0]?.signal).toBeInstanceOf(AbortSignal);
  });
});
