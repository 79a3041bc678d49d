/**
 * Kit callback signatures (kit-protocol.md §4): the Authorization header holds
 * MD5(`salt:token:event_id`), or MD5(`salt:token`) on the channel's test request.
 * Undocumented details decided here: the header may carry a `Bearer ` prefix,
 * hex may be either case, and the comparison is constant-time.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

export function expectedSignature(salt: string, token: string, eventId?: string): string {
  const input = eventId === undefined ? `${salt}:${token}` : `${salt}:${token}:${eventId}`;
  return createHash('md5').update(input, 'utf8').digest('hex');
}

/** True when `header` carries the signature for this event (or for the test request when eventId is undefined). */
export function verifySignature(
  header: string | undefined,
  salt: string,
  token: string,
  eventId?: string,
): boolean {
  if (!header) return false;
  const given = header
    .trim()
    .replace(/^bearer\s+/i, '')
    .toLowerCase();
  const want = expectedSignature(salt, token, eventId);
  const a = Buffer.from(given, 'utf8');
  const b = Buffer.from(want, 'utf8');
  return a.length === b.length && timingSafeEqual(a, b);
}
