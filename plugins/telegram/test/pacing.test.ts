import { parseEnv, silentLogger } from '@kitbridge/core';
import { FakeTelegram } from '@kitbridge/testkit';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { TelegramConnector } from '../src/connector.js';
import { NO_PACING, pacing, pacingFor } from '../src/pacing.js';
import { telegramPlugin } from '../src/plugin.js';
import { agentMessage } from './helpers.js';

type Prev = Parameters<ReturnType<typeof pacing>>[0];

/** A transformer's `prev` that records when each call reached it. */
function recorder() {
  const calls: { at: number; chat?: number; text?: string }[] = [];
  const prev = (async (_method: string, payload: { chat_id?: number; text?: string }) => {
    calls.push({ at: performance.now(), chat: payload.chat_id, text: payload.text });
    return { ok: true, result: true };
  }) as unknown as Prev;
  return { calls, prev };
}

describe('pacing transformer', () => {
  it('keeps order per chat, lets other chats through between, and does not pace non-sends', async () => {
    const order: string[] = [];
    const t = pacing({ perChatMs: 40, globalMs: 1 });
    const prev = (async (method: string, payload: { chat_id?: number; text?: string }) => {
      order.push(`${method}:${payload.chat_id ?? ''}:${payload.text ?? ''}`);
      return { ok: true, result: true };
    }) as unknown as Prev;
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

describe('TELEGRAM_MAX_PER_SECOND', () => {
  it('maps to a global gap of 1/N s and keeps one message a second per chat; 0 is no pacing', () => {
    expect(pacingFor(30)).toEqual({ perChatMs: 1000, globalMs: 1000 / 30 });
    expect(pacingFor(1000)).toEqual({ perChatMs: 1000, globalMs: 1 });
    expect(pacingFor(0)).toEqual({ perChatMs: 0, globalMs: 0 });
  });

  it('0 (no pacing) sends every call at once, in call order', async () => {
    const t = pacing(NO_PACING);
    const { calls, prev } = recorder();
    const t0 = performance.now();
    await Promise.all(
      ['a', 'b', 'c'].map((text) => t(prev, 'sendMessage' as never, { chat_id: 1, text } as never)),
    );
    expect(calls.map((c) => c.text)).toEqual(['a', 'b', 'c']);
    // Nothing was scheduled: far below one paced gap (generous, for a busy machine).
    expect(performance.now() - t0).toBeLessThan(500);
  });

  it('spaces sends to different chats by the global gap', async () => {
    const t = pacing(pacingFor(50));
    const { calls, prev } = recorder();
    const t0 = performance.now();
    await Promise.all(
      [1, 2, 3, 4, 5].map((chat) => t(prev, 'sendMessage' as never, { chat_id: chat, text: 'x' } as never)),
    );
    expect(calls.map((c) => c.chat)).toEqual([1, 2, 3, 4, 5]);
    // Slot i is 20 ms * i after the first: a busy machine fires timers late, never early
    // (but for a millisecond), so measure each from the start, not from its neighbour.
    for (let i = 1; i < calls.length; i++) expect(calls[i]!.at - t0).toBeGreaterThan(20 * i - 2);
  });

  it('at 1000/s still sends one message a second to one chat', async () => {
    const t = pacing(pacingFor(1000));
    const { calls, prev } = recorder();
    const t0 = performance.now();
    await Promise.all(
      ['a', 'b'].map((text) => t(prev, 'sendMessage' as never, { chat_id: 1, text } as never)),
    );
    expect(calls.map((c) => c.text)).toEqual(['a', 'b']);
    // Measured from the start: a late first timer must not make the gap look short.
    expect(calls[1]!.at - t0).toBeGreaterThan(980);
  });
});

describe('TELEGRAM_MAX_PER_SECOND through the plugin', () => {
  let tg: FakeTelegram;
  beforeEach(async () => {
    tg = await new FakeTelegram().start();
  });
  afterEach(async () => {
    await tg.close();
  });

  const connector = (extra: Record<string, string>) =>
    telegramPlugin.create(
      parseEnv(telegramPlugin.env, { TELEGRAM_BOT_TOKEN: tg.token, TELEGRAM_API_ROOT: tg.apiRoot, ...extra }),
      { publicUrl: 'https://bridge.example', logger: silentLogger },
    ) as TelegramConnector;

  const sendFive = async (conn: TelegramConnector) => {
    const t0 = performance.now();
    for (let i = 1; i <= 5; i++) await conn.deliver({ clientId: 'tg:77' }, agentMessage({ text: `m${i}` }));
    return performance.now() - t0;
  };

  it('0 switches pacing off: five messages to one chat go at once, in order', async () => {
    const ms = await sendFive(connector({ TELEGRAM_MAX_PER_SECOND: '0' }));
    expect(tg.sent.map((c) => c.params.text)).toEqual(['m1', 'm2', 'm3', 'm4', 'm5']);
    // Paced, the four gaps alone would take 4 s.
    expect(ms).toBeLessThan(3_000);
  });

  it('by default one chat gets about one message a second', async () => {
    const conn = connector({});
    await conn.deliver({ clientId: 'tg:77' }, agentMessage({ text: 'first' }));
    const t0 = performance.now();
    await conn.deliver({ clientId: 'tg:77' }, agentMessage({ text: 'second' }));
    expect(performance.now() - t0).toBeGreaterThan(900);
    expect(tg.sent.map((c) => c.params.text)).toEqual(['first', 'second']);
  });
});
