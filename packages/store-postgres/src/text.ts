/**
 * PostgreSQL text cannot hold U+0000, which the Store contract allows in ids,
 * keys and cursors. Those go through this reversible escape: `\` becomes `\\`
 * and U+0000 becomes `\0`; everything else (what real ids are made of) is
 * stored as it is, so operators can still query `client_id = 'tg:42'`.
 */
export function encodeText(s: string): string {
  return s.includes('\\') || s.includes('\u0000')
    ? s.replaceAll('\\', '\\\\').replaceAll('\u0000', '\\0')
    : s;
}

/** The inverse of {@link encodeText}. */
export function decodeText(s: string): string {
  return s.includes('\\') ? s.replace(/\\([\\0])/g, (_, c: string) => (c === '0' ? '\u0000' : '\\')) : s;
}

/** Diagnostic text (errors, reasons, owners): a U+0000 is replaced, not escaped. */
export function scrubText(s: string): string {
  return s.includes('\u0000') ? s.replaceAll('\u0000', '\ufffd') : s;
}
