import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { expectedSignature, verifySignature } from '../src/kit/signature.js';

const md5 = (s: string) => createHash('md5').update(s).digest('hex');

describe('kit callback signature', () => {
  const salt = 'salt-123';
  const token = 'api-token-xyz';
  const good = md5(`${salt}:${token}:ev-1`);

  it('is MD5(salt:token:event_id), and MD5(salt:token) for the test request', () => {
    expect(expectedSignature(salt, token, 'ev-1')).toBe(good);
    expect(expectedSignature(salt, token)).toBe(md5(`${salt}:${token}`));
  });

  it.each([
    ['raw lower-case', good],
    ['raw upper-case', good.toUpperCase()],
    ['Bearer prefix', `Bearer ${good}`],
    ['lower-case bearer, upper-case hex', `bearer ${good.toUpperCase()}`],
    ['surrounding spaces', `  ${good} `],
  ])('accepts %s', (_name, header) => {
    expect(verifySignature(header, salt, token, 'ev-1')).toBe(true);
  });

  it.each([
    ['missing', undefined],
    ['empty', ''],
    ['for another event', md5(`${salt}:${token}:ev-2`)],
    ['with another salt', md5(`other:${token}:ev-1`)],
    ['truncated', good.slice(0, 31)],
    ['the test-request signature on an event', md5(`${salt}:${token}`)],
    ['another scheme', `Basic ${good}`],
  ])('rejects %s', (_name, header) => {
    expect(verifySignature(header, salt, token, 'ev-1')).toBe(false);
  });
});
