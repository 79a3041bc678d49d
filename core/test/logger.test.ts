import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, makeScrubber } from '../src/logger.js';

function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, done) {
      lines.push(String(chunk));
      done();
    },
  });
  return { lines, destination };
}

describe('logger', () => {
  const token = '123456:AAHsecretBotTokenValue_xyz';
  const salt = 'salty-salt-value';

  it('replaces every registered secret wherever it appears in a line', () => {
    const { lines, destination } = capture();
    const log = createLogger({ secrets: [token, salt, undefined, ''], destination });
    log.error(
      { err: `GET https://api.telegram.org/file/bot${token}/photos/1.jpg failed` },
      `salt was ${salt}`,
    );
    log.info({ url: `https://x/?t=${encodeURIComponent(token)}` }, 'encoded');
    const out = lines.join('');
    expect(out).not.toContain(token);
    expect(out).not.toContain(encodeURIComponent(token));
    expect(out).not.toContain(salt);
    expect(out.match(/\[redacted\]/g)?.length).toBe(3);
  });

  it('redacts credential-named fields even when their values are not registered', () => {
    const { lines, destination } = capture();
    const log = createLogger({ destination });
    log.info(
      { headers: { authorization: 'Bearer abc.def.ghi' }, kit: { access_token: 'jwt-value' } },
      'request',
    );
    const out = lines.join('');
    expect(out).not.toContain('abc.def.ghi');
    expect(out).not.toContain('jwt-value');
  });

  it('ignores secrets too short to scrub safely', () => {
    expect(makeScrubber(['ab'])('ab cd')).toBe('ab cd');
  });
});
