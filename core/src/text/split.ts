/**
 * Splits long text into messages a platform accepts (Telegram 4096, Discord
 * 2000, Slack 4000 characters), never dropping content and
 * never cutting inside a word unless one word is longer than a whole message.
 *
 * In each window of `limit` characters the cut goes at the last paragraph break,
 * else the last line break, else the last sentence end, else the last space —
 * preferring a boundary in the window's second half so no piece comes out tiny,
 * and taking one from the first half only when the second has none. A word longer
 * than the limit is cut at the last grapheme boundary, so emoji (surrogate pairs,
 * ZWJ sequences, flags) are never broken. Lengths are UTF-16 code units, as
 * JavaScript, Telegram and Discord count them.
 */

type Cut = { at: number; kind: 'line' | 'space' };

const FINDERS: ((window: string) => Cut[])[] = [
  // paragraph: a blank line
  (w) => [...w.matchAll(/\n[ \t]*\r?\n/g)].map((m) => ({ at: m.index, kind: 'line' as const })),
  // line
  (w) => [...w.matchAll(/\r?\n/g)].map((m) => ({ at: m.index, kind: 'line' as const })),
  // sentence: terminal punctuation, closing quotes/brackets, then whitespace
  (w) =>
    [...w.matchAll(/[.!?…。！？]+["'”’»)\]]*(?=\s)/g)].map((m) => ({
      at: m.index + m[0].length,
      kind: 'space' as const,
    })),
  // word
  (w) => [...w.matchAll(/\s/g)].map((m) => ({ at: m.index, kind: 'space' as const })),
];

const segmenter = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

/** Splits `text` into pieces of at most `limit` UTF-16 code units; empty text gives no pieces. */
export function splitText(text: string, limit: number): string[] {
  if (limit < 2) throw new RangeError('limit must be at least 2');
  const pieces: string[] = [];
  let rest = text;
  while (rest.length > limit) {
    const cut = findCut(rest, limit);
    const head = rest.slice(0, cut.at).replace(/\s+$/, '');
    rest = rest.slice(cut.at);
    rest = cut.kind === 'line' ? rest.replace(/^(?:[ \t]*\r?\n)+/, '') : rest.replace(/^\s+/, '');
    if (/\S/.test(head)) pieces.push(head);
  }
  if (/\S/.test(rest)) pieces.push(rest);
  return pieces;
}

function findCut(s: string, limit: number): Cut {
  // One character past the limit, so whitespace right at the limit counts as a boundary.
  const window = s.slice(0, limit + 1);
  const half = Math.floor(limit / 2);
  let fallback: Cut | undefined;
  for (const find of FINDERS) {
    const cuts = find(window).filter((c) => c.at > 0 && c.at <= limit);
    const last = cuts.at(-1);
    if (!last) continue;
    if (last.at >= half) return last;
    fallback ??= last;
  }
  return fallback ?? { at: hardCut(s, limit), kind: 'space' };
}

/** The last grapheme boundary at or before `limit` (a code point boundary if one grapheme is longer). */
function hardCut(s: string, limit: number): number {
  let at = 0;
  for (const { index } of segmenter.segment(s.slice(0, limit + 1))) {
    if (index > limit) break;
    at = index;
  }
  if (at > 0) return at;
  const code = s.charCodeAt(limit - 1);
  return code >= 0xd800 && code <= 0xdbff ? limit - 1 : limit;
}
