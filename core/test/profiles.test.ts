import { describe, expect, it } from 'vitest';
import type { ChannelConnector, ClientProfile, ProfileResolving } from '../src/connector.js';
import type { CustomerEvent } from '../src/kit/schemas.js';
import { silentLogger } from '../src/logger.js';
import { LateProfiles } from '../src/relay/profiles.js';

function event(clientId: string, extra: Record<string, unknown> = {}): CustomerEvent {
  return {
    client_data: { client_id: clientId, ...extra },
    event_id: 'e1',
    event_type: 'send_message',
    event_data: { message: { message_id: 'e1', text: 'hi' } },
  } as CustomerEvent;
}

function connector(resolve: ProfileResolving['resolveProfile']) {
  return { name: 'x', resolveProfile: resolve } as unknown as ChannelConnector & ProfileResolving;
}

const url = (_id: string, file: { ref: string }) => `https://bridge/media/${file.ref}`;
const signal = () => new AbortController().signal;

describe('late profiles', () => {
  it("fills the gaps of client_data, the message's own fields winning, the avatar as a media link", async () => {
    const late = new LateProfiles(
      connector(async () => ({
        displayName: 'Looked Up',
        email: 'a@b.c',
        avatar: { ref: 'av1', kind: 'photo' },
      })),
      url,
      silentLogger,
    );
    const out = await late.enrich(
      event('sl:T:U', { client_display_name: 'From Message' }),
      { clientId: 'sl:T:U' },
      signal(),
    );
    expect(out.client_data).toEqual({
      client_id: 'sl:T:U',
      client_display_name: 'From Message',
      client_email: 'a@b.c',
      client_avatar: 'https://bridge/media/av1',
    });
  });

  it('looks a customer up once per TTL, also when there was nothing to find', async () => {
    let calls = 0;
    const late = new LateProfiles(
      connector(async () => {
        calls++;
        return undefined;
      }),
      url,
      silentLogger,
    );
    for (let i = 0; i < 5; i++) await late.enrich(event('c1'), { clientId: 'c1' }, signal());
    expect(calls).toBe(1);
  });

  it('never holds an event back: a failed or slow lookup sends what is known', async () => {
    const failing = new LateProfiles(
      connector(async () => {
        throw new Error('users.info: ratelimited');
      }),
      url,
      silentLogger,
    );
    expect((await failing.enrich(event('c2'), { clientId: 'c2' }, signal())).client_data).toEqual({
      client_id: 'c2',
    });
    let seen: AbortSignal | undefined;
    const slow = new LateProfiles(
      connector(
        (_t, s) =>
          new Promise<ClientProfile | undefined>((resolve) => {
            seen = s;
            setTimeout(() => resolve({ displayName: 'late' }), 2_000).unref();
          }),
      ),
      url,
      silentLogger,
      50,
    );
    expect((await slow.enrich(event('c3'), { clientId: 'c3' }, signal())).client_data).toEqual({
      client_id: 'c3',
    });
    // The lookup was told to give up.
    expect(seen?.aborted).toBe(true);
  });
});
