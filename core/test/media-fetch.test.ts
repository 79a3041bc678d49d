import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  isPublicAddress,
  MediaFetchError,
  type MediaFetchErrorCode,
  MediaFetcher,
} from '../src/media/fetch.js';

const DATA = randomBytes(512 * 1024 + 7);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let server: Server;
let base = '';
let port = 0;

beforeAll(async () => {
  server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const p = url.pathname;
    if (p === '/file/photo%20one.jpg' || p === '/file') {
      res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': DATA.length });
      res.end(DATA);
    } else if (p === '/chunked') {
      // No Content-Length: the cap can only be found while streaming.
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.write(DATA.subarray(0, 256 * 1024));
      setTimeout(() => res.end(DATA.subarray(256 * 1024)), 10);
    } else if (p === '/named') {
      res.writeHead(200, {
        'content-disposition': `attachment; filename="fallback.txt"; filename*=UTF-8''%D0%BE%D1%82%D1%87%D1%91%D1%82.txt`,
      });
      res.end('hello');
    } else if (p === '/redirect') {
      res.writeHead(302, { location: url.searchParams.get('to') ?? '/file' });
      res.end();
    } else if (p.startsWith('/hop/')) {
      const n = Number(p.slice(5));
      res.writeHead(n > 0 ? 307 : 200, n > 0 ? { location: `/hop/${n - 1}` } : {});
      res.end(n > 0 ? '' : 'arrived');
    } else if (p === '/stall-headers') {
      // Never answers.
    } else if (p === '/stall-body') {
      res.writeHead(200, { 'content-length': 1000 });
      res.write('partial');
    } else {
      res.writeHead(404);
      res.end('no');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
  base = `http://127.0.0.1:${port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

const fetchers: MediaFetcher[] = [];
afterAll(async () => {
  await Promise.all(fetchers.map((f) => f.close()));
});

/** Our test server is on 127.0.0.1, so tests allow exactly that address and nothing else private. */
function make(opts: ConstructorParameters<typeof MediaFetcher>[0] = {}) {
  const f = new MediaFetcher({ isAllowedAddress: (a) => a === '127.0.0.1' || isPublicAddress(a), ...opts });
  fetchers.push(f);
  return f;
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function codeOf(p: Promise<unknown>): Promise<MediaFetchErrorCode | 'resolved'> {
  try {
    await p;
    return 'resolved';
  } catch (err) {
    expect(err).toBeInstanceOf(MediaFetchError);
    return (err as MediaFetchError).code;
  }
}

describe('MediaFetcher', () => {
  it('fetches the exact bytes with size, type and the name from the URL path', async () => {
    const f = await make().open(`${base}/file/photo%20one.jpg`, { maxBytes: DATA.length });
    expect(f).toMatchObject({ size: DATA.length, contentType: 'image/jpeg', fileName: 'photo one.jpg' });
    expect(sha(await readAll(f.stream))).toBe(sha(DATA));
  });

  it('takes the file name from the caller, then Content-Disposition, then the path, then "file"', async () => {
    const fetcher = make();
    const given = await fetcher.open(`${base}/named`, { maxBytes: 100, fileName: 'given.txt' });
    given.stream.destroy();
    expect(given.fileName).toBe('given.txt');
    const named = await fetcher.open(`${base}/named`, { maxBytes: 100 });
    expect(named.fileName).toBe('отчёт.txt');
    expect((await readAll(named.stream)).toString()).toBe('hello');
    const bare = await fetcher.open(`${base}/hop/0`, { maxBytes: 100 });
    expect(bare.fileName).toBe('0');
    bare.stream.destroy();
    const root = await fetcher.open(`${base}/redirect?to=/hop/0`, { maxBytes: 100 });
    root.stream.destroy();
    expect(root.fileName).toBe('redirect');
  });

  it('refuses non-http(s) and malformed URLs', async () => {
    const f = make({ allowPrivate: true });
    for (const url of ['file:///etc/passwd', 'ftp://example.com/x', 'not a url', 'gopher://127.0.0.1/']) {
      expect(await codeOf(f.open(url, { maxBytes: 10 })), url).toBe('bad-url');
    }
  });

  it('refuses loopback, private, link-local and metadata addresses by default', async () => {
    const f = new MediaFetcher({ connectTimeoutMs: 500, totalTimeoutMs: 2000 });
    fetchers.push(f);
    const urls = [
      `${base}/file`,
      `http://localhost:${port}/file`, // a name: refused inside the socket's DNS lookup
      'http://10.0.0.1/x',
      'http://172.16.5.4/x',
      'http://192.168.1.1/x',
      'http://169.254.169.254/latest/meta-data',
      'http://100.64.0.1/x',
      'http://0.0.0.0/x',
      'http://[::1]/',
      'http://[::ffff:127.0.0.1]/',
      'http://[fd00::1]/',
      'http://[fe80::1]/',
      'http://2130706433/', // 127.0.0.1 spelled as a number
      'https://127.1/',
    ];
    for (const url of urls) expect(await codeOf(f.open(url, { maxBytes: 10 })), url).toBe('blocked');
  });

  it('classifies addresses with ipaddr.js ranges', () => {
    for (const a of ['8.8.8.8', '1.1.1.1', '2606:4700:4700::1111']) expect(isPublicAddress(a), a).toBe(true);
    const refused = [
      '127.0.0.1',
      '10.1.2.3',
      '172.31.255.255',
      '192.168.0.1',
      '169.254.169.254',
      '100.64.0.1',
      '0.0.0.0',
      '224.0.0.1',
      '255.255.255.255',
      '::1',
      '::',
      'fc00::1',
      'fe80::1',
      'ff02::1',
      '::ffff:10.0.0.1',
      '64:ff9b::7f00:1',
      'not-an-ip',
    ];
    for (const a of refused) expect(isPublicAddress(a), a).toBe(false);
  });

  it('allows private targets with allowPrivate', async () => {
    const f = new MediaFetcher({ allowPrivate: true });
    fetchers.push(f);
    const got = await f.open(`http://localhost:${port}/file`, { maxBytes: DATA.length });
    expect(sha(await readAll(got.stream))).toBe(sha(DATA));
  });

  it('checks every redirect target again', async () => {
    const f = make();
    const ok = await f.open(`${base}/redirect?to=/file`, { maxBytes: DATA.length });
    expect(sha(await readAll(ok.stream))).toBe(sha(DATA));
    for (const to of [
      'http://10.0.0.1/x',
      `http://127.0.0.2:${port}/file`,
      'http://169.254.169.254/latest/meta-data',
      'http://[::1]/',
    ]) {
      expect(
        await codeOf(f.open(`${base}/redirect?to=${encodeURIComponent(to)}`, { maxBytes: 10 })),
        to,
      ).toBe('blocked');
    }
    expect(
      await codeOf(
        f.open(`${base}/redirect?to=${encodeURIComponent('file:///etc/passwd')}`, { maxBytes: 10 }),
      ),
    ).toBe('bad-url');
  });

  it('follows up to maxRedirects redirects', async () => {
    const f = make({ maxRedirects: 3 });
    const three = await f.open(`${base}/hop/3`, { maxBytes: 100 });
    expect((await readAll(three.stream)).toString()).toBe('arrived');
    expect(await codeOf(f.open(`${base}/hop/4`, { maxBytes: 100 }))).toBe('redirects');
  });

  it('refuses a body declared too large at once', async () => {
    expect(await codeOf(make().open(`${base}/file`, { maxBytes: DATA.length - 1 }))).toBe('too-large');
  });

  it('errors the stream when an undeclared body runs past the cap', async () => {
    const f = await make().open(`${base}/chunked`, { maxBytes: 300 * 1024 });
    expect(f.size).toBeUndefined();
    const err = await readAll(f.stream).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(MediaFetchError);
    expect((err as MediaFetchError).code).toBe('too-large');
    const whole = await make().open(`${base}/chunked`, { maxBytes: DATA.length });
    expect(sha(await readAll(whole.stream))).toBe(sha(DATA));
  });

  it('times out waiting for headers and waiting for the body', async () => {
    const f = make({ totalTimeoutMs: 300 });
    expect(await codeOf(f.open(`${base}/stall-headers`, { maxBytes: 10_000 }))).toBe('timeout');
    const stalled = await f.open(`${base}/stall-body`, { maxBytes: 10_000 });
    expect(stalled.size).toBe(1000);
    // Left unread past the deadline: the stream must hold the error, not crash the process.
    await new Promise((r) => setTimeout(r, 400));
    const err = await readAll(stalled.stream).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as MediaFetchError).code).toBe('timeout');
  });

  it('reports HTTP errors and unreachable hosts', async () => {
    const f = make();
    expect(await codeOf(f.open(`${base}/missing`, { maxBytes: 10 }))).toBe('http');
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const deadPort = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    expect(await codeOf(f.open(`http://127.0.0.1:${deadPort}/`, { maxBytes: 10 }))).toBe('network');
  });
});
