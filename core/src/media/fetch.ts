// STUB — owned by the media helper; signatures are the contract.
import type { FetchedFile } from '../connector.js';
import type { Logger } from '../logger.js';

export type MediaFetchErrorCode = 'bad-url' | 'blocked' | 'too-large' | 'timeout' | 'http' | 'network' | 'redirects';

export class MediaFetchError extends Error {
  override name = 'MediaFetchError';
  constructor(
    readonly code: MediaFetchErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface MediaFetcherOptions {
  /** KITBRIDGE_MEDIA_ALLOW_PRIVATE: allow loopback/private/link-local targets (tests). */
  allowPrivate?: boolean;
  connectTimeoutMs?: number;
  /** Whole fetch, headers and body. */
  totalTimeoutMs?: number;
  maxRedirects?: number;
  logger?: Logger;
}

/** Fetches agent files from Kit's URLs safely: http(s) only, SSRF-checked after DNS, capped, timed. */
export class MediaFetcher {
  constructor(readonly options: MediaFetcherOptions = {}) {}
  /**
   * Starts a GET and resolves once headers are in. Rejects with MediaFetchError
   * ('too-large' at once when Content-Length exceeds maxBytes); the stream
   * errors with 'too-large' if the body runs past maxBytes.
   */
  async open(_url: string, _opts: { maxBytes: number; fileName?: string }): Promise<FetchedFile> {
    throw new Error('not implemented');
  }
  async close(): Promise<void> {}
}
