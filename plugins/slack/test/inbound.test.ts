/**
 * Mapping without I/O: events built by FakeSlack as Slack sends them -> the
 * InboundMessage core stores. Client ids (the workspace, Enterprise Grid,
 * Slack Connect), the support channel's threads, ignored authors, subtypes,
 * edits, files of every kind, mrkdwn made plain with names from the event or
 * from what is known.
 */
import { FakeSlack } from '@kitbridge/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientTeam, formatClientId, parseClientId } from '../src/client-id.js';
import { decodeRef, type EventCallback, kindOf, mapEventCallback, mentionsIn } from '../src/inbound.js';
import { decodeEntities, escapeForSlack, mrkdwnToPlain } from '../src/mrkdwn.js';

let fake: FakeSlack;
beforeAll(async () => {
  fake = await new FakeSlack().start();
});
afterAll(() => fake.close());

const opts = () => ({ botUserId: fake.botUserId, botId: fake.botId, ownTeams: [fake.teamId] });
const map = (event: Record<string, unknown>, o: Parameters<typeof mapEventCallback>[1] = opts(), cb = {}) =>
  mapEventCallback(fake.eventCallback(event, cb) as EventCallback, o);

describe('client ids', () => {
  it('sl:<team>:<user> for a DM, the DM channel as the address, channel + ts as the message id', () => {
    const ann = fake.user({ name: 'ann' });
    const e = fake.dm(ann, 'hello');
    const m = map(e);
    expect(m).toMatchObject({
      kind: 'message',
      message: {
        client: { clientId: `sl:${fake.teamId}:${ann.id}`, address: { channel: e.channel } },
        messageId: `${e.channel}:${e.ts}`,
        text: 'hello',
      },
    });
    expect(parseClientId(`sl:${fake.teamId}:${ann.id}`)).toEqual({ team: fake.teamId, user: ann.id });
    for (const bad of ['tg:1', 'sl:x:y', `sl:${fake.teamId}`, `sl:${fake.teamId}:${ann.id}:x`, 'sl::U1'])
      expect(parseClientId(bad), bad).toBeUndefined();
    expect(formatClientId('T1AB', 'U2CD')).toBe('sl:T1AB:U2CD');
  });

  it('Enterprise Grid: the org id, the same from every workspace of the org and for org-wide installs', () => {
    const gina = fake.user({ name: 'gina' });
    const e = fake.dm(gina, 'from workspace one');
    const one = map(e, opts(), { enterpriseId: 'E0GRID0001', contextTeamId: 'T0WORKONE' });
    const two = map(e, opts(), { enterpriseId: 'E0GRID0001', teamId: 'T0WORKTWO', orgInstall: true });
    expect(one.kind === 'message' && one.message.client.clientId).toBe(`sl:E0GRID0001:${gina.id}`);
    expect(two.kind === 'message' && two.message.client.clientId).toBe(`sl:E0GRID0001:${gina.id}`);
  });

  it('Slack Connect: a user of another organisation keeps their own team, with or without Grid', () => {
    const shared = fake.channel({ name: 'acme-support', is_ext_shared: true });
    const olga = fake.user({ name: 'olga', team_id: 'T0OTHERORG' });
    const e = fake.channelMessage(shared.id, olga, 'hi from Acme');
    const o = { ...opts(), supportChannelId: shared.id };
    const plain = map(e, o);
    const grid = map(e, o, { enterpriseId: 'E0GRID0001' });
    expect(plain.kind === 'message' && plain.message.client.clientId).toBe(`sl:T0OTHERORG:${olga.id}`);
    expect(grid.kind === 'message' && grid.message.client.clientId).toBe(`sl:T0OTHERORG:${olga.id}`);
    // Our own people in the same shared channel stay ours (the org under Grid).
    const own = fake.user({ name: 'own' });
    const mine = map(fake.channelMessage(shared.id, own, 'colleague here'), o, {
      enterpriseId: 'E0GRID0001',
    });
    expect(mine.kind === 'message' && mine.message.client.clientId).toBe(`sl:E0GRID0001:${own.id}`);
    // Inside a Grid org (no external sharing) another workspace's team is still the org.
    expect(
      clientTeam(
        { team_id: 'T1', enterprise_id: 'E1ORG', is_ext_shared_channel: false },
        { user_team: 'T2OTHER' },
      ),
    ).toBe('E1ORG');
  });
});

describe('where a message comes from', () => {
  it('the support channel: a top-level message opens its own thread, a reply keeps its thread', () => {
    const support = fake.channel({ name: 'support' });
    const cara = fake.user({ name: 'cara' });
    const top = fake.channelMessage(support.id, cara, 'my order is late');
    const reply = fake.channelMessage(support.id, cara, { text: 'order 42', threadTs: top.ts });
    const o = { ...opts(), supportChannelId: support.id };
    const a = map(top, o);
    const b = map(reply, o);
    expect(a.kind === 'message' && a.message.client.address).toEqual({
      channel: support.id,
      thread_ts: top.ts,
    });
    expect(b.kind === 'message' && b.message.client.address).toEqual({
      channel: support.id,
      thread_ts: top.ts,
    });
    expect(b.kind === 'message' && b.message.messageId).toBe(`${support.id}:${reply.ts}`);
    // Without the mode, or in another channel: not a customer message.
    expect(map(top)).toMatchObject({ kind: 'skip' });
    const other = fake.channel({ name: 'random' });
    expect(map(fake.channelMessage(other.id, cara, 'hi'), o)).toMatchObject({ kind: 'skip' });
  });

  it('the app itself, other bots and integrations are ignored: no echo loops', () => {
    const dan = fake.user({ name: 'dan' });
    const dm = fake.dmChannelId(dan.id);
    expect(map(fake.ownMessage(dm, 'our own reply'))).toEqual({
      kind: 'skip',
      reason: 'a bot or the app itself',
    });
    expect(map(fake.botMessage(dm, { text: 'beep' }))).toEqual({
      kind: 'skip',
      reason: 'a bot or the app itself',
    });
    // Even without auth.test's ids: the envelope's api_app_id is the app's own.
    const own = { ...fake.ownMessage(dm, 'x'), bot_id: undefined, bot_profile: undefined };
    expect(map(own, {})).toMatchObject({ kind: 'skip' });
    // A bot user (is_bot) posting with a bot_id.
    expect(map({ ...fake.dm(dan, 'x'), bot_id: 'B0OTHER' })).toMatchObject({ kind: 'skip' });
  });

  it('system subtypes, deletions and edits that change no text are skipped', () => {
    const eve = fake.user({ name: 'eve' });
    const m = fake.dm(eve, 'first');
    const dm = m.channel;
    expect(map({ ...fake.dm(eve, 'x'), subtype: 'channel_join' })).toMatchObject({ kind: 'skip' });
    expect(map(fake.deleteMessage(dm, m.ts))).toMatchObject({ kind: 'skip' });
    const again = fake.dm(eve, 'second');
    const unfurl = fake.editMessage(dm, again.ts, 'second');
    expect(map(unfurl)).toEqual({ kind: 'skip', reason: 'edit that changes no text' });
    expect(map({ type: 'app_mention', channel: dm, user: eve.id, ts: '1.2' })).toMatchObject({
      kind: 'skip',
    });
  });

  it('an edit is the same message marked edited, with an id of its own (its edit ts)', () => {
    const fay = fake.user({ name: 'fay' });
    const m = fake.dm(fay, 'helo');
    const edit = fake.editMessage(m.channel, m.ts, 'hello');
    const r = map(edit);
    expect(r.kind).toBe('message');
    if (r.kind !== 'message') return;
    expect(r.message).toMatchObject({ text: 'hello', edited: true });
    expect(r.message.messageId).toBe(
      `${m.channel}:${m.ts}:e${(edit.message as { edited: { ts: string } }).edited.ts}`,
    );
    expect(r.message.client.clientId).toBe(`sl:${fake.teamId}:${fay.id}`);
  });

  it('hostile shapes are skipped, never thrown', () => {
    const weird = [
      { type: 'message' },
      { type: 'message', channel: 'D1', channel_type: 'im', user: 5, ts: '1.1', text: 'x' },
      { type: 'message', channel: 'D1', channel_type: 'im', user: 'U1X', ts: 12, text: 'x' },
      { type: 'message', channel: 'D1', channel_type: 'im', user: 'U1X', ts: '1.1', text: 7, files: 'x' },
      { type: 'message', channel: 'D1', channel_type: 'im', user: 'U1X', ts: '1.1', files: { a: 1 } },
      { type: 'message', subtype: 'message_changed', channel: 'D1', message: 'x' },
    ];
    for (const w of weird) expect(map(w).kind, JSON.stringify(w)).toBe('skip');
    const broken = { type: 'event_callback', authorizations: 'x', event: fake.dm(fake.user({}), 'hi') };
    expect(mapEventCallback(broken as never, opts()).kind).toBe('message');
  });
});

describe('files', () => {
  it('every kind by MIME type, with name, type and size; the ref carries the file id and its download link', () => {
    const gus = fake.user({ name: 'gus' });
    const files = [
      { name: 'cat.png', bytes: Buffer.from('png'), mimetype: 'image/png' },
      { name: 'clip.mp4', bytes: Buffer.from('mp4'), mimetype: 'video/mp4' },
      {
        name: 'audio_message.webm',
        bytes: Buffer.from('webm'),
        mimetype: 'audio/webm',
        fields: { subtype: 'slack_audio' },
      },
      { name: 'report.pdf', bytes: Buffer.from('pdf'), mimetype: 'application/pdf' },
      { name: 'drawing.svg', bytes: Buffer.from('<svg/>'), mimetype: 'image/svg+xml' },
    ];
    const e = fake.dm(gus, { text: 'see these', files });
    const r = map(e);
    expect(r.kind).toBe('message');
    if (r.kind !== 'message') return;
    expect(r.message.text).toBe('see these');
    expect(
      r.message.items?.map((i) => i.type === 'media' && [i.kind, i.fileName, i.mimeType, i.size]),
    ).toEqual([
      ['photo', 'cat.png', 'image/png', 3],
      ['video', 'clip.mp4', 'video/mp4', 3],
      ['audio', 'audio_message.webm', 'audio/webm', 4],
      ['document', 'report.pdf', 'application/pdf', 3],
      ['document', 'drawing.svg', 'image/svg+xml', 6],
    ]);
    const first = r.message.items![0]!;
    const ref = first.type === 'media' ? decodeRef(first.ref) : undefined;
    expect(ref).toEqual({
      type: 'file',
      id: e.files![0]!.id,
      url: (e.files![0] as { url_private_download: string }).url_private_download,
    });
    expect(kindOf(undefined)).toBe('document');
  });

  it('Slack Connect stubs (check_file_info) carry only the id; tombstones are dropped', () => {
    const shared = fake.channel({ name: 'ext', is_ext_shared: true });
    const hal = fake.user({ name: 'hal', team_id: 'T0OTHERORG' });
    const e = fake.channelMessage(shared.id, hal, {
      files: [{ name: 'x.pdf', bytes: Buffer.from('x') }],
      fileAccess: 'check_file_info',
    });
    const r = map(e, { ...opts(), supportChannelId: shared.id });
    expect(r.kind === 'message' && r.message.items).toEqual([
      { type: 'media', ref: e.files![0]!.id, kind: 'document' },
    ]);
    const tomb = { ...fake.dm(hal, 'x'), text: '', files: [{ id: 'F0DEAD', mode: 'tombstone' }] };
    expect(map(tomb)).toEqual({ kind: 'skip', reason: 'nothing to forward' });
  });
});

describe('mrkdwn made plain', () => {
  const names = {
    user: (id: string) => ({ U0KNOWN: 'Known Person' })[id],
    channel: (id: string) => ({ C0SUPPORT: 'support' })[id],
  };

  it('mentions: the name in the sequence, else a known name, else the id', () => {
    expect(mrkdwnToPlain('hi <@U0KNOWN> and <@U0OTHER|olga> and <@U0NOBODY>', names)).toBe(
      'hi @Known Person and @olga and @U0NOBODY',
    );
    expect(mrkdwnToPlain('see <#C0SUPPORT> or <#C0RANDOM|random> or <#C0NEW|>', names)).toBe(
      'see #support or #random or #C0NEW',
    );
    expect(mrkdwnToPlain('<!here> <!channel> <!everyone> <!subteam^S0ABC|@oncall> <!subteam^S0DEF>')).toBe(
      '@here @channel @everyone @oncall @S0DEF',
    );
    expect(mrkdwnToPlain('due <!date^1392734382^{date_short}|Feb 18, 2014>')).toBe('due Feb 18, 2014');
  });

  it('links, e-mail addresses and phone numbers', () => {
    expect(mrkdwnToPlain('<https://example.com/a?b=1&amp;c=2>')).toBe('https://example.com/a?b=1&c=2');
    expect(mrkdwnToPlain('<https://example.com|example.com>')).toBe('https://example.com');
    expect(mrkdwnToPlain('<https://example.com/track|the tracking page>')).toBe(
      'the tracking page (https://example.com/track)',
    );
    expect(mrkdwnToPlain('<mailto:ann@example.com|ann@example.com>')).toBe('ann@example.com');
    expect(mrkdwnToPlain('<tel:+4930123|+49 30 123>')).toBe('+49 30 123');
  });

  it('bold, italic, strike and code lose their markers; words with inner marks stay; entities decoded once', () => {
    expect(mrkdwnToPlain('*bold* _italic_ ~gone~ `a*b*c` and\n```\nx < y && *z*\n```')).toBe(
      'bold italic gone a*b*c and\nx < y && *z*',
    );
    expect(mrkdwnToPlain('2*3*4 snake_case_name file_name.txt')).toBe('2*3*4 snake_case_name file_name.txt');
    expect(mrkdwnToPlain('a &lt; b &amp;&amp; c &gt; d; literally &amp;lt;')).toBe(
      'a < b && c > d; literally &lt;',
    );
    expect(mrkdwnToPlain('(*really*) "_quoted_"')).toBe('(really) "quoted"');
    expect(mrkdwnToPlain('&gt; quoted line')).toBe('> quoted line');
  });

  it('agent text is escaped for Slack: no mention, link or broadcast can be typed in', () => {
    const typed = 'a < b & c > d <!channel> <@U0BOSS> <https://evil|bank>';
    const escaped = escapeForSlack(typed);
    expect(escaped).toBe(
      'a &lt; b &amp; c &gt; d &lt;!channel&gt; &lt;@U0BOSS&gt; &lt;https://evil|bank&gt;',
    );
    expect(escaped).not.toMatch(/[<>]/);
    expect(decodeEntities(escaped)).toBe(typed);
  });

  it('the ids worth learning are the unnamed mentions', () => {
    expect(mentionsIn('<@U0A> <@U0B|bee> <#C0C> <#C0D|dee> <#C0E|> <@U0A>')).toEqual({
      users: ['U0A'],
      channels: ['C0C', 'C0E'],
    });
  });

  it('in a mapped message, the bot mention resolves from what the connector knows', () => {
    const ivy = fake.user({ name: 'ivy' });
    const r = map(fake.dm(ivy, `<@${fake.botUserId}> *help*, see <https://x.test/o/1|order 1>`), {
      ...opts(),
      names: { user: (id) => (id === fake.botUserId ? 'kitbridge' : undefined) },
    });
    expect(r.kind === 'message' && r.message.text).toBe('@kitbridge help, see order 1 (https://x.test/o/1)');
    expect(r.kind === 'message' && r.mentions).toEqual({ users: [fake.botUserId], channels: [] });
  });
});
