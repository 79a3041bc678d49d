/** Serves fixed files over HTTP, so agent attachments open real network streams. */
import { createServer, get, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { OutboundAttachment } from '@kitbridge/core';

/** Serves fixed files over HTTP on 127.0.0.1; must not serve anything but what was added. */
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
