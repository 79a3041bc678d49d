// STUB — owned by the media helper; signatures are the contract.
import type { ResolvedFile } from '../connector.js';
import type { RouteHandler } from '../http/router.js';
import type { Logger } from '../logger.js';
import type { MediaClaims, MediaSigner } from './token.js';

export interface MediaRouteOptions {
  signer: MediaSigner;
  /** Opens the platform file (the connector's resolveAttachment). */
  resolve(claims: MediaClaims): Promise<ResolvedFile>;
  /** Per-file cap; larger files are refused with a log line. */
  maxBytes: number;
  logger: Logger;
}

/** Handler for `GET /media/*` (and HEAD). */
export function createMediaRoute(_opts: MediaRouteOptions): RouteHandler {
  return () => {
    throw new Error('not implemented');
  };
}
