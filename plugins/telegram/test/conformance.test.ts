/** The Telegram connector against the connector conformance kit, on the fake Bot API (long polling). */
import type { AttachmentRef } from '@kitbridge/core';
import { FakeTelegram, type TgUpdate, tgUser } from '@kitbridge/testkit';
import { connectorConformance } from '@kitbridge/testkit/connector-conformance';
import { TEXT_LIMIT } from '../src/limits.js';
import { testConnector } from './setup.js';

let tg: FakeTelegram;
const users = { alice: tgUser(7101, 'Alice'), bob: tgUser(7102, 'Bob') } as const;
type Name = keyof typeof users;
const last = new Map<string, TgUpdate>();

connectorConformance({
  name: 'telegram',
  get secrets() {
    return [tg.token];
  },
  textLimit: TEXT_LIMIT,
  async setup() {
    tg = await new FakeTelegram().start();
  },
  async teardown() {
    await tg.close();
  },
  // The connector logs through the kit's context, which captures every line for the secrets check.
  connector: () => testConnector(tg),
  customers: ['alice', 'bob'],
  clientId: (c) => `tg:${users[c as Name].id}`,
  async sendText(c, text) {
    last.set(c, tg.textFrom(users[c as Name], text));
  },
  async sendFile(c, bytes, fileName, mimeType) {
    last.set(c, tg.documentFrom(users[c as Name], bytes, { fileName, mimeType }));
  },
  async redeliverLast(c) {
    // The same message again, as after an unconfirmed offset or a replay.
    tg.pushUpdate({ message: last.get(c)!.message! });
  },
  acknowledged: () => tg.pendingUpdates.length === 0,
  received: (c) =>
    tg.delivered
      .filter((call) => call.params['chat_id'] === users[c as Name].id)
      .map((call) => ({
        ...(typeof call.params['text'] === 'string' ? { text: call.params['text'] } : {}),
        ...(call.files[0] ? { bytes: call.files[0].bytes } : {}),
      })),
  failNextSend(kind, opts = {}) {
    const afterCalls = opts.afterSends ?? 0;
    if (kind === 'hang') return tg.stallNext('sendMessage');
    tg.failNext(
      'sendMessage',
      kind === 'permanent'
        ? { error_code: 403, description: 'Forbidden: bot was blocked by the user', afterCalls }
        : kind === 'retryable'
          ? { error_code: 429, retry_after: Math.ceil((opts.retryAfterMs ?? 1000) / 1000), afterCalls }
          : { error_code: 400, description: 'Bad Request: a passing hiccup', afterCalls },
    );
  },
  deleteFile: (ref: AttachmentRef) => tg.removeFile(ref.ref),
  reset: () => tg.clearFailures(),
});
