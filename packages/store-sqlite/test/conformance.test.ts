import { describeStoreConformance } from '@kitbridge/testkit/store-conformance';
import { SqliteStore } from '../src/index.js';
import { tempDir } from './helpers.js';

const dir = tempDir();

// A fresh file per test: the real thing, WAL and all.
describeStoreConformance('SqliteStore (file)', async () => SqliteStore.open(dir.path('store.db')));
describeStoreConformance('SqliteStore (:memory:)', async () => SqliteStore.open(':memory:'));
