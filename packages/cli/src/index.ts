export { check } from './check.js';
export { main } from './main.js';
export { outboxCommand } from './outbox.js';
export { prepare, run, stopOnSignals } from './run.js';
export { DEFAULT_STORE, openStore } from './store-url.js';
