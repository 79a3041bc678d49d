// STUB — owned by the Kit-client helper; signatures are the contract.
import type { Logger } from '../logger.js';
import type { BackoffOptions } from '../retry.js';
import type { CustomerEvent } from './schemas.js';

export interface KitClientOptions {
  /** e.g. https://kit-im-eu.voximplant.com (no trailing slash) */
  baseUrl: string;
  account: string;
  apiToken: string;
  channelUuid: string;
  logger?: Logger;
  connectTimeoutMs?: number;
  headersTimeoutMs?: number;
  bodyTimeoutMs?: number;
  /** Attempts per send for retryable failures, including the first. */
  maxAttempts?: number;
  backoff?: BackoffOptions;
  connections?: number;
  now?: () => number;
}

export class KitClient {
  constructor(readonly options: KitClientOptions) {}
  /** True once a login succeeded and no auth failure has happened since. */
  get loggedIn(): boolean {
    return false;
  }
  async login(): Promise<void> {
    throw new Error('not implemented');
  }
  async send(_event: CustomerEvent, _signal?: AbortSignal): Promise<void> {
    throw new Error('not implemented');
  }
  async close(): Promise<void> {}
}
