/**
 * The connector conformance kit: a vitest suite every `ChannelConnector` must
 * pass, driven through the plugin's own fake platform. The plugin supplies a
 * small {@link ConformanceDriver} ("make customer X send a text", "what did
 * customer X receive"); the kit checks the contract's promises:
 *
 * - receive resolves before the platform is acknowledged, a failed receive is
 *   not acknowledged (the platform sends it again), and a redelivered platform
 *   message is a duplicate;
 * - client ids and message ids are stable across restarts;
 * - deliveries to one client arrive in order, each returning its platform id;
 * - a delivery that fails after its first step resumes without repeating it;
 * - permanent and retryable platform errors are classified as such;
 * - the deadline's signal is honoured (a platform that never answers);
 * - resolveAttachment streams the customer's file, and a vanished file is
 *   AttachmentGoneError;
 * - start and stop are idempotent and states move as documented;
 * - no secret in any log line.
 *
 * Requires vitest (an optional peer dependency of @kitbridge/testkit).
 *
 * ```ts
 * connectorConformance(myDriver);   // in a *.test.ts file of the plugin
 * ```
 */
import type { Readable } from 'node:stream';
import {
  AttachmentGoneError,
  type AttachmentRef,
  type ChannelConnector,
  type InboundMessage,
  PermanentDeliveryError,
  RetryableDeliveryError,
} from '@kitbridge/core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { agentMessage, TestContext, TestDelivery } from './connector-harness.js';

/** What a customer got from the connector, as the fake platform saw it. */
export interface ReceivedItem {
  text?: string;
  /** File bytes, for uploads. */
  bytes?: Buffer;
}

/** The plugin's side of the conformance kit, written against its fake platform. */
export interface ConformanceDriver {
  /** The platform's name, as in `ChannelConnector.name`. */
  name: string;
  /** Every secret the connector holds (tokens, signing secrets): none may appear in a log line. */
  secrets: string[];
  /** The platform's longest text message (a longer text must be split). */
  textLimit: number;
  /** Starts the fake platform, once for the suite. */
  setup(): Promise<void>;
  teardown(): Promise<void>;
  /**
   * A new connector against the fake, configured as the same deployment would be
   * after a restart. The kit starts it with a {@link TestContext} and stops it.
   * `tc` is passed for drivers whose intake needs the context's router (webhooks).
   */
  connector(tc: TestContext): ChannelConnector;
  /** A context for the connector (a webhook host for webhook-driven platforms). */
  context?(): Promise<{ tc: TestContext; close(): Promise<void> }>;
  /** Two distinct customers, as the driver names them. */
  customers: readonly [string, string];
  /** The client id the connector gives this customer. */
  clientId(customer: string): string;
  /** The customer sends a text; resolves once the platform has handed it out (pushed or queued for a poll). */
  sendText(customer: string, text: string): Promise<void>;
  /** The customer sends a file; resolves as sendText does. */
  sendFile(customer: string, bytes: Buffer, fileName: string, mimeType: string): Promise<void>;
  /** The platform sends the customer's last message to the connector again (its own retry or a replay). */
  redeliverLast(customer: string): Promise<void>;
  /** True once the platform regards every message it handed out as acknowledged. */
  acknowledged(): boolean;
  /** What the customer got so far, in order. */
  received(customer: string): ReceivedItem[];
  /**
   * A coming platform send fails (the next one, or the one after `afterSends`
   * that succeed): `permanent` as for a customer who blocked the bot,
   * `retryable` as a rate limit asking to wait `retryAfterMs` (longer than the
   * connector retries by itself), `transient` as a passing platform error the
   * connector does not retry itself, `hang` by never answering.
   */
  failNextSend(
    kind: 'permanent' | 'retryable' | 'transient' | 'hang',
    opts?: { retryAfterMs?: number; afterSends?: number },
  ): void;
  /** Makes a file the connector handed to core disappear from the platform. */
  deleteFile(ref: AttachmentRef): void;
  /** Ends any scripted failures (between tests). */
  reset?(): void;
}

/** Registers the conformance suite for one connector. */
export function connectorConformance(driver: ConformanceDriver): void {
  describe(`${driver.name} connector conformance`, () => {
    let tc: TestContext;
    let closeCtx: () => Promise<void> = async () => {};
    let conn: ChannelConnector | undefined;
    const [alice, bob] = driver.customers;
    let seq = 0;
    const unique = (what: string) => `${what} ${++seq}-${Math.random().toString(36).slice(2, 8)}`;

    async function start(): Promise<ChannelConnector> {
      if (driver.context) {
        const c = await driver.context();
        tc = c.tc;
        closeCtx = c.close;
      } else {
        tc = new TestContext({ captureLogs: true, secrets: [] });
        closeCtx = async () => {};
      }
      const c = driver.connector(tc);
      await c.start(tc.ctx);
      await tc.until(() => c.status().state === 'connected', 10_000, 'the connector to be connected');
      conn = c;
      return c;
    }

    async function stop(): Promise<void> {
      const c = conn;
      conn = undefined;
      tc?.abort.abort(new Error('stopping'));
      await c?.stop();
      await closeCtx();
    }

    const logs: string[] = [];

    beforeAll(() => driver.setup(), 30_000);
    afterEach(async () => {
      driver.reset?.();
      logs.push(...(tc?.logLines ?? []));
      await stop();
    });
    afterAll(async () => {
      await driver.teardown();
    });

    const byText = (text: string) => (m: InboundMessage) => m.text === text;

    it('reports connected after start; stop is idempotent and ends in stopped', async () => {
      const c = await start();
      expect(c.status().state).toBe('connected');
      await c.stop();
      await c.stop();
      expect(c.status().state).toBe('stopped');
      conn = undefined;
    });

    it('acknowledges the platform only after receive resolved', async () => {
      await start();
      const release = tc.hold();
      const text = unique('held');
      await driver.sendText(alice, text);
      await tc.until(() => tc.attempts.some(byText(text)), 10_000, 'receive to be called');
      // The store has not answered yet: the platform must still consider the message unacknowledged.
      await new Promise((r) => setTimeout(r, 300));
      expect(driver.acknowledged()).toBe(false);
      release();
      await tc.until(() => tc.received.some(byText(text)), 10_000, 'the message');
      await tc.until(() => driver.acknowledged(), 10_000, 'the platform to be acknowledged');
    });

    it('does not acknowledge a message the store refused, and gets it again, once', async () => {
      await start();
      tc.failNext(1);
      const text = unique('retry me');
      await driver.sendText(alice, text);
      await tc.until(() => tc.received.some(byText(text)), 15_000, 'the message after the refusal');
      expect(tc.attempts.filter(byText(text)).length).toBeGreaterThanOrEqual(2);
      expect(tc.received.filter(byText(text))).toHaveLength(1);
    });

    it('gives stable client and message ids: a redelivery, also after a restart, is a duplicate', async () => {
      await start();
      const text = unique('stable');
      await driver.sendText(bob, text);
      await tc.until(() => tc.received.some(byText(text)), 10_000, 'the message');
      const first = tc.received.find(byText(text))!;
      expect(first.client.clientId).toBe(driver.clientId(bob));
      await tc.until(() => driver.acknowledged(), 10_000, 'the acknowledgement');
      await driver.redeliverLast(bob);
      await tc.until(() => tc.attempts.filter(byText(text)).length >= 2, 10_000, 'the redelivery');
      // A fresh process sees the same message with the same ids.
      logs.push(...tc.logLines);
      await stop();
      await start();
      await driver.redeliverLast(bob);
      await tc.until(() => tc.attempts.some(byText(text)), 10_000, 'the redelivery after a restart');
      const again = tc.attempts.find(byText(text))!;
      expect(again.client.clientId).toBe(first.client.clientId);
      expect(again.messageId).toBe(first.messageId);
    });

    it('delivers to one client in order', async () => {
      const c = await start();
      const target = { clientId: driver.clientId(alice) };
      const before = driver.received(alice).length;
      const texts = Array.from({ length: 5 }, (_, i) => unique(`in order ${i}`));
      const ids: string[] = [];
      for (const text of texts) {
        const receipt = await c.deliver(target, agentMessage({ text }), new TestDelivery().next());
        // The platform's id of each message, for the store to keep (edits, deletions, operators).
        expect(receipt?.platformMessageIds, 'deliver returns the platform message id').toHaveLength(1);
        ids.push(...(receipt?.platformMessageIds ?? []));
      }
      expect(new Set(ids).size, 'every message has its own platform id').toBe(texts.length);
      expect(
        driver
          .received(alice)
          .slice(before)
          .map((r) => r.text),
      ).toEqual(texts);
    });

    it('resumes a delivery that failed after its first step, repeating nothing', async () => {
      const c = await start();
      const target = { clientId: driver.clientId(bob) };
      const before = driver.received(bob).length;
      // Long enough for two platform messages.
      const long = `${'word '.repeat(Math.ceil(driver.textLimit / 5))}end`;
      const delivery = new TestDelivery();
      const msg = agentMessage({ text: long });
      // The first piece goes out; the second fails.
      driver.failNextSend('transient', { afterSends: 1 });
      await expect(c.deliver(target, msg, delivery.next())).rejects.toThrow();
      expect(driver.received(bob).length - before).toBe(1);
      // Recorded as soon as it went out, before the attempt failed.
      expect(delivery.saves).toHaveLength(1);
      const receipt = await c.deliver(target, msg, delivery.next());
      const got = driver
        .received(bob)
        .slice(before)
        .map((r) => r.text ?? '');
      // The resumed attempt reports the ids of every piece, the ones the first attempt sent too.
      expect(receipt?.platformMessageIds).toHaveLength(got.length);
      expect(got.join(' ').replace(/\s+/g, ' ')).toBe(long.replace(/\s+/g, ' '));
      for (const piece of got) expect(piece.length).toBeLessThanOrEqual(driver.textLimit);
    });

    it('classifies platform errors: permanent, retryable with the wait, and retries of other failures', async () => {
      const c = await start();
      const target = { clientId: driver.clientId(alice) };
      driver.failNextSend('permanent');
      await expect(
        c.deliver(target, agentMessage({ text: 'x' }), new TestDelivery().next()),
      ).rejects.toBeInstanceOf(PermanentDeliveryError);
      driver.failNextSend('retryable', { retryAfterMs: 3_600_000 });
      const err = await c
        .deliver(target, agentMessage({ text: 'y' }), new TestDelivery().next())
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RetryableDeliveryError);
      expect((err as RetryableDeliveryError).retryAfterMs).toBeGreaterThan(0);
      // Counted for core's metrics (kitbridge_platform_rate_limits_total), with the platform's wait.
      expect(tc.rateLimits.length, 'the 429 reported with ctx.metrics.rateLimited').toBeGreaterThan(0);
      expect(tc.rateLimits.at(-1)).toBeGreaterThanOrEqual(3_590_000);
      await expect(
        c.deliver(
          { clientId: 'not-a-client-of-this-platform' },
          agentMessage({ text: 'z' }),
          new TestDelivery().next(),
        ),
      ).rejects.toBeInstanceOf(PermanentDeliveryError);
    });

    it("honours the deadline's signal when the platform never answers", async () => {
      const c = await start();
      const target = { clientId: driver.clientId(alice) };
      driver.failNextSend('hang');
      const delivery = new TestDelivery(300);
      const outcome = await Promise.race([
        c.deliver(target, agentMessage({ text: unique('hang') }), delivery.next()).then(
          () => 'delivered',
          () => 'rejected',
        ),
        new Promise((r) => setTimeout(() => r('still waiting'), 8_000)),
      ]);
      expect(outcome).toBe('rejected');
    });

    it('streams a customer file through resolveAttachment; a vanished file is AttachmentGoneError', async () => {
      const c = await start();
      const bytes = Buffer.alloc(3 * 1024 * 1024 + 17);
      for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31) & 0xff;
      await driver.sendFile(alice, bytes, 'report.pdf', 'application/pdf');
      await tc.until(
        () => tc.received.some((m) => m.items?.some((i) => i.type === 'media')),
        10_000,
        'the file message',
      );
      const msg = tc.received.find((m) => m.items?.some((i) => i.type === 'media'))!;
      const item = msg.items!.find((i) => i.type === 'media') as AttachmentRef & { type: 'media' };
      const file = await c.resolveAttachment(item);
      const chunks = await readAll(file.stream);
      // Streamed in pieces, not handed over as one buffer.
      expect(chunks.length).toBeGreaterThan(1);
      expect(Buffer.concat(chunks).equals(bytes)).toBe(true);
      driver.deleteFile(item);
      await expect(c.resolveAttachment(item)).rejects.toBeInstanceOf(AttachmentGoneError);
    });

    it('writes no secret into any log line', () => {
      logs.push(...(tc?.logLines ?? []));
      const all = logs.join('');
      for (const s of driver.secrets) expect(all.includes(s)).toBe(false);
    });
  });
}

async function readAll(stream: Readable): Promise<Buffer[]> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c as Uint8Array));
  return chunks;
}
