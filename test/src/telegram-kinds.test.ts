/**
 * Every message kind the Telegram connector handles, both ways, through a
 * running Bridge: real grammY against the fake Bot API, FakeKit on the other
 * side, agent files served by a local HTTP server. Each customer file is
 * fetched back through the media proxy and compared byte for byte.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Bridge, startBridge } from '@kitbridge/core';
import { TelegramConnector } from '@kitbridge/telegram';
import { FakeKit, FakeTelegram, freePort, testCoreConfig, tgUser } from '@kitbridge/testkit';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const creds = {
  account: 'acme',
  apiToken: 'api-token-kinds-0001',
  channelUuid: 'chan-kinds-0001',
  salt: 'salt-kinds',
};
const bob = tgUser(6160, 'Bob', { last_name: 'Stone', language_code: 'pt-br' });

let kit: FakeKit;
let tg: FakeTelegram;
let bridge: Bridge;
let callbackUrl: string;
let files: Server;
let filesUrl: string;

/** Agent files by path: bytes and content type. */
const agentFiles: Record<string, { bytes: Buffer; type: string; disposition?: string }> = {
  '/photo.jpg': { bytes: Buffer.from('agent jpeg bytes'), type: 'image/jpeg' },
  '/clip.mp4': { bytes: Buffer.from('agent mp4 bytes'), type: 'video/mp4' },
  '/song.mp3': { bytes: Buffer.from('agent mp3 bytes'), type: 'audio/mpeg' },
  '/note.ogg': { bytes: Buffer.from('agent ogg bytes'), type: 'audio/ogg' },
  '/terms.pdf': { bytes: Buffer.from('%PDF agent terms'), type: 'application/pdf' },
  '/semi%3Bname%3Dchat_id.pdf': { bytes: Buffer.from('%PDF by url'), type: 'application/pdf' },
  '/by-header': {
    bytes: Buffer.from('%PDF by header'),
    type: 'application/pdf',
    disposition: 'attachment; filename="hdr.pdf; name=chat_id"',
  },
};

beforeAll(async () => {
  kit = new FakeKit(creds);
  await kit.start();
  tg = await new FakeTelegram().start();
  files = createServer((req, res) => {
    const f = agentFiles[req.url ?? ''];
    if (!f) return void res.writeHead(404).end();
    res
      .writeHead(200, {
        'content-type': f.type,
        'content-length': f.bytes.length,
        ...(f.disposition ? { 'content-disposition': f.disposition } : {}),
      })
      .end(f.bytes);
  });
  await new Promise<void>((r) => files.listen(0, '127.0.0.1', r));
  filesUrl = `http://127.0.0.1:${(files.address() as AddressInfo).port}`;
  const connector = new TelegramConnector({
    token: tg.token,
    apiRoot: tg.apiRoot,
    pacing: { perChatMs: 5, globalMs: 1 },
    polling: { timeoutSeconds: 2, backoff: { baseMs: 20, maxMs: 100 } },
  });
  bridge = await startBridge({
    config: testCoreConfig({ url: kit.url, ...creds }, await freePort(), {
      closeMessage: 'This chat is closed.',
    }),
    connector,
  });
  callbackUrl = `${bridge.url}/kit/callback`;
});

afterAll(async () => {
  await bridge?.stop(500);
  await tg.close();
  await kit.close();
  await new Promise<void>((r) => files.close(() => r()));
});

interface KitEvent {
  client_data: Record<string, unknown>;
  event_id: string;
  event_data: { message: { message_id: string; text?: string; payload?: Record<string, unknown>[] } };
}
const events = () => kit.events as KitEvent[];

async function fetchBytes(url: string): Promise<{ status: number; bytes: Buffer }> {
  const r = await request(url);
  return { status: r.statusCode, bytes: Buffer.from(await r.body.arrayBuffer()) };
}

describe('Telegram -> Kit, every kind', () => {
  it('relays each kind as Kit payload, files through the media proxy with their exact bytes', async () => {
    const bytes = (s: string) => Buffer.from(`${s} bytes from the customer`);
    const file = (s: string) => tg.addFile(bytes(s));
    const start = kit.events.length;

    tg.textFrom(bob, '/start');
    tg.textFrom(bob, '/start ads-winter-cpc');
    tg.textFrom(bob, 'plain text');
    tg.photoFrom(bob, bytes('photo'), { caption: 'a photo' });
    tg.messageFrom(bob, {
      video: { ...file('video'), width: 640, height: 360, duration: 3, mime_type: 'video/mp4' },
      caption: 'a video',
    });
    tg.messageFrom(bob, { video_note: { ...file('video_note'), length: 240, duration: 2 } });
    tg.messageFrom(bob, {
      animation: { ...file('animation'), width: 1, height: 1, duration: 1, file_name: 'fun.mp4' },
      document: { ...file('animation'), file_name: 'fun.mp4' },
    });
    tg.messageFrom(bob, { voice: { ...file('voice'), duration: 4, mime_type: 'audio/ogg' } });
    tg.messageFrom(bob, {
      audio: { ...file('audio'), duration: 5, mime_type: 'audio/mpeg', file_name: 'song.mp3' },
    });
    tg.documentFrom(bob, bytes('document'), {
      fileName: 'договор.pdf',
      mimeType: 'application/pdf',
      caption: 'a document',
    });
    tg.messageFrom(bob, {
      sticker: {
        ...file('sticker'),
        type: 'regular',
        width: 512,
        height: 512,
        is_animated: false,
        is_video: false,
        emoji: '👍',
      },
    });
    tg.messageFrom(bob, { location: { latitude: 52.52, longitude: 13.405 } });
    tg.messageFrom(bob, {
      venue: {
        location: { latitude: 48.8584, longitude: 2.2945 },
        title: 'Eiffel Tower',
        address: 'Champ de Mars, Paris',
      },
      location: { latitude: 48.8584, longitude: 2.2945 },
    });
    tg.messageFrom(bob, {
      contact: { phone_number: '+55 11 5555', first_name: 'Bob', last_name: 'Stone', user_id: bob.id },
    });
    const typo = tg.textFrom(bob, 'teh order');
    tg.editedTextFrom(bob, typo.message!.message_id, 'the order', 1_700_000_123);

    // Two /start updates forward nothing: 16 updates above, 14 events.
    await kit.waitForEvents(start + 14, 15_000);
    const got = events().slice(start);
    expect(got).toHaveLength(14);
    expect(got.map((e) => e.event_data.message.text)).toEqual([
      'plain text',
      'a photo',
      'a video',
      undefined,
      undefined,
      undefined,
      undefined,
      'a document',
      '👍',
      undefined,
      undefined,
      undefined,
      'teh order',
      '(edited) the order',
    ]);
    // The edit is an event of its own, with an id of its own.
    const edit = got[13]!;
    expect(edit.event_id).toBe(`tg:6160/${typo.message!.message_id}:e1700000123`);

    const kinds = got.map((e) => (e.event_data.message.payload ?? []).map((p) => p.type).join(','));
    expect(kinds).toEqual([
      '',
      'photo',
      'video',
      'video',
      'video',
      'audio',
      'audio',
      'document',
      'photo',
      'location',
      'location',
      'contact',
      '',
      '',
    ]);

    // Every file through the media proxy: the exact bytes, no token or file id in the URL.
    const expected = [
      [1, 'photo'],
      [2, 'video'],
      [3, 'video_note'],
      [4, 'animation'],
      [5, 'voice'],
      [6, 'audio'],
      [7, 'document'],
      [8, 'sticker'],
    ] as const;
    for (const [i, what] of expected) {
      const item = got[i]!.event_data.message.payload![0]!;
      const url = String(item.file_url);
      expect(url.startsWith(`${bridge.url}/media/`), what).toBe(true);
      expect(url).not.toContain(tg.token);
      expect(url).not.toContain(tg.token.split(':')[1]);
      const fetched = await fetchBytes(url);
      expect(fetched.status, what).toBe(200);
      expect(fetched.bytes.toString(), what).toBe(bytes(what).toString());
    }
    expect(got[7]!.event_data.message.payload![0]).toMatchObject({ file_name: 'договор.pdf' });
    expect(got[6]!.event_data.message.payload![0]).toMatchObject({ file_name: 'song.mp3' });

    expect(got[9]!.event_data.message.payload).toEqual([
      { type: 'location', latitude: 52.52, longitude: 13.405 },
    ]);
    expect(got[10]!.event_data.message.payload).toEqual([
      {
        type: 'location',
        latitude: 48.8584,
        longitude: 2.2945,
        address: 'Eiffel Tower, Champ de Mars, Paris',
      },
    ]);
    expect(got[11]!.event_data.message.payload).toEqual([
      { type: 'contact', name: 'Bob Stone', number: '+55 11 5555' },
    ]);
    // The sender's own number also fills client_phone.
    expect(got[11]!.client_data['client_phone']).toBe('+55 11 5555');

    // The deep link's UTM goes with the messages of the conversation.
    for (const e of got) {
      expect(e.client_data).toMatchObject({
        client_id: 'tg:6160',
        client_display_name: 'Bob Stone',
        client_language: 'pt-br',
        utm: { source: 'ads', campaign: 'winter', medium: 'cpc' },
      });
    }
  });
});

describe('Kit -> Telegram, every kind', () => {
  it('sends text, each file kind, a location and a contact, in order, with the bytes Kit pointed at', async () => {
    const long = Array.from({ length: 120 }, (_, i) => `Sentence number ${i} of a long answer.`).join(' ');
    const body = kit.agentMessage('tg:6160', {
      text: long,
      payload: [
        { type: 'photo', file_name: 'photo.jpg', file_url: `${filesUrl}/photo.jpg` },
        { type: 'video', file_name: 'clip.mp4', file_url: `${filesUrl}/clip.mp4` },
        { type: 'audio', file_name: 'song.mp3', file_url: `${filesUrl}/song.mp3` },
        { type: 'audio', file_name: 'note.ogg', file_url: `${filesUrl}/note.ogg` },
        { type: 'document', file_name: 'terms.pdf', file_url: `${filesUrl}/terms.pdf` },
        { type: 'document', file_name: 'gone.pdf', file_url: `${filesUrl}/gone.pdf` },
        { type: 'location', latitude: 41.9, longitude: 12.5, address: 'Rome' },
        { type: 'contact', name: 'Support line', number: '+1 555 0100' },
      ],
    });
    const before = tg.sent.length;
    expect((await kit.sendCallback(callbackUrl, body)).status).toBe(200);
    await bridge.relay.idle();
    const sent = tg.sent.slice(before);
    expect(sent.map((c) => c.method)).toEqual([
      'sendMessage',
      'sendMessage',
      'sendPhoto',
      'sendVideo',
      'sendAudio',
      'sendVoice',
      'sendDocument',
      'sendLocation',
      'sendMessage',
      'sendContact',
    ]);
    // The long text arrives whole, split at a sentence, each piece within Telegram's limit.
    const [p1, p2] = [String(sent[0]!.params['text']), String(sent[1]!.params['text'])];
    expect(p1.length).toBeLessThanOrEqual(4096);
    expect(p1.endsWith('.')).toBe(true);
    // The second piece also carries core's notice about the file it could not fetch.
    expect(p2.startsWith(long.slice(p1.length + 1))).toBe(true);
    expect(p2).toContain(`gone.pdf: ${filesUrl}/gone.pdf`);
    for (const [call, path, param] of [
      [sent[2]!, '/photo.jpg', 'photo'],
      [sent[3]!, '/clip.mp4', 'video'],
      [sent[4]!, '/song.mp3', 'audio'],
      [sent[5]!, '/note.ogg', 'voice'],
      [sent[6]!, '/terms.pdf', 'document'],
    ] as const) {
      expect(call.params['chat_id']).toBe(6160);
      expect(call.files[0]?.param).toBe(param);
      expect(call.files[0]?.bytes).toEqual(agentFiles[path]!.bytes);
    }
    expect(sent[7]!.params).toMatchObject({ chat_id: 6160, latitude: 41.9, longitude: 12.5 });
    expect(sent[8]!.params['text']).toBe('Rome');
    expect(sent[9]!.params).toMatchObject({ phone_number: '+1 555 0100', first_name: 'Support line' });
  });

  it('sends hostile file names as one harmless filename parameter, extension kept', async () => {
    const body = kit.agentMessage('tg:6160', {
      payload: [
        { type: 'document', file_name: 'semi.pdf; name="chat_id"', file_url: `${filesUrl}/terms.pdf` },
        { type: 'document', file_url: `${filesUrl}/semi%3Bname%3Dchat_id.pdf` },
        { type: 'document', file_url: `${filesUrl}/by-header` },
        { type: 'document', file_name: 'invoice\u202Efdp.exe', file_url: `${filesUrl}/terms.pdf` },
      ],
    });
    const before = tg.sent.length;
    expect((await kit.sendCallback(callbackUrl, body)).status).toBe(200);
    await bridge.relay.idle();
    const sent = tg.sent.slice(before);
    expect(sent.map((c) => c.method)).toEqual([
      'sendDocument',
      'sendDocument',
      'sendDocument',
      'sendDocument',
    ]);
    const names: string[] = [];
    for (const call of sent) {
      // Nothing was injected: the chat id is ours, and the part header has a name and a filename only.
      expect(call.params['chat_id']).toBe(6160);
      const header = call.files[0]!.headers['content-disposition']!;
      expect(header.split(';').map((p) => p.split('=')[0]!.trim())).toEqual([
        'form-data',
        'name',
        'filename',
      ]);
      names.push(call.files[0]!.fileName!);
    }
    expect(names).toEqual([
      'semi.pdf_ name_chat_id',
      'semi_name_chat_id.pdf',
      'hdr.pdf_ name_chat_id',
      'invoicefdp.exe',
    ]);
  });

  it('tells the customer when Kit closes the conversation, and forgets the UTM', async () => {
    const before = tg.sent.length;
    await kit.sendCallback(callbackUrl, kit.closeConversation('tg:6160', 'CLOSED_BY_AGENT'));
    await bridge.relay.idle();
    expect(tg.sent.slice(before).map((c) => c.params['text'])).toEqual(['This chat is closed.']);
    const start = kit.events.length;
    tg.textFrom(bob, 'one more thing');
    await kit.waitForEvents(start + 1);
    expect(events()[start]!.client_data['utm']).toBeUndefined();
  });

  it('dead-letters a message to a customer who blocked the bot, with the reason, and goes on', async () => {
    tg.failNext('sendMessage', { error_code: 403, description: 'Forbidden: bot was blocked by the user' });
    await kit.sendCallback(callbackUrl, kit.agentMessage('tg:6160', { text: 'are you there?' }));
    await kit.sendCallback(callbackUrl, kit.agentMessage('tg:6160', { text: 'second try' }));
    await bridge.relay.idle();
    const dead = await bridge.store.list({ state: 'dead', leg: 'outbound' });
    expect(dead).toHaveLength(1);
    expect(dead[0]?.lastError).toBe('Telegram refused delivery: bot was blocked by the user');
    expect(tg.sent.at(-1)?.params['text']).toBe('second try');
  });
});
