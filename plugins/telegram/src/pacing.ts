/**
 * Paces outgoing messages below Telegram's flood limits (about one message per
 * second per chat, about 30 per second overall; bots with paid broadcasts may
 * send up to 1000 per second overall) so bursts are smoothed here rather than
 * answered with 429s. An API transformer: every send* call reserves a slot in its
 * chat's schedule and in the global one, then waits for it. Slots are reserved
 * synchronously in call order, so messages to one chat keep their order.
 */
import { sleep } from '@kitbridge/core';
import type { Transformer } from 'grammy';

export interface PacingOptions {
  /** Minimum gap between two messages to one chat, ms. Default 1000. */
  perChatMs?: number;
  /** Minimum gap between any two messages, ms. Default 34 (about 30/s). */
  globalMs?: number;
}

/** Both gaps 0: every call goes straight through, nothing is scheduled (benchmarks, test servers). */
export const NO_PACING: Readonly<Required<PacingOptions>> = Object.freeze({ perChatMs: 0, globalMs: 0 });

/** Telegram's global flood limit for a bot without paid broadcasts, messages per second. */
export const DEFAULT_MAX_PER_SECOND = 30;
/** The most Telegram lets a bot with paid broadcasts send, messages per second. */
export const MAX_PER_SECOND_LIMIT = 1000;

/**
 * The pacing for TELEGRAM_MAX_PER_SECOND: at most `maxPerSecond` messages a
 * second overall, one a second per chat. 0 means no pacing at all
 * ({@link NO_PACING}), for benchmarks and self-hosted test servers only: against
 * the real Bot API a burst is then answered with 429s.
 */
export function pacingFor(maxPerSecond: number): PacingOptions {
  if (maxPerSecond === 0) return NO_PACING;
  return { perChatMs: 1000, globalMs: 1000 / maxPerSecond };
}

/** Calls that do not post a message to the chat and so are not paced. */
const UNPACED = new Set(['sendChatAction']);

export function pacing(opts: PacingOptions = {}): Transformer {
  const perChatMs = opts.perChatMs ?? 1000;
  const globalMs = opts.globalMs ?? 34;
  if (perChatMs <= 0 && globalMs <= 0)
    return (prev, method, payload, signal) => prev(method, payload, signal);
  const chatNext = new Map<string, number>();
  /** Send times already given out, ascending; past ones are pruned. */
  const reserved: number[] = [];

  /** The earliest time at or after `t` at least `globalMs` away from every reserved send. */
  const reserveGlobal = (t: number, now: number): number => {
    while (reserved.length && reserved[0]! < now - globalMs) reserved.shift();
    let slot = t;
    for (const r of reserved) if (Math.abs(r - slot) < globalMs) slot = r + globalMs;
    const at = reserved.findIndex((r) => r > slot);
    reserved.splice(at < 0 ? reserved.length : at, 0, slot);
    return slot;
  };

  return async (prev, method, payload, signal) => {
    const chat = (payload as { chat_id?: unknown } | undefined)?.chat_id;
    if (!method.startsWith('send') || UNPACED.has(method) || chat === undefined)
      return prev(method, payload, signal);
    const now = Date.now();
    const key = String(chat);
    const slot = reserveGlobal(Math.max(now, chatNext.get(key) ?? 0), now);
    // From the final slot, so the chat's next message cannot overtake this one.
    chatNext.set(key, slot + perChatMs);
    if (chatNext.size > 10_000) for (const [k, t] of chatNext) if (t < now) chatNext.delete(k);
    if (slot > now) await sleep(slot - now, signal as AbortSignal | undefined);
    return prev(method, payload, signal);
  };
}
