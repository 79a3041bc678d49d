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
import type { ClientPatch, ClientRecord, Store } from '../store/store.js';

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
  /** Clients the store has no record of; every record written here goes through remember(), which clears it. */
  private readonly absent = new Set<string>();

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
    // A client with no record (an agent writing first) costs one store read, not one per delivery.
    if (this.absent.has(clientId)) return undefined;
    const record = await this.store.getClient(clientId);
    if (record) this.remember(record, this.now());
    else {
      this.absent.add(clientId);
      if (this.absent.size > CACHE_SIZE) this.absent.delete(this.absent.values().next().value!);
    }
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
   * replaced by the message's (when it has one) and these profile fields merged
   * in. The cache takes it at once (no await before that); the store write
   * follows, only when something changed or the last write is a while ago
   * (last seen is a coarse figure).
   */
  seen(client: ClientIdentity, profile: ClientProfile | undefined): Promise<void> {
    const { clientId } = client;
    const entry = this.cache.get(clientId);
    const old = entry?.record;
    const address = client.address ?? old?.address;
    const merged = profile ? json(profile) : old?.profile;
    const sig = signature(address, merged, 'open');
    const now = this.now();
    if (entry && entry.sig === sig && now - entry.writtenAt < TOUCH_INTERVAL_MS) return Promise.resolve();
    // At once, before the write lands: the customer's next message (the relay does not wait for
    // this write) must see these fields already.
    this.remember(
      {
        clientId,
        firstSeen: old?.firstSeen ?? now,
        lastSeen: now,
        conversation: 'open',
        ...(address ? { address } : {}),
        ...(merged ? { profile: merged } : {}),
      },
      entry?.writtenAt ?? 0,
    );
    return this.patch(
      clientId,
      {
        ...(client.address ? { address: json(client.address) } : {}),
        ...(profile ? { profile: json(profile) } : {}),
        conversation: 'open',
      },
      now,
    );
  }

  /** A plugin's `ctx.updateClient`: address replaced, profile fields merged over the stored ones. Written now. */
  async update(client: ClientIdentity): Promise<void> {
    await this.patch(
      client.clientId,
      {
        ...(client.address ? { address: json(client.address) } : {}),
        ...(client.profile ? { profile: json(client.profile) } : {}),
      },
      this.now(),
    );
  }

  /** Kit closed the conversation: the record says so, and the conversation's utm is forgotten. */
  async closed(clientId: string, reason: string): Promise<void> {
    await this.patch(
      clientId,
      { conversation: 'closed', closeReason: reason, dropProfile: ['utm'] },
      this.now(),
    );
  }

  /** One atomic store patch (concurrent ones keep each other's fields); the cache takes the result. */
  private async patch(clientId: string, patch: ClientPatch, now: number): Promise<void> {
    this.remember(await this.store.patchClient(clientId, patch, now), now);
  }

  private remember(record: ClientRecord, writtenAt: number): void {
    this.absent.delete(record.clientId);
    this.cache.delete(record.clientId);
    const sig = signature(record.address, record.profile, record.conversation);
    this.cache.set(record.clientId, { record, writtenAt, sig });
    if (this.cache.size > CACHE_SIZE) this.cache.delete(this.cache.keys().next().value!);
  }
}

/** A plugin's object as plain JSON: undefined fields gone, nothing shared with the caller. */
function json(value: ClientProfile | JsonObject): JsonObject {
  return JSON.parse(JSON.stringify(value)) as JsonObject;
}

/** What decides whether a record needs writing: address, profile and open/closed (times aside). */
function signature(address: unknown, profile: unknown, conversation: string): string {
  return JSON.stringify([conversation, address ?? null, profile ?? null]);
}
