import { describe, expect, it } from 'vitest';
import { isPostgresUrl, parsePostgresUrl } from '../src/index.js';

describe('parsePostgresUrl', () => {
  it('takes postgres:// and postgresql://, the schema and sslmode; masks the password', () => {
    const p = parsePostgresUrl(
      'postgresql://kb:p%40ss%2Fw0rd@db.internal:6432/kitbridge?schema=tg_1&sslmode=verify-full',
    );
    expect(p.schema).toBe('tg_1');
    expect(p.redacted).toBe('postgresql://kb:***@db.internal:6432/kitbridge?schema=tg_1&sslmode=verify-full');
    // node-postgres gets the password and sslmode, not the schema (it is no connection parameter).
    expect(p.connectionString).toBe(
      'postgresql://kb:p%40ss%2Fw0rd@db.internal:6432/kitbridge?sslmode=verify-full',
    );
    expect(parsePostgresUrl('postgres://kb@localhost/kitbridge')).toMatchObject({
      schema: 'public',
      redacted: 'postgres://kb@localhost/kitbridge',
    });
    expect(isPostgresUrl('POSTGRES://x/y')).toBe(true);
    expect(isPostgresUrl('sqlite:./kb.db')).toBe(false);
  });

  it('says what is wrong, never with the password', () => {
    const bad: [string, RegExp][] = [
      ['postgres://kb:SECRET@/kitbridge', /host/],
      ['postgres://kb:SECRET@db', /no database name/],
      ['postgres://kb:SECRET@db/kb?schema=1x', /schema "1x"/],
      ['postgres://kb:SECRET@db/kb?schema=a;drop', /schema "a;drop"/],
      ['postgres://kb:SECRET@db/kb?sslmode=maybe', /sslmode "maybe".*expected one of/],
      ['postgres://kb:SECRET@db/kb?pool=5', /unknown parameter "pool"/],
      ['mysql://kb:SECRET@db/kb', /expected postgres:\/\/ or postgresql:\/\//],
      ['postgres://kb:SECRET@db:notaport/kb', /not a valid URL/],
    ];
    for (const [url, problem] of bad) {
      let message = '';
      try {
        parsePostgresUrl(url);
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message, url).toMatch(problem);
      expect(message).not.toContain('SECRET');
    }
  });
});
