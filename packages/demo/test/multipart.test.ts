import { describe, expect, it } from 'vitest';
import { dispositionParams, multipartBoundary, parseMultipart } from '../src/multipart.js';

describe('parseMultipart (testkit)', () => {
  it("reads grammy's bodies: lower-case headers, unquoted filename with spaces, attach:// ids", () => {
    const b = 'XyZ';
    const body = Buffer.concat([
      Buffer.from(`--${b}\r\ncontent-disposition:form-data;name="chat_id"\r\n\r\n42\r\n`),
      Buffer.from(`--${b}\r\ncontent-disposition:form-data;name="photo"\r\n\r\nattach://abc\r\n`),
      Buffer.from(`--${b}\r\ncontent-disposition:form-data;name="abc";filename=my holiday; photo.jpg\r\n`),
      Buffer.from('content-type:application/octet-stream\r\n\r\n'),
      Buffer.from([0, 1, 2, 13, 10, 45, 45, 255]),
      Buffer.from(`\r\n--${b}--\r\n`),
    ]);
    const r = parseMultipart(body, `multipart/form-data; boundary=${b}`);
    expect(r.fields).toEqual({ chat_id: '42', photo: 'attach://abc' });
    expect(r.files).toHaveLength(1);
    expect(r.files[0]).toMatchObject({
      name: 'abc',
      fileName: 'my holiday; photo.jpg',
      contentType: 'application/octet-stream',
    });
    expect(r.files[0]!.data).toEqual(Buffer.from([0, 1, 2, 13, 10, 45, 45, 255]));
  });

  it('reads standard bodies: quoted values, any header case, filename*, LF line breaks', () => {
    const body = Buffer.from(
      '--q\nContent-Disposition: form-data; name="doc"; filename="a \\"b\\".txt"; filename*=UTF-8\'\'%C3%A9t%C3%A9.txt\nContent-Type: text/plain\n\nhello\n--q--',
    );
    const r = parseMultipart(body, 'multipart/form-data; boundary="q"');
    expect(r.files[0]).toMatchObject({ name: 'doc', fileName: 'été.txt', contentType: 'text/plain' });
    expect(r.files[0]!.data.toString()).toBe('hello');
  });

  it('fails clearly on bodies it cannot read', () => {
    expect(() => parseMultipart(Buffer.from('nothing'), 'multipart/form-data; boundary=zz')).toThrow(
      /boundary not found/,
    );
    expect(() => parseMultipart(Buffer.from('--zz\r\na'), 'zz')).toThrow(/unterminated/);
    expect(multipartBoundary('application/json')).toBeUndefined();
  });

  it('parses disposition parameters', () => {
    expect(dispositionParams('form-data; name="a;b"; filename=x y.png')).toEqual({
      name: 'a;b',
      filename: 'x y.png',
    });
  });
});
