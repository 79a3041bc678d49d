/**
 * Resumable deliveries: one agent message as a list of platform sends, each
 * recorded in the delivery's durable progress as soon as it is done, so that a
 * retry (in this process, after a restart, or on another replica) goes on after
 * the last send that went out instead of repeating it. Every plugin's `deliver`
 * that makes more than one call uses this.
 */
import type { DeliveryReceipt, DeliveryWork, JsonObject } from '../connector.js';

/**
 * One platform send. Resolves with the platform's id of what it sent, when it has
 * one. Hand `signal` to the platform call: it aborts at the attempt's deadline.
 */
export type SendStep = (signal: AbortSignal) => Promise<unknown>;

/** The shape kept in the store: how many steps are done and the ids they returned. */
interface StepProgress extends JsonObject {
  sent: number;
  ids: string[];
}

/**
 * Runs `steps` in order, skipping those an earlier attempt recorded. Progress is
 * saved after every step but the last (the outbox's completion records that one),
 * so a kill between two sends repeats nothing. Must not be called twice at once
 * for one delivery (the outbox's lease guarantees it).
 *
 * A step's result counts as a platform id when it is a string or a number, or an
 * object with `message_id`, `id` or `ts` (Telegram, Discord, Slack).
 */
export async function sendSteps(steps: readonly SendStep[], work?: DeliveryWork): Promise<DeliveryReceipt> {
  const done = readProgress(work?.progress.done);
  let sent = Math.min(done.sent, steps.length);
  const ids = [...done.ids];
  // Without work (direct calls, tests): a signal of its own, never shared across deliveries.
  const signal = work?.signal ?? new AbortController().signal;
  while (sent < steps.length) {
    signal.throwIfAborted();
    const result = await steps[sent]!(signal);
    sent++;
    const id = platformId(result);
    if (id !== undefined) ids.push(id);
    if (work && sent < steps.length) await work.progress.save({ sent, ids } satisfies StepProgress);
  }
  return ids.length ? { platformMessageIds: ids } : {};
}

function readProgress(p: JsonObject | undefined): StepProgress {
  const sent = typeof p?.sent === 'number' && Number.isSafeInteger(p.sent) && p.sent > 0 ? p.sent : 0;
  const ids = Array.isArray(p?.ids) ? p.ids.filter((i): i is string => typeof i === 'string') : [];
  return { sent, ids };
}

function platformId(result: unknown): string | undefined {
  if (typeof result === 'string') return result;
  if (typeof result === 'number') return String(result);
  if (result && typeof result === 'object') {
    const r = result as { message_id?: unknown; id?: unknown; ts?: unknown };
    const v = r.message_id ?? r.id ?? r.ts;
    if (typeof v === 'string' || typeof v === 'number') return String(v);
  }
  return undefined;
}
