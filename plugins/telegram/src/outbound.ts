/**
 * AgentMessage -> Bot API calls. Text goes first (agent text, then core's
 * notices), split at 4096 characters; then each file, uploaded from a stream of
 * Kit's URL; then locations and contacts. Each message becomes a list of steps,
 * run by core's `sendSteps`, so a retry after a partial failure, a restart or
 * on another replica resumes where it stopped.
 */
import {
  type AgentMessage,
  type FetchedFile,
  type OutboundAttachment,
  splitText,
  transportFileName,
} from '@kitbridge/core';
import { type Api, GrammyError, InputFile } from 'grammy';
import { TEXT_LIMIT } from './limits.js';

/** One Bot API call of a delivery; `signal` is the attempt's deadline, handed to grammY. */
export type Step = (api: Api, signal: AbortSignal) => Promise<unknown>;

/** grammY types its signal after the abort-controller shim; Node's own is what it gets at run time. */
type GrammySignal = Parameters<Api['sendMessage']>[3];
export const grammySignal = (signal: AbortSignal) => signal as unknown as GrammySignal;

/** The calls that deliver `message` to `chatId`, in order. */
export function planMessage(chatId: number, message: AgentMessage): Step[] {
  const steps: Step[] = [];
  const text = [message.text, ...message.notices]
    .filter((t): t is string => !!t && /\S/.test(t))
    .join('\n\n');
  steps.push(...planText(chatId, text));
  for (const a of message.attachments) steps.push((api, signal) => sendAttachment(api, chatId, a, signal));
  for (const l of message.locations) {
    steps.push((api, signal) => api.sendLocation(chatId, l.latitude, l.longitude, {}, grammySignal(signal)));
    if (l.address) steps.push((api, signal) => api.sendMessage(chatId, l.address!, {}, grammySignal(signal)));
  }
  for (const c of message.contacts) {
    const label = [c.name, c.number].filter(Boolean).join(': ');
    if (c.number)
      steps.push((api, signal) =>
        api.sendContact(chatId, c.number!, c.name || c.number!, {}, grammySignal(signal)),
      );
    else if (label) steps.push((api, signal) => api.sendMessage(chatId, label, {}, grammySignal(signal)));
  }
  return steps;
}

/** One sendMessage per piece of the split text. */
export function planText(chatId: number, text: string | undefined): Step[] {
  return text
    ? splitText(text, TEXT_LIMIT).map(
        (piece) => (api: Api, signal: AbortSignal) =>
          api.sendMessage(chatId, piece, {}, grammySignal(signal)),
      )
    : [];
}

/** Which upload method fits a file: voice notes (ogg/opus) go as voice, the rest by kind. */
export function uploadMethod(a: Pick<OutboundAttachment, 'kind' | 'fileName' | 'contentType'>) {
  switch (a.kind) {
    case 'photo':
      return 'sendPhoto';
    case 'video':
      return 'sendVideo';
    case 'audio':
      return /ogg|opus/i.test(a.contentType ?? '') || /\.(ogg|oga|opus)$/i.test(a.fileName)
        ? 'sendVoice'
        : 'sendAudio';
    default:
      return 'sendDocument';
  }
}

async function sendAttachment(
  api: Api,
  chatId: number,
  a: OutboundAttachment,
  signal: AbortSignal,
): Promise<unknown> {
  const method = uploadMethod(a);
  try {
    return await upload(api, method, chatId, a, signal);
  } catch (err) {
    // Telegram rejects some images as photos (dimensions, format): they still go through as files.
    if (method === 'sendPhoto' && err instanceof GrammyError && err.error_code === 400) {
      return upload(api, 'sendDocument', chatId, a, signal);
    }
    throw err;
  }
}

async function upload(
  api: Api,
  method: 'sendPhoto' | 'sendVideo' | 'sendAudio' | 'sendVoice' | 'sendDocument',
  chatId: number,
  a: OutboundAttachment,
  signal: AbortSignal,
): Promise<unknown> {
  // Open before the call so a failed fetch surfaces as itself, not as a broken upload;
  // a retry inside grammy (auto-retry) asks the supplier again and gets a fresh stream.
  let first: FetchedFile | undefined = await a.open();
  const opened = first;
  const file = new InputFile(async () => {
    const f = first ?? (await a.open());
    first = undefined;
    return chunks(f.stream);
    // grammY writes `filename=` unquoted into the part header: core's transport-safe name.
  }, transportFileName(a.fileName));
  try {
    return await api[method](chatId, file, {}, grammySignal(signal));
  } finally {
    if (first) opened.stream.destroy();
  }
}

/**
 * The stream as a bare async iterable. grammy treats any object with a `url`
 * property as a link to fetch, and an http.IncomingMessage has one.
 */
async function* chunks(stream: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  yield* stream;
}
