/**
 * The media proxy: `GET /media/<token>[/<any file name>]` streams a platform file
 * to Kit on demand, without buffering it. Kit only ever sees our signed, expiring
 * link; the platform URL (which may carry a bot token) stays inside the process.
 *
 * Answers, in the order they are decided:
 * - 403 tampered token, 410 expired token (the platform is not asked);
 * - 304 when If-None-Match matches the file's ETag (the platform is not asked);
 * - 404 when the file is larger than `maxBytes` (KITBRIDGE_MEDIA_MAX_BYTES). 404
 *   rather than 502 or 413: the refusal is permanent, so Kit must not retry it,
 *   and 413 is about request bodies. A warn line says why. A file whose size is
 *   unknown is cut off (connection reset) once it passes the cap, with the same line;
 * - 404 when the platform no longer has the file ({@link AttachmentGoneError});
 * - 502 for any other platform failure;
 * - 200, or 206 for a single satisfiable `Range: bytes=a-b` when the size is known
 *   (416 when it is not satisfiable). HEAD gets the same headers and no body.
 *
 * Customer files are untrusted content on kitbridge's own origin: every answer
 * carries a Content-Security-Policy that gives a document no powers, and only
 * passive types (images but SVG, audio, video, PDF) are served inline; the rest
 * are downloads. Any stream a plugin hands back is released on every path, and
 * its failure is a log line, never a crash.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { AttachmentGoneError, type ResolvedFile } from '../connector.js';
import { pathOf, type RouteHandler, sendText } from '../http/router.js';
import type { Logger } from '../logger.js';
import type { MediaMetrics } from '../metrics.js';
import { contentDisposition, isPassiveType, mediaCsp, SANDBOX_CSP, safeContentType } from './headers.js';
import type { MediaClaims, MediaSigner } from './token.js';

export interface MediaRouteOptions {
  signer: MediaSigner;
  /** Opens the platform file (the connector's resolveAttachment). */
  resolve(claims: MediaClaims): Promise<ResolvedFile>;
  /** Per-file cap; larger files are refused with a log line. */
  maxBytes: number;
  logger: Logger;
  /** Path prefix the route is mounted at; the token is the segment after it. Default `/media/`. */
  mountPath?: string;
  /** Counts answers by status and the bytes streamed. */
  metrics?: MediaMetrics;
}

/** The log message for a file over the cap (operators grep for it). */
export const MEDIA_TOO_LARGE_LOG = 'media file exceeds KITBRIDGE_MEDIA_MAX_BYTES';

/** Error answers are plain text, never sniffed, never a document with powers. */
const ERROR_HEADERS = { 'x-content-type-options': 'nosniff', 'content-security-policy': SANDBOX_CSP };

/** Handler for `GET /media/*` (and HEAD). */
export function createMediaRoute(opts: MediaRouteOptions): RouteHandler {
  const mountPath = opts.mountPath ?? '/media/';
  const { logger, maxBytes, metrics } = opts;
  const streamed = metrics ? (n: number) => metrics.streamed(n) : undefined;

  return async (req, res) => {
    let aborted = false;
    res.once('close', () => {
      if (!res.writableFinished) aborted = true;
      // Every answer ends here, whichever path wrote it (a reset midway keeps its status).
      metrics?.answered(res.statusCode);
    });

    const token = tokenFromPath(pathOf(req.url), mountPath);
    const now = Date.now();
    const verdict = token ? opts.signer.verify(token, now) : ({ ok: false, reason: 'tampered' } as const);
    if (!verdict.ok) {
      logger.debug({ reason: verdict.reason }, 'media link refused');
      if (verdict.reason === 'expired') sendText(res, 410, 'This media link has expired', ERROR_HEADERS);
      else sendText(res, 403, 'Forbidden', ERROR_HEADERS);
      return;
    }
    const { claims } = verdict;
    const etag = etagFor(claims);
    const cacheHeaders: OutgoingHttpHeaders = {
      etag,
      'cache-control': `private, max-age=${Math.max(0, Math.floor((claims.exp - now) / 1000))}`,
      'x-content-type-options': 'nosniff',
      'content-security-policy': SANDBOX_CSP,
    };
    if (etagMatches(req.headers['if-none-match'], etag)) {
      res.writeHead(304, cacheHeaders);
      res.end();
      return;
    }
    const tooLarge = (size: number) => {
      logger.warn({ clientId: claims.clientId, size, maxBytes }, MEDIA_TOO_LARGE_LOG);
      sendText(res, 404, 'File too large to relay', ERROR_HEADERS);
    };
    if (claims.file.size !== undefined && claims.file.size > maxBytes) return tooLarge(claims.file.size);

    let file: ResolvedFile;
    try {
      file = await opts.resolve(claims);
    } catch (err) {
      if (err instanceof AttachmentGoneError) {
        logger.info({ clientId: claims.clientId }, 'media file is gone from the platform');
        sendText(res, 404, 'Not Found', ERROR_HEADERS);
      } else {
        logger.warn({ clientId: claims.clientId, err: safeError(err) }, 'media file could not be opened');
        sendText(res, 502, 'Bad Gateway', ERROR_HEADERS);
      }
      return;
    }
    const stream = file.stream;
    // Every stream a plugin hands back gets an error listener before anything else:
    // an undici body destroyed unread (HEAD, 416, client gone) emits RequestAbortedError,
    // and an 'error' event with no listener would end the process.
    let released = false;
    stream.on('error', (err: unknown) => {
      if (released || aborted || res.writableFinished)
        logger.debug({ clientId: claims.clientId, err: safeError(err) }, 'media stream closed early');
      else logger.warn({ clientId: claims.clientId, err: safeError(err) }, 'media stream failed');
    });
    const release = () => {
      released = true;
      stream.destroy();
    };
    if (aborted) return release();
    const size = file.size;
    if (size !== undefined && size > maxBytes) {
      release();
      return tooLarge(size);
    }

    const contentType =
      safeContentType(file.contentType) ??
      safeContentType(claims.file.mimeType) ??
      'application/octet-stream';
    const headers: OutgoingHttpHeaders = {
      ...cacheHeaders,
      'content-type': contentType,
      // Only passive types open in the browser; HTML, SVG, XML, scripts are downloads.
      'content-disposition': contentDisposition(
        claims.file.fileName ?? file.fileName ?? 'file',
        isPassiveType(contentType) ? 'inline' : 'attachment',
      ),
      'content-security-policy': mediaCsp(contentType),
      'accept-ranges': size === undefined ? 'none' : 'bytes',
    };
    let status = 200;
    let range: ByteRange | undefined;
    if (size !== undefined) {
      const wanted = rangeWanted(req, etag) ? parseRange(req.headers.range, size) : undefined;
      if (wanted === 'unsatisfiable') {
        release();
        sendText(res, 416, 'Range Not Satisfiable', { ...ERROR_HEADERS, 'content-range': `bytes */${size}` });
        return;
      }
      range = wanted;
      if (range) {
        status = 206;
        headers['content-range'] = `bytes ${range.start}-${range.end}/${size}`;
        headers['content-length'] = range.end - range.start + 1;
      } else headers['content-length'] = size;
    }

    res.writeHead(status, headers);
    if (req.method === 'HEAD') {
      release();
      res.end();
      return;
    }
    // Size unknown up front: `size` is what had arrived when the cap was passed.
    const onCap = (seen: number) =>
      logger.warn({ clientId: claims.clientId, size: seen, sizeKnown: false, maxBytes }, MEDIA_TOO_LARGE_LOG);
    try {
      await pipeline(stream, bodyOf(size, range, maxBytes, onCap, streamed), res);
    } catch (err) {
      released = true;
      if (aborted) logger.debug({ clientId: claims.clientId }, 'media download aborted by the client');
      else if (!(err instanceof CapExceeded)) {
        logger.warn({ clientId: claims.clientId, err: safeError(err) }, 'media stream failed midway');
      }
      // pipeline has destroyed the platform stream and the response (the client sees a reset).
    } finally {
      // A range served early ends the source unread: release it too.
      if (!stream.destroyed) release();
    }
  };
}

class CapExceeded extends Error {}

interface ByteRange {
  start: number;
  end: number;
}

/**
 * Passes the platform's bytes through, slicing to `range`, enforcing the cap, and
 * checking that a known size is what actually arrives (else the response would be
 * silently short or corrupt a keep-alive connection). Ends the source early once a
 * range is served.
 */
function bodyOf(
  size: number | undefined,
  range: ByteRange | undefined,
  maxBytes: number,
  onCap: (seen: number) => void,
  onBytes?: (n: number) => void,
) {
  return async function* (source: AsyncIterable<Buffer | Uint8Array | string>) {
    let seen = 0;
    for await (const raw of source) {
      const chunk = typeof raw === 'string' ? Buffer.from(raw) : raw;
      const from = seen;
      seen += chunk.length;
      if (seen > maxBytes) {
        onCap(seen);
        throw new CapExceeded();
      }
      if (size !== undefined && seen > size)
        throw new Error('the platform sent more bytes than it announced');
      if (!range) {
        onBytes?.(chunk.length);
        yield chunk;
        continue;
      }
      if (seen <= range.start) continue;
      // Chunks after the range never get here: the loop returns once it is served.
      const part = chunk.subarray(
        Math.max(0, range.start - from),
        Math.min(chunk.length, range.end + 1 - from),
      );
      onBytes?.(part.length);
      yield part;
      if (seen > range.end) return;
    }
    if (size !== undefined && seen !== size)
      throw new Error('the platform sent fewer bytes than it announced');
  };
}

/** The token segment after `mountPath`; a trailing `/<file name>` is ignored. */
function tokenFromPath(path: string, mountPath: string): string | undefined {
  if (!path.startsWith(mountPath)) return undefined;
  const rest = path.slice(mountPath.length);
  const token = rest.split('/', 1)[0];
  return token || undefined;
}

/** Strong ETag, stable per platform file (not per token: every link to one file shares it). */
function etagFor(claims: MediaClaims): string {
  const h = createHash('sha256')
    .update(claims.file.kind)
    .update('\0')
    .update(claims.file.ref)
    .digest('base64url');
  return `"${h.slice(0, 27)}"`;
}

/** If-None-Match uses the weak comparison: `W/` prefixes are ignored. */
function etagMatches(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  if (header.trim() === '*') return true;
  return header.split(',').some((t) => t.trim().replace(/^W\//, '') === etag);
}

/** A Range is honoured unless an If-Range names another version. */
function rangeWanted(req: IncomingMessage, etag: string): boolean {
  const ifRange = req.headers['if-range'];
  return ifRange === undefined || String(ifRange).trim() === etag;
}

/**
 * One `bytes=` range against a known size. Multiple ranges and anything
 * malformed are ignored (a full 200 answer is always allowed).
 */
function parseRange(header: string | undefined, size: number): ByteRange | 'unsatisfiable' | undefined {
  if (!header) return undefined;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (m[2] !== '' && Number(m[2]) < start) return undefined;
  if (start >= size) return 'unsatisfiable';
  return { start, end };
}

/**
 * An error as a log field without secrets: platform SDK messages may quote a URL
 * carrying a token, so URLs are cut out (the logger scrubs known secrets anyway).
 */
function safeError(err: unknown): { name: string; message: string } {
  const name = err instanceof Error ? err.name : 'Error';
  const message = err instanceof Error ? err.message : String(err);
  return { name, message: message.replace(/[a-z][a-z\d+.-]*:\/\/[^\s"'<>]+/gi, '[url]').slice(0, 300) };
}
