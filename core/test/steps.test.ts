import { describe, expect, it } from 'vitest';
import type { DeliveryWork, JsonObject } from '../src/connector.js';
import { sendSteps } from '../src/relay/steps.js';

function work(store: { done?: JsonObject }, signal = new AbortController().signal): DeliveryWork {
  return {
    signal,
    progress: {
      done: store.done,
      save: async (p) => {
        store.done = p;
      },
    },
  };
}

describe('sendSteps', () => {
  it('records each step as it is sent and resumes after the last recorded one', async () => {
    const sent: string[] = [];
    let failC = true;
    const steps = ['a', 'b', 'c'].map((name, i) => async () => {
      if (name === 'c' && failC) throw new Error('c failed');
      sent.push(name);
      return { message_id: 100 + i };
    });
    const store: { done?: JsonObject } = {};
    await expect(sendSteps(steps, work(store))).rejects.toThrow('c failed');
    expect(store.done).toEqual({ sent: 2, ids: ['100', '101'] });
    failC = false;
    // A new attempt (after a restart: a fresh work object over the stored progress).
    const receipt = await sendSteps(steps, work(store));
    expect(sent).toEqual(['a', 'b', 'c']);
    expect(receipt.platformMessageIds).toEqual(['100', '101', '102']);
  });

  it('stops before the next step once the signal aborts, and when saving progress fails', async () => {
    const ac = new AbortController();
    const sent: number[] = [];
    const steps = [1, 2, 3].map((n) => async () => {
      sent.push(n);
      if (n === 1) ac.abort(new Error('deadline'));
    });
    await expect(sendSteps(steps, work({}, ac.signal))).rejects.toThrow('deadline');
    expect(sent).toEqual([1]);
    const lost: DeliveryWork = {
      signal: new AbortController().signal,
      progress: {
        done: undefined,
        save: async () => {
          throw new Error('lease lost');
        },
      },
    };
    sent.length = 0;
    const plain = [1, 2].map((n) => async () => void sent.push(n));
    await expect(sendSteps(plain, lost)).rejects.toThrow('lease lost');
    expect(sent).toEqual([1]);
  });

  it('ignores progress of a bad shape', async () => {
    const sent: number[] = [];
    const steps = [1, 2].map((n) => async () => void sent.push(n));
    await sendSteps(steps, work({ done: { sent: 'x', ids: 5 } as unknown as JsonObject }));
    expect(sent).toEqual([1, 2]);
  });
});
