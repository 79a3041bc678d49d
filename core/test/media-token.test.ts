import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { AttachmentRef } from '../src/connector.js';
import { MediaSigner, mediaUrl } from '../src/media/token.js';

const SECRET = 'x'.repeat(32);
const file: AttachmentRef = {
  ref: 'AgACAgIAAxkBAAIBZ2V',
  kind: 'photo',
  fileName: 'отчёт.jpg',
  mimeType: 'image/jpeg',
  size: 1234,
};
const NOW = 1_700_000_000_000;

describe('MediaSigner', () => {
  const signer = new MediaSigner(SECRET, 60_000);

  it('round-trips the claims and is URL-safe', () => {
    const token = signer.sign('tg:42', file, NOW);
    expect(token).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    expect(signer.verify(token, NOW + 59_999)).toEqual({
      ok: true,
      claims: { clientId: 'tg:42', file, exp: NOW + 60_000 },
    });
    expect(mediaUrl('https://bridge.example', token)).toBe(`https://bridge.example/media/${token}`);
  });

  it('keeps optional fields out when absent', () => {
    const bare: AttachmentRef = { ref: 'r1', kind: 'document' };
    const r = signer.verify(signer.sign('tg:1', bare, NOW), NOW);
    expect(r).toEqual({ ok: true, claims: { clientId: 'tg:1', file: bare, exp: NOW + 60_000 } });
  });

  it('refuses an expired token only after its signature checks out', () => {
    const token = signer.sign('tg:42', file, NOW);
    expect(signer.verify(token, NOW + 60_000)).toEqual({ ok: false, reason: 'expired' });
    const forged = `${token.slice(0, -2)}AA`;
    expect(signer.verify(forged, NOW + 60_000)).toEqual({ ok: false, reason: 'tampered' });
  });

  it('refuses tampered, foreign and malformed tokens', () => {
    const token = signer.sign('tg:42', file, NOW);
    const [payload, mac] = token.split('.') as [string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
    const otherPayload = Buffer.from(JSON.stringify({ ...claims, c: 'tg:43' })).toString('base64url');
    const bad = [
      `${otherPayload}.${mac}`,
      new MediaSigner('y'.repeat(32), 60_000).sign('tg:42', file, NOW),
      payload,
      `${payload}.`,
      `.${mac}`,
      `${payload}.${mac}.x`,
      `${payload}.${mac.slice(0, 10)}`,
      '',
      'not a token at all',
    ];
    for (const t of bad) expect(signer.verify(t, NOW), t).toEqual({ ok: false, reason: 'tampered' });
  });

  it('refuses a validly signed payload of the wrong shape', () => {
    const raw = Buffer.from(JSON.stringify({ c: 'tg:1', r: 'x', k: 'hologram', e: NOW + 1000 })).toString(
      'base64url',
    );
    // Signed by hand: MediaSigner itself never produces this.
    const token = `${raw}.${createHmac('sha256', SECRET).update(raw).digest('base64url')}`;
    expect(signer.verify(token, NOW)).toEqual({ ok: false, reason: 'tampered' });
  });

  it('refuses an empty secret or a non-positive ttl', () => {
    expect(() => new MediaSigner('', 1000)).toThrow(/secret/);
    expect(() => new MediaSigner(SECRET, 0)).toThrow(/ttlMs/);
  });
});
