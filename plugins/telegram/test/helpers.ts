/** A hand-written ConnectorContext and a local file server: the connector's surroundings in tests. */
import { createServer, get, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  type AgentMessage,
  type ClientIdentity,
  type ConnectionStatus,
  type ConnectorContext,
  HttpServer,
  type InboundMessage,
  type OutboundAttachment,
  type ReceiveResult,
  type RouteHandler,
  type Router,
  silentLogger,
} from '@kitbridge/core';

/** Collects what the connector hands to core; `failNext` makes receive reject. */
export class TestContext {
  readonly received: InboundMessage[] = [];
  /** Every receive call, including rejected ones. */
  readonly attempts: InboundMessage[] = [];
  readonly statuses: ConnectionStatus[] = [];
  /** Every updateClient call. */
  readonly updates: ClientIdentity[] = [];
  readonly routes = new Map<string, RouteHandler>();
  private failures = 0;
  private readonly seen = new Set<string>();
  private waiters: (() => void)[] = [];
  readonly abort = new AbortController();

  constructor(
    readonly publicUrl = 'http://127.0.0.1:9',
    private readonly router?: Router,
  ) {}

  /** The next `n` receive calls reject, as when the store is down. */
  failNext(n: number): void {
    this.failures += n;
  }

  get ctx(): ConnectorContext {
    return {
      receive: (m) => this.receive(m),
      updateClient: async (c) => {
        this.updates.push(c);
        this.notify();
      },
      setStatus: (s) => {
        this.statuses.push(s);
        this.notify();
      },
      route: (method, path, handler) => {
        this.routes.set(`${method} ${path}`, handler);
        this.router?.add(method, path, handler);
      },
      publicUrl: this.publicUrl,
      logger: silentLogger,
      signal: this.abort.signal,
    };
  }

  private async receive(m: InboundMessage): Promise<ReceiveResult> {
    this.attempts.push(m);
    if (this.failures > 0) {
      this.failures--;
      this.notify();
      throw new Error('store unavailable');
    }
    const key = `${m.client.clientId}/${m.messageId}`;
    const dup = this.seen.has(key);
    this.seen.add(key);
    if (!dup) this.received.push(m);
    this.notify();
    return dup ? 'duplicate' : 'accepted';
  }

  /** Waits until `check` holds (checked after every receive and status change). */
  until(check: () => boolean, timeoutMs = 5_000, what = 'condition'): Promise<void> {
    return new Promise((resolve, reject) => {
      if (check()) return resolve();
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeoutMs);
      const w = () => {
        if (!check()) return;
        clearTimeout(timer);
        this.waiters = this.waiters.filter((x) => x !== w);
        resolve();
      };
      this.waiters.push(w);
    });
  }

  waitForMessages(n: number, timeoutMs?: number): Promise<void> {
    return this.until(
      () => this.received.length >= n,
      timeoutMs,
      `${n} messages (have ${this.received.length})`,
    );
  }

  get state(): ConnectionStatus['state'] | undefined {
    return this.statuses.at(-1)?.state;
  }

  private notify(): void {
    for (const w of [...this.waiters]) w();
  }
}

/** core's own HTTP server on 127.0.0.1:0 (for webhook mode), and a context whose routes land on it. */
export async function webhookHost(): Promise<{ tc: TestContext; url: string; close: () => Promise<void> }> {
  const server = new HttpServer({ host: '127.0.0.1', port: 0, logger: silentLogger });
  const addr = await server.listen();
  const url = `http://127.0.0.1:${addr.port}`;
  return { tc: new TestContext(url, server.router), url, close: () => server.close(0) };
}

/** Serves fixed files over HTTP, so attachments open real network streams. */
export class FileServer {
  private server?: Server;
  private readonly files = new Map<string, { bytes: Buffer; type: string }>();
  url = '';

  add(path: string, bytes: Buffer, type = 'application/octet-stream'): string {
    this.files.set(path, { bytes, type });
    return `${this.url}${path}`;
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const f = this.files.get(req.url ?? '');
      if (!f) return res.writeHead(404).end();
      res.writeHead(200, { 'content-type': f.type, 'content-length': f.bytes.length }).end(f.bytes);
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async close(): Promise<void> {
    const s = this.server;
    if (!s) return;
    await new Promise<void>((r) => {
      s.close(() => r());
      s.closeAllConnections();
    });
  }

  /** An OutboundAttachment whose open() streams the file over HTTP. */
  attachment(
    path: string,
    kind: OutboundAttachment['kind'],
    fileName: string,
    bytes: Buffer,
    type?: string,
  ): OutboundAttachment {
    const url = this.add(path, bytes, type);
    return {
      kind,
      fileName,
      url,
      size: bytes.length,
      ...(type ? { contentType: type } : {}),
      open: () =>
        new Promise((resolve, reject) => {
          get(url, (res) => {
            if (res.statusCode !== 200) return reject(new Error(`HTTP ${res.statusCode}`));
            resolve({ stream: res, size: bytes.length, fileName, ...(type ? { contentType: type } : {}) });
          }).on('error', reject);
        }),
    };
  }
}

export function agentMessage(fields: Partial<AgentMessage> = {}): AgentMessage {
  return {
    eventId: `ev-${Math.random().toString(36).slice(2)}`,
    attachments: [],
    locations: [],
    contacts: [],
    notices: [],
    ...fields,
  };
}
