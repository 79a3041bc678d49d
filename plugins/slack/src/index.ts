/** @kitbridge/slack: the Slack connector for kitbridge (Events API over HTTP or Socket Mode). */

export {
  type AuthorTeams,
  CLIENT_ID_PREFIX,
  clientTeam,
  type EnvelopeTeams,
  formatClientId,
  parseClientId,
} from './client-id.js';
export { DEFAULT_API_URL, type SlackEnv, slackEnvSchema } from './config.js';
export { SlackConnector, type SlackConnectorOptions } from './connector.js';
export { PERMANENT_ERRORS, toDeliveryError } from './errors.js';
export {
  createEventsRoute,
  EVENTS_BODY_LIMIT_BYTES,
  EVENTS_PATH,
  type EventsRouteOptions,
  SIGNATURE_WINDOW_S,
  signatureMatches,
} from './events.js';
export { SIGN_IN_PAGE } from './files.js';
export {
  decodeRef,
  type EventCallback,
  fileItems,
  kindOf,
  type Mapped,
  mapEventCallback,
  mentionsIn,
} from './inbound.js';
export { CHANNEL_RATE, SLACK_MEDIA_LIMITS, TEXT_LIMIT } from './limits.js';
export { decodeEntities, escapeForSlack, mrkdwnToPlain, type NameLookup } from './mrkdwn.js';
export { agentIdentity, type Place } from './outbound.js';
export { ChannelPacer, type PacingOptions } from './pacing.js';
export { slackPlugin } from './plugin.js';
