/** The fakes on 127.0.0.1 (Kit, Telegram, Discord, Slack, a file server); @kitbridge/testkit re-exports them. */
export * from './core-config.js';
export * from './fake-discord.js';
export * from './fake-kit.js';
export * from './fake-slack.js';
export * from './fake-telegram.js';
export * from './file-server.js';
export {
  dispositionParams,
  type MultipartBody,
  type MultipartPart,
  multipartBoundary,
  parseMultipart,
} from './multipart.js';
