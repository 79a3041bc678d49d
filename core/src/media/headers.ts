/**
 * Content-Disposition both ways (RFC 6266 with RFC 8187 `filename*`), and the
 * small header checks the media proxy needs.
 */

// RFC 8187 attr-char: ALPHA / DIGIT / "!#$&+-.^_`|~". encodeURIComponent leaves `'()*` too.
const NOT_ATTR_CHAR = /['()*]/g;

/**
 * `inline; filename="..."` with an ASCII fallback, plus `filename*=UTF-8''...`
 * when the name is not plain ASCII. Quotes, backslashes and control characters
 * (CR/LF) are removed first, so the header cannot be split or broken.
 */
export function contentDisposition(fileName: string, type: 'inline' | 'attachment' = 'inline'): string {
  const name = cleanFileName(fileName) || 'file';
  const ascii = name.replace(/[^\x20-\x7e]/g, '_');
  if (ascii === name) return `${type}; filename="${name}"`;
  const encoded = encodeURIComponent(name).replace(
    NOT_ATTR_CHAR,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
  return `${type}; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}

/** Control characters, and bidi marks, overrides and isolates: never in a name a person reads. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: removing control characters is the point
export const CONTROL_AND_BIDI = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/**
 * Drops what a file name must never carry: control characters, bidi overrides and
 * isolates (which make `evil\u202Efdp.exe` read as `evilexe.pdf`), quotes,
 * backslashes, path separators.
 */
export function cleanFileName(name: string): string {
  return name
    .replace(CONTROL_AND_BIDI, '')
    .replace(/["\\/]/g, '')
    .trim();
}

/** Longest file name handed to a platform, in UTF-16 units (filesystems allow 255 bytes). */
const MAX_TRANSPORT_NAME = 120;

/**
 * A file name safe in any transport a plugin uploads through, including
 * multipart part headers that write `filename=` unquoted (grammY does): beyond
 * {@link cleanFileName}, `;` `=` `,` and the other header separators become `_`,
 * so a name cannot add a parameter (`a.pdf; name="chat_id"`). The extension is
 * kept when the name has to be shortened. Every plugin uses this one function.
 */
export function transportFileName(name: string, fallback = 'file'): string {
  let clean = cleanFileName(name)
    .replace(/[;=,<>:*?|{}[\]]/g, '_')
    .replace(/\s+/g, ' ')
    .trim();
  if (!clean || /^\.+$/.test(clean)) clean = fallback;
  if (clean.length <= MAX_TRANSPORT_NAME) return clean;
  const dot = clean.lastIndexOf('.');
  const ext = dot > 0 && clean.length - dot <= 16 ? clean.slice(dot) : '';
  return clean.slice(0, MAX_TRANSPORT_NAME - ext.length) + ext;
}

/** Types a browser shows without running anything: images (not SVG), audio, video, PDF. */
export function isPassiveType(contentType: string): boolean {
  const t = contentType.split(';')[0]!.trim().toLowerCase();
  if (t === 'application/pdf') return true;
  if (t.startsWith('image/')) return !t.includes('svg') && !t.includes('xml');
  return t.startsWith('audio/') || t.startsWith('video/');
}

/** No scripts, no plugins, no same-origin powers for anything served from /media. */
export const SANDBOX_CSP = "default-src 'none'; sandbox";

/**
 * The CSP of a media answer. PDF gets `default-src 'none'` without `sandbox`,
 * which would stop browsers' PDF viewers; everything else is sandboxed too.
 */
export function mediaCsp(contentType: string): string {
  return contentType.split(';')[0]!.trim().toLowerCase() === 'application/pdf'
    ? "default-src 'none'"
    : SANDBOX_CSP;
}

/**
 * The file name from a Content-Disposition header: `filename*` (UTF-8 or
 * ISO-8859-1) wins over `filename`; undefined when neither is usable.
 */
export function parseContentDispositionFileName(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const star = /(?:^|;)\s*filename\*\s*=\s*([\w!#$%&+.^`|~-]+)'[\w-]*'([^;\s]+)/i.exec(header);
  if (star) {
    const charset = star[1]!.toLowerCase();
    try {
      const value =
        charset === 'utf-8'
          ? decodeURIComponent(star[2]!)
          : star[2]!.replace(/%([0-9a-f]{2})/gi, (_, h: string) =>
              String.fromCharCode(Number.parseInt(h, 16)),
            );
      const name = cleanFileName(value);
      if (name) return name;
    } catch {
      // Bad percent-encoding: fall through to the plain parameter.
    }
  }
  const plain = /(?:^|;)\s*filename\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))/i.exec(header);
  if (plain) {
    const name = cleanFileName((plain[1] ?? plain[2] ?? '').replace(/\\(.)/g, '$1'));
    if (name) return name;
  }
  return undefined;
}

/** A Content-Type safe to send as a header, else undefined. */
export function safeContentType(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const v = value.trim();
  return /^[\w!#$&^.+-]+\/[\w!#$&^.+-]+(\s*;[\x20-\x7e]*)?$/.test(v) && v.length <= 200 ? v : undefined;
}
