export { main } from './main.js';
export { run, stopOnSignals } from './run.js';
export { outboxCommand } from './outbox.js';
export { openStore, DEFAULT_STORE } from './store-url.js';
