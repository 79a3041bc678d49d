export * from './connector-harness.js';
export * from './core-config.js';
export * from './fake-discord.js';
export * from './fake-kit.js';
export * from './fake-slack.js';
export * from './fake-telegram.js';
export {
  dispositionParams,
  type MultipartBody,
  type MultipartPart,
  multipartBoundary,
  parseMultipart,
} from './multipart.js';
export * from './scripted-connector.js';
