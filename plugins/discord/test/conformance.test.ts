/**
 * The Discord connector against the connector conformance kit, on FakeDiscord
 * with the real discord.js (DMs).
 *
 * Discord has no acknowledgement: a message counts as acknowledged once the
 * channel's checkpoint reached it, and "the platform sends it again" is what
 * happens on Discord after a fresh IDENTIFY, when the history after an older
 * checkpoint is fetched.
 */
import type { AttachmentRef } from '@kitbridge/core';
import { DiscordErrors, type DiscordMessage, type FakeDiscord, type TestContext } from '@kitbridge/testkit';
import { connectorConformance } from '@kitbridge/testkit/connector-conformance';
import { cursorKey, INDEX_KEY } from '../src/checkpoints.js';
import { parseRef } from '../src/inbound.js';
import { TEXT_LIMIT } from '../src/limits.js';
import { ALICE, BOB, startFake, testConnector } from './setup.js';

let fake: FakeDiscord;
let tc: TestContext;
const users = { alice: ALICE, bob: BOB } as const;
type Name = keyof typeof users;
/** Each customer's last message, across restarts. */
const last = new Map<string, DiscordMessage>();
/** Messages written since the current context began (what it must acknowledge). */
let pending: DiscordMessage[] = [];
const MESSAGES = 'POST /channels/:channel/messages' as const;

const wrote = (c: string, m: DiscordMessage) => {
  last.set(c, m);
  pending.push(m);
};

connectorConformance({
  name: 'discord',
  get secrets() {
    return [fake.token];
  },
  textLimit: TEXT_LIMIT,
  async setup() {
    fake = await startFake();
  },
  async teardown() {
    await fake.close();
  },
  connector: (t) => {
    tc = t;
    pending = [];
    return testConnector(fake);
  },
  customers: ['alice', 'bob'],
  clientId: (c) => `dc:${users[c as Name]}`,
  async sendText(c, text) {
    wrote(c, fake.dm(users[c as Name], text));
  },
  async sendFile(c, bytes, fileName, mimeType) {
    wrote(
      c,
      fake.dm(users[c as Name], { attachments: [{ filename: fileName, bytes, contentType: mimeType }] }),
    );
  },
  async redeliverLast(c) {
    const m = last.get(c)!;
    // Rewind the channel's checkpoint to just before the message and end the session: the new
    // session fetches the history after the checkpoint, and the message comes again.
    const index = JSON.parse(tc.checkpoints.get(INDEX_KEY) ?? '{"v":1,"channels":{}}');
    index.channels[m.channel_id] = { k: 'dm', u: m.author.id };
    tc.checkpoints.set(INDEX_KEY, JSON.stringify(index));
    tc.checkpoints.set(cursorKey(m.channel_id), (BigInt(m.id) - 1n).toString());
    fake.disconnect({ resumable: false });
  },
  acknowledged: () =>
    pending.every((m) => {
      const at = tc.checkpoints.get(cursorKey(m.channel_id));
      return at !== undefined && BigInt(at) >= BigInt(m.id);
    }),
  received: (c) =>
    fake.delivered(fake.dmChannel(users[c as Name]).id).map((d) => ({
      ...(d.content ? { text: d.content } : {}),
      ...(d.files[0] ? { bytes: d.files[0].bytes } : {}),
    })),
  failNextSend(kind, opts = {}) {
    const afterCalls = opts.afterSends ?? 0;
    if (kind === 'hang') return fake.stallNext(MESSAGES);
    if (kind === 'permanent')
      return fake.failNext(MESSAGES, { ...DiscordErrors.cannotSendToUser, afterCalls });
    if (kind === 'retryable')
      return fake.rateLimitNext(MESSAGES, (opts.retryAfterMs ?? 1000) / 1000, { afterCalls });
    // A 5xx after @discordjs/rest's own retry (the test connector retries once).
    fake.failNext(MESSAGES, { ...DiscordErrors.internal, afterCalls });
    fake.failNext(MESSAGES, DiscordErrors.internal);
  },
  deleteFile(ref: AttachmentRef) {
    const p = parseRef(ref.ref);
    if (p?.kind !== 'attachment') throw new Error(`not an attachment ref: ${ref.ref}`);
    fake.deleteMessage(p.channelId, p.messageId);
  },
  reset: () => fake.clearFailures(),
});
