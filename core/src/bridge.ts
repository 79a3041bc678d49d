// STUB (owner: lead) — shape is the contract.
import type { AddressInfo } from 'node:net';
import type { CoreConfig } from './config.js';
import type { ChannelConnector } from './connector.js';
import type { Logger } from './logger.js';
import type { Store } from './store/store.js';

export interface BridgeOptions {
  config: CoreConfig;
  connector: ChannelConnector;
  /** Default: a MemoryStore. */
  store?: Store;
  logger?: Logger;
}

/** One running kitbridge process: HTTP server, Kit client, relay, outbox, connector. */
export class Bridge {
  address?: AddressInfo;
  constructor(readonly options: BridgeOptions) {}
  async start(): Promise<AddressInfo> {
    throw new Error('not implemented');
  }
  async stop(): Promise<void> {}
}

export async function startBridge(options: BridgeOptions): Promise<Bridge> {
  const b = new Bridge(options);
  await b.start();
  return b;
}
