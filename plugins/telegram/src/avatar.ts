/**
 * Customers' profile pictures: looked up once per user per process and kept for
 * a day (core's TtlCache), so a chatty customer costs one getUserProfilePhotos
 * call, not one per message. Called late, by core's inbound worker, never while
 * Telegram waits for an update to be confirmed. A failed lookup never holds up
 * a message: it just has no avatar.
 */
import { type AttachmentRef, type Logger, TtlCache } from '@kitbridge/core';
import type { Api } from 'grammy';
import { grammySignal } from './outbound.js';

export class AvatarCache {
  private readonly cache: TtlCache<number, AttachmentRef | undefined>;

  constructor(
    private readonly api: Api,
    private readonly logger: () => Logger,
    ttlMs = 24 * 3_600_000,
  ) {
    this.cache = new TtlCache({ ttlMs });
  }

  /** The user's current profile photo (largest size), or undefined when there is none or the lookup failed. */
  get(userId: number, signal?: AbortSignal): Promise<AttachmentRef | undefined> {
    return this.cache.get(userId, () => this.lookup(userId, signal));
  }

  private async lookup(userId: number, signal?: AbortSignal): Promise<AttachmentRef | undefined> {
    try {
      const photos = await this.api.getUserProfilePhotos(
        userId,
        { limit: 1 },
        signal ? grammySignal(signal) : undefined,
      );
      const sizes = photos.photos[0];
      const best = sizes?.reduce((a, b) => (b.width * b.height >= a.width * a.height ? b : a));
      if (!best) return undefined;
      const ref: AttachmentRef = {
        ref: best.file_id,
        kind: 'photo',
        fileName: 'avatar.jpg',
        mimeType: 'image/jpeg',
      };
      if (best.file_size !== undefined) ref.size = best.file_size;
      return ref;
    } catch (err) {
      this.logger().debug({ err: (err as Error).message }, 'profile photo lookup failed');
      return undefined;
    }
  }
}
