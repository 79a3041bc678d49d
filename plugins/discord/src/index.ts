/** @kitbridge/discord: the Discord connector for kitbridge, on discord.js. */

export {
  ChannelBook,
  type ChannelEntry,
  cursorKey,
  INDEX_KEY,
  memoryCheckpoints,
  snowflakeTime,
} from './checkpoints.js';
export {
  type DiscordClient,
  DM_PREFIX,
  formatDmClientId,
  formatSupportClientId,
  parseClientId,
  SUPPORT_PREFIX,
} from './client-id.js';
export {
  botIdOfToken,
  DEFAULT_API_URL,
  DEFAULT_CDN_URL,
  type DiscordEnv,
  discordEnvSchema,
} from './config.js';
export { DiscordConnector, type DiscordConnectorOptions } from './connector.js';
export { PERMANENT_CODES, toDeliveryError } from './errors.js';
export { intentRefused, TOKEN_REJECTED } from './gateway.js';
export {
  attachmentKind,
  attachmentRef,
  avatarRef,
  displayName,
  kitMessageId,
  mapContent,
  parseRef,
  type RawMessage,
  readableContent,
} from './inbound.js';
export {
  DEFAULT_UPLOAD_BYTES,
  Intents,
  intentsFor,
  invitePermissions,
  inviteUrl,
  mediaLimitsOf,
  TEXT_LIMIT,
  uploadLimitForTier,
} from './limits.js';
export { nonceFor, planMessage, planText } from './outbound.js';
export { discordPlugin } from './plugin.js';
export { discordRestEntry, newRestAgent } from './rest-agent.js';
export { threadName, userOfThreadName } from './threads.js';
