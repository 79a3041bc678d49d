/**
 * What the relay knows of each customer: the store's client record, read
 * through a bounded cache so that the hot path (one customer message) costs
 * no store read for a known customer and no write unless something changed.
 *
 * Profiles are merged, field by field, newest first: what a plugin learned
 * once (a deep link's utm, an avatar) keeps going to Kit with later messages.
 * `utm` belongs to one conversation: it is dropped when Kit closes it.
 */
import type { ClientIdentity, ClientProfile, JsonObject } from '../connector.js';
import type { ClientRecord, Store } from '../store/store.js';

/** A record is rewritten at most this often unless its profile or address changed. */
const TOUCH_INTERVAL_MS = 60_000;
/** Customers kept in memory; the least recently seen are read from the store again. */
const CACHE_SIZE = 10_000;

interface Entry {
  record: ClientRecord;
  /** When `record` was last written. */
  writtenAt: number;
  /** {@link signature} of `record`. */
  sig: string;
}

export class ClientBook {
  private readonly cache = new Map<string, Entry>();

  constructor(
    private readonly store: Store,
    private readonly now: () => number = Date.now,
  ) {}

  /** The stored record, or undefined for a customer never seen. */
  async get(clientId: string): Promise<ClientRecord | undefined> {
    const hit = this.cache.get(clientId);
    if (hit) {
      // Most recently used last: the first key is the one to evict.
      this.cache.delete(clientId);
      this.cache.set(clientId, hit);
      return hit.record;
    }
    const record = await this.store.getClient(clientId);
    if (record) this.remember(record, this.now());
    return record;
  }

  /** The profile to send to Kit: what is stored, overlaid by what the plugin gives now. */
  async profileFor(client: ClientIdentity): Promise<ClientProfile | undefined> {
    const stored = (await this.get(client.clientId))?.profile as ClientProfile | undefined;
    if (!stored) return client.profile;
    return client.profile ? { ...stored, ...client.profile } : stored;
  }

  /**
   * A message of this customer was accepted: the record is opened, its address
   * and profile replaced by these. Written only when they changed or the last
   * write is a while ago (last seen is a coarse figure).
   */
  async seen(client: ClientIdentity, profile: ClientProfile | undefined): Promise<void> {
    const old = await this.get(client.clientId);
    const address = client.address ?? old?.address;
    const sig = signature(address, profile, 'open');
    const now = this.now();
    const entry = this.cache.get(client.clientId);
    if (entry && entry.sig === sig && now - entry.writtenAt < TOUCH_INTERVAL_MS) return;
    await this.write(
      this.record(client.clientId, old, now, {
        address,
        profile: profile ? json(profile) : old?.profile,
        conversation: 'open',
      }),
      now,
    );
  }

  /** A plugin's `ctx.updateClient`: address replaced, profile fields merged over the stored ones. Written now. */
  async update(client: ClientIdentity): Promise<void> {
    const old = await this.get(client.clientId);
    const profile = client.profile ? { ...old?.profile, ...json(client.profile) } : old?.profile;
    const now = this.now();
    await this.write(
      this.record(client.clientId, old, now, {
        address: client.address ?? old?.address,
        profile,
        conversation: old?.conversation ?? 'open',
        closeReason: old?.closeReason,
      }),
      now,
    );
  }

  /** Kit closed the conversation: the record says so, and the conversation's utm is forgotten. */
  async closed(clientId: string, reason: string): Promise<void> {
    const old = await this.get(clientId);
    if (!old) return;
    const { utm: _utm, ...profile } = old.profile ?? {};
    const now = this.now();
    await this.write(
      this.record(clientId, old, now, {
        address: old.address,
        profile: old.profile ? profile : undefined,
        conversation: 'closed',
        closeReason: reason,
      }),
      now,
    );
  }

  private record(
    clientId: string,
    old: ClientRecord | undefined,
    now: number,
    fields: Pick<ClientRecord, 'address' | 'profile' | 'conversation' | 'closeReason'>,
  ): ClientRecord {
    return {
      clientId,
      firstSeen: old?.firstSeen ?? now,
      lastSeen: now,
      conversation: fields.conversation,
      ...(fields.address ? { address: fields.address } : {}),
      ...(fields.profile ? { profile: fields.profile } : {}),
      ...(fields.closeReason !== undefined ? { closeReason: fields.closeReason } : {}),
    };
  }

  private async write(record: ClientRecord, now: number): Promise<void> {
    await this.store.saveClient(record);
    this.remember(record, now);
  }

  private remember(record: ClientRecord, writtenAt: number): void {
    this.cache.delete(record.clientId);
    const sig = signature(record.address, record.profile, record.conversation);
    this.cache.set(record.clientId, { record, writtenAt, sig });
    if (this.cache.size > CACHE_SIZE) this.cache.delete(this.cache.keys().next().value!);
  }
}

/** A plugin's object as plain JSON: undefined fields gone, nothing shared with the caller. */
function json(profile: ClientProfile): JsonObject {
  return JSON.parse(JSON.stringify(profile)) as JsonObject;
}

/** What decides whether a record needs writing: address, profile and open/closed (times aside). */
function signature(address: unknown, profile: unknown, conversation: string): string {
  return JSON.stringify([conversation, address ?? null, profile ?? null]);
}
