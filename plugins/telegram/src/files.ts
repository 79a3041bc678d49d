/**
 * Customer files for the media proxy: getFile, then a stream of the file from
 * the Bot API's file endpoint. That URL holds the bot token, so it never leaves
 * this module: not in a returned value, not in an error message.
 */
import {
  AttachmentGoneError,
  type AttachmentRef,
  LazyAgent,
  type MediaLimits,
  type ResolvedFile,
} from '@kitbridge/core';
import { type Api, GrammyError } from 'grammy';
import { request } from 'undici';
import { safeError, scrubToken } from './errors.js';

export interface FileSourceOptions {
  api: Api;
  token: string;
  /** Without a trailing slash. */
  apiRoot: string;
  /** The connector's table: what may be downloaded. */
  limits: MediaLimits;
}

export class TelegramFiles {
  /** A dispatcher of our own: downloads never share (or leak into) the process-wide one. */
  private readonly agent = new LazyAgent();

  constructor(private readonly opts: FileSourceOptions) {}

  /** Opens a Telegram file by its file_id. Throws AttachmentGoneError when Telegram no longer has it. */
  async open(ref: AttachmentRef): Promise<ResolvedFile> {
    const { api, token, apiRoot } = this.opts;
    let file: Awaited<ReturnType<Api['getFile']>>;
    try {
      file = await api.getFile(ref.ref);
    } catch (err) {
      // 400: "wrong file_id", "file is too big", "file not found": no retry brings it back.
      if (err instanceof GrammyError && err.error_code === 400) {
        throw new AttachmentGoneError(`Telegram no longer serves this file (${err.description})`);
      }
      throw safeError(err, token);
    }
    const size = file.file_size ?? ref.size;
    const limit = this.opts.limits[ref.kind].maxDownloadBytes;
    if (size !== undefined && limit !== undefined && size > limit) {
      // Permanent: the proxy answers 404 and Kit does not retry.
      throw new AttachmentGoneError(
        `file of ${(size / 1024 ** 2).toFixed(1)} MB is over the Bot API's ${limit / 1024 ** 2} MB download limit ` +
          '(a self-hosted Bot API server, set with TELEGRAM_API_ROOT, has none)',
      );
    }
    if (!file.file_path) throw new AttachmentGoneError('Telegram gave no file_path for this file');

    const path = file.file_path.split('/').map(encodeURIComponent).join('/');
    let res: Awaited<ReturnType<typeof request>>;
    try {
      res = await request(`${apiRoot}/file/bot${token}/${path}`, { dispatcher: this.agent.dispatcher });
    } catch (err) {
      throw new Error(`Telegram file download failed: ${scrubToken((err as Error).message, token)}`);
    }
    if (res.statusCode !== 200) {
      await res.body.dump().catch(() => {});
      if (res.statusCode === 404 || res.statusCode === 400)
        throw new AttachmentGoneError('Telegram no longer serves this file');
      throw new Error(`Telegram file download failed: HTTP ${res.statusCode}`);
    }
    const length = Number(res.headers['content-length']);
    const header = res.headers['content-type'];
    const contentType = ref.mimeType ?? (typeof header === 'string' ? header : undefined);
    return {
      stream: res.body,
      ...(contentType ? { contentType } : {}),
      ...(Number.isFinite(length) ? { size: length } : size !== undefined ? { size } : {}),
      ...(ref.fileName ? { fileName: ref.fileName } : {}),
    };
  }

  /** Closes the download connections; running downloads get `graceMs` to finish. */
  close(graceMs = 2_000): Promise<void> {
    return this.agent.close(graceMs);
  }
}
