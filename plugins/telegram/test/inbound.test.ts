import type { Message, Update } from 'grammy/types';
import { describe, expect, it } from 'vitest';
import { formatClientId, parseClientId } from '../src/client-id.js';
import { mapUpdate, parseStart, parseStartPayload } from '../src/inbound.js';

const alice = {
  id: 42,
  is_bot: false,
  first_name: 'Alice',
  last_name: 'Liddell',
  language_code: 'en',
} as const;
const privateChat = { id: 42, type: 'private', first_name: 'Alice' } as const;
const opts = { allowGroups: false };

function update(fields: Record<string, unknown>, extra: Partial<Message> = {}): Update {
  return {
    update_id: 1,
    message: {
      message_id: 7,
      date: 1_700_000_000,
      chat: privateChat,
      from: alice,
      ...fields,
      ...extra,
    },
  } as Update;
}

function mapped(u: Update, o = opts) {
  const r = mapUpdate(u, o);
  if (r.kind !== 'message') throw new Error(`expected a message, got ${JSON.stringify(r)}`);
  return r;
}

const file = (id: string, size = 100) => ({ file_id: id, file_unique_id: `u${id}`, file_size: size });

describe('mapUpdate', () => {
  it('maps a text message with the profile', () => {
    const r = mapped(update({ text: 'hello' }));
    expect(r.userId).toBe(42);
    expect(r.message).toEqual({
      client: { clientId: 'tg:42', profile: { displayName: 'Alice Liddell', language: 'en' } },
      messageId: '7',
      text: 'hello',
    });
  });

  it('uses @username when the user has no name', () => {
    const u = update({ text: 'hi', from: { id: 42, is_bot: false, first_name: '', username: 'al' } });
    expect(mapped(u).message.client.profile?.displayName).toBe('@al');
  });

  it('takes the largest photo size and the caption as text', () => {
    const r = mapped(
      update({
        caption: 'look',
        photo: [
          { ...file('small', 10), width: 90, height: 60 },
          { ...file('big', 900), width: 1280, height: 853 },
          { ...file('mid', 300), width: 320, height: 213 },
        ],
      }),
    );
    expect(r.message.text).toBe('look');
    expect(r.message.items).toEqual([
      { type: 'media', ref: 'big', kind: 'photo', fileName: 'ubig.jpg', mimeType: 'image/jpeg', size: 900 },
    ]);
  });

  it.each([
    [
      'video',
      {
        video: {
          ...file('v'),
          width: 1,
          height: 1,
          duration: 1,
          file_name: 'clip.mp4',
          mime_type: 'video/mp4',
        },
      },
      'video',
      'clip.mp4',
    ],
    ['video_note', { video_note: { ...file('vn'), length: 1, duration: 1 } }, 'video', 'uvn.mp4'],
    ['voice', { voice: { ...file('vo'), duration: 1, mime_type: 'audio/ogg' } }, 'audio', 'uvo.ogg'],
    [
      'audio',
      { audio: { ...file('au'), duration: 1, file_name: 'song.mp3', mime_type: 'audio/mpeg' } },
      'audio',
      'song.mp3',
    ],
    [
      'document',
      { document: { ...file('d'), file_name: 'report.pdf', mime_type: 'application/pdf' } },
      'document',
      'report.pdf',
    ],
  ])('maps %s', (_name, fields, kind, fileName) => {
    const item = mapped(update(fields)).message.items?.[0];
    expect(item).toMatchObject({ type: 'media', kind, fileName, size: 100 });
  });

  it('maps an animation as video even though it also carries a document', () => {
    const anim = {
      ...file('an'),
      width: 1,
      height: 1,
      duration: 1,
      file_name: 'fun.mp4',
      mime_type: 'video/mp4',
    };
    const r = mapped(update({ animation: anim, document: { ...file('an'), file_name: 'fun.mp4' } }));
    expect(r.message.items).toEqual([
      { type: 'media', ref: 'an', kind: 'video', fileName: 'fun.mp4', mimeType: 'video/mp4', size: 100 },
    ]);
  });

  it('maps a static sticker as a webp photo with its emoji as text, animated ones as documents', () => {
    const base = { ...file('st'), type: 'regular', width: 512, height: 512, emoji: '😀' };
    const still = mapped(update({ sticker: { ...base, is_animated: false, is_video: false } })).message;
    expect(still.text).toBe('😀');
    expect(still.items?.[0]).toMatchObject({ kind: 'photo', mimeType: 'image/webp' });
    const anim = mapped(update({ sticker: { ...base, is_animated: true, is_video: false } })).message;
    expect(anim.items?.[0]).toMatchObject({ kind: 'document', mimeType: 'application/x-tgsticker' });
    const vid = mapped(update({ sticker: { ...base, is_animated: false, is_video: true } })).message;
    expect(vid.items?.[0]).toMatchObject({ kind: 'document', mimeType: 'video/webm' });
  });

  it('maps a location, and a venue with title and address', () => {
    const loc = mapped(update({ location: { latitude: 52.5, longitude: 13.4 } })).message;
    expect(loc.items).toEqual([{ type: 'location', latitude: 52.5, longitude: 13.4 }]);
    const venue = mapped(
      update({
        location: { latitude: 52.5, longitude: 13.4 },
        venue: { location: { latitude: 52.5, longitude: 13.4 }, title: 'Cafe', address: 'Main St 1' },
      }),
    ).message;
    expect(venue.items).toEqual([
      { type: 'location', latitude: 52.5, longitude: 13.4, address: 'Cafe, Main St 1' },
    ]);
  });

  it("maps a contact, and takes the phone into the profile when it is the sender's own", () => {
    const other = mapped(
      update({ contact: { phone_number: '+100', first_name: 'Bob', user_id: 99 } }),
    ).message;
    expect(other.items).toEqual([{ type: 'contact', name: 'Bob', number: '+100' }]);
    expect(other.client.profile?.phone).toBeUndefined();
    const own = mapped(
      update({ contact: { phone_number: '+4200', first_name: 'Alice', user_id: 42 } }),
    ).message;
    expect(own.client.profile?.phone).toBe('+4200');
  });

  it('marks edits and gives them their own message id', () => {
    const u = {
      update_id: 2,
      edited_message: {
        message_id: 7,
        date: 1,
        edit_date: 1_700_000_123,
        chat: privateChat,
        from: alice,
        text: 'fixed',
      },
    } as Update;
    const r = mapped(u).message;
    expect(r).toMatchObject({ messageId: '7:e1700000123', edited: true, text: 'fixed' });
  });

  it('ignores groups unless allowed; an allowed group is one client named by its title', () => {
    const group = { id: -100123, type: 'supergroup', title: 'Support crew' } as const;
    const u = update({ text: 'hi all', chat: group });
    expect(mapUpdate(u, opts)).toMatchObject({ kind: 'skip' });
    const r = mapped(u, { allowGroups: true });
    expect(r.userId).toBeUndefined();
    expect(r.message).toEqual({
      client: { clientId: 'tg:-100123', profile: { displayName: 'Support crew' } },
      messageId: '7',
      text: 'Alice Liddell: hi all',
    });
  });

  it('skips channel posts, bots, unsupported kinds and non-message updates', () => {
    expect(mapUpdate(update({ text: 'x', chat: { id: -1, type: 'channel', title: 'c' } }), opts).kind).toBe(
      'skip',
    );
    expect(mapUpdate(update({ text: 'x', from: { id: 5, is_bot: true, first_name: 'b' } }), opts).kind).toBe(
      'skip',
    );
    expect(mapUpdate(update({ poll: { id: 'p' } }), opts).kind).toBe('skip');
    expect(mapUpdate({ update_id: 3, callback_query: {} } as unknown as Update, opts)).toMatchObject({
      kind: 'skip',
      reason: expect.stringContaining('callback_query'),
    });
  });

  it('turns /start into a start event, with utm from the payload', () => {
    expect(mapUpdate(update({ text: '/start' }), opts)).toEqual({ kind: 'start', clientId: 'tg:42' });
    expect(mapUpdate(update({ text: '/start google-spring-cpc' }), opts)).toEqual({
      kind: 'start',
      clientId: 'tg:42',
      utm: { source: 'google', campaign: 'spring', medium: 'cpc' },
    });
  });
});

describe('parseStart / parseStartPayload', () => {
  it('recognises /start forms only', () => {
    expect(parseStart('/start')).toEqual({});
    expect(parseStart('/start@my_bot')).toEqual({});
    expect(parseStart('/start@my_bot ads')).toEqual({ utm: { source: 'ads' } });
    expect(parseStart('/starting')).toBeUndefined();
    expect(parseStart('please /start')).toBeUndefined();
    expect(parseStart('/start a b')).toBeUndefined();
  });

  it('reads the positional form', () => {
    expect(parseStartPayload('fb-launch-social-banner_1-shoes')).toEqual({
      source: 'fb',
      campaign: 'launch',
      medium: 'social',
      content: 'banner_1',
      term: 'shoes',
    });
    expect(parseStartPayload('fb--social')).toEqual({ source: 'fb', medium: 'social' });
  });

  it('reads the keyed form and ignores unknown keys', () => {
    expect(parseStartPayload('source-google__c-spring_sale__m-cpc__x-1')).toEqual({
      source: 'google',
      campaign: 'spring_sale',
      medium: 'cpc',
    });
    expect(parseStartPayload('term-red-shoes__n-ad-2')).toEqual({ term: 'red-shoes', content: 'ad-2' });
  });

  it('gives nothing for an empty payload', () => {
    expect(parseStartPayload('---')).toBeUndefined();
    expect(parseStartPayload('zz-1__yy-2')).toBeUndefined();
  });
});

describe('client ids', () => {
  it('formats and parses', () => {
    expect(formatClientId(42)).toBe('tg:42');
    expect(parseClientId('tg:42')).toBe(42);
    expect(parseClientId('tg:-1001234567890')).toBe(-1001234567890);
    for (const bad of ['tg:', 'tg:abc', 'dc:42', 'tg:0', 'tg:1.5', 'tg:99999999999999999', ' tg:1']) {
      expect(parseClientId(bad)).toBeUndefined();
    }
  });
});
