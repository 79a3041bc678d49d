/**
 * Customer files and avatars for the media proxy.
 *
 * A file's bytes are at its `url_private_download`, which answers only with
 * `Authorization: Bearer <bot token>` and the `files:read` scope. Without them
 * Slack does not say 401: it redirects to (or serves at once) its HTML sign-in
 * page with status 200. So an HTML answer where a file was expected is an
 * error that names the missing scope, and those bytes never reach Kit.
 *
 * The token goes only to Slack's own hosts (the API host's domain and its
 * subdomains, e.g. files.slack.com for slack.com), never through a redirect.
 * Slack Connect file stubs (`file_access: check_file_info`) carry no URL:
 * files.info gives it. A deleted file is {@link AttachmentGoneError}.
 */
import { AttachmentGoneError, type AttachmentRef, LazyAgent, type ResolvedFile } from '@kitbridge/core';
import type { WebClient } from '@slack/web-api';
import { request } from 'undici';
import { describeSlackError, neededScope, platformError } from './errors.js';
import { decodeRef } from './inbound.js';
import { withSignal } from './web.js';

/** What the error says when Slack served its sign-in page instead of a file. */
export const SIGN_IN_PAGE =
  'Slack answered with its HTML sign-in page instead of the file: the bot token lacks the files:read scope ' +
  '(add it under OAuth & Permissions, reinstall the app, restart kitbridge)';

export interface SlackFilesOptions {
  web: WebClient;
  token: string;
  /** SLACK_API_URL, with the trailing slash. */
  apiUrl: string;
}

export class SlackFiles {
  private readonly agent = new LazyAgent();
  private readonly apiOrigin: string;
  private readonly domain: string;

  constructor(private readonly opts: SlackFilesOptions) {
    const api = new URL(opts.apiUrl);
    this.apiOrigin = api.origin;
    this.domain = api.hostname.replace(/^(api|www)\./, '');
  }

  async open(ref: AttachmentRef): Promise<ResolvedFile> {
    const decoded = decodeRef(ref.ref);
    if (!decoded) throw new AttachmentGoneError('not a Slack file reference');
    if (decoded.type === 'avatar') return this.openAvatar(decoded.url, ref);
    let url = decoded.url;
    let name = ref.fileName;
    let mimeType = ref.mimeType;
    if (!url) {
      const info = await this.info(decoded.id);
      url = info.url_private_download || info.url_private;
      name ??= info.name;
      mimeType ??= info.mimetype;
      if (!url) throw new AttachmentGoneError('Slack gives no download link for this file');
    }
    if (!this.isSlackHost(url)) {
      throw new Error(`file link outside Slack's hosts (${safeHost(url)}): not fetched with the bot token`);
    }
    const res = await this.get(url, { authorization: `Bearer ${this.opts.token}` });
    const status = res.statusCode;
    const type = header(res.headers['content-type']);
    if (status >= 300 && status < 400) {
      await res.body.dump().catch(() => {});
      throw new Error(SIGN_IN_PAGE);
    }
    if (status === 404 || status === 410) {
      await res.body.dump().catch(() => {});
      throw new AttachmentGoneError('Slack no longer has this file');
    }
    if (status === 403) {
      await res.body.dump().catch(() => {});
      throw new AttachmentGoneError('Slack refuses this file to the app (HTTP 403)');
    }
    if (status !== 200 && status !== 206) {
      await res.body.dump().catch(() => {});
      throw new Error(`Slack file download failed: HTTP ${status}`);
    }
    if (/^text\/html\b/i.test(type ?? '') && !/html/i.test(mimeType ?? '')) {
      // Read off and dropped (a page of a few KB): never a byte of it handed on.
      await res.body.dump().catch(() => {});
      throw new Error(SIGN_IN_PAGE);
    }
    const length = Number(res.headers['content-length']);
    const contentType = mimeType ?? type;
    return {
      stream: res.body,
      ...(contentType ? { contentType } : {}),
      ...(Number.isFinite(length) ? { size: length } : ref.size !== undefined ? { size: ref.size } : {}),
      ...(name ? { fileName: name } : {}),
    };
  }

  /** Closes the download connections; running downloads get `graceMs` to finish. */
  close(graceMs = 2_000): Promise<void> {
    return this.agent.close(graceMs);
  }

  /** Whether the bot token may go to `url`: the API's own origin, or https on its domain. */
  isSlackHost(url: string): boolean {
    if (!URL.canParse(url)) return false;
    const u = new URL(url);
    if (u.origin === this.apiOrigin) return true;
    if (u.protocol !== 'https:') return false;
    return u.hostname === this.domain || u.hostname.endsWith(`.${this.domain}`);
  }

  private async info(
    id: string,
  ): Promise<{ url_private?: string; url_private_download?: string; name?: string; mimetype?: string }> {
    try {
      const r = await withSignal(AbortSignal.timeout(30_000), () => this.opts.web.files.info({ file: id }));
      return (r.file ?? {}) as {
        url_private?: string;
        url_private_download?: string;
        name?: string;
        mimetype?: string;
      };
    } catch (err) {
      const code = platformError(err);
      if (code === 'file_not_found' || code === 'file_deleted')
        throw new AttachmentGoneError('Slack no longer has this file');
      const scope = neededScope(err);
      if (scope) throw new Error(`Slack refuses files.info: the bot token lacks the ${scope} scope`);
      throw new Error(`Slack files.info failed: ${describeSlackError(err, [this.opts.token])}`);
    }
  }

  /** Avatars are public (Slack's CDN, Gravatar): fetched without the token, following a redirect or two. */
  private async openAvatar(url: string, ref: AttachmentRef): Promise<ResolvedFile> {
    let at = url;
    for (let hops = 0; hops < 4; hops++) {
      if (!/^https?:$/.test(new URL(at).protocol)) break;
      const res = await this.get(at, {});
      const status = res.statusCode;
      const location = header(res.headers['location']);
      if (status >= 300 && status < 400 && location) {
        await res.body.dump().catch(() => {});
        at = new URL(location, at).toString();
        continue;
      }
      if (status === 404 || status === 410) {
        await res.body.dump().catch(() => {});
        throw new AttachmentGoneError('the avatar is gone');
      }
      if (status !== 200) {
        await res.body.dump().catch(() => {});
        throw new Error(`avatar download failed: HTTP ${status}`);
      }
      const length = Number(res.headers['content-length']);
      const type = header(res.headers['content-type']) ?? ref.mimeType;
      return {
        stream: res.body,
        ...(type ? { contentType: type } : {}),
        ...(Number.isFinite(length) ? { size: length } : {}),
        fileName: ref.fileName ?? 'avatar.png',
      };
    }
    throw new AttachmentGoneError('the avatar link goes nowhere');
  }

  private async get(url: string, headers: Record<string, string>) {
    try {
      return await request(url, { method: 'GET', headers, dispatcher: this.agent.dispatcher });
    } catch (err) {
      throw new Error(`Slack file download failed: ${(err as Error).message}`);
    }
  }
}

function header(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function safeHost(url: string): string {
  return URL.canParse(url) ? new URL(url).host : 'not a URL';
}
