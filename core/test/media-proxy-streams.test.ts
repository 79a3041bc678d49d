/**
 * Every branch of the media proxy against every kind of stream a plugin may hand
 * back: an undici response body (what Telegram's file fetch gives; destroyed unread
 * it emits RequestAbortedError), a file stream, a PassThrough, and a stream that
 * errors when destroyed. None may end the process: an 'error' event with no
 * listener would, and vitest fails the run on one.
 */

import { createReadStream } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ResolvedFile } from '../src/connector.js';
import { HttpServer } from '../src/http/router.js';
import { createLogger } from '../src/logger.js';
import { createMediaRoute } from '../src/media/proxy.js';
import { MediaSigner, mediaUrl } from '../src/media/token.js';

const SIZE = 2 * 1024 * 1024;
const DATA = Buffer.alloc(SIZE, 7);
const signer = new MediaSigner('m'.repeat(32), 3_600_000);
const logLines: { level: number; msg: string }[] = [];
const uncaught: unknown[] = [];
const onUncaught = (err: unknown) => uncaught.push(err);

let platform: Server;
let platformUrl = '';
let dir = '';
const proxy = new HttpServer({ host: '127.0.0.1', port: 0, logger: createLogger({ level: 'silent' }) });
let base = '';
let kind = 'undici';

/** Streams of each kind over DATA (announced size SIZE). */
async function open(): Promise<ResolvedFile> {
  switch (kind) {
    case 'undici': {
      const res = await request(platformUrl);
      return { stream: res.body, size: SIZE, contentType: 'application/pdf' };
    }
    case 'file':
      return { stream: createReadStream(join(dir, 'f.bin')), size: SIZE, contentType: 'image/png' };
    case 'passthrough': {
      const p = new PassThrough();
      p.write(DATA.subarray(0, 65_536));
      setTimeout(() => p.end(DATA.subarray(65_536)), 5).unref();
      return { stream: p, size: SIZE, contentType: 'video/mp4' };
    }
    default: {
      // Errors whenever it is destroyed before its end, like undici's body.
      let sent = 0;
      const r = new Readable({
        read() {
          if (sent >= SIZE) return void this.push(null);
          this.push(DATA.subarray(sent, sent + 65_536));
          sent += 65_536;
        },
        destroy(_err, cb) {
          cb(sent < SIZE ? new Error('aborted by destroy') : null);
        },
      });
      return { stream: r, size: SIZE };
    }
  }
}

beforeAll(async () => {
  process.on('uncaughtException', onUncaught);
  dir = await mkdtemp(join(tmpdir(), 'kb-media-'));
  await writeFile(join(dir, 'f.bin'), DATA);
  platform = createServer((_req, res) => {
    res.writeHead(200, { 'content-length': SIZE });
    // Slowly, so a destroyed body is mid-flight.
    let i = 0;
    const tick = () => {
      if (i >= SIZE) return void res.end();
      const ok = res.write(DATA.subarray(i, i + 65_536));
      i += 65_536;
      if (ok) setImmediate(tick);
      else res.once('drain', tick);
    };
    tick();
    res.on('error', () => {});
  });
  await new Promise<void>((r) => platform.listen(0, '127.0.0.1', r));
  platformUrl = `http://127.0.0.1:${(platform.address() as AddressInfo).port}/file`;
  const logger = createLogger({
    level: 'debug',
    destination: new Writable({
      write(chunk, _e, cb) {
        logLines.push(JSON.parse(String(chunk)));
        cb();
      },
    }),
  });
  proxy.router.add(
    'GET',
    '/media/*',
    createMediaRoute({ signer, maxBytes: SIZE + 1, logger, resolve: () => open() }),
  );
  base = `http://127.0.0.1:${(await proxy.listen()).port}`;
});

afterAll(async () => {
  process.off('uncaughtException', onUncaught);
  await proxy.close(100);
  platform.closeAllConnections();
  await new Promise<void>((r) => platform.close(() => r()));
});

const link = () => mediaUrl(base, signer.sign('tg:1', { ref: 'f1', kind: 'document', fileName: 'a.pdf' }));
const settle = () => new Promise((r) => setTimeout(r, 60));

/** A GET that reads `bytes` of the body and then hangs up. */
function abortAfter(url: string, bytes: number): Promise<void> {
  return new Promise((resolve) => {
    const req = httpRequest(url, (res) => {
      let got = 0;
      res.on('data', (c: Buffer) => {
        got += c.length;
        if (got >= bytes) req.destroy();
      });
      res.on('error', () => {});
      res.on('close', () => resolve());
    });
    req.on('error', () => resolve());
    req.end();
  });
}

describe.each(['undici', 'file', 'passthrough', 'errors-on-destroy'])('media proxy with a %s stream', (k) => {
  it('answers HEAD with headers only and lives on', async () => {
    kind = k;
    const res = await request(link(), { method: 'HEAD' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-length']).toBe(String(SIZE));
    await res.body.dump();
    await settle();
    expect(uncaught).toEqual([]);
  });

  it.each(['bytes=999999999-', 'bytes=-0'])('answers 416 to %s and lives on', async (range) => {
    kind = k;
    const res = await request(link(), { headers: { range } });
    expect(res.statusCode).toBe(416);
    expect(res.headers['content-range']).toBe(`bytes */${SIZE}`);
    await res.body.dump();
    await settle();
    expect(uncaught).toEqual([]);
  });

  it('serves a range that ends before the file does', async () => {
    kind = k;
    const res = await request(link(), { headers: { range: 'bytes=10-19' } });
    expect(res.statusCode).toBe(206);
    expect((await res.body.arrayBuffer()).byteLength).toBe(10);
    await settle();
    expect(uncaught).toEqual([]);
  });

  it('survives a client that hangs up midway, logged below warn', async () => {
    kind = k;
    logLines.length = 0;
    await abortAfter(link(), 100_000);
    await settle();
    expect(uncaught).toEqual([]);
    expect(logLines.filter((l) => l.level >= 40)).toEqual([]);
  });
});

describe('media proxy over the cap and after the request is gone', () => {
  it('releases the stream of a file larger than announced, with no crash', async () => {
    kind = 'undici';
    const small = new HttpServer({ host: '127.0.0.1', port: 0, logger: createLogger({ level: 'silent' }) });
    small.router.add(
      'GET',
      '/media/*',
      createMediaRoute({
        signer,
        maxBytes: 1000,
        logger: createLogger({ level: 'silent' }),
        resolve: async () => {
          const r = await open();
          return { stream: r.stream };
        },
      }),
    );
    const url = `http://127.0.0.1:${(await small.listen()).port}`;
    // The answer is cut off (connection reset) once the cap is passed.
    await request(mediaUrl(url, signer.sign('tg:1', { ref: 'f1', kind: 'document' })))
      .then((res) => res.body.dump())
      .catch(() => {});
    await settle();
    await small.close(100);
    expect(uncaught).toEqual([]);
  });
});
