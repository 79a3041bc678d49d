export * from './fake-kit.js';
export * from './fake-telegram.js';
export * from './scripted-connector.js';
export * from './core-config.js';
export { parseMultipart } from './multipart.js';
