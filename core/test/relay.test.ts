/** The relay's delivery functions over a MemoryStore: what a failed store write after a platform call does. */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { CoreConfig } from '../src/config.js';
import { type ChannelConnector, type DeliveryTarget, PermanentDeliveryError } from '../src/connector.js';
import type { KitClient } from '../src/kit/client.js';
import type { CustomerEvent } from '../src/kit/schemas.js';
import { silentLogger } from '../src/logger.js';
import { MediaFetcher } from '../src/media/fetch.js';
import { MediaSigner } from '../src/media/token.js';
import { NOTICE_MARK } from '../src/relay/agent-notice.js';
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

function connectorStub(opts: { failDeliver?: () => boolean } = {}) {
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
      if (opts.failDeliver?.()) throw new PermanentDeliveryError('Forbidden: bot was blocked by the user');
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

function makeRelay(
  store: MemoryStore,
  connector: ChannelConnector,
  over: { kit?: KitClient; config?: Partial<CoreConfig> } = {},
) {
  const relay = new Relay({
    config: { ...config, ...over.config },
    outbox: {
      concurrency: 4,
      maxAttempts: 5,
      maxAgeMs: 60_000,
      backoff: { baseMs: 5, maxMs: 20 },
      deliveryTimeoutMs: 5_000,
    },
    connector,
    store,
    kit: over.kit ?? ({} as KitClient),
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

const agentText = (clientId: string, eventId: string, text: string, payload: unknown[] = []) =>
  ({
    kind: 'send_message',
    event: {
      client_data: { client_id: clientId },
      event_id: eventId,
      event_type: 'send_message',
      event_data: { message: { message_id: eventId, text, payload } },
    },
  }) as never;

/** A Kit that records what it was sent. */
function recordingKit() {
  const sent: CustomerEvent[] = [];
  return { sent, kit: { send: async (e: CustomerEvent) => void sent.push(e) } as unknown as KitClient };
}

describe('Relay, telling the agent', () => {
  const open = (clientId: string) => ({ clientId, firstSeen: 1, lastSeen: 1, conversation: 'open' as const });

  it('tells the agent once, in the conversation, when a reply cannot reach the customer', async () => {
    const store = new MemoryStore();
    await store.saveClient(open('st:n1'));
    const { connector } = connectorStub({ failDeliver: () => true });
    const { kit, sent } = recordingKit();
    const relay = makeRelay(store, connector, { kit });
    await relay.start();
    await relay.handleCallback(agentText('st:n1', 'a-1', 'Your order ships tomorrow'));
    await relay.idle();
    expect(sent).toHaveLength(1);
    const text = sent[0]?.event_data.message.text ?? '';
    expect(sent[0]?.client_data.client_id).toBe('st:n1');
    expect(text.startsWith(NOTICE_MARK)).toBe(true);
    expect(text).toContain('"Your order ships tomorrow" did not reach the customer');
    expect(text).toContain('Forbidden: bot was blocked by the user');
    expect((await store.list({ state: 'dead' })).map((i) => i.key)).toEqual(['a-1']);
    // The operator retries it; it fails again: the agent is not told a second time.
    await store.revive('all-dead', Date.now());
    await relay.outbound.start();
    await relay.idle();
    expect(await store.list({ state: 'dead' })).toHaveLength(1);
    expect(sent).toHaveLength(1);
  });

  it('never tells the agent in a closed conversation (it would reopen it)', async () => {
    const store = new MemoryStore();
    await store.saveClient({ ...open('st:n2'), conversation: 'closed', closeReason: 'CLOSED_BY_AGENT' });
    const { connector } = connectorStub({ failDeliver: () => true });
    const { kit, sent } = recordingKit();
    const relay = makeRelay(store, connector, { kit });
    await relay.start();
    await relay.handleCallback(agentText('st:n2', 'a-2', 'late reply'));
    await relay.idle();
    expect(await store.list({ state: 'dead' })).toHaveLength(1);
    expect(sent).toEqual([]);
    expect(await store.list({ leg: 'inbound' })).toEqual([]);
  });

  it('drops a stored notice when the conversation closed before it went to Kit', async () => {
    const store = new MemoryStore();
    await store.saveClient(open('st:n3'));
    const { connector } = connectorStub({ failDeliver: () => true });
    const { kit, sent } = recordingKit();
    const relay = makeRelay(store, connector, { kit });
    // Only the outbound leg runs: the notice waits in the inbound outbox.
    await relay.outbound.start();
    await relay.handleCallback(agentText('st:n3', 'a-3', 'hello?'));
    await relay.outbound.idle();
    expect(await store.pending('inbound')).toHaveLength(1);
    await store.patchClient('st:n3', { conversation: 'closed', closeReason: 'CLOSED_BY_AGENT' }, 2);
    await relay.inbound.start();
    await relay.idle();
    expect(sent).toEqual([]);
    expect(await store.pending('inbound')).toEqual([]);
  });

  it('tells nobody with KITBRIDGE_NOTIFY_AGENT=false', async () => {
    const store = new MemoryStore();
    await store.saveClient(open('st:n4'));
    const { connector } = connectorStub({ failDeliver: () => true });
    const { kit, sent } = recordingKit();
    const relay = makeRelay(store, connector, { kit, config: { notifyAgent: false } });
    await relay.start();
    await relay.handleCallback(agentText('st:n4', 'a-4', 'hi'));
    await relay.idle();
    expect(await store.list({ state: 'dead' })).toHaveLength(1);
    expect(sent).toEqual([]);
  });

  it('tells the agent when a file went as a link, and delivers the rest', async () => {
    const files = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/pdf', 'content-length': 4096 });
      res.end(Buffer.alloc(4096));
    });
    await new Promise<void>((r) => files.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(files.address() as AddressInfo).port}/big.pdf`;
      const store = new MemoryStore();
      await store.saveClient(open('st:n5'));
      const { connector, delivered } = connectorStub();
      const { kit, sent } = recordingKit();
      const relay = makeRelay(store, connector, { kit });
      await relay.start();
      await relay.handleCallback(
        agentText('st:n5', 'a-5', 'the contract', [
          { type: 'document', file_name: 'contract.pdf', file_url: url },
        ]),
      );
      await relay.idle();
      expect(delivered.map((d) => d.text)).toEqual(['the contract']);
      expect(sent).toHaveLength(1);
      const text = sent[0]?.event_data.message.text ?? '';
      expect(text).toContain('"the contract" reached the customer, but not as sent');
      expect(text).toContain('"contract.pdf": too large for the platform');
    } finally {
      files.close();
    }
  });
});
