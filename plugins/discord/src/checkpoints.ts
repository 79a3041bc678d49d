/**
 * Nothing missed while disconnected. The gateway has no acknowledgement and
 * discord.js keeps its resume state in memory, so after a restart or a fresh
 * IDENTIFY the connector fetches what came after the last message it handed to
 * core, per channel, from the history (`GET /channels/{id}/messages?after=`).
 *
 * Kept in core's durable checkpoints (`ctx.checkpoints`), two kinds of key:
 * - `last:<channel id>`: the newest customer message of that channel that
 *   `ctx.receive` resolved for (set after it resolved, never before; it only
 *   moves forward);
 * - `channels`: the index of the channels to look at (DM channels, support
 *   threads, the support channel) and whose they are, written when a channel
 *   is first seen. Channels quiet for longer than the window drop out.
 *
 * Dedupe in core makes the overlap between the history and live dispatches
 * harmless.
 */
import type { Checkpoints, Logger } from '@kitbridge/core';

/** Whose a channel is: a customer's DMs, a customer's support thread, or the support channel itself. */
export type ChannelEntry =
  | { kind: 'dm'; userId: string }
  | { kind: 'thread'; guildId: string; userId: string }
  | { kind: 'support'; guildId: string };

export const INDEX_KEY = 'channels';
export const cursorKey = (channelId: string) => `last:${channelId}`;

/** The stored shape of the index. */
interface IndexV1 {
  v: 1;
  channels: Record<string, { k: 'dm' | 'thread' | 'support'; u?: string; g?: string }>;
}

const DISCORD_EPOCH = 1420070400000n;

/** When a snowflake was made. */
export function snowflakeTime(id: string): number {
  return Number((BigInt(id) >> 22n) + DISCORD_EPOCH);
}

/** a > b for snowflakes. */
export function newer(a: string, b: string | undefined): boolean {
  return b === undefined || BigInt(a) > BigInt(b);
}

/** Checkpoints in memory, for a core that does not provide durable ones (nothing survives a restart). */
export function memoryCheckpoints(): Checkpoints {
  const map = new Map<string, string>();
  return {
    get: async (k) => map.get(k),
    set: async (k, v) => {
      map.set(k, v);
    },
  };
}

export interface ChannelBookOptions {
  /** Channels whose last message is older than this are dropped from the index. Default 30 days. */
  windowMs?: number;
  /** Store round trips at once while loading. Default 16. */
  loadConcurrency?: number;
}

export class ChannelBook {
  private readonly entries = new Map<string, ChannelEntry>();
  private readonly cursors = new Map<string, string>();
  /** Writes of the index, one at a time, in order. */
  private indexWrite: Promise<void> = Promise.resolve();
  private dirty = false;

  constructor(
    private readonly cp: Checkpoints,
    private readonly logger: () => Logger,
    private readonly opts: ChannelBookOptions = {},
  ) {}

  /** Whose `channelId` is, as far as the index knows. */
  entry(channelId: string): ChannelEntry | undefined {
    return this.entries.get(channelId);
  }

  cursor(channelId: string): string | undefined {
    return this.cursors.get(channelId);
  }

  /**
   * Reads the index and every cursor from the store (again: another replica may
   * have moved them), drops channels quiet for longer than the window, and
   * returns the channels to look at with their cursors.
   */
  async load(): Promise<{ channelId: string; entry: ChannelEntry; after: string }[]> {
    const raw = await this.cp.get(INDEX_KEY);
    const index = parseIndex(raw, this.logger());
    for (const [id, e] of Object.entries(index.channels)) {
      const entry = toEntry(e);
      if (entry) this.entries.set(id, entry);
    }
    const ids = [...this.entries.keys()];
    const out: { channelId: string; entry: ChannelEntry; after: string }[] = [];
    const oldest = Date.now() - (this.opts.windowMs ?? 30 * 24 * 3_600_000);
    let pruned = 0;
    const limit = this.opts.loadConcurrency ?? 16;
    for (let i = 0; i < ids.length; i += limit) {
      const slice = ids.slice(i, i + limit);
      const values = await Promise.all(slice.map((id) => this.cp.get(cursorKey(id))));
      slice.forEach((id, j) => {
        // The store is the truth (another replica, or a rewind by an operator): a lower cursor only refetches
        // what dedupe drops; memory counts when nothing was stored yet.
        const after = values[j] ?? this.cursors.get(id);
        if (!after) {
          // Indexed, but no message was ever stored: nothing to fetch after.
          return;
        }
        this.cursors.set(id, after);
        if (snowflakeTime(after) < oldest) {
          this.entries.delete(id);
          pruned++;
          return;
        }
        out.push({ channelId: id, entry: this.entries.get(id)!, after });
      });
    }
    if (pruned) {
      this.dirty = true;
      await this.flush().catch(() => {});
    }
    return out;
  }

  /** Adds a channel to the index (stored before it resolves); a known channel costs nothing. */
  async remember(channelId: string, entry: ChannelEntry): Promise<void> {
    const known = this.entries.get(channelId);
    if (known && sameEntry(known, entry) && !this.dirty) return;
    this.entries.set(channelId, entry);
    this.dirty = true;
    await this.flush();
  }

  /** Moves a channel's cursor forward to `messageId` (stored before it resolves); never back. */
  async advance(channelId: string, messageId: string): Promise<void> {
    if (!newer(messageId, this.cursors.get(channelId))) return;
    this.cursors.set(channelId, messageId);
    await this.cp.set(cursorKey(channelId), messageId);
  }

  private flush(): Promise<void> {
    const next = this.indexWrite.then(async () => {
      if (!this.dirty) return;
      this.dirty = false;
      try {
        await this.cp.set(INDEX_KEY, JSON.stringify(this.serialize()));
      } catch (err) {
        this.dirty = true;
        throw err;
      }
    });
    this.indexWrite = next.catch(() => {});
    return next;
  }

  private serialize(): IndexV1 {
    const channels: IndexV1['channels'] = {};
    for (const [id, e] of this.entries) {
      channels[id] =
        e.kind === 'dm'
          ? { k: 'dm', u: e.userId }
          : e.kind === 'thread'
            ? { k: 'thread', g: e.guildId, u: e.userId }
            : { k: 'support', g: e.guildId };
    }
    return { v: 1, channels };
  }
}

function parseIndex(raw: string | undefined, logger: Logger): IndexV1 {
  if (!raw) return { v: 1, channels: {} };
  try {
    const parsed = JSON.parse(raw) as Partial<IndexV1>;
    if (parsed.v === 1 && parsed.channels && typeof parsed.channels === 'object') return parsed as IndexV1;
  } catch {}
  logger.warn('the stored Discord channel index is unreadable; starting a new one');
  return { v: 1, channels: {} };
}

const ID = /^\d{17,20}$/;

function toEntry(e: { k?: string; u?: string; g?: string }): ChannelEntry | undefined {
  if (e.k === 'dm' && e.u && ID.test(e.u)) return { kind: 'dm', userId: e.u };
  if (e.k === 'thread' && e.u && e.g && ID.test(e.u) && ID.test(e.g))
    return { kind: 'thread', guildId: e.g, userId: e.u };
  if (e.k === 'support' && e.g && ID.test(e.g)) return { kind: 'support', guildId: e.g };
  return undefined;
}

function sameEntry(a: ChannelEntry, b: ChannelEntry): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
