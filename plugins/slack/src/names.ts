/**
 * Names for mentions (`<@U…>` -> `@Ann`, `<#C…>` -> `#support`), known before
 * a message arrives, because turning mrkdwn into plain text happens before
 * Slack gets its acknowledgement, where no API call may be made.
 *
 * Learned from: auth.test (the app's bot user), every users.info of the late
 * profile lookup, the `user_profile` some events carry, conversations.info of
 * the support channel at start, and a lookup of mentioned ids that were not
 * known yet, made after the acknowledgement (it helps the next message; the
 * one that mentioned them shows the id).
 */
import type { Logger } from '@kitbridge/core';
import type { WebClient } from '@slack/web-api';
import type { NameLookup } from './mrkdwn.js';
import { withSignal } from './web.js';

const MAX_ENTRIES = 10_000;
/** Ids that could not be looked up are not asked for again for this long. */
const MISS_TTL_MS = 60 * 60 * 1000;

export class Names implements NameLookup {
  private readonly users = new Map<string, string>();
  private readonly channels = new Map<string, string>();
  private readonly misses = new Map<string, number>();
  private readonly pending = new Set<string>();
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly web: WebClient,
    private readonly logger: () => Logger,
    /** False when the token has no users:read (then users are not looked up). */
    private readonly canReadUsers: () => boolean = () => true,
  ) {}

  user(id: string): string | undefined {
    return this.users.get(id);
  }

  channel(id: string): string | undefined {
    return this.channels.get(id);
  }

  setUser(id: string, name: string | undefined): void {
    if (name) put(this.users, id, name);
  }

  setChannel(id: string, name: string | undefined): void {
    if (name) put(this.channels, id, name);
  }

  /** Looks up ids not known yet, one call at a time, in the background. Call only after the ack. */
  learn(ids: { users: string[]; channels: string[] }, signal: AbortSignal): void {
    const now = Date.now();
    const todo = [
      ...(this.canReadUsers()
        ? ids.users.filter((u) => !this.users.has(u)).map((id) => ({ id, user: true }))
        : []),
      ...ids.channels.filter((c) => !this.channels.has(c)).map((id) => ({ id, user: false })),
    ].filter(({ id }) => !this.pending.has(id) && (this.misses.get(id) ?? 0) < now);
    if (!todo.length || signal.aborted) return;
    for (const t of todo) this.pending.add(t.id);
    this.queue = this.queue.then(async () => {
      for (const t of todo) {
        try {
          if (signal.aborted) return;
          const call = AbortSignal.any([signal, AbortSignal.timeout(10_000)]);
          if (t.user) {
            const r = await withSignal(call, () => this.web.users.info({ user: t.id }));
            const p = r.user?.profile;
            this.setUser(t.id, p?.display_name || p?.real_name || r.user?.real_name || r.user?.name);
          } else {
            const r = await withSignal(call, () => this.web.conversations.info({ channel: t.id }));
            this.setChannel(t.id, r.channel?.name);
          }
        } catch (err) {
          put(this.misses, t.id, Date.now() + MISS_TTL_MS);
          this.logger().debug({ id: t.id, err: (err as Error).message }, 'name lookup failed');
        } finally {
          this.pending.delete(t.id);
        }
      }
    });
  }
}

function put<V>(map: Map<string, V>, key: string, value: V): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > MAX_ENTRIES) map.delete(map.keys().next().value as string);
}
