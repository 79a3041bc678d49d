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

/** Drops what a file name must never carry: control characters, quotes, backslashes, path separators. */
export function cleanFileName(name: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: removing control characters is the point
  return name.replace(/[\u0000-\u001f\u007f"\\/]/g, '').trim();
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
