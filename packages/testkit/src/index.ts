// The fakes live in @kitbridge/demo (no test runner in its dependencies); one copy, re-exported here.
export * from '@kitbridge/demo/fakes';
export * from './connector-harness.js';
export * from './scripted-connector.js';
