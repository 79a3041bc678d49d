/**
 * A tolerant multipart/form-data parser for fake servers. Real clients write
 * bodies that strict parsers reject or misread: grammy sends lower-case part
 * headers without spaces (`content-disposition:form-data;name="x";filename=a b.jpg`)
 * and an unquoted filename that may contain spaces, which Node 20's
 * `Response.formData()` and busboy both get wrong. This one accepts quoted and
 * unquoted parameters, any header case, `filename*=UTF-8''…`, CRLF or bare LF.
 */

export interface MultipartPart {
  /** The form field name. */
  name: string;
  /** Present for file parts. */
  fileName?: string;
  contentType?: string;
  /** Every part header, names in lower case. */
  headers: Record<string, string>;
  data: Buffer;
}

export interface MultipartBody {
  /** Non-file parts as strings (the last one wins for repeated names). */
  fields: Record<string, string>;
  /** File parts, in body order. */
  files: MultipartPart[];
  parts: MultipartPart[];
}

/** The boundary of a `multipart/form-data; boundary=…` header; undefined when absent. */
export function multipartBoundary(contentType: string | undefined): string | undefined {
  if (!contentType || !/^\s*multipart\//i.test(contentType)) return undefined;
  const m = /;\s*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  return m?.[1] ?? m?.[2];
}

/** Parses a whole multipart body. Throws on a body without the boundary or with an unterminated part. */
export function parseMultipart(body: Buffer, contentTypeOrBoundary: string): MultipartBody {
  const boundary = multipartBoundary(contentTypeOrBoundary) ?? contentTypeOrBoundary;
  if (!boundary) throw new Error('multipart: no boundary');
  const delimiter = Buffer.from(`--${boundary}`);
  const parts: MultipartPart[] = [];
  let pos = body.indexOf(delimiter);
  if (pos < 0) throw new Error('multipart: boundary not found in body');
  for (;;) {
    pos += delimiter.length;
    if (body[pos] === 0x2d && body[pos + 1] === 0x2d) break; // closing delimiter
    // Transport padding, then the line break after the delimiter.
    while (body[pos] === 0x20 || body[pos] === 0x09) pos++;
    if (body[pos] === 0x0d) pos++;
    if (body[pos] === 0x0a) pos++;
    const next = body.indexOf(delimiter, pos);
    if (next < 0) throw new Error('multipart: unterminated part');
    // The line break before the next delimiter belongs to the delimiter.
    let end = next;
    if (body[end - 1] === 0x0a) end--;
    if (body[end - 1] === 0x0d) end--;
    parts.push(parsePart(body.subarray(pos, end)));
    pos = next;
  }
  const fields: Record<string, string> = {};
  const files: MultipartPart[] = [];
  for (const p of parts) {
    if (p.fileName !== undefined) files.push(p);
    else fields[p.name] = p.data.toString('utf8');
  }
  return { fields, files, parts };
}

function parsePart(raw: Buffer): MultipartPart {
  let split = raw.indexOf('\r\n\r\n');
  let gap = 4;
  const lf = raw.indexOf('\n\n');
  if (split < 0 || (lf >= 0 && lf < split)) {
    split = lf;
    gap = 2;
  }
  const headerText = split < 0 ? raw.toString('utf8') : raw.subarray(0, split).toString('utf8');
  const data = split < 0 ? Buffer.alloc(0) : raw.subarray(split + gap);
  const headers: Record<string, string> = {};
  for (const line of headerText.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const disposition = headers['content-disposition'] ?? '';
  const params = dispositionParams(disposition);
  const part: MultipartPart = { name: params['name'] ?? '', headers, data };
  const fileName = params['filename*'] ?? params['filename'];
  if (fileName !== undefined) part.fileName = fileName;
  if (headers['content-type']) part.contentType = headers['content-type'];
  return part;
}

/**
 * Parameters of a Content-Disposition value. Quoted values may contain `;`; an
 * unquoted value runs to the next `; key=` (so unquoted filenames with spaces
 * survive) or the end of the line.
 */
export function dispositionParams(value: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /;\s*([A-Za-z0-9_*-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|(.*?)(?=\s*;\s*[A-Za-z0-9_*-]+\s*=|\s*$))/g;
  for (const m of value.matchAll(re)) {
    const key = m[1]!.toLowerCase();
    let v = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : (m[3] ?? '');
    if (key.endsWith('*')) {
      const ext = /^([^']*)'[^']*'(.*)$/.exec(v);
      if (ext) {
        try {
          v = decodeURIComponent(ext[2]!);
        } catch {
          v = ext[2]!;
        }
      }
    }
    out[key] = v;
  }
  return out;
}
