import { describe, expect, it } from 'vitest';
import { cleanFileName, contentDisposition, transportFileName } from '../src/media/headers.js';

describe('file names', () => {
  it('drops bidi overrides and isolates, so a name reads as what it is', () => {
    expect(cleanFileName('invoice\u202Efdp.exe')).toBe('invoicefdp.exe');
    expect(cleanFileName('a\u2066b\u2069c\u200f\u061c.txt')).toBe('abc.txt');
    expect(cleanFileName('x\u0085y\u009f.txt')).toBe('xy.txt');
    expect(contentDisposition('evil\u202Egnp.js')).toBe('inline; filename="evilgnp.js"');
  });

  it('cannot add a parameter to an unquoted multipart filename', () => {
    for (const hostile of ['semi.pdf; name="chat_id"', 'a;b=c.pdf', 'x\r\nContent-Type: text/html\r\n.pdf']) {
      const safe = transportFileName(hostile);
      expect(safe, hostile).not.toMatch(/[;"=\r\n\\/]/);
    }
    expect(transportFileName('semi;name=chat_id.pdf')).toBe('semi_name_chat_id.pdf');
    expect(transportFileName('holiday photo.jpg')).toBe('holiday photo.jpg');
    expect(transportFileName('отчёт 2024.pdf')).toBe('отчёт 2024.pdf');
  });

  it('keeps the extension when a long name is shortened, and never returns an empty name', () => {
    const long = transportFileName(`${'a'.repeat(500)}.docx`);
    expect(long.length).toBeLessThanOrEqual(120);
    expect(long.endsWith('.docx')).toBe(true);
    expect(transportFileName('')).toBe('file');
    expect(transportFileName('..')).toBe('file');
    expect(transportFileName('"\\/')).toBe('file');
  });
});
