import { describeStoreConformance } from '@kitbridge/testkit/store-conformance';
import { SqliteStore } from '../src/index.js';
import { tempDir } from './helpers.js';

const dir = tempDir();

// A fresh file per test: the real thing, WAL and all.
describeStoreConformance('SqliteStore (file)', async ({ clock }) =>
  SqliteStore.open(dir.path('store.db'), { clock }),
);
describeStoreConformance('SqliteStore (:memory:)', async ({ clock }) =>
  SqliteStore.open(':memory:', { clock }),
);
