/**
 * Signed, expiring media tokens: the only thing Kit ever sees of a platform file.
 *
 * Format: `base64url(JSON claims) + '.' + base64url(HMAC-SHA256(secret, first part))`.
 * The claims are readable (they hold nothing secret: a platform file id, a name)
 * but cannot be changed or extended without the secret. Claim keys are one letter
 * to keep URLs short.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { AttachmentRef } from '../connector.js';
import { MEDIA_KINDS, type MediaKind } from '../kit/schemas.js';

/** What a media token binds: the client and the platform file. */
export interface MediaClaims {
  clientId: string;
  file: AttachmentRef;
  /** Expiry, ms since epoch. */
  exp: number;
}

export type VerifyResult = { ok: true; claims: MediaClaims } | { ok: false; reason: 'tampered' | 'expired' };

/** The wire form of {@link MediaClaims}. */
interface CompactClaims {
  c: string;
  r: string;
  k: MediaKind;
  n?: string;
  m?: string;
  s?: number;
  e: number;
}

/** HMAC-signed, expiring media tokens (URL-safe). */
export class MediaSigner {
  constructor(
    readonly secret: string,
    readonly ttlMs: number,
  ) {
    if (!secret) throw new Error('MediaSigner needs a non-empty secret');
    if (!(ttlMs > 0)) throw new Error('MediaSigner needs a positive ttlMs');
  }

  /** A token for `file` of `clientId`, valid until `now + ttlMs`. */
  sign(clientId: string, file: AttachmentRef, now = Date.now()): string {
    const claims: CompactClaims = { c: clientId, r: file.ref, k: file.kind, e: now + this.ttlMs };
    if (file.fileName !== undefined) claims.n = file.fileName;
    if (file.mimeType !== undefined) claims.m = file.mimeType;
    if (file.size !== undefined) claims.s = file.size;
    const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
    return `${payload}.${this.mac(payload).toString('base64url')}`;
  }

  /**
   * Checks the signature first (constant time), then the expiry: a forged token
   * is always `tampered`, never `expired`.
   */
  verify(token: string, now = Date.now()): VerifyResult {
    const dot = token.indexOf('.');
    if (dot <= 0 || dot !== token.lastIndexOf('.')) return TAMPERED;
    const payload = token.slice(0, dot);
    const given = Buffer.from(token.slice(dot + 1), 'base64url');
    const expected = this.mac(payload);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return TAMPERED;
    const claims = decodeClaims(payload);
    if (!claims) return TAMPERED;
    if (now >= claims.exp) return { ok: false, reason: 'expired' };
    return { ok: true, claims };
  }

  private mac(payload: string): Buffer {
    return createHmac('sha256', this.secret).update(payload).digest();
  }
}

const TAMPERED: VerifyResult = { ok: false, reason: 'tampered' };

/** Parses a signed payload; undefined when its shape is wrong (only we sign, so this is defensive). */
function decodeClaims(payload: string): MediaClaims | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof raw !== 'object' || raw === null) return undefined;
  const c = raw as Partial<CompactClaims>;
  if (typeof c.c !== 'string' || typeof c.r !== 'string' || typeof c.e !== 'number') return undefined;
  if (!(MEDIA_KINDS as readonly unknown[]).includes(c.k)) return undefined;
  const file: AttachmentRef = { ref: c.r, kind: c.k as MediaKind };
  if (typeof c.n === 'string') file.fileName = c.n;
  if (typeof c.m === 'string') file.mimeType = c.m;
  if (typeof c.s === 'number') file.size = c.s;
  return { clientId: c.c, file, exp: c.e };
}

/** `${publicUrl}/media/${token}` */
export function mediaUrl(publicUrl: string, token: string): string {
  return `${publicUrl}/media/${token}`;
}
