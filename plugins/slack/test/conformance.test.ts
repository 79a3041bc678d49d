/**
 * The Slack connector against the connector conformance kit, on FakeSlack with
 * the real WebClient and SocketModeClient: once over Socket Mode (acks are
 * envelope acks, a refused event is redelivered by the fake), once over the
 * Events API on core's HTTP server (acks are 2xx answers, a refused event is
 * retried by the fake as Slack does, with x-slack-retry-num).
 */
import type { AttachmentRef } from '@kitbridge/core';
import { FakeSlack, type SlackMessageEvent, type SlackUser, webhookHost } from '@kitbridge/testkit';
import { type ConformanceDriver, connectorConformance } from '@kitbridge/testkit/connector-conformance';
import { decodeRef } from '../src/inbound.js';
import { TEXT_LIMIT } from '../src/limits.js';
import { decodeEntities } from '../src/mrkdwn.js';
import { testConnector } from './setup.js';

function driverFor(mode: 'socket' | 'http'): ConformanceDriver {
  let fake: FakeSlack;
  const users = new Map<string, SlackUser>();
  const last = new Map<string, SlackMessageEvent | Record<string, unknown>>();
  let eventsUrl = '';
  /** HTTP deliveries in flight or done: acknowledged when each ended in a 2xx. */
  const deliveries: Promise<boolean>[] = [];
  const outcomes: boolean[] = [];

  const push = (event: SlackMessageEvent | Record<string, unknown>) => {
    if (mode === 'socket') {
      fake.sendEnvelope(event);
      return;
    }
    const i = outcomes.push(false) - 1;
    const url = eventsUrl;
    deliveries.push(
      fake.deliverEvent(url, event, { retryDelaysMs: [100, 200, 400], timeoutMs: 3_000 }).then((attempts) => {
        const ok = attempts.some((a) => a.status >= 200 && a.status < 300);
        outcomes[i] = ok;
        return ok;
      }),
    );
  };
  const user = (c: string) => users.get(c)!;
  const dmOf = (c: string) => fake.dmChannelId(user(c).id);

  return {
    name: `slack (${mode === 'socket' ? 'Socket Mode' : 'Events API over HTTP'})`,
    get secrets() {
      return [fake.botToken, fake.appToken, fake.signingSecret];
    },
    textLimit: TEXT_LIMIT,
    async setup() {
      fake = await new FakeSlack({ redeliverAfterMs: 400 }).start();
      users.set('alice', fake.user({ name: 'alice', real_name: 'Alice Archer' }));
      users.set('bob', fake.user({ name: 'bob', real_name: 'Bob Baker' }));
    },
    async teardown() {
      await Promise.allSettled(deliveries);
      await fake.close();
    },
    ...(mode === 'http'
      ? {
          async context() {
            const host = await webhookHost({ captureLogs: true, secrets: [] });
            eventsUrl = `${host.url}/slack/events`;
            return { tc: host.tc, close: host.close };
          },
        }
      : {}),
    connector: () => testConnector(fake, { mode }),
    customers: ['alice', 'bob'],
    clientId: (c) => `sl:${fake.teamId}:${user(c).id}`,
    async sendText(c, text) {
      const event = fake.dm(user(c), text);
      last.set(c, mode === 'http' ? fake.eventCallback(event) : event);
      push(last.get(c)!);
    },
    async sendFile(c, bytes, fileName, mimeType) {
      const event = fake.dm(user(c), { files: [{ name: fileName, bytes, mimetype: mimeType }] });
      last.set(c, mode === 'http' ? fake.eventCallback(event) : event);
      push(last.get(c)!);
    },
    async redeliverLast(c) {
      // Socket Mode: the same event in a new envelope; HTTP: the same event_callback again, as a retry.
      push(last.get(c)!);
    },
    acknowledged: () =>
      mode === 'socket' ? fake.envelopes.every((e) => e.acked !== undefined) : outcomes.every(Boolean),
    received: (c) =>
      fake.delivered(dmOf(c)).map((m) => {
        const file = m.files?.[0];
        const bytes = file ? fake.fileBytes(file.id) : undefined;
        return { ...(m.text ? { text: decodeEntities(m.text) } : {}), ...(bytes ? { bytes } : {}) };
      }),
    failNextSend(kind, opts = {}) {
      const afterCalls = opts.afterSends ?? 0;
      if (kind === 'hang') return fake.stallNext('chat.postMessage');
      if (kind === 'permanent')
        return fake.failNext('chat.postMessage', { error: 'is_archived', afterCalls });
      if (kind === 'retryable')
        return fake.rateLimitNext('chat.postMessage', Math.ceil((opts.retryAfterMs ?? 1000) / 1000), {
          afterCalls,
        });
      fake.failNext('chat.postMessage', { status: 500, afterCalls });
    },
    deleteFile: (ref: AttachmentRef) => {
      const d = decodeRef(ref.ref);
      if (d?.type === 'file') fake.removeFile(d.id);
    },
    reset: () => fake.clearFailures(),
  };
}

connectorConformance(driverFor('socket'));
connectorConformance(driverFor('http'));
