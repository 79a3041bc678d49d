/**
 * Fetching agent files from the URLs Kit sends, safely: the URL comes from outside,
 * so it must not reach into our network (SSRF), hang us, or fill memory or disk.
 *
 * - http and https only;
 * - every address a host name resolves to is checked at connect time, inside the
 *   socket's own DNS lookup, so a DNS answer that changes between a check and the
 *   connect (rebinding) cannot slip through; literal IPs are checked before;
 * - redirects are followed by hand and every hop is checked again;
 * - one deadline covers connect, headers and body; the body is capped.
 *
 * It has its own undici Agent, never the global dispatcher.
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import type { LookupFunction } from 'node:net';
import { type Readable, Transform } from 'node:stream';
import ipaddr from 'ipaddr.js';
import { Agent } from 'undici';
import type { FetchedFile } from '../connector.js';
import { closeAgent } from '../http/agents.js';
import type { Logger } from '../logger.js';
import { cleanFileName, parseContentDispositionFileName } from './headers.js';

export type MediaFetchErrorCode =
  | 'bad-url'
  | 'blocked'
  | 'too-large'
  | 'timeout'
  | 'http'
  | 'network'
  | 'redirects';

export class MediaFetchError extends Error {
  override name = 'MediaFetchError';
  constructor(
    readonly code: MediaFetchErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface MediaFetcherOptions {
  /** KITBRIDGE_MEDIA_ALLOW_PRIVATE: allow loopback/private/link-local targets (tests). */
  allowPrivate?: boolean;
  /**
   * Replaces the address policy (default: {@link isPublicAddress}, or anything when
   * `allowPrivate`). Called with every address of every hop, literal or resolved.
   * A seam for tests that must allow their own 127.0.0.1 server yet see a redirect
   * to another private address refused.
   */
  isAllowedAddress?: (address: string) => boolean;
  /** Default 5 s. */
  connectTimeoutMs?: number;
  /** Whole fetch, headers and body. Default 60 s. */
  totalTimeoutMs?: number;
  /** Default 3. */
  maxRedirects?: number;
  logger?: Logger;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/**
 * True for a public unicast address. Refused: loopback, private, link-local
 * (169.254.169.254 included), CGNAT, unique-local, multicast, unspecified,
 * reserved and documentation ranges, NAT64 and IPv4-mapped forms of any of those.
 */
export function isPublicAddress(address: string): boolean {
  if (!ipaddr.isValid(address)) return false;
  // process() turns ::ffff:a.b.c.d into a.b.c.d, so a mapped address gets the IPv4 verdict.
  return ipaddr.process(address).range() === 'unicast';
}

/** Fetches agent files from Kit's URLs safely: http(s) only, SSRF-checked after DNS, capped, timed. */
export class MediaFetcher {
  private readonly agent: Agent;
  private readonly allowed: (address: string) => boolean;

  constructor(readonly options: MediaFetcherOptions = {}) {
    this.allowed = options.isAllowedAddress ?? (options.allowPrivate ? () => true : isPublicAddress);
    const total = options.totalTimeoutMs ?? 60_000;
    this.agent = new Agent({
      connect: { timeout: options.connectTimeoutMs ?? 5_000, lookup: guardedLookup(this.allowed) },
      headersTimeout: total,
      bodyTimeout: total,
    });
  }

  /**
   * Starts a GET and resolves once headers are in. Rejects with MediaFetchError
   * ('too-large' at once when Content-Length exceeds maxBytes); the stream
   * errors with 'too-large' if the body runs past maxBytes.
   */
  async open(url: string, opts: { maxBytes: number; fileName?: string }): Promise<FetchedFile> {
    const first = parseUrl(url);
    const maxRedirects = this.options.maxRedirects ?? 3;
    const totalMs = this.options.totalTimeoutMs ?? 60_000;
    const deadline = new AbortController();
    const timer = setTimeout(
      () => deadline.abort(new MediaFetchError('timeout', `no complete answer within ${totalMs} ms`)),
      totalMs,
    );
    timer.unref();
    const fail = (err: unknown): never => {
      clearTimeout(timer);
      throw toFetchError(err, deadline.signal);
    };

    let current = first;
    for (let hop = 0; ; hop++) {
      let res: Awaited<ReturnType<Agent['request']>>;
      try {
        this.checkLiteral(current);
        this.options.logger?.debug({ host: current.host, hop }, 'fetching agent file');
        res = await this.agent.request({
          origin: current.origin,
          path: current.pathname + current.search,
          method: 'GET',
          headers: { accept: '*/*', 'user-agent': 'kitbridge' },
          signal: deadline.signal,
        });
      } catch (err) {
        return fail(err);
      }
      const status = res.statusCode;
      if (REDIRECTS.has(status)) {
        discard(res.body);
        const location = header(res.headers.location);
        if (!location)
          return fail(new MediaFetchError('http', `${current.host} answered ${status} without Location`));
        if (hop >= maxRedirects)
          return fail(new MediaFetchError('redirects', `more than ${maxRedirects} redirects`));
        try {
          current = parseUrl(new URL(location, current).href);
        } catch (err) {
          return fail(err);
        }
        continue;
      }
      if (status < 200 || status > 299) {
        discard(res.body);
        return fail(new MediaFetchError('http', `${current.host} answered ${status}`));
      }
      const size = contentLength(header(res.headers['content-length']));
      if (size !== undefined && size > opts.maxBytes) {
        discard(res.body);
        return fail(
          new MediaFetchError('too-large', `the file is ${size} bytes, over the ${opts.maxBytes} byte cap`),
        );
      }
      const contentType = header(res.headers['content-type']);
      const fileName =
        (opts.fileName && cleanFileName(opts.fileName)) ||
        parseContentDispositionFileName(header(res.headers['content-disposition'])) ||
        lastSegment(first) ||
        lastSegment(current) ||
        'file';
      return {
        stream: capped(res.body, opts.maxBytes, deadline.signal, () => clearTimeout(timer)),
        fileName,
        ...(size !== undefined ? { size } : {}),
        ...(contentType ? { contentType } : {}),
      };
    }
  }

  /** Releases connections; waits up to 2 s for fetches in flight, then cuts them. */
  async close(): Promise<void> {
    await closeAgent(this.agent);
  }

  /** Net skips the lookup for a literal IP, so those are checked here. */
  private checkLiteral(url: URL): void {
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    if (ipaddr.isValid(host) && !this.allowed(host)) {
      throw new MediaFetchError('blocked', `${url.host} is not a public address`);
    }
  }
}

/** Marks a refusal raised inside the socket's DNS lookup (undici passes it through as the connect error). */
class BlockedLookupError extends Error {
  override name = 'BlockedLookupError';
}

/**
 * A `lookup` for net/tls.connect that resolves every address of the host and
 * refuses the host when any of them is not allowed.
 */
function guardedLookup(allowed: (address: string) => boolean): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
      if (err) return callback(err, '', 0);
      const bad = addresses.find((a) => !allowed(a.address));
      if (bad || addresses.length === 0) {
        return callback(new BlockedLookupError(`${hostname} resolves to a non-public address`), '', 0);
      }
      if (options.all) (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, addresses);
      else callback(null, addresses[0]!.address, addresses[0]!.family);
    });
  };
}

function parseUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new MediaFetchError('bad-url', 'not a valid URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new MediaFetchError('bad-url', `${url.protocol} URLs are not fetched`);
  }
  return url;
}

/** Maps anything thrown on the way to a MediaFetchError with a secret-free message. */
function toFetchError(err: unknown, signal: AbortSignal): MediaFetchError {
  if (err instanceof MediaFetchError) return err;
  if (signal.aborted && signal.reason instanceof MediaFetchError) return signal.reason;
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof BlockedLookupError) return new MediaFetchError('blocked', e.message);
    const code = (e as { code?: string }).code;
    if (
      code === 'UND_ERR_CONNECT_TIMEOUT' ||
      code === 'UND_ERR_HEADERS_TIMEOUT' ||
      code === 'UND_ERR_BODY_TIMEOUT'
    ) {
      return new MediaFetchError('timeout', e.message);
    }
  }
  const code = (err as { code?: string } | undefined)?.code;
  return new MediaFetchError('network', code ? `network error ${code}` : 'network error');
}

/**
 * The body as handed to the caller: errors with 'too-large' past `maxBytes`, and
 * with 'timeout' when the deadline cuts it. Destroying it releases the connection.
 */
function capped(body: Readable, maxBytes: number, signal: AbortSignal, done: () => void): Readable {
  let seen = 0;
  const out = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      seen += chunk.length;
      if (seen > maxBytes) cb(new MediaFetchError('too-large', `the file is over the ${maxBytes} byte cap`));
      else cb(null, chunk);
    },
  });
  body.on('error', (err) => out.destroy(toFetchError(err, signal)));
  // A stream left unread past the deadline (a delivery waiting for its retry) must not
  // crash the process: the error stays on the stream and its reader gets it.
  out.on('error', () => {});
  out.on('close', () => {
    done();
    body.destroy();
  });
  body.pipe(out);
  return out;
}

/** Drops a body we will not read (undici reports a destroyed body as an error: ignore it). */
function discard(body: Readable): void {
  body.on('error', () => {});
  body.destroy();
}

function header(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function contentLength(v: string | undefined): number | undefined {
  if (v === undefined || !/^\d+$/.test(v.trim())) return undefined;
  return Number(v);
}

function lastSegment(url: URL): string | undefined {
  const seg = url.pathname.split('/').pop();
  if (!seg) return undefined;
  try {
    return cleanFileName(decodeURIComponent(seg)) || undefined;
  } catch {
    return cleanFileName(seg) || undefined;
  }
}
