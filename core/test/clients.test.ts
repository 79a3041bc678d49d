import { describe, expect, it } from 'vitest';
import { ClientBook } from '../src/relay/clients.js';
import { MemoryStore } from '../src/store/memory.js';

describe('ClientBook', () => {
  it('reads the store once for a client it has no record of, and sees the record once one is written', async () => {
    const store = new MemoryStore();
    let reads = 0;
    const getClient = store.getClient.bind(store);
    store.getClient = (id: string) => {
      reads++;
      return getClient(id);
    };
    const book = new ClientBook(store);
    for (let i = 0; i < 5; i++) expect(await book.get('c:9')).toBeUndefined();
    expect(reads).toBe(1);
    await book.update({ clientId: 'c:9', address: { chat: 9 } });
    expect((await book.get('c:9'))?.address).toEqual({ chat: 9 });
    expect(reads).toBe(1);
  });

  it('keeps both fields when an update and a seen run at once', async () => {
    const store = new MemoryStore();
    const book = new ClientBook(store);
    await Promise.all([
      book.update({ clientId: 'c:1', profile: { utm: { source: 'ad' } } }),
      book.seen({ clientId: 'c:1', address: { chat: 1 } }, { displayName: 'Ann' }),
    ]);
    const record = await store.getClient('c:1');
    expect(record?.profile).toEqual({ utm: { source: 'ad' }, displayName: 'Ann' });
    expect(record?.address).toEqual({ chat: 1 });
    // Two books (two processes) on one store do not lose each other's fields either.
    const other = new ClientBook(store);
    await Promise.all([
      other.update({ clientId: 'c:1', profile: { email: 'ann@example.com' } }),
      book.update({ clientId: 'c:1', address: { chat: 2 } }),
    ]);
    expect(await store.getClient('c:1')).toMatchObject({
      address: { chat: 2 },
      profile: { utm: { source: 'ad' }, displayName: 'Ann', email: 'ann@example.com' },
    });
  });

  it('closes a conversation without losing a concurrent update, and forgets its utm', async () => {
    const store = new MemoryStore();
    const book = new ClientBook(store);
    await book.update({ clientId: 'c:2', profile: { utm: { source: 'ad' }, displayName: 'Bob' } });
    await Promise.all([
      book.closed('c:2', 'CLOSED_BY_AGENT'),
      new ClientBook(store).update({ clientId: 'c:2', address: { chat: 9 } }),
    ]);
    expect(await store.getClient('c:2')).toMatchObject({
      conversation: 'closed',
      closeReason: 'CLOSED_BY_AGENT',
      address: { chat: 9 },
      profile: { displayName: 'Bob' },
    });
  });
});
