/**
 * AgentMessage -> the message POSTs of one delivery. Text first (the agent's,
 * then core's notices), split at 2000 characters on paragraph, line, sentence
 * or word boundaries (core's splitText); then each file, one message each,
 * uploaded from the stream of Kit's URL within the target's upload limit (a
 * file over it goes as a line with its link instead); then locations and
 * contacts as text. Run by core's sendSteps: a retry, a restart or another
 * replica resumes after the last POST that went out.
 *
 * Every POST carries a `nonce` derived from the delivery's key (Kit's event id)
 * and the step, with `enforce_nonce`: when @discordjs/rest retries a POST whose
 * answer was lost (a timeout), or an attempt is retried within Discord's nonce
 * window, Discord returns the message it already made instead of a second one.
 */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { type AgentMessage, type OutboundAttachment, type SendStep, splitText } from '@kitbridge/core';
import { NONCE_LIMIT, TEXT_LIMIT } from './limits.js';

/** A nonce of at most 25 characters, the same for every attempt of one step. */
export function nonceFor(key: string, step: number | string): string {
  return createHash('sha256').update(`${key}\u0000${step}`).digest('base64url').slice(0, NONCE_LIMIT);
}

export interface UploadFile {
  name: string;
  data: Buffer;
  contentType?: string;
}

/** One message POST: text or one file. */
export interface OutPayload {
  content?: string;
  file?: UploadFile;
  nonce: string;
}

export interface PlanContext {
  /** Posts one message; resolves with Discord's message (its `id`). */
  post(payload: OutPayload, signal: AbortSignal): Promise<{ id: string }>;
  /** Largest file that may be uploaded to this target, in bytes. */
  maxUploadBytes: number;
  /** Discord answered 413 / 40005 for a file: the upload limit was smaller than thought. */
  isTooLarge(err: unknown): boolean;
}

/** The text of a message: the agent's text and core's notices, blank parts left out. */
export function messageText(message: Pick<AgentMessage, 'text' | 'notices'>): string {
  return [message.text, ...message.notices].filter((t): t is string => !!t && /\S/.test(t)).join('\n\n');
}

/** The POSTs that deliver `message`, in order; `key` makes the nonces (Kit's event id). */
export function planMessage(message: AgentMessage, key: string, ctx: PlanContext): SendStep[] {
  const steps: SendStep[] = [];
  let n = 0;
  const next = () => n++;
  for (const piece of splitText(messageText(message), TEXT_LIMIT)) {
    const nonce = nonceFor(key, next());
    steps.push((signal) => ctx.post({ content: piece, nonce }, signal));
  }
  for (const a of message.attachments) {
    const i = next();
    steps.push((signal) => sendFile(a, key, i, ctx, signal));
  }
  for (const l of message.locations) {
    const nonce = nonceFor(key, next());
    const where = `${l.latitude},${l.longitude}`;
    const content = `Location: ${l.address ? `${l.address} ` : ''}https://www.google.com/maps?q=${where}`;
    steps.push((signal) => ctx.post({ content: content.slice(0, TEXT_LIMIT), nonce }, signal));
  }
  for (const c of message.contacts) {
    const label = [c.name, c.number].filter(Boolean).join(', ');
    if (!label) continue;
    const nonce = nonceFor(key, next());
    steps.push((signal) => ctx.post({ content: `Contact: ${label}`.slice(0, TEXT_LIMIT), nonce }, signal));
  }
  return steps;
}

/** One text message per piece of `text` (a closing text). */
export function planText(text: string, key: string, ctx: PlanContext): SendStep[] {
  return splitText(text, TEXT_LIMIT).map((piece, i) => {
    const nonce = nonceFor(key, i);
    return (signal: AbortSignal) => ctx.post({ content: piece, nonce }, signal);
  });
}

/** The line a customer gets for a file that cannot be uploaded here. */
export function tooLargeNotice(a: Pick<OutboundAttachment, 'fileName' | 'url'>): string {
  return `${a.fileName} (too large to send here): ${a.url}`.slice(0, TEXT_LIMIT);
}

async function sendFile(
  a: OutboundAttachment,
  key: string,
  step: number,
  ctx: PlanContext,
  signal: AbortSignal,
): Promise<{ id: string }> {
  const notice = () =>
    ctx.post({ content: tooLargeNotice(a), nonce: nonceFor(key, `${step}:notice`) }, signal);
  if (a.size !== undefined && a.size > ctx.maxUploadBytes) return notice();
  const f = await a.open();
  const data = await readCapped(f.stream, ctx.maxUploadBytes, signal);
  if (data === 'too-large') return notice();
  const contentType = f.contentType ?? a.contentType;
  const file: UploadFile = { name: a.fileName, data, ...(contentType ? { contentType } : {}) };
  try {
    return await ctx.post({ file, nonce: nonceFor(key, step) }, signal);
  } catch (err) {
    if (ctx.isTooLarge(err)) return notice();
    throw err;
  }
}

/**
 * Reads a stream into memory, up to `cap` bytes (@discordjs/rest sends files
 * from buffers); 'too-large' (and the stream destroyed) when it is longer.
 */
export async function readCapped(
  stream: Readable,
  cap: number,
  signal: AbortSignal,
): Promise<Buffer | 'too-large'> {
  const chunks: Buffer[] = [];
  let size = 0;
  const onAbort = () => stream.destroy(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    signal.throwIfAborted();
    for await (const chunk of stream) {
      const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
      size += b.length;
      if (size > cap) {
        stream.destroy();
        return 'too-large';
      }
      chunks.push(b);
    }
    return Buffer.concat(chunks, size);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}
