import { describe, expect, it } from 'vitest';
import { pacing } from '../src/pacing.js';

describe('pacing transformer', () => {
  it('keeps order per chat, lets other chats through between, and does not pace non-sends', async () => {
    const order: string[] = [];
    const t = pacing({ perChatMs: 40, globalMs: 1 });
    const prev = (async (method: string, payload: { chat_id?: number; text?: string }) => {
      order.push(`${method}:${payload.chat_id ?? ''}:${payload.text ?? ''}`);
      return { ok: true, result: true };
    }) as unknown as Parameters<typeof t>[0];
    const call = (method: string, payload: object) => t(prev, method as never, payload as never);
    await Promise.all([
      call('sendMessage', { chat_id: 1, text: 'a1' }),
      call('sendMessage', { chat_id: 1, text: 'a2' }),
      call('sendMessage', { chat_id: 1, text: 'a3' }),
      call('sendMessage', { chat_id: 2, text: 'b1' }),
      call('getFile', { file_id: 'x' }),
    ]);
    expect(order.filter((o) => o.includes(':1:'))).toEqual([
      'sendMessage:1:a1',
      'sendMessage:1:a2',
      'sendMessage:1:a3',
    ]);
    // Chat 2 and the unpaced getFile did not wait behind chat 1's queue.
    expect(order.indexOf('sendMessage:2:b1')).toBeLessThan(order.indexOf('sendMessage:1:a2'));
    expect(order.indexOf('getFile::')).toBeLessThan(order.indexOf('sendMessage:1:a2'));
  });
});
