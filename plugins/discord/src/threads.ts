/**
 * Support-channel mode: one private thread per customer under the support
 * channel, found or created, never two.
 *
 * A thread belongs to a customer when the bot owns it, its parent is the
 * support channel, and its name ends with `· <user id>` (the name starts with
 * the customer's display name at creation; Discord lets nobody but moderators
 * rename a private thread). So the thread is found again from the client id
 * alone: in the gateway's cache, in the guild's active threads, in the support
 * channel's archived private threads.
 *
 * Find-or-create runs one at a time per customer in a process. Two replicas
 * (or a restart racing a delivery) could still both create one: after creating,
 * the connector lists the customer's threads again and the oldest wins; the
 * loser deletes the thread it has just made, before anything was posted in it.
 */
import type { Logger } from '@kitbridge/core';
import { type REST, Routes } from 'discord.js';

export interface RawThread {
  id: string;
  name?: string;
  parent_id?: string | null;
  owner_id?: string;
  type?: number;
  thread_metadata?: { archived?: boolean; archive_timestamp?: string; locked?: boolean };
}

const PRIVATE_THREAD = 12;
/** Operation cannot be performed on an archived thread. */
const ARCHIVED = 50083;
const WEEK_MINUTES = 10080;

/** `Alice · 111111111111111111`: at most 100 characters. */
export function threadName(displayName: string, userId: string): string {
  const name = displayName.replace(/\s+/g, ' ').trim().slice(0, 70) || 'customer';
  return `${name} · ${userId}`;
}

/** The customer a thread name says it belongs to. */
export function userOfThreadName(name: string | undefined): string | undefined {
  return /·\s*(\d{17,20})$/.exec(name ?? '')?.[1];
}

export interface SupportThreadsOptions {
  rest: REST;
  /** The support channel. */
  channelId: string;
  guildId: () => string | undefined;
  selfId: () => string | undefined;
  /** Threads the gateway has cached (no I/O). */
  cached?: () => Iterable<RawThread>;
  logger: () => Logger;
}

export class SupportThreads {
  /** user id -> thread id, and back. */
  private readonly byUser = new Map<string, string>();
  private readonly byThread = new Map<string, string>();
  private readonly running = new Map<string, Promise<string>>();
  private readonly members = new Set<string>();

  constructor(private readonly o: SupportThreadsOptions) {}

  /** Whether a thread is one of the connector's customer threads: the customer's user id, else undefined. */
  customerOf(thread: RawThread): string | undefined {
    const known = this.byThread.get(thread.id);
    if (known) return known;
    if (thread.parent_id !== this.o.channelId) return undefined;
    const self = this.o.selfId();
    if (self && thread.owner_id && thread.owner_id !== self) return undefined;
    const user = userOfThreadName(thread.name);
    if (user) this.note(user, thread.id);
    return user;
  }

  /** What is known without I/O: a thread id for a customer. */
  known(userId: string): string | undefined {
    return this.byUser.get(userId);
  }

  /** A thread's customer, when known (from this process's work or the index). */
  knownCustomer(threadId: string): string | undefined {
    return this.byThread.get(threadId);
  }

  note(userId: string, threadId: string): void {
    this.byUser.set(userId, threadId);
    this.byThread.set(threadId, userId);
  }

  /** Forgets a thread that turned out to be gone. */
  forget(threadId: string): void {
    const user = this.byThread.get(threadId);
    this.byThread.delete(threadId);
    if (user && this.byUser.get(user) === threadId) this.byUser.delete(user);
    this.members.delete(threadId);
  }

  /**
   * The customer's thread, created when they have none; the customer is a member
   * of it when this resolves. One at a time per customer.
   */
  findOrCreate(userId: string, displayName: string | undefined, signal: AbortSignal): Promise<string> {
    let p = this.running.get(userId);
    if (!p) {
      p = this.doFindOrCreate(userId, displayName, signal).finally(() => this.running.delete(userId));
      this.running.set(userId, p);
    }
    return p;
  }

  private async doFindOrCreate(
    userId: string,
    displayName: string | undefined,
    signal: AbortSignal,
  ): Promise<string> {
    const known = this.byUser.get(userId) ?? (await this.find(userId, signal));
    if (known) {
      this.note(userId, known);
      await this.addMember(known, userId, signal).catch((err: unknown) => {
        // An archived thread keeps its members; the next message unarchives it.
        if ((err as { code?: unknown }).code !== ARCHIVED) throw err;
      });
      return known;
    }
    const guildId = this.o.guildId();
    const created = (await this.o.rest.post(Routes.threads(this.o.channelId), {
      body: {
        name: threadName(displayName ?? 'customer', userId),
        type: PRIVATE_THREAD,
        invitable: false,
        auto_archive_duration: WEEK_MINUTES,
      },
      signal,
    })) as RawThread;
    // Another replica may have made one at the same moment: the oldest wins.
    const all = guildId ? await this.active(guildId, userId, signal) : [];
    const winner = [created, ...all].reduce((a, b) => (BigInt(b.id) < BigInt(a.id) ? b : a));
    if (winner.id !== created.id) {
      this.o
        .logger()
        .info(
          { userId, kept: winner.id, removed: created.id },
          'support thread made twice; the older one kept',
        );
      await this.o.rest.delete(Routes.channel(created.id), { signal }).catch((err: Error) => {
        this.o
          .logger()
          .warn({ thread: created.id, err: err.message }, 'could not remove a duplicate support thread');
      });
    } else {
      this.o.logger().info({ userId, thread: created.id }, 'support thread created');
    }
    this.note(userId, winner.id);
    await this.addMember(winner.id, userId, signal);
    return winner.id;
  }

  /** The customer's existing thread: cached by the gateway, active in the guild, or archived. */
  async find(userId: string, signal: AbortSignal): Promise<string | undefined> {
    const mine = (t: RawThread) =>
      t.parent_id === this.o.channelId && userOfThreadName(t.name) === userId && this.ownedByUs(t);
    const oldest = (ts: RawThread[]) =>
      ts.length ? ts.reduce((a, b) => (BigInt(b.id) < BigInt(a.id) ? b : a)).id : undefined;
    const cached = [...(this.o.cached?.() ?? [])].filter(mine);
    if (cached.length) return oldest(cached);
    const guildId = this.o.guildId();
    if (guildId) {
      const active = await this.active(guildId, userId, signal);
      if (active.length) return oldest(active);
    }
    let before: string | undefined;
    for (let page = 0; page < 10; page++) {
      const query = new URLSearchParams({ limit: '100', ...(before ? { before } : {}) });
      const res = (await this.o.rest.get(Routes.channelThreads(this.o.channelId, 'private'), {
        query,
        signal,
      })) as { threads?: RawThread[]; has_more?: boolean };
      const threads = res.threads ?? [];
      const hit = threads.filter(mine);
      if (hit.length) return oldest(hit);
      if (!res.has_more || !threads.length) break;
      before = threads.at(-1)?.thread_metadata?.archive_timestamp;
      if (!before) break;
    }
    return undefined;
  }

  private async active(guildId: string, userId: string, signal: AbortSignal): Promise<RawThread[]> {
    const res = (await this.o.rest.get(Routes.guildActiveThreads(guildId), { signal })) as {
      threads?: RawThread[];
    };
    return (res.threads ?? []).filter(
      (t) => t.parent_id === this.o.channelId && userOfThreadName(t.name) === userId && this.ownedByUs(t),
    );
  }

  private ownedByUs(t: RawThread): boolean {
    const self = this.o.selfId();
    return !self || !t.owner_id || t.owner_id === self;
  }

  /** Adds the customer to their private thread (once per process per thread). */
  async addMember(threadId: string, userId: string, signal: AbortSignal): Promise<void> {
    if (this.members.has(threadId)) return;
    await this.o.rest.put(Routes.threadMembers(threadId, userId), { signal });
    this.members.add(threadId);
  }
}
