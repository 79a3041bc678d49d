/** @kitbridge/telegram: the Telegram connector for kitbridge, on grammy. */

export { CLIENT_ID_PREFIX, formatClientId, parseClientId } from './client-id.js';
export { DEFAULT_API_ROOT, type TelegramEnv, telegramEnvSchema } from './config.js';
export { TelegramConnector, type TelegramConnectorOptions } from './connector.js';
export {
  type MappedUpdate,
  mapMessage,
  mapUpdate,
  parseStart,
  parseStartPayload,
  type Utm,
} from './inbound.js';
export {
  CAPTION_LIMIT,
  CLOUD_DOWNLOAD_LIMIT_BYTES,
  SELF_HOSTED_MEDIA_LIMITS,
  TELEGRAM_MEDIA_LIMITS,
  TEXT_LIMIT,
} from './limits.js';
export { DEFAULT_MAX_PER_SECOND, NO_PACING, type PacingOptions, pacing, pacingFor } from './pacing.js';
export { telegramPlugin } from './plugin.js';
export type { PollingOptions } from './polling.js';
export { checkUpdate } from './update-schema.js';
export { WEBHOOK_BODY_LIMIT_BYTES, WEBHOOK_PATH } from './webhook.js';
