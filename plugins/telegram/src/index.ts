/** @kitbridge/telegram: the Telegram connector for kitbridge, on grammy. */
export { telegramPlugin } from './plugin.js';
export { TelegramConnector, type TelegramConnectorOptions, WEBHOOK_PATH } from './connector.js';
export { telegramEnvSchema, type TelegramEnv, DEFAULT_API_ROOT } from './config.js';
export { formatClientId, parseClientId, CLIENT_ID_PREFIX } from './client-id.js';
export { mapUpdate, mapMessage, parseStart, parseStartPayload, type MappedUpdate, type Utm } from './inbound.js';
export { splitText } from './split.js';
export { TELEGRAM_MEDIA_LIMITS, CLOUD_DOWNLOAD_LIMIT_BYTES, TEXT_LIMIT, CAPTION_LIMIT } from './limits.js';
export { pacing, type PacingOptions } from './pacing.js';
export type { PollingOptions } from './polling.js';
