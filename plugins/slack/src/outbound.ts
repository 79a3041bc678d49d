/**
 * AgentMessage -> Slack calls, as a list of steps for core's `sendSteps`: the
 * text (agent text, then core's notices) split at {@link TEXT_LIMIT} into
 * chat.postMessage calls, then each file (three calls: files.getUploadURLExternal,
 * the upload POST, files.completeUploadExternal into the DM or thread), then
 * locations and contacts as text. A retry after a partial failure, a restart or
 * on another replica resumes after the last step that went out.
 *
 * The agent's name: core prefixes the text with `Name: ` when
 * KITBRIDGE_SHOW_AGENT_NAME is on. When the app has `chat:write.customize`,
 * that prefix becomes the message's `username` instead (Slack shows the agent
 * as the sender), so it is never shown twice; without the scope the prefix
 * stays, as on every other platform. With the setting off there is no prefix
 * and the app posts under its own name.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  type AgentMessage,
  type FetchedFile,
  type OutboundAttachment,
  RetryableDeliveryError,
  type SendStep,
  splitText,
} from '@kitbridge/core';
import type { WebClient } from '@slack/web-api';
import { type Dispatcher, request } from 'undici';
import { TEXT_LIMIT } from './limits.js';
import { escapeForSlack } from './mrkdwn.js';
import type { ChannelPacer } from './pacing.js';
import { withSignal } from './web.js';

/** Where a message goes: a DM (`D…`, or a user id) or the support channel and a thread. */
export interface Place {
  channel: string;
  thread_ts?: string;
}

export interface OutboundDeps {
  web: WebClient;
  pacer: ChannelPacer;
  /** Whether the app may set `username` (chat:write.customize). */
  canCustomize(): boolean;
  /** Dispatcher for the upload POSTs. */
  dispatcher(): Dispatcher;
  /** Told of a 429 from the upload URL (the Web API's are counted from the WebClient's event). */
  rateLimited?(waitMs: number): void;
}

/** The agent's name as core wrote it in front of the text, when it did. */
export function agentIdentity(
  message: Pick<AgentMessage, 'text' | 'sender'>,
  customize: boolean,
): { text: string | undefined; username?: string } {
  const name = message.sender?.displayName?.trim();
  const text = message.text;
  if (customize && name && text?.startsWith(`${name}: `)) {
    return { text: text.slice(name.length + 2), username: name.slice(0, 80) };
  }
  return { text };
}

export function planMessage(deps: OutboundDeps, place: Place, message: AgentMessage): SendStep[] {
  const { text, username } = agentIdentity(message, deps.canCustomize());
  const body = [text, ...message.notices].filter((t): t is string => !!t && /\S/.test(t)).join('\n\n');
  const steps: SendStep[] = planText(deps, place, body, username);
  for (const a of message.attachments) steps.push((signal) => uploadFile(deps, place, a, signal));
  for (const l of message.locations) {
    const map = `https://www.google.com/maps?q=${l.latitude},${l.longitude}`;
    steps.push(...planText(deps, place, l.address ? `📍 ${l.address}\n${map}` : `📍 ${map}`, username));
  }
  for (const c of message.contacts) {
    const label = [c.name, c.number].filter(Boolean).join(': ');
    if (label) steps.push(...planText(deps, place, `👤 ${label}`, username));
  }
  return steps;
}

/** One chat.postMessage per piece of the split text; each piece escaped for Slack. */
export function planText(
  deps: OutboundDeps,
  place: Place,
  text: string | undefined,
  username?: string,
): SendStep[] {
  if (!text || !/\S/.test(text)) return [];
  return splitText(text, TEXT_LIMIT).map((piece) => async (signal: AbortSignal) => {
    await deps.pacer.take(place.channel, signal);
    const r = await withSignal(signal, () =>
      deps.web.chat.postMessage({
        channel: place.channel,
        text: escapeForSlack(piece),
        ...(place.thread_ts ? { thread_ts: place.thread_ts } : {}),
        ...(username ? { username } : {}),
      }),
    );
    return { ts: r.ts };
  });
}

/**
 * One file: its upload URL for the exact length, the bytes streamed in one POST
 * (never the SDK's uploadV2, which reads the whole file into memory), then the
 * share into the DM or thread. A file of unknown size is spooled to a
 * temporary file first, to learn the length without holding it in memory.
 */
async function uploadFile(
  deps: OutboundDeps,
  place: Place,
  a: OutboundAttachment,
  signal: AbortSignal,
): Promise<{ id: string }> {
  const file: FetchedFile = await a.open();
  let spool: string | undefined;
  let stream: Readable = file.stream;
  try {
    let size = file.size ?? a.size;
    if (size === undefined) {
      spool = await mkdtemp(join(tmpdir(), 'kitbridge-slack-'));
      const path = join(spool, 'upload');
      await pipeline(file.stream, createWriteStream(path), { signal });
      size = (await stat(path)).size;
      stream = createReadStream(path);
    }
    const name = a.fileName || file.fileName || 'file';
    const target = await withSignal(signal, () =>
      deps.web.files.getUploadURLExternal({ filename: name, length: size! }),
    );
    if (!target.upload_url || !target.file_id) throw new Error('Slack gave no upload URL');
    const res = await request(target.upload_url, {
      method: 'POST',
      body: stream,
      headers: {
        'content-type': file.contentType || a.contentType || 'application/octet-stream',
        'content-length': String(size),
      },
      signal,
      dispatcher: deps.dispatcher(),
    });
    const answer = (await res.body.text()).slice(0, 200);
    if (res.statusCode === 429) {
      const after = Number(res.headers['retry-after']);
      const waitMs = Number.isFinite(after) && after > 0 ? after * 1000 : 1_000;
      deps.rateLimited?.(waitMs);
      throw new RetryableDeliveryError('Slack rate limit (upload)', waitMs);
    }
    if (res.statusCode < 200 || res.statusCode >= 300) {
      throw new Error(
        `Slack refused the upload: HTTP ${res.statusCode}${answer.startsWith('<') ? '' : ` ${answer}`}`,
      );
    }
    await deps.pacer.take(place.channel, signal);
    await withSignal(signal, () =>
      deps.web.files.completeUploadExternal({
        files: [{ id: target.file_id!, title: name }],
        channel_id: place.channel,
        ...(place.thread_ts ? { thread_ts: place.thread_ts } : {}),
      }),
    );
    return { id: target.file_id };
  } finally {
    file.stream.destroy();
    stream.destroy();
    if (spool) await rm(spool, { recursive: true, force: true }).catch(() => {});
  }
}
