/** Connectors' cursors outlive the process: what a Discord backfill after a restart starts from. */
import { describe, expect, it } from 'vitest';
import { SqliteStore } from '../src/index.js';
import { tempDir } from './helpers.js';

const dir = tempDir();

describe('checkpoints in the SQLite file', () => {
  it('are read back after the store is closed and opened again', async () => {
    const file = dir.path('kb.db');
    const first = SqliteStore.open(file);
    await first.setCheckpoint('discord:last:123', '1180000000000000001');
    await first.setCheckpoint('discord:last:123', '1180000000000000002');
    await first.close();
    const second = SqliteStore.open(file);
    expect(await second.getCheckpoint('discord:last:123')).toBe('1180000000000000002');
    expect(await second.getCheckpoint('discord:last:999')).toBeUndefined();
    await second.close();
  });
});
