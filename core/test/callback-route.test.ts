/**
 * The callback route's answers to bodies that are signed but can never be
 * stored, and the size of what it logs about a request.
 */
import { Writable } from 'node:stream';
import { request } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { HttpServer } from '../src/http/router.js';
import { type CallbackOutcome, createCallbackRoute } from '../src/kit/callback-route.js';
import type { KitCallback } from '../src/kit/schemas.js';
import { expectedSignature } from '../src/kit/signature.js';
import { createLogger, quote } from '../src/logger.js';

const salt = 'salt-salt-salt';
const token = 'token-token-token';
const lines: string[] = [];
let handle: (cb: KitCallback) => Promise<CallbackOutcome>;
let handled = 0;
const server = new HttpServer({ host: '127.0.0.1', port: 0, logger: createLogger({ level: 'silent' }) });
let url = '';

beforeAll(async () => {
  const logger = createLogger({
    level: 'debug',
    secrets: [salt, token],
    destination: new Writable({
      write(chunk, _e, cb) {
        lines.push(String(chunk));
        cb();
      },
    }),
  });
  server.router.add(
    'POST',
    '/kit/callback',
    createCallbackRoute({
      salt,
      token,
      bodyLimit: 1024 * 1024,
      logger,
      handle: (cb) => {
        handled++;
        return handle(cb);
      },
    }),
  );
  url = `http://127.0.0.1:${(await server.listen()).port}/kit/callback`;
});
afterAll(() => server.close(100));
beforeEach(() => {
  lines.length = 0;
  handled = 0;
  // Like a store: the event is serialised.
  handle = async (cb) => {
    JSON.stringify(cb.event);
    return 'accepted';
  };
});

function event(eventId: string, extra: unknown = {}) {
  return {
    client_data: { client_id: 'tg:1' },
    event_id: eventId,
    event_type: 'send_message',
    event_data: { message: { message_id: 'm1', text: 'hi' }, extra },
  };
}

async function post(body: string, eventId?: string) {
  const res = await request(url, {
    method: 'POST',
    body,
    headers: {
      'content-type': 'application/json',
      ...(eventId !== undefined ? { authorization: expectedSignature(salt, token, eventId) } : {}),
    },
  });
  return { status: res.statusCode, text: await res.body.text() };
}

describe('callback route: what can never be stored', () => {
  it('refuses a signed body nested 10,000 levels deep with 400, not 503, and stores nothing', async () => {
    const deep = `${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}`;
    const body = JSON.stringify(event('e-deep')).replace('"extra":{}', `"extra":${deep}`);
    const res = await post(body, 'e-deep');
    expect(res.status).toBe(400);
    expect(handled).toBe(0);
  });

  it('answers 400 when the store fails on the event itself, 503 when the store is down', async () => {
    handle = async () => {
      throw new RangeError('Maximum call stack size exceeded');
    };
    expect((await post(JSON.stringify(event('e1')), 'e1')).status).toBe(400);
    handle = async () => {
      throw new Error('SQLITE_BUSY: database is locked');
    };
    expect((await post(JSON.stringify(event('e2')), 'e2')).status).toBe(503);
    handle = async () => {
      throw new TypeError('The database connection is not open');
    };
    expect((await post(JSON.stringify(event('e3')), 'e3')).status).toBe(503);
  });

  it('accepts ordinary nesting', async () => {
    const body = JSON.stringify(event('e-ok', { a: { b: { c: [1, { d: 2 }] } } }));
    expect((await post(body, 'e-ok')).status).toBe(200);
    expect(handled).toBe(1);
  });
});

describe('callback route: log lines stay short', () => {
  it('quotes at most a few hundred characters of a 900 KB event id', async () => {
    const huge = 'x'.repeat(900_000);
    const res = await post(JSON.stringify(event(huge)));
    expect(res.status).toBe(401);
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) expect(l.length).toBeLessThan(3_000);
    expect(lines.join('')).toContain('[900000 chars]');
  });

  it('caps any long field and message, and quote() says how long the value was', async () => {
    const out: string[] = [];
    const logger = createLogger({
      destination: new Writable({
        write(c, _e, cb) {
          out.push(String(c));
          cb();
        },
      }),
    });
    logger.warn({ a: 'y'.repeat(50_000), nested: { b: 'z'.repeat(50_000) } }, 'm'.repeat(50_000));
    expect(out[0]!.length).toBeLessThan(8_000);
    expect(quote('abc', 2)).toBe('ab…[3 chars]');
    expect(quote('abc')).toBe('abc');
  });
});
