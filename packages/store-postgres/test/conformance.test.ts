import { describeStoreConformance } from '@kitbridge/testkit/store-conformance';
import { PostgresStore } from '../src/index.js';
import { tempDatabase } from './helpers.js';

const db = tempDatabase();
let n = 0;

// A fresh schema per test, in a database of this file's own: the real server, migrations and all.
describeStoreConformance('PostgresStore', async ({ clock }) => {
  await db.ready;
  return PostgresStore.open(db.url(`s${n++}`), { clock });
});
