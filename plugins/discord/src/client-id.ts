/**
 * Client ids of Discord customers (kit-protocol.md §6), self-describing so a
 * reply can be routed even when the store has no record of the client:
 *
 * - `dc:<user_id>`: the customer's DMs with the bot. The user id is enough to
 *   reopen the DM channel (`POST /users/@me/channels`).
 * - `dcs:<guild_id>:<user_id>`: the same person in the support channel of a
 *   server. A separate client (its own conversation in Kit) from their DMs; the
 *   agent's replies go to the customer's private thread, found again from the
 *   user id (the thread's name ends with it) when the store lost its address.
 */

export const DM_PREFIX = 'dc:';
export const SUPPORT_PREFIX = 'dcs:';

export type DiscordClient =
  | { kind: 'dm'; userId: string }
  | { kind: 'support'; guildId: string; userId: string };

const ID = '(\\d{17,20})';
const DM = new RegExp(`^dc:${ID}$`);
const SUPPORT = new RegExp(`^dcs:${ID}:${ID}$`);

export function formatDmClientId(userId: string): string {
  return `${DM_PREFIX}${userId}`;
}

export function formatSupportClientId(guildId: string, userId: string): string {
  return `${SUPPORT_PREFIX}${guildId}:${userId}`;
}

/** True for both prefixes (no validation of the rest: `ownsClient` is by prefix). */
export function hasDiscordPrefix(clientId: string): boolean {
  return clientId.startsWith(DM_PREFIX) || clientId.startsWith(SUPPORT_PREFIX);
}

/** What a client id points at; undefined when it is not one of ours or malformed. */
export function parseClientId(clientId: string): DiscordClient | undefined {
  const dm = DM.exec(clientId);
  if (dm) return { kind: 'dm', userId: dm[1]! };
  const s = SUPPORT.exec(clientId);
  if (s) return { kind: 'support', guildId: s[1]!, userId: s[2]! };
  return undefined;
}
