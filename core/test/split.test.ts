import { describe, expect, it } from 'vitest';
import { splitText } from '../src/text/split.js';

/** Everything but whitespace, in order: what must survive a split. */
const content = (s: string) => s.replace(/\s+/g, '');

function check(text: string, limit: number): string[] {
  const pieces = splitText(text, limit);
  for (const p of pieces) {
    expect(p.length).toBeLessThanOrEqual(limit);
    expect(p).toBe(p.trim());
    expect(p.length).toBeGreaterThan(0);
    // No lone surrogate at either end of a piece.
    expect(p).not.toMatch(/^[\uDC00-\uDFFF]|[\uD800-\uDBFF]$/);
  }
  expect(content(pieces.join(''))).toBe(content(text));
  return pieces;
}

describe('splitText', () => {
  it('keeps short text as one piece and gives nothing for empty or blank text', () => {
    expect(splitText('hello', 4096)).toEqual(['hello']);
    expect(splitText('x'.repeat(4096), 4096)).toEqual(['x'.repeat(4096)]);
    expect(splitText('', 4096)).toEqual([]);
    expect(splitText('   \n  ', 4096)).toEqual([]);
  });

  it('splits at a paragraph break before a line break', () => {
    const a = 'a'.repeat(30);
    const text = `${a} one\nline two\n\n${a}\nmore words here`;
    const pieces = check(text, 60);
    expect(pieces[0]).toBe(`${a} one\nline two`);
    expect(pieces[1]).toBe(`${a}\nmore words here`);
  });

  it('splits at a line break when there is no paragraph break in reach', () => {
    const text = `${'b'.repeat(40)}\n${'c'.repeat(40)}`;
    expect(check(text, 50)).toEqual(['b'.repeat(40), 'c'.repeat(40)]);
  });

  it('splits at a sentence end before a plain space', () => {
    const text = 'First sentence is here. Second one follows and it runs on and on';
    const pieces = check(text, 40);
    expect(pieces[0]).toBe('First sentence is here.');
    expect(pieces[1]!.startsWith('Second one')).toBe(true);
  });

  it('recognises ?, ! and closing quotes as sentence ends', () => {
    const pieces = check('Is it really "done?" Yes, it is done now, really done', 30);
    expect(pieces[0]).toBe('Is it really "done?"');
  });

  it('never cuts inside a word', () => {
    const words = Array.from({ length: 500 }, (_, i) => `word${i}`);
    const text = words.join(' ');
    const pieces = check(text, 97);
    expect(pieces.length).toBeGreaterThan(10);
    for (const p of pieces) for (const w of p.split(' ')) expect(words).toContain(w);
  });

  it('cuts a word longer than the limit, and only that one', () => {
    const long = 'x'.repeat(25);
    const pieces = check(`short ${long} tail`, 10);
    expect(pieces).toEqual(['short', 'x'.repeat(10), 'x'.repeat(10), 'xxxxx tail']);
  });

  it('prefers a boundary in the second half of the window over an early one', () => {
    // A paragraph break at 5 would make a tiny first piece; the word boundary near the limit wins.
    const text = `tiny\n\n${'word '.repeat(30).trim()}`;
    const pieces = check(text, 50);
    expect(pieces[0]!.length).toBeGreaterThan(25);
  });

  it('uses an early boundary when the window has none later', () => {
    const text = `ab cd ${'z'.repeat(60)}`;
    const pieces = check(text, 40);
    expect(pieces[0]).toBe('ab cd');
  });

  it('does not break surrogate pairs in an over-long run of emoji', () => {
    const text = '😀'.repeat(30); // 60 UTF-16 units, no spaces
    const pieces = check(text, 11);
    for (const p of pieces) expect(p).toMatch(/^(😀)+$/u);
    expect(pieces.join('')).toBe(text);
  });

  it('does not break ZWJ sequences or flags', () => {
    const family = '👨‍👩‍👧‍👦'; // 11 code units
    const flag = '🇺🇦';
    const text = (family + flag).repeat(6);
    const pieces = check(text, 16);
    expect(pieces.join('')).toBe(text);
    for (const p of pieces) expect(p.replaceAll(family, '').replaceAll(flag, '')).toBe('');
  });

  it('handles a space exactly at the limit', () => {
    expect(check('aaaa bbbb', 4)).toEqual(['aaaa', 'bbbb']);
  });

  it('splits Telegram-sized text into pieces of at most 4096', () => {
    const para = 'Lorem ipsum dolor sit amet, consectetur adipiscing elit. '.repeat(30);
    const text = Array.from({ length: 10 }, () => para.trim()).join('\n\n');
    const pieces = check(text, 4096);
    expect(pieces.length).toBeGreaterThan(3);
  });

  it('keeps CRLF line breaks working', () => {
    expect(check(`${'a'.repeat(8)}\r\n${'b'.repeat(8)}`, 10)).toEqual(['a'.repeat(8), 'b'.repeat(8)]);
  });
});
