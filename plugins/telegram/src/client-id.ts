/**
 * Client ids of Telegram customers: `tg:<chat_id>`. The chat id alone is enough
 * to reply (private chat id = user id; groups have negative ids), so a reply can
 * be routed even when the store has no record of the client.
 */

export const CLIENT_ID_PREFIX = 'tg:';

/** `tg:<chat_id>` for a private chat or (with groups allowed) a group. */
export function formatClientId(chatId: number): string {
  return `${CLIENT_ID_PREFIX}${chatId}`;
}

/** The chat id in a `tg:` client id; undefined when it is not one of ours or malformed. */
export function parseClientId(clientId: string): number | undefined {
  const m = /^tg:(-?\d{1,16})$/.exec(clientId);
  if (!m) return undefined;
  const id = Number(m[1]);
  return Number.isSafeInteger(id) && id !== 0 ? id : undefined;
}
