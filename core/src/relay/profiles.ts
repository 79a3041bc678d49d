/**
 * Late profiles: for connectors that look a customer up on the platform
 * ({@link ProfileResolving}), the inbound worker fills the gaps of a stored
 * event's client_data just before it goes to Kit. The platform is never called
 * while it waits for an acknowledgement, and a failed or slow lookup never
 * holds a message back: the event goes with what is known.
 */

import { TtlCache } from '../cache.js';
import type { ChannelConnector, ClientProfile, DeliveryTarget, ProfileResolving } from '../connector.js';
import type { ClientData, CustomerEvent } from '../kit/schemas.js';
import type { Logger } from '../logger.js';
import { clientDataOf, type MediaUrlFor } from './to-kit.js';

const DAY_MS = 24 * 3_600_000;
/** A lookup slower than this sends the event without it (the answer is still cached for the next one). */
const LOOKUP_TIMEOUT_MS = 3_000;

export class LateProfiles {
  private readonly cache: TtlCache<string, ClientProfile | undefined>;

  constructor(
    private readonly connector: ChannelConnector & ProfileResolving,
    private readonly mediaUrlFor: MediaUrlFor,
    private readonly logger: Logger,
    private readonly timeoutMs = LOOKUP_TIMEOUT_MS,
  ) {
    this.cache = new TtlCache({ ttlMs: connector.profileTtlMs ?? DAY_MS });
  }

  /**
   * The event with the looked-up profile under what the message carried (the
   * message's own fields win). Never rejects; the stored event is not changed.
   */
  async enrich(event: CustomerEvent, target: DeliveryTarget, signal: AbortSignal): Promise<CustomerEvent> {
    const profile = await this.lookup(target, signal, event.event_id);
    if (!profile) return event;
    const late = clientDataOf(target.clientId, profile, this.mediaUrlFor);
    const merged: ClientData = { ...late, ...event.client_data };
    return { ...event, client_data: merged };
  }

  private async lookup(
    target: DeliveryTarget,
    signal: AbortSignal,
    eventId: string,
  ): Promise<ClientProfile | undefined> {
    // The hot path: a known customer costs a map lookup, no timer, no signal.
    if (this.cache.has(target.clientId)) return this.cache.peek(target.clientId);
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const both = AbortSignal.any([signal, timeout]);
    const load = this.cache.get(target.clientId, () =>
      this.connector.resolveProfile(target, both).catch((err: unknown) => {
        this.logger.debug(
          { leg: 'inbound', clientId: target.clientId, eventId, err: (err as Error)?.message },
          'profile lookup failed',
        );
        return undefined;
      }),
    );
    const gaveUp = new Promise<undefined>((resolve) => {
      both.addEventListener('abort', () => resolve(undefined), { once: true });
    });
    return Promise.race([load, gaveUp]);
  }
}
