import { createHash, randomBytes } from 'node:crypto';
import { get as httpGet } from 'node:http';
import { Readable, Writable } from 'node:stream';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AttachmentGoneError, type AttachmentRef, type ResolvedFile } from '../src/connector.js';
import { HttpServer } from '../src/http/router.js';
import { createLogger, silentLogger } from '../src/logger.js';
import { createMediaRoute, MEDIA_TOO_LARGE_LOG } from '../src/media/proxy.js';
import { type MediaClaims, MediaSigner } from '../src/media/token.js';

const TTL_MS = 3_600_000;
const MAX_BYTES = 4 * 1024 * 1024;
const signer = new MediaSigner('s'.repeat(32), TTL_MS);
const DATA = randomBytes(3 * 1024 * 1024 + 123);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A platform stream over `data` in 64 KiB chunks; records whether it was destroyed early. */
function platformStream(data: Buffer) {
  let i = 0;
  const stream = new Readable({
    read() {
      if (i >= data.length) return void this.push(null);
      this.push(data.subarray(i, i + 65_536));
      i += 65_536;
    },
  });
  return stream;
}

/** What the fake connector does for the next request. */
let behave: (claims: MediaClaims) => Promise<ResolvedFile>;
let calls: MediaClaims[] = [];
let opened: Readable[] = [];
const logLines: Record<string, unknown>[] = [];

const server = new HttpServer({ host: '127.0.0.1', port: 0, logger: silentLogger });
const dispatcher = new Agent();
let base = '';

beforeAll(async () => {
  const logger = createLogger({
    level: 'debug',
    destination: new Writable({
      write(chunk, _enc, cb) {
        logLines.push(JSON.parse(String(chunk)));
        cb();
      },
    }),
  });
  server.router.add(
    'GET',
    '/media/*',
    createMediaRoute({
      signer,
      maxBytes: MAX_BYTES,
      logger,
      resolve: (claims) => {
        calls.push(claims);
        return behave(claims);
      },
    }),
  );
  const addr = await server.listen();
  base = `http://127.0.0.1:${addr.port}`;
});

afterAll(async () => {
  await dispatcher.close();
  await server.close(100);
});

beforeEach(() => {
  calls = [];
  opened = [];
  logLines.length = 0;
  behave = async () => {
    const stream = platformStream(DATA);
    opened.push(stream);
    return { stream, size: DATA.length, contentType: 'application/pdf' };
  };
});

const doc: AttachmentRef = {
  ref: 'file-1',
  kind: 'document',
  fileName: 'report.pdf',
  mimeType: 'application/pdf',
};
const urlFor = (file: AttachmentRef = doc, now = Date.now()) =>
  `${base}/media/${signer.sign('tg:42', file, now)}`;

async function fetchAll(url: string, headers: Record<string, string> = {}, method: 'GET' | 'HEAD' = 'GET') {
  const res = await request(url, { dispatcher, headers, method });
  const body = Buffer.from(await res.body.arrayBuffer());
  return { status: res.statusCode, headers: res.headers, body };
}

describe('media proxy', () => {
  it('streams the exact bytes with the right headers', async () => {
    const res = await fetchAll(urlFor());
    expect(res.status).toBe(200);
    expect(sha(res.body)).toBe(sha(DATA));
    expect(res.headers['content-length']).toBe(String(DATA.length));
    expect(res.headers['content-type']).toBe('application/pdf');
    expect(res.headers['content-disposition']).toBe('inline; filename="report.pdf"');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['accept-ranges']).toBe('bytes');
    expect(res.headers.etag).toMatch(/^"[\w-]{27}"$/);
    const maxAge = Number(/^private, max-age=(\d+)$/.exec(String(res.headers['cache-control']))?.[1]);
    expect(maxAge).toBeLessThanOrEqual(TTL_MS / 1000);
    expect(maxAge).toBeGreaterThan(TTL_MS / 1000 - 60);
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({ clientId: 'tg:42', file: doc });
  });

  it('ignores a trailing file name segment', async () => {
    const res = await fetchAll(`${urlFor()}/report.pdf`);
    expect(res.status).toBe(200);
    expect(sha(res.body)).toBe(sha(DATA));
  });

  it('answers HEAD with headers only and releases the platform stream', async () => {
    const res = await fetchAll(urlFor(), {}, 'HEAD');
    expect(res.status).toBe(200);
    expect(res.headers['content-length']).toBe(String(DATA.length));
    expect(res.body.length).toBe(0);
    expect(opened[0]?.destroyed).toBe(true);
  });

  it('serves a single byte range exactly', async () => {
    const res = await fetchAll(urlFor(), { range: 'bytes=100000-1200000' });
    expect(res.status).toBe(206);
    expect(res.headers['content-range']).toBe(`bytes 100000-1200000/${DATA.length}`);
    expect(res.headers['content-length']).toBe('1100001');
    expect(sha(res.body)).toBe(sha(DATA.subarray(100000, 1200001)));
    // The platform stream is ended early, not read to the end.
    expect(opened[0]?.destroyed).toBe(true);
    expect(opened[0]?.readableEnded).toBe(false);

    const tail = await fetchAll(urlFor(), { range: 'bytes=-500' });
    expect(tail.status).toBe(206);
    expect(tail.body.equals(DATA.subarray(DATA.length - 500))).toBe(true);

    const open = await fetchAll(urlFor(), { range: `bytes=${DATA.length - 10}-` });
    expect(open.body.equals(DATA.subarray(DATA.length - 10))).toBe(true);

    const bad = await fetchAll(urlFor(), { range: `bytes=${DATA.length}-` });
    expect(bad.status).toBe(416);
    expect(bad.headers['content-range']).toBe(`bytes */${DATA.length}`);

    const multi = await fetchAll(urlFor(), { range: 'bytes=0-1,5-6' });
    expect(multi.status).toBe(200);
    expect(multi.body.length).toBe(DATA.length);
  });

  it('ignores Range when the size is unknown', async () => {
    behave = async () => ({ stream: platformStream(DATA) });
    const res = await fetchAll(urlFor(), { range: 'bytes=0-99' });
    expect(res.status).toBe(200);
    expect(res.headers['accept-ranges']).toBe('none');
    expect(res.headers['content-length']).toBeUndefined();
    expect(res.headers['content-type']).toBe('application/pdf'); // from the claims
    expect(sha(res.body)).toBe(sha(DATA));
  });

  it('answers If-None-Match with 304 without asking the platform; the ETag is per file', async () => {
    const first = await fetchAll(urlFor());
    const etag = String(first.headers.etag);
    const again = await fetchAll(urlFor(doc, Date.now() - 5000), { 'if-none-match': `W/${etag}` });
    expect(again.status).toBe(304);
    expect(again.headers.etag).toBe(etag);
    expect(again.body.length).toBe(0);
    expect(calls).toHaveLength(1);
    const other = await fetchAll(urlFor({ ...doc, ref: 'file-2' }), { 'if-none-match': etag });
    expect(other.status).toBe(200);
  });

  it('refuses tampered (403) and expired (410) links without asking the platform', async () => {
    const token = signer.sign('tg:42', doc);
    const forged = `${token.slice(0, -3)}${token.endsWith('AAA') ? 'BBB' : 'AAA'}`;
    expect((await fetchAll(`${base}/media/${forged}`)).status).toBe(403);
    expect((await fetchAll(`${base}/media/`)).status).toBe(403);
    expect((await fetchAll(`${base}/media/garbage`)).status).toBe(403);
    const foreign = new MediaSigner('t'.repeat(32), TTL_MS).sign('tg:42', doc);
    expect((await fetchAll(`${base}/media/${foreign}`)).status).toBe(403);
    const expired = await fetchAll(urlFor(doc, Date.now() - TTL_MS - 1));
    expect(expired.status).toBe(410);
    expect(calls).toHaveLength(0);
  });

  it('answers 404 for a file gone from the platform and 502 for other failures, logging no URL', async () => {
    behave = async () => {
      throw new AttachmentGoneError('file is gone');
    };
    expect((await fetchAll(urlFor())).status).toBe(404);
    behave = async () => {
      throw new Error('GET https://api.telegram.org/file/bot123456:AAH-secret/doc.pdf failed: ECONNRESET');
    };
    const res = await fetchAll(urlFor());
    expect(res.status).toBe(502);
    const line = logLines.find((l) => l.msg === 'media file could not be opened');
    expect(line).toMatchObject({ level: 40, clientId: 'tg:42', err: { name: 'Error' } });
    expect(JSON.stringify(logLines)).not.toContain('AAH-secret');
    expect(JSON.stringify(line)).toContain('[url] failed: ECONNRESET');
  });

  it('sends RFC 6266 file names, with a UTF-8 form for non-ASCII names', async () => {
    const cases: [string, string][] = [
      [
        'отчёт 2024.pdf',
        `inline; filename="_____ 2024.pdf"; filename*=UTF-8''%D0%BE%D1%82%D1%87%D1%91%D1%82%202024.pdf`,
      ],
      ['报告.pdf', `inline; filename="__.pdf"; filename*=UTF-8''%E6%8A%A5%E5%91%8A.pdf`],
      ['a"b\r\nc\\d.txt', 'inline; filename="abcd.txt"'],
      ["it's (1).pdf", `inline; filename="it's (1).pdf"`],
      ["é's (1)*.pdf", `inline; filename="_'s (1)*.pdf"; filename*=UTF-8''%C3%A9%27s%20%281%29%2A.pdf`],
    ];
    for (const [name, expected] of cases) {
      const res = await fetchAll(urlFor({ ...doc, fileName: name }), {}, 'HEAD');
      expect(res.headers['content-disposition'], name).toBe(expected);
    }
    behave = async () => ({
      stream: platformStream(DATA),
      fileName: 'from-platform.bin',
      contentType: 'bad\r\ntype',
    });
    const res = await fetchAll(urlFor({ ref: 'x', kind: 'document' }), {}, 'HEAD');
    // An unknown type is a download, never shown in the browser.
    expect(res.headers['content-disposition']).toBe('attachment; filename="from-platform.bin"');
    expect(res.headers['content-type']).toBe('application/octet-stream');
  });

  it('serves active content (HTML, SVG, XML, scripts) as a sandboxed download', async () => {
    const cases: [string, 'inline' | 'attachment'][] = [
      ['text/html; charset=utf-8', 'attachment'],
      ['image/svg+xml', 'attachment'],
      ['application/xml', 'attachment'],
      ['text/xml', 'attachment'],
      ['application/javascript', 'attachment'],
      ['application/xhtml+xml', 'attachment'],
      ['image/png', 'inline'],
      ['audio/ogg', 'inline'],
      ['video/mp4', 'inline'],
      ['application/pdf', 'inline'],
    ];
    for (const [contentType, disposition] of cases) {
      behave = async () => ({ stream: platformStream(DATA), size: DATA.length, contentType });
      const res = await fetchAll(urlFor({ ...doc, fileName: 'x.bin' }), {}, 'HEAD');
      expect(res.headers['content-disposition'], contentType).toBe(`${disposition}; filename="x.bin"`);
      expect(res.headers['content-security-policy'], contentType).toMatch(/default-src 'none'/);
      if (contentType !== 'application/pdf')
        expect(res.headers['content-security-policy'], contentType).toMatch(/sandbox/);
      expect(res.headers['x-content-type-options']).toBe('nosniff');
    }
    // Refusals carry the policy too.
    const refused = await fetchAll(`${base}/media/not-a-token`);
    expect(refused.status).toBe(403);
    expect(refused.headers['content-security-policy']).toMatch(/sandbox/);
  });

  it('refuses a file over the cap: by the size in the link, without asking the platform', async () => {
    const res = await fetchAll(urlFor({ ...doc, size: MAX_BYTES + 1 }));
    expect(res.status).toBe(404);
    expect(calls).toHaveLength(0);
    expect(logLines.find((l) => l.msg === MEDIA_TOO_LARGE_LOG)).toMatchObject({
      level: 40,
      clientId: 'tg:42',
      size: MAX_BYTES + 1,
    });
  });

  it('refuses a file over the cap: by the size the platform reports', async () => {
    const big = Buffer.alloc(MAX_BYTES + 1);
    behave = async () => {
      const stream = platformStream(big);
      opened.push(stream);
      return { stream, size: big.length };
    };
    const res = await fetchAll(urlFor());
    expect(res.status).toBe(404);
    expect(opened[0]?.destroyed).toBe(true);
    expect(logLines.find((l) => l.msg === MEDIA_TOO_LARGE_LOG)).toMatchObject({ size: MAX_BYTES + 1 });
  });

  it('cuts off a file of unknown size once it passes the cap', async () => {
    behave = async () => ({ stream: platformStream(Buffer.alloc(MAX_BYTES + 100_000)) });
    await expect(fetchAll(urlFor())).rejects.toThrow();
    expect(logLines.find((l) => l.msg === MEDIA_TOO_LARGE_LOG)).toMatchObject({
      level: 40,
      clientId: 'tg:42',
      sizeKnown: false,
    });
  });

  it('destroys the platform stream when the client goes away', async () => {
    let endless!: Readable;
    behave = async () => {
      endless = new Readable({
        read() {
          this.push(Buffer.alloc(16_384));
        },
      });
      return { stream: endless };
    };
    await new Promise<void>((resolve) => {
      const req = httpGet(urlFor(), (res) =>
        res.once('data', () => {
          req.destroy();
          resolve();
        }),
      );
      req.on('error', () => {});
    });
    await new Promise<void>((resolve) => {
      if (endless.destroyed) resolve();
      else endless.once('close', () => resolve());
    });
    expect(endless.destroyed).toBe(true);
  });
});
