/**
 * A complete connector with no platform behind it: tests push customer messages
 * in and read agent messages out. It is also the smallest example of the
 * ChannelConnector contract (see the README's "Write a plugin").
 */
import { Readable } from 'node:stream';
import type {
  AgentMessage,
  AttachmentRef,
  ChannelConnector,
  ClientIdentity,
  CloseReason,
  ConnectionStatus,
  ConnectorContext,
  DeliveryTarget,
  InboundMessage,
  MediaLimits,
  ReceiveResult,
  ResolvedFile,
} from '@kitbridge/core';
import { AttachmentGoneError, PermanentDeliveryError, RetryableDeliveryError } from '@kitbridge/core';

export interface Delivered {
  target: DeliveryTarget;
  message: AgentMessage;
  /** Bytes of each attachment, read through its open(). */
  files: { fileName: string; kind: string; bytes: Buffer }[];
}

const MB = 1024 * 1024;

export class ScriptedConnector implements ChannelConnector {
  readonly name: string = 'scripted';
  mediaLimits: MediaLimits = {
    photo: { maxUploadBytes: 10 * MB },
    video: { maxUploadBytes: 50 * MB },
    audio: { maxUploadBytes: 50 * MB },
    document: { maxUploadBytes: 50 * MB },
  };
  readonly delivered: Delivered[] = [];
  readonly closed: { target: DeliveryTarget; reason: CloseReason; text?: string }[] = [];
  /** Files resolveAttachment serves, by ref. */
  readonly files = new Map<string, { bytes: Buffer; mimeType?: string; fileName?: string }>();
  private ctx?: ConnectorContext;
  private state: ConnectionStatus = { state: 'stopped' };
  private failures: (Error | ((t: DeliveryTarget, m: AgentMessage) => Error | undefined))[] = [];
  private waiters: { n: number; resolve: () => void }[] = [];
  /** Milliseconds each delivery takes (to exercise concurrency). */
  deliveryDelayMs = 0;

  ownsClient(clientId: string): boolean {
    return clientId.startsWith('sc:');
  }

  async start(ctx: ConnectorContext): Promise<void> {
    this.ctx = ctx;
    this.state = { state: 'connected' };
    ctx.setStatus(this.state);
  }

  async stop(): Promise<void> {
    this.state = { state: 'stopped' };
  }

  status(): ConnectionStatus {
    return this.state;
  }

  /** A customer writes: hands the message to core exactly as a plugin would. */
  push(message: InboundMessage): Promise<ReceiveResult> {
    if (!this.ctx) throw new Error('connector not started');
    return this.ctx.receive(message);
  }

  /** What a plugin learned of a customer outside a message (an address, a deep link's utm). */
  update(client: ClientIdentity): Promise<void> {
    if (!this.ctx) throw new Error('connector not started');
    return this.ctx.updateClient(client);
  }

  /** The next deliveries fail with these errors, in order. */
  failNext(...errors: (Error | 'permanent' | 'retry')[]): void {
    for (const e of errors) {
      this.failures.push(
        e === 'permanent'
          ? new PermanentDeliveryError('blocked by the customer')
          : e === 'retry'
            ? new RetryableDeliveryError('rate limited', 10)
            : e,
      );
    }
  }

  async deliver(target: DeliveryTarget, message: AgentMessage): Promise<void> {
    if (this.deliveryDelayMs) await new Promise((r) => setTimeout(r, this.deliveryDelayMs));
    const f = this.failures.shift();
    if (f) throw typeof f === 'function' ? (f(target, message) ?? new Error('failed')) : f;
    const files = [];
    for (const a of message.attachments) {
      const file = await a.open();
      const chunks: Buffer[] = [];
      for await (const c of file.stream) chunks.push(c as Buffer);
      files.push({ fileName: file.fileName, kind: a.kind, bytes: Buffer.concat(chunks) });
    }
    this.delivered.push({ target, message, files });
    this.wake();
  }

  async closeConversation(target: DeliveryTarget, reason: CloseReason, text?: string): Promise<void> {
    this.closed.push({ target, reason, ...(text ? { text } : {}) });
  }

  async resolveAttachment(ref: AttachmentRef): Promise<ResolvedFile> {
    const f = this.files.get(ref.ref);
    if (!f) throw new AttachmentGoneError(`no file ${ref.ref}`);
    return {
      stream: Readable.from([f.bytes]),
      size: f.bytes.length,
      ...(f.mimeType ? { contentType: f.mimeType } : {}),
      ...(f.fileName ? { fileName: f.fileName } : {}),
    };
  }

  /** Resolves once `n` messages have been delivered in total. */
  waitForDeliveries(n: number, timeoutMs = 10_000): Promise<void> {
    if (this.delivered.length >= n) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(
        () => reject(new Error(`only ${this.delivered.length} of ${n} deliveries`)),
        timeoutMs,
      );
      this.waiters.push({
        n,
        resolve: () => {
          clearTimeout(t);
          resolve();
        },
      });
    });
  }

  private wake(): void {
    this.waiters = this.waiters.filter((w) => {
      if (this.delivered.length < w.n) return true;
      w.resolve();
      return false;
    });
  }
}
