/**
 * Customers' profile pictures: looked up once per user per process and kept for
 * a day, so a chatty customer costs one getUserProfilePhotos call, not one per
 * message. A failed lookup never holds up a message: it just has no avatar.
 */
import type { AttachmentRef, Logger } from '@kitbridge/core';
import type { Api } from 'grammy';

const MAX_ENTRIES = 10_000;

export class AvatarCache {
  private readonly entries = new Map<number, { at: number; ref?: AttachmentRef }>();
  private readonly pending = new Map<number, Promise<AttachmentRef | undefined>>();

  constructor(
    private readonly api: Api,
    private readonly logger: Logger,
    private readonly ttlMs = 24 * 3_600_000,
  ) {}

  /** The user's current profile photo (largest size), or undefined when there is none or the lookup failed. */
  get(userId: number): Promise<AttachmentRef | undefined> {
    const hit = this.entries.get(userId);
    if (hit && Date.now() - hit.at < this.ttlMs) return Promise.resolve(hit.ref);
    let p = this.pending.get(userId);
    if (!p) {
      p = this.lookup(userId).finally(() => this.pending.delete(userId));
      this.pending.set(userId, p);
    }
    return p;
  }

  private async lookup(userId: number): Promise<AttachmentRef | undefined> {
    let ref: AttachmentRef | undefined;
    try {
      const photos = await this.api.getUserProfilePhotos(userId, { limit: 1 });
      const sizes = photos.photos[0];
      const best = sizes?.reduce((a, b) => (b.width * b.height >= a.width * a.height ? b : a));
      if (best) {
        ref = { ref: best.file_id, kind: 'photo', fileName: 'avatar.jpg', mimeType: 'image/jpeg' };
        if (best.file_size !== undefined) ref.size = best.file_size;
      }
    } catch (err) {
      this.logger.debug({ err: (err as Error).message }, 'profile photo lookup failed');
    }
    this.entries.delete(userId);
    this.entries.set(userId, { at: Date.now(), ...(ref ? { ref } : {}) });
    if (this.entries.size > MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value!);
    return ref;
  }
}
