/**
 * Telling the agent that a reply did not reach the customer. Kit has no event
 * for it, so kitbridge writes into the same conversation as the customer would,
 * with a text that says plainly it is kitbridge speaking. Pure: building the
 * event and its key; the relay decides when and stores it on the inbound leg.
 *
 * Rules the relay keeps: one notice per failure (its key derives from the
 * agent message's event id and the kind of failure, so the inbound dedupe
 * drops a second one); never for a notice (notices travel the inbound leg,
 * whose failures notify nobody); only while the conversation is open (checked
 * when the notice is stored and again just before it is sent: a notice must
 * not reopen a closed conversation).
 */
import { customerEventId } from '../kit/decisions.js';
import type { CustomerEvent } from '../kit/schemas.js';

/** Inbound outbox keys of notices start with this: the worker checks the conversation before sending one. */
export const NOTICE_KEY_PREFIX = 'kitbridge-notice:';

/** What went wrong: the message was not delivered at all, or went with files replaced by links. */
export type NoticeKind = 'undelivered' | 'degraded';

/** The first line of every notice: an agent must never mistake it for the customer. */
export const NOTICE_MARK = '⚠️ kitbridge (automatic notice, not written by the customer)';

const EXCERPT = 80;
const REASON = 300;

/** How an agent recognises their message: its first words, else what it carried. */
export function describeAgentMessage(m: { text?: string; files?: string[] }): string {
  const text = m.text?.replace(/\s+/g, ' ').trim();
  if (text) return `"${text.length > EXCERPT ? `${text.slice(0, EXCERPT - 1)}…` : text}"`;
  if (m.files?.length) return `with ${m.files.map((f) => `"${f}"`).join(', ')}`;
  return '(without text)';
}

export function noticeText(kind: NoticeKind, what: string, why: string): string {
  const reason = why.length > REASON ? `${why.slice(0, REASON - 1)}…` : why;
  return kind === 'undelivered'
    ? `${NOTICE_MARK}: your message ${what} did not reach the customer. Reason: ${reason}`
    : `${NOTICE_MARK}: your message ${what} reached the customer, but not as sent: ${reason}`;
}

/** The notice as a Kit event of this client; the same inputs give the same event id. */
export function noticeEvent(
  clientId: string,
  agentEventId: string,
  kind: NoticeKind,
  text: string,
): { key: string; event: CustomerEvent } {
  const id = customerEventId(clientId, `${NOTICE_KEY_PREFIX}${kind}:${agentEventId}`);
  return {
    key: `${NOTICE_KEY_PREFIX}${id}`,
    event: {
      client_data: { client_id: clientId },
      event_id: id,
      event_type: 'send_message',
      event_data: { message: { message_id: id, text } },
    },
  };
}

/** What the agent is told when files went as links (`replaced`: one "name: why" per file). */
export function degradedReason(replaced: readonly string[]): string {
  const n = replaced.length;
  return `${n === 1 ? 'a file' : `${n} files`} could not be sent as ${n === 1 ? 'a file' : 'files'} (${replaced.join('; ')}); the customer got ${n === 1 ? 'a link' : 'links'} instead`;
}
