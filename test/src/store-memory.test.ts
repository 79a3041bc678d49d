import { MemoryStore } from '@kitbridge/core';
import { describeStoreConformance } from '@kitbridge/testkit/store-conformance';

describeStoreConformance('MemoryStore', async ({ clock }) => new MemoryStore({ clock }));
