// STUB — owned by the media helper; signatures are the contract.
import type { AttachmentRef } from '../connector.js';

/** What a media token binds: the client and the platform file. */
export interface MediaClaims {
  clientId: string;
  file: AttachmentRef;
  /** Expiry, ms since epoch. */
  exp: number;
}

export type VerifyResult = { ok: true; claims: MediaClaims } | { ok: false; reason: 'tampered' | 'expired' };

/** HMAC-signed, expiring media tokens (URL-safe). */
export class MediaSigner {
  constructor(
    readonly secret: string,
    readonly ttlMs: number,
  ) {}
  sign(_clientId: string, _file: AttachmentRef, _now = Date.now()): string {
    throw new Error('not implemented');
  }
  verify(_token: string, _now = Date.now()): VerifyResult {
    throw new Error('not implemented');
  }
}

/** `${publicUrl}/media/${token}` */
export function mediaUrl(publicUrl: string, token: string): string {
  return `${publicUrl}/media/${token}`;
}
