/**
 * The one HTTP server of a kitbridge process and its tiny router.
 *
 * Why node:http and not fastify: the routes are few and fixed, grammy's
 * `webhookCallback(bot, 'http')` and Bolt's receivers take node's req/res as they
 * are, and the hot path (Telegram webhook -> outbox) must add as little as
 * possible over a bare node:http relay (see the benchmark).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Logger, quote } from '../logger.js';

export type RouteHandler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export class Router {
  private readonly exact = new Map<string, RouteHandler>();
  private readonly prefixes: { method: string; prefix: string; handler: RouteHandler }[] = [];

  /** `path` ending in `/*` matches everything below it. */
  add(method: string, path: string, handler: RouteHandler): void {
    const m = method.toUpperCase();
    if (path.endsWith('/*')) this.prefixes.push({ method: m, prefix: path.slice(0, -1), handler });
    else {
      const key = `${m} ${path}`;
      if (this.exact.has(key)) throw new Error(`route ${key} is already taken`);
      this.exact.set(key, handler);
    }
  }

  match(method: string, path: string): RouteHandler | undefined {
    const m = method === 'HEAD' ? 'GET' : method;
    const hit = this.exact.get(`${m} ${path}`);
    if (hit) return hit;
    return this.prefixes.find((p) => p.method === m && path.startsWith(p.prefix))?.handler;
  }

  /** Whether any method is routed at this path (to answer 405 rather than 404). */
  knows(path: string): boolean {
    for (const k of this.exact.keys()) if (k.slice(k.indexOf(' ') + 1) === path) return true;
    return this.prefixes.some((p) => path.startsWith(p.prefix));
  }
}

export interface HttpServerOptions {
  host: string;
  port: number;
  logger: Logger;
}

/** Retry-After of the 503 for a path nobody routes yet while the bridge starts, seconds. */
export const STARTING_RETRY_AFTER_S = 5;

export class HttpServer {
  readonly router = new Router();
  private server?: Server;
  /**
   * Until {@link HttpServer.started}: the server listens before the connector
   * has added its routes, so a path nobody routes yet may be one that is about
   * to exist (a platform's webhook right after a restart). It gets 503 with
   * Retry-After, which platforms retry, rather than a 404, which they drop.
   */
  private starting = true;

  constructor(private readonly opts: HttpServerOptions) {}

  /** Every route is in place: an unknown path is a 404 from now on. */
  started(): void {
    this.starting = false;
  }

  async listen(): Promise<AddressInfo> {
    const server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => this.handle(req, res));
    // Slow-loris guard; webhooks are small and quick.
    server.requestTimeout = 60_000;
    server.headersTimeout = 20_000;
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port, this.opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return server.address() as AddressInfo;
  }

  /** Stops accepting connections; waits for open requests up to `graceMs`. */
  async close(graceMs = 5_000): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    const done = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    const timer = setTimeout(() => server.closeAllConnections(), graceMs);
    await done;
    clearTimeout(timer);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = pathOf(req.url);
    const handler = this.router.match(req.method ?? 'GET', path);
    if (!handler) {
      if (this.starting && !this.router.knows(path)) {
        req.resume();
        sendText(res, 503, 'Starting', { 'retry-after': String(STARTING_RETRY_AFTER_S) });
        return;
      }
      sendText(
        res,
        this.router.knows(path) ? 405 : 404,
        this.router.knows(path) ? 'Method Not Allowed' : 'Not Found',
      );
      return;
    }
    Promise.resolve()
      .then(() => handler(req, res))
      .catch((err: unknown) => {
        if (!(err instanceof HttpError) && clientGone(req)) {
          // The client hung up mid-body: normal on the internet, nothing to answer.
          this.opts.logger.debug({ path: quote(path) }, 'request aborted by the client');
          res.destroy();
          return;
        }
        const status = err instanceof HttpError ? err.status : 500;
        if (status >= 500)
          this.opts.logger.error({ err: errorSummary(err), path: quote(path) }, 'request failed');
        if (!res.headersSent)
          sendText(res, status, err instanceof HttpError ? err.message : 'Internal Server Error');
        else res.destroy();
      });
  }
}

/** True when the request's connection is gone before its body was read. */
function clientGone(req: IncomingMessage): boolean {
  return !req.complete && (req.destroyed || req.socket.destroyed);
}

export function pathOf(url: string | undefined): string {
  const u = url ?? '/';
  const q = u.indexOf('?');
  return q === -1 ? u : u.slice(0, q);
}

export function sendText(
  res: ServerResponse,
  status: number,
  body: string,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    ...headers,
  });
  res.end(body);
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const s = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(s) });
  res.end(s);
}

/**
 * Reads a request body up to `limit` bytes. Past it: HttpError 413 and the rest
 * is not read (Content-Length is checked first, so a large upload is refused at once).
 */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    req.resume();
    throw new HttpError(413, `body larger than ${limit} bytes`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      req.resume();
      throw new HttpError(413, `body larger than ${limit} bytes`);
    }
    chunks.push(chunk);
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
}

/** An error reduced to what is safe and useful in a log line. */
export function errorSummary(err: unknown): { name: string; message: string } {
  if (err instanceof Error) return { name: err.name, message: err.message };
  return { name: 'Error', message: String(err) };
}
