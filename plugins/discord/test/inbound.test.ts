/** Discord message -> InboundMessage content: pure, no server. */
import { describe, expect, it } from 'vitest';
import {
  formatDmClientId,
  formatSupportClientId,
  hasDiscordPrefix,
  parseClientId,
} from '../src/client-id.js';
import {
  attachmentKind,
  attachmentRef,
  avatarRef,
  kitMessageId,
  mapContent,
  parseRef,
  profileOf,
  type RawMessage,
  readableContent,
  skipReason,
} from '../src/inbound.js';
import { threadName, userOfThreadName } from '../src/threads.js';

const ALICE = { id: '111111111111111111', username: 'alice', global_name: 'Alice Archer', avatar: 'abc123' };
const BOB = { id: '222222222222222222', username: 'bob', global_name: null, avatar: null };
const CDN = 'https://cdn.discordapp.com/attachments/900000000000000001/900000000000000002';

const msg = (fields: Partial<RawMessage> = {}): RawMessage => ({
  id: '900000000000000010',
  channel_id: '900000000000000001',
  author: ALICE,
  content: '',
  type: 0,
  ...fields,
});

describe('client ids', () => {
  it('dc:<user> for DMs, dcs:<guild>:<user> for the support channel; parsed back, others refused', () => {
    expect(formatDmClientId(ALICE.id)).toBe('dc:111111111111111111');
    expect(formatSupportClientId('333333333333333333', ALICE.id)).toBe(
      'dcs:333333333333333333:111111111111111111',
    );
    expect(parseClientId('dc:111111111111111111')).toEqual({ kind: 'dm', userId: ALICE.id });
    expect(parseClientId('dcs:333333333333333333:111111111111111111')).toEqual({
      kind: 'support',
      guildId: '333333333333333333',
      userId: ALICE.id,
    });
    for (const bad of [
      'dc:',
      'dc:12',
      'dc:abc',
      'tg:111111111111111111',
      'dcs:111111111111111111',
      'dc:1111111111111111111111',
    ])
      expect(parseClientId(bad)).toBeUndefined();
    expect(hasDiscordPrefix('dcs:x')).toBe(true);
    expect(hasDiscordPrefix('tg:1')).toBe(false);
  });

  it('support threads are named after the customer and end with their id', () => {
    const name = threadName('Alice   Archer', ALICE.id);
    expect(name).toBe('Alice Archer · 111111111111111111');
    expect(userOfThreadName(name)).toBe(ALICE.id);
    expect(threadName('x'.repeat(300), ALICE.id).length).toBeLessThanOrEqual(100);
    expect(userOfThreadName('general chat')).toBeUndefined();
  });
});

describe('readable content', () => {
  it('mentions by nick, global name or username; roles, channels, custom emoji, timestamps, commands', () => {
    const mentions = [
      { ...ALICE, member: { nick: 'Ali' } },
      { ...BOB, member: { nick: null } },
    ];
    const names = {
      channel: (id: string) => (id === '7'.repeat(18) ? 'billing' : undefined),
      role: () => 'Support',
    };
    expect(
      readableContent(
        `<@${ALICE.id}> and <@!${BOB.id}> in <#${'7'.repeat(18)}> <#${'8'.repeat(18)}> ask <@&${'9'.repeat(18)}> <:blob:123456> <a:party:99> at <t:1618953630:R> via </order status:1234>, <@${'4'.repeat(18)}>`,
        mentions,
        names,
      ),
    ).toBe(
      '@Ali and @bob in #billing #channel ask @Support :blob: :party: at 2021-04-20 21:20 UTC via /order status, @unknown-user',
    );
    expect(readableContent('plain @everyone text')).toBe('plain @everyone text');
  });
});

describe('attachments', () => {
  it('kind by content type, else by extension; voice messages are audio, SVG a document', () => {
    expect(attachmentKind({ filename: 'a.png', content_type: 'image/png' })).toBe('photo');
    expect(attachmentKind({ filename: 'a', content_type: 'image/gif' })).toBe('photo');
    expect(attachmentKind({ filename: 'a.svg', content_type: 'image/svg+xml' })).toBe('document');
    expect(attachmentKind({ filename: 'v.mp4', content_type: 'video/mp4' })).toBe('video');
    expect(attachmentKind({ filename: 'x.mp3', content_type: 'audio/mpeg' })).toBe('audio');
    expect(attachmentKind({ filename: 'voice-message.ogg', content_type: 'audio/ogg', flags: 1 << 13 })).toBe(
      'audio',
    );
    expect(attachmentKind({ filename: 'r.pdf', content_type: 'application/pdf' })).toBe('document');
    expect(attachmentKind({ filename: 'clip.MOV' })).toBe('video');
    expect(attachmentKind({ filename: 'noext' })).toBe('document');
  });

  it('the ref keeps the identity without the signature; avatars get their own ref', () => {
    const ref = attachmentRef('900000000000000010', {
      id: '900000000000000002',
      filename: 'cat pic.png',
      size: 7,
      url: `${CDN}/cat%20pic.png?ex=65f&is=65e&hm=deadbeef&`,
      content_type: 'image/png',
    });
    expect(ref).toEqual({
      ref: `a:900000000000000010@${CDN}/cat%20pic.png`,
      kind: 'photo',
      fileName: 'cat pic.png',
      mimeType: 'image/png',
      size: 7,
    });
    expect(ref.ref).not.toMatch(/hm=|ex=/);
    expect(parseRef(ref.ref)).toEqual({
      kind: 'attachment',
      messageId: '900000000000000010',
      url: `${CDN}/cat%20pic.png`,
      channelId: '900000000000000001',
      attachmentId: '900000000000000002',
    });
    const av = avatarRef(ALICE)!;
    expect(av).toMatchObject({ ref: `av:${ALICE.id}:abc123`, kind: 'photo' });
    expect(parseRef(av.ref)).toEqual({ kind: 'avatar', userId: ALICE.id, hash: 'abc123' });
    expect(avatarRef(BOB)).toBeUndefined();
    expect(parseRef('tg-file-id')).toBeUndefined();
  });
});

describe('mapContent', () => {
  it('text, files, stickers and a poll question', () => {
    const out = mapContent(
      msg({
        content: 'look',
        attachments: [
          {
            id: '900000000000000002',
            filename: 'a.png',
            url: `${CDN}/a.png?hm=1`,
            content_type: 'image/png',
          },
          {
            id: '900000000000000003',
            filename: 'b.pdf',
            url: `${CDN}/b.pdf?hm=2`,
            content_type: 'application/pdf',
          },
        ],
        sticker_items: [{ id: '1', name: 'wave' }],
      }),
    );
    expect(out.text).toBe('look\n[sticker: wave]');
    expect(out.items.map((i) => (i.type === 'media' ? i.kind : i.type))).toEqual(['photo', 'document']);
    expect(mapContent(msg({ poll: { question: { text: 'Pizza?' } } })).text).toBe('[poll] Pizza?');
  });

  it('a reply quotes what it answers (text, else its files); a deleted original is said', () => {
    const original = msg({
      id: '900000000000000009',
      author: BOB,
      content: 'Your order shipped.\nTracking: 42',
    });
    expect(mapContent(msg({ type: 19, content: 'thanks!', referenced_message: original })).text).toBe(
      '> Your order shipped.\n> Tracking: 42\nthanks!',
    );
    const withFile = msg({
      id: '900000000000000009',
      attachments: [{ id: '900000000000000004', filename: 'inv.pdf', url: `${CDN}/inv.pdf` }],
    });
    expect(mapContent(msg({ type: 19, content: 'this one', referenced_message: withFile })).text).toBe(
      '> [document: inv.pdf]\nthis one',
    );
    expect(mapContent(msg({ type: 19, content: 'hm', referenced_message: null })).text).toBe(
      '> (a deleted message)\nhm',
    );
    const long = mapContent(
      msg({ type: 19, content: 'ok', referenced_message: msg({ content: 'word '.repeat(100) }) }),
    );
    expect(long.text!.split('\n')[0]!.length).toBeLessThan(210);
    expect(long.text).toMatch(/…\nok$/);
  });

  it('a forwarded message carries the original text and files', () => {
    const out = mapContent(
      msg({
        message_reference: { type: 1, message_id: '1', channel_id: '2' },
        message_snapshots: [
          {
            message: {
              content: 'fwd text',
              attachments: [
                {
                  id: '900000000000000005',
                  filename: 'f.jpg',
                  url: `${CDN}/f.jpg`,
                  content_type: 'image/jpeg',
                },
              ],
            },
          },
        ],
      }),
    );
    expect(out.text).toBe('[forwarded]\nfwd text');
    expect(out.items).toHaveLength(1);
  });

  it('nothing a customer wrote (only an embed) maps to nothing', () => {
    expect(mapContent(msg({ content: '   ' }))).toEqual({ items: [] });
  });
});

describe('who and which message', () => {
  it('skips the bot itself, other bots, system messages, webhooks and system message types', () => {
    expect(skipReason(msg(), '999')).toBeUndefined();
    expect(skipReason(msg({ type: 19 }), '999')).toBeUndefined();
    expect(skipReason(msg(), ALICE.id)).toBe('the bot itself');
    expect(skipReason(msg({ author: { ...BOB, bot: true } }), '999')).toBe('another bot');
    expect(skipReason(msg({ author: { ...BOB, system: true } }), '999')).toBe('a system message');
    expect(skipReason(msg({ webhook_id: '5' }), '999')).toBe('a webhook');
    expect(skipReason(msg({ type: 7 }), '999')).toBe('message type 7');
  });

  it('an edit gets its own message id from the edit time; the profile is global name, else username, and the avatar', () => {
    const m = msg({ edited_timestamp: '2024-05-01T10:00:00.000Z' });
    expect(kitMessageId(m, false)).toBe(m.id);
    expect(kitMessageId(m, true)).toBe(`${m.id}:e${Date.parse('2024-05-01T10:00:00.000Z')}`);
    expect(profileOf(ALICE)).toMatchObject({
      displayName: 'Alice Archer',
      avatar: { ref: `av:${ALICE.id}:abc123` },
    });
    expect(profileOf(BOB)).toEqual({ displayName: 'bob' });
    expect(profileOf(BOB)).not.toHaveProperty('language');
  });
});
