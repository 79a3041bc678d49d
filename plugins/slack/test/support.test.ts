/**
 * The support-channel mode (SLACK_SUPPORT_CHANNEL_ID), both directions, over
 * HTTP and Socket Mode: a customer's top-level message opens a conversation in
 * its own thread; the agent's replies, files and the closing text go into that
 * thread; a reply in a thread keeps it; the address core keeps follows the
 * customer's last message.
 */
import { FakeSlack } from '@kitbridge/testkit';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { SlackConnector } from '../src/connector.js';
import {
  agentMessage,
  FileServer,
  type TestContext,
  TestDelivery,
  testConnector,
  webhookHost,
} from './setup.js';

let fake: FakeSlack;
let tc: TestContext;
let url: string;
let closeHost: () => Promise<void>;
let conn: SlackConnector;
let support: { id: string; name: string };

beforeEach(async () => {
  fake = await new FakeSlack().start();
  support = fake.channel({ name: 'acme-support', is_ext_shared: true });
  const host = await webhookHost();
  tc = host.tc;
  url = `${host.url}/slack/events`;
  closeHost = host.close;
});

afterEach(async () => {
  tc.abort.abort();
  await conn?.stop();
  await closeHost();
  await fake.close();
});

/** What core would hand back: the client id and the last address it stored. */
const targetOf = (i: number) => ({
  clientId: tc.received[i]!.client.clientId,
  address: tc.received[i]!.client.address!,
});

for (const mode of ['http', 'socket'] as const) {
  describe(`the support channel over ${mode === 'http' ? 'HTTP' : 'Socket Mode'}`, () => {
    const send = async (event: Record<string, unknown>) => {
      if (mode === 'http') expect((await fake.sendEvent(url, event)).status).toBe(200);
      else await fake.waitForAck(fake.sendEnvelope(event).envelopeId);
    };

    beforeEach(async () => {
      conn = testConnector(fake, { mode, supportChannelId: support.id });
      await conn.start(tc.ctx);
    });

    it('a top-level message opens a thread; text, files and the closing text go into it', async () => {
      const files = await new FileServer().start();
      try {
        const olga = fake.user({ name: 'olga', real_name: 'Olga Ivanova', team_id: 'T0OTHERORG' });
        const top = fake.channelMessage(support.id, olga, 'Our invoices are missing');
        await send(top);
        expect(tc.received[0]!.client).toMatchObject({
          clientId: `sl:T0OTHERORG:${olga.id}`,
          address: { channel: support.id, thread_ts: top.ts },
        });
        const pdf = Buffer.from('%PDF invoice '.repeat(500));
        await conn.deliver(
          targetOf(0),
          agentMessage({
            text: 'Here they are',
            attachments: [files.attachment('/inv.pdf', 'document', 'invoice.pdf', pdf, 'application/pdf')],
          }),
          new TestDelivery().next(),
        );
        await conn.closeConversation(
          targetOf(0),
          'CLOSED_BY_AGENT',
          'Thanks, closing this chat.',
          new TestDelivery().next(),
        );
        const inThread = fake.delivered(support.id);
        expect(inThread.map((m) => [m.thread_ts, m.text, m.files?.[0]?.name])).toEqual([
          [top.ts, 'Here they are', undefined],
          [top.ts, '', 'invoice.pdf'],
          [top.ts, 'Thanks, closing this chat.', undefined],
        ]);
        expect(fake.callsOf('files.completeUploadExternal')[0]!.params).toMatchObject({
          channel_id: support.id,
          thread_ts: top.ts,
        });
        expect(fake.fileBytes(inThread[1]!.files![0]!.id)!.equals(pdf)).toBe(true);
        // Nothing went to a DM.
        expect(fake.delivered().every((m) => m.channel === support.id)).toBe(true);
      } finally {
        await files.close();
      }
    });

    it('a reply in a thread keeps it; a new top-level message opens a new one; a DM is a DM', async () => {
      const pat = fake.user({ name: 'pat' });
      const first = fake.channelMessage(support.id, pat, 'first problem');
      await send(first);
      const second = fake.channelMessage(support.id, pat, 'second problem');
      await send(second);
      await send(fake.channelMessage(support.id, pat, { text: 'more on the first', threadTs: first.ts }));
      await send(fake.dm(pat, 'privately'));
      expect(tc.received.map((m) => [m.text, m.client.address])).toEqual([
        ['first problem', { channel: support.id, thread_ts: first.ts }],
        ['second problem', { channel: support.id, thread_ts: second.ts }],
        ['more on the first', { channel: support.id, thread_ts: first.ts }],
        ['privately', { channel: fake.dmChannelId(pat.id) }],
      ]);
      expect(new Set(tc.received.map((m) => m.client.clientId)).size).toBe(1);
      await conn.deliver(targetOf(2), agentMessage({ text: 'about the first' }), new TestDelivery().next());
      expect(fake.delivered(support.id).map((m) => [m.thread_ts, m.text])).toEqual([
        [first.ts, 'about the first'],
      ]);
    });

    it('our own replies in the thread, other bots and other channels are not customers', async () => {
      fake.echoBotMessages = true;
      fake.requestUrl = url;
      const quinn = fake.user({ name: 'quinn' });
      const top = fake.channelMessage(support.id, quinn, 'hello?');
      await send(top);
      await conn.deliver(targetOf(0), agentMessage({ text: 'hi there' }), new TestDelivery().next());
      await send(fake.botMessage(support.id, { text: 'deploy finished', threadTs: top.ts }));
      const random = fake.channel({ name: 'random' });
      await send(fake.channelMessage(random.id, quinn, 'off topic'));
      await new Promise((r) => setTimeout(r, 200));
      expect(tc.received.map((m) => m.text)).toEqual(['hello?']);
    });
  });
}
