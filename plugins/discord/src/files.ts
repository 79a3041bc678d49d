/**
 * Customer files and avatars for the media proxy. Discord's CDN links are
 * signed (`ex`/`is`/`hm`) and expire after about a day, so a ref keeps the
 * attachment's identity and a fresh link is asked for when Kit fetches, days
 * later: `POST /attachments/refresh-urls`, else the message is read again. A
 * file whose message was deleted is gone (AttachmentGoneError: the proxy
 * answers 404 and Kit does not retry).
 */
import {
  AttachmentGoneError,
  type AttachmentRef,
  LazyAgent,
  type Logger,
  type ResolvedFile,
} from '@kitbridge/core';
import { DiscordAPIError, RateLimitError, type REST, Routes } from 'discord.js';
import { request } from 'undici';
import { safeError } from './errors.js';
import { type ParsedRef, parseRef, type RawAttachment, type RawMessage, unsignedUrl } from './inbound.js';

export interface DiscordFilesOptions {
  rest: REST;
  /** The CDN base for avatars, without a trailing slash. */
  cdnUrl: string;
  token: string;
  logger: () => Logger;
}

/** Hosts Discord serves attachments from; a refreshed link must stay on the link's own host or one of these. */
const DISCORD_FILE_HOSTS = new Set(['cdn.discordapp.com', 'media.discordapp.net']);
const GONE_CODES = new Set([10003, 10008, 50001]);

export class DiscordFiles {
  /** A dispatcher of our own (undici 7): downloads never share the process-wide one. */
  private readonly agent = new LazyAgent();
  /** unsigned link -> signed link and until when it works. */
  private readonly signed = new Map<string, { url: string; until: number }>();

  constructor(private readonly o: DiscordFilesOptions) {}

  async open(ref: AttachmentRef, signal?: AbortSignal): Promise<ResolvedFile> {
    const parsed = parseRef(ref.ref);
    if (!parsed) throw new AttachmentGoneError('not a Discord file reference');
    if (parsed.kind === 'avatar') {
      const url = `${this.o.cdnUrl}/avatars/${parsed.userId}/${parsed.hash}.png?size=256`;
      const res = await this.get(url, signal);
      if (res === 'gone') throw new AttachmentGoneError('the customer changed or removed their avatar');
      return this.resolved(res, ref);
    }
    let url = this.cached(parsed.url);
    const fromCache = url !== undefined;
    url ??= await this.refresh(parsed, signal);
    let res = await this.get(url, signal);
    if (res === 'gone' && fromCache) {
      this.signed.delete(parsed.url);
      res = await this.get(await this.refresh(parsed, signal), signal);
    }
    if (res === 'gone')
      throw new AttachmentGoneError('Discord no longer serves this file (its message was deleted)');
    return this.resolved(res, ref);
  }

  /** Closes the download connections; running downloads get `graceMs` to finish. */
  close(graceMs = 2_000): Promise<void> {
    return this.agent.close(graceMs);
  }

  /** A freshly signed link: refresh-urls, else the message read again. */
  private async refresh(
    p: Extract<ParsedRef, { kind: 'attachment' }>,
    signal?: AbortSignal,
  ): Promise<string> {
    let fresh: string | undefined;
    try {
      const res = (await this.o.rest.post('/attachments/refresh-urls', {
        body: { attachment_urls: [p.url] },
        ...(signal ? { signal } : {}),
      })) as { refreshed_urls?: { original?: string; refreshed?: string }[] };
      fresh = res.refreshed_urls?.find((r) => r.refreshed)?.refreshed;
    } catch (err) {
      if (err instanceof RateLimitError || !(err instanceof DiscordAPIError) || err.status >= 500) {
        throw safeError(err, this.o.token);
      }
      this.o.logger().debug({ err: err.message }, 'refresh-urls refused; reading the message again');
    }
    // An unknown link comes back as it was sent, unsigned: the message tells whether the file still exists.
    if (!fresh || !new URL(fresh).searchParams.has('hm')) fresh = await this.fromMessage(p, signal);
    if (!this.sameHost(p.url, fresh))
      throw new AttachmentGoneError('Discord answered a link on an unexpected host');
    this.signed.set(p.url, { url: fresh, until: expiryOf(fresh) });
    if (this.signed.size > 10_000) this.signed.delete(this.signed.keys().next().value!);
    return fresh;
  }

  private async fromMessage(
    p: Extract<ParsedRef, { kind: 'attachment' }>,
    signal?: AbortSignal,
  ): Promise<string> {
    let msg: RawMessage;
    try {
      msg = (await this.o.rest.get(Routes.channelMessage(p.channelId, p.messageId), {
        ...(signal ? { signal } : {}),
      })) as RawMessage;
    } catch (err) {
      if (err instanceof DiscordAPIError && typeof err.code === 'number' && GONE_CODES.has(err.code)) {
        throw new AttachmentGoneError(`Discord no longer has this file (${err.message})`);
      }
      throw safeError(err, this.o.token);
    }
    const all: RawAttachment[] = [
      ...(msg.attachments ?? []),
      ...(msg.message_snapshots ?? []).flatMap((s) => s.message?.attachments ?? []),
    ];
    const a = all.find((x) => x.id === p.attachmentId || unsignedUrl(x.url) === p.url);
    if (!a) throw new AttachmentGoneError('the file was removed from its message');
    return a.url;
  }

  private cached(unsigned: string): string | undefined {
    const hit = this.signed.get(unsigned);
    if (!hit) return undefined;
    if (Date.now() < hit.until) return hit.url;
    this.signed.delete(unsigned);
    return undefined;
  }

  private sameHost(original: string, fresh: string): boolean {
    const a = new URL(original);
    const b = new URL(fresh);
    return a.origin === b.origin || DISCORD_FILE_HOSTS.has(b.hostname);
  }

  private async get(
    url: string,
    signal?: AbortSignal,
  ): Promise<Awaited<ReturnType<typeof request>> | 'gone'> {
    let res: Awaited<ReturnType<typeof request>>;
    try {
      res = await request(url, { dispatcher: this.agent.dispatcher, ...(signal ? { signal } : {}) });
    } catch (err) {
      throw new Error(`Discord CDN download failed: ${safeError(err, this.o.token).message}`);
    }
    if (res.statusCode === 200) return res;
    await res.body.dump().catch(() => {});
    if (res.statusCode === 404 || res.statusCode === 403 || res.statusCode === 410) return 'gone';
    throw new Error(`Discord CDN download failed: HTTP ${res.statusCode}`);
  }

  private resolved(res: Awaited<ReturnType<typeof request>>, ref: AttachmentRef): ResolvedFile {
    const length = Number(res.headers['content-length']);
    const header = res.headers['content-type'];
    const contentType = ref.mimeType ?? (typeof header === 'string' ? header : undefined);
    return {
      stream: res.body,
      ...(contentType ? { contentType } : {}),
      ...(Number.isFinite(length) ? { size: length } : ref.size !== undefined ? { size: ref.size } : {}),
      ...(ref.fileName ? { fileName: ref.fileName } : {}),
    };
  }
}

/** When a signed link stops working (its `ex`, hex seconds), less a margin; an hour when it does not say. */
export function expiryOf(url: string): number {
  const ex = new URL(url).searchParams.get('ex');
  const at = ex && /^[0-9a-f]{1,12}$/i.test(ex) ? Number.parseInt(ex, 16) * 1000 : Number.NaN;
  return Number.isFinite(at)
    ? Math.min(at - 10 * 60_000, Date.now() + 24 * 3_600_000)
    : Date.now() + 3_600_000;
}
