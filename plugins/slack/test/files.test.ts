/**
 * Customer files through resolveAttachment (what the media proxy streams to
 * Kit): fetched from url_private_download with the Bearer token, every kind;
 * Slack's HTML sign-in page (files:read missing) is an error that says so and
 * hands no byte on; a deleted file is AttachmentGoneError; Slack Connect stubs
 * go through files.info; the token never leaves Slack's hosts.
 */
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Readable } from 'node:stream';
import { AttachmentGoneError, type AttachmentRef, type InboundItem } from '@kitbridge/core';
import { FakeSlack, SLACK_DOWNLOAD } from '@kitbridge/testkit';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { SlackConnector } from '../src/connector.js';
import { SIGN_IN_PAGE } from '../src/files.js';
import { encodeFileRef } from '../src/inbound.js';
import { TestContext, testConnector } from './setup.js';

let fake: FakeSlack;
let tc: TestContext;
let conn: SlackConnector;

beforeEach(async () => {
  fake = await new FakeSlack().start();
  tc = new TestContext();
  conn = testConnector(fake);
  await conn.start(tc.ctx);
});

afterEach(async () => {
  tc.abort.abort();
  await conn.stop();
  await fake.close();
});

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c as Uint8Array));
  return Buffer.concat(chunks);
}

const media = (items: InboundItem[] | undefined) =>
  (items ?? []).filter((i): i is AttachmentRef & { type: 'media' } => i.type === 'media');

async function customerSends(files: { name: string; bytes: Buffer; mimetype: string }[], text = '') {
  const ann = fake.user({ name: 'ann' });
  const env = fake.sendEnvelope(fake.dm(ann, { text, files }));
  await fake.waitForAck(env.envelopeId);
  return media(tc.received.at(-1)!.items);
}

describe('customer files', () => {
  it('every kind reaches Kit byte for byte, fetched with the bot token from url_private_download', async () => {
    const files = [
      { name: 'photo.jpg', bytes: Buffer.alloc(70_000, 1), mimetype: 'image/jpeg' },
      { name: 'clip.mov', bytes: Buffer.alloc(80_000, 2), mimetype: 'video/quicktime' },
      { name: 'audio_message.m4a', bytes: Buffer.alloc(9_000, 3), mimetype: 'audio/mp4' },
      { name: 'contract v2.pdf', bytes: Buffer.alloc(120_000, 4), mimetype: 'application/pdf' },
    ];
    const items = await customerSends(files, 'four files');
    expect(items.map((i) => i.kind)).toEqual(['photo', 'video', 'audio', 'document']);
    // Nothing was fetched before the ack: the proxy asks when Kit does.
    expect(fake.fileRequests).toHaveLength(0);
    for (const [i, item] of items.entries()) {
      const f = await conn.resolveAttachment(item);
      expect(f).toMatchObject({
        contentType: files[i]!.mimetype,
        size: files[i]!.bytes.length,
        fileName: files[i]!.name,
      });
      expect((await readAll(f.stream)).equals(files[i]!.bytes)).toBe(true);
    }
    expect(fake.fileRequests.map((r) => [r.authorized, r.status, r.servedHtml])).toEqual(
      files.map(() => [true, 200, false]),
    );
    expect(fake.fileRequests.every((r) => r.path.includes('/download/'))).toBe(true);
  });

  it('without files:read Slack serves its sign-in page: an error that names the scope, and no byte of it', async () => {
    const [item] = await customerSends([
      { name: 'scan.png', bytes: Buffer.from('png bytes'), mimetype: 'image/png' },
    ]);
    fake.scopes.delete('files:read');
    fake.fileAuthFailure = 'html';
    await expect(conn.resolveAttachment(item!)).rejects.toThrow(SIGN_IN_PAGE);
    expect(SIGN_IN_PAGE).toContain('files:read');
    expect(fake.fileRequests.at(-1)).toMatchObject({ status: 200, servedHtml: true });
    // Slack's usual answer, the redirect to that page, is the same error; the redirect is not followed.
    fake.fileAuthFailure = 'redirect';
    await expect(conn.resolveAttachment(item!)).rejects.toThrow(SIGN_IN_PAGE);
    expect(fake.fileRequests.at(-1)).toMatchObject({ status: 302 });
    expect(fake.fileRequests).toHaveLength(2);
  });

  it('a deleted file is AttachmentGoneError (the proxy answers 404, Kit stops asking)', async () => {
    const [item] = await customerSends([
      { name: 'gone.txt', bytes: Buffer.from('soon gone'), mimetype: 'text/plain' },
    ]);
    fake.removeFile(item!.ref.split('|')[0]!);
    await expect(conn.resolveAttachment(item!)).rejects.toBeInstanceOf(AttachmentGoneError);
    await expect(conn.resolveAttachment({ ref: 'nonsense', kind: 'document' })).rejects.toBeInstanceOf(
      AttachmentGoneError,
    );
  });

  it('a 5xx from the file host is a plain error (the proxy answers 502 and Kit may try again)', async () => {
    const [item] = await customerSends([{ name: 'a.txt', bytes: Buffer.from('a'), mimetype: 'text/plain' }]);
    fake.failNext(SLACK_DOWNLOAD, { status: 503 });
    const err = await conn.resolveAttachment(item!).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(AttachmentGoneError);
  });

  it('Slack Connect stubs (check_file_info): files.info gives the link, then the bytes', async () => {
    const shared = fake.channel({ name: 'partners', is_ext_shared: true });
    await conn.stop();
    conn = testConnector(fake, { supportChannelId: shared.id });
    tc = new TestContext();
    await conn.start(tc.ctx);
    const olga = fake.user({ name: 'olga', team_id: 'T0OTHERORG' });
    const bytes = Buffer.from('%PDF-1.4 from another org');
    const env = fake.sendEnvelope(
      fake.channelMessage(shared.id, olga, {
        files: [{ name: 'po.pdf', bytes, mimetype: 'application/pdf' }],
        fileAccess: 'check_file_info',
      }),
    );
    await fake.waitForAck(env.envelopeId);
    const [item] = media(tc.received[0]!.items);
    expect(tc.received[0]!.client.clientId).toBe(`sl:T0OTHERORG:${olga.id}`);
    const f = await conn.resolveAttachment(item!);
    expect(f.fileName).toBe('po.pdf');
    expect((await readAll(f.stream)).equals(bytes)).toBe(true);
    expect(fake.callsOf('files.info')).toHaveLength(1);
  });

  it("the bot token goes to Slack's hosts only: a link elsewhere is refused without a request", async () => {
    const seen: IncomingHttpHeaders[] = [];
    const other = createServer((req, res) => {
      seen.push(req.headers);
      res.end('x');
    });
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(other.address() as AddressInfo).port}/files-pri/T1-F1/x.png`;
      await expect(
        conn.resolveAttachment({ ref: encodeFileRef('F0AAAA1', url), kind: 'photo' }),
      ).rejects.toThrow(/outside Slack's hosts/);
      await expect(
        conn.resolveAttachment({
          ref: encodeFileRef('F0AAAA1', 'https://files.slack.com.evil.example/x'),
          kind: 'photo',
        }),
      ).rejects.toThrow(/outside Slack's hosts/);
      expect(seen).toHaveLength(0);
    } finally {
      await new Promise<void>((r) => other.close(() => r()));
    }
  });
});
