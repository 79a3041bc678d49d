/**
 * Client ids of Slack customers: `sl:<team>:<user>`.
 *
 * The user id alone is enough to reply (chat.postMessage to a user id posts
 * into the app's DM with them), so a reply can be routed with an empty store.
 * The team part names whose id the user id is, so that ids from different
 * organisations never collide and one person stays one customer:
 *
 * - Enterprise Grid: the org's id (`E…`). A Grid user has one id in every
 *   workspace of the org, and an org-wide install sees them from any of them;
 *   a workspace id would make one person a different customer per workspace.
 * - Slack Connect users from another organisation: their own team
 *   (`user_team` / `user_profile.team` on the event), not ours. Their user id
 *   was issued by their organisation, and it is the same in every channel they
 *   share with us, whichever of our workspaces hosts it.
 * - Otherwise: the workspace (the event's `team`, else the envelope's `team_id`).
 *
 * All of it comes from the event itself: no Slack API call before the ack.
 */

export const CLIENT_ID_PREFIX = 'sl:';

const TEAM = /^[TE][A-Z0-9]{2,30}$/;
const USER = /^[UW][A-Z0-9]{2,30}$/;

export function formatClientId(team: string, user: string): string {
  return `${CLIENT_ID_PREFIX}${team}:${user}`;
}

/** The team and user of an `sl:` client id; undefined when it is not one of ours or malformed. */
export function parseClientId(clientId: string): { team: string; user: string } | undefined {
  const m = /^sl:([^:]+):([^:]+)$/.exec(clientId);
  if (!m || !TEAM.test(m[1]!) || !USER.test(m[2]!)) return undefined;
  return { team: m[1]!, user: m[2]! };
}

/** What the envelope says about where an event happened (Events API and Socket Mode alike). */
export interface EnvelopeTeams {
  team_id?: string | null;
  enterprise_id?: string | null;
  context_team_id?: string | null;
  context_enterprise_id?: string | null;
  is_ext_shared_channel?: boolean;
  authorizations?: { team_id?: string | null; enterprise_id?: string | null }[];
}

/** What a message event says about its author's team. */
export interface AuthorTeams {
  team?: string;
  user_team?: string;
  source_team?: string;
  user_profile?: { team?: string };
}

/**
 * The team part of the author's client id (see the module comment). `ownTeams`
 * are the workspaces known to be ours besides the envelope's (auth.test's team).
 */
export function clientTeam(
  envelope: EnvelopeTeams,
  author: AuthorTeams,
  ownTeams: readonly string[] = [],
): string | undefined {
  const enterprise = envelope.enterprise_id || envelope.context_enterprise_id || undefined;
  const ours = new Set<string>(
    [
      envelope.team_id,
      envelope.context_team_id,
      ...(Array.isArray(envelope.authorizations) ? envelope.authorizations : []).map((a) => a?.team_id),
      ...ownTeams,
    ].filter((t): t is string => typeof t === 'string' && t.length > 0),
  );
  const home = author.user_team || author.user_profile?.team || undefined;
  // Another organisation's user (Slack Connect). Under Grid, a home team we do not know is only
  // taken as foreign in a channel shared outside the org: inside it, every team is the org's.
  const foreign = home !== undefined && !ours.has(home) && (!enterprise || envelope.is_ext_shared_channel);
  if (foreign && TEAM.test(home)) return home;
  if (enterprise && TEAM.test(enterprise)) return enterprise;
  const team = author.team || envelope.team_id || envelope.context_team_id || undefined;
  return team && TEAM.test(team) ? team : undefined;
}
