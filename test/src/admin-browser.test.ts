/**
 * The operator page in a real headless Chromium (Debian's, driven by
 * playwright-core): `kitbridge run telegram` runs as a child process against
 * FakeTelegram and FakeKit. The operator logs in with the token; an agent
 * reply to a customer who blocked the bot is dead-lettered and appears on the
 * page by itself; the customer unblocks the bot, the operator presses Retry,
 * and the page shows it leave while Telegram receives it, once.
 *
 * Without Chromium the test fails in CI (CI=true); elsewhere it is skipped with
 * a message (`apt-get install chromium`).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { FakeKit, FakeTelegram, fakeBotToken, freePort } from '@kitbridge/testkit';
import { type BrowserContext, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const haveChromium = existsSync(CHROMIUM);
const inCi = process.env.CI === 'true';
if (!haveChromium && !inCi)
  console.warn(
    `admin-browser.test.ts skipped: no ${CHROMIUM} (apt-get install chromium); in CI it fails instead`,
  );

const bin = new URL('../../packages/cli/bin/kitbridge.js', import.meta.url).pathname;
const CREDS = {
  account: 'acme',
  apiToken: 'admin-e2e-api-token-0001',
  channelUuid: 'admin-e2e-channel-01',
  salt: 'admin-e2e-salt',
};
const ADMIN_TOKEN = 'admin-e2e-token-0123456789abcdef-0123456789';
const MEDIA_SECRET = 'admin-e2e-media-secret-0123456789abcdef';
const CUSTOMER = 601;
/** How long to wait for the page to show something: it refreshes itself every 2 s. */
const PAGE = { timeout: 15_000, interval: 100 };

let kit: FakeKit;
let tg: FakeTelegram;
let tmp: string;
let botToken: string;

beforeAll(async () => {
  kit = new FakeKit(CREDS);
  await kit.start();
  botToken = fakeBotToken();
  tg = new FakeTelegram({ token: botToken });
  await tg.start();
  tmp = mkdtempSync(join(os.tmpdir(), 'kitbridge-admin-'));
});

afterAll(async () => {
  await tg?.close();
  await kit?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

function startConnector(port: number): { child: ChildProcess; output: () => string } {
  let out = '';
  const child = spawn(process.execPath, [bin, 'run', 'telegram'], {
    env: {
      PATH: process.env.PATH ?? '',
      KIT_IM_URL: kit.url,
      KIT_ACCOUNT: CREDS.account,
      KIT_API_TOKEN: CREDS.apiToken,
      KIT_CHANNEL_UUID: CREDS.channelUuid,
      KIT_CHANNEL_SALT: CREDS.salt,
      KITBRIDGE_HOST: '127.0.0.1',
      KITBRIDGE_PORT: String(port),
      KITBRIDGE_PUBLIC_URL: `http://127.0.0.1:${port}`,
      KITBRIDGE_MEDIA_SECRET: MEDIA_SECRET,
      KITBRIDGE_STORE: `sqlite:${join(tmp, 'kitbridge.db')}`,
      KITBRIDGE_ADMIN_TOKEN: ADMIN_TOKEN,
      KITBRIDGE_LOG_LEVEL: 'debug',
      KITBRIDGE_DRAIN: '100ms',
      TELEGRAM_BOT_TOKEN: botToken,
      TELEGRAM_API_ROOT: tg.apiRoot,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  return { child, output: () => out };
}

async function waitReady(url: string): Promise<void> {
  const end = Date.now() + 20_000;
  for (;;) {
    try {
      if ((await fetch(`${url}/readyz`)).status === 200) return;
    } catch {}
    if (Date.now() > end) throw new Error('connector did not become ready');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe.skipIf(!haveChromium && !inCi)('the operator page in Chromium', () => {
  it('log in with the token, see a dead letter appear, retry it, watch it delivered', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const connector = startConnector(port);
    const profile = mkdtempSync(join(tmp, 'chromium-'));
    let context: BrowserContext | undefined;
    try {
      await waitReady(url);
      context = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,
        args: CHROMIUM_ARGS,
      });
      const page = context.pages()[0] ?? (await context.newPage());
      const urls: string[] = [];
      const problems: string[] = [];
      page.on('request', (r) => urls.push(r.url()));
      // A refused inline script or style, a failed fetch of the panel, a script error: all end up here.
      page.on('console', (m) => m.type() === 'error' && problems.push(m.text()));
      const failed: string[] = [];
      page.on(
        'response',
        (r) => r.status() >= 400 && failed.push(`${r.status()} ${new URL(r.url()).pathname}`),
      );
      page.on('pageerror', (e) => problems.push(e.message));

      // Not logged in: the login form only.
      await page.goto(`${url}/admin`);
      await page.locator('#token').fill(ADMIN_TOKEN);
      await page.getByRole('button', { name: 'Log in' }).click();
      await page.locator('#panel').waitFor();
      await expect.poll(() => page.locator('#connector').getAttribute('data-state'), PAGE).toBe('connected');
      await expect.poll(() => page.locator('#leg-outbound .dead').textContent(), PAGE).toBe('0');

      const [cookie] = await context.cookies(`${url}/admin`);
      expect(cookie).toMatchObject({
        name: 'kitbridge_admin',
        httpOnly: true,
        sameSite: 'Strict',
        path: '/admin',
      });
      expect(cookie!.value).not.toContain(ADMIN_TOKEN);

      // The customer blocked the bot: Telegram refuses the agent's reply for good.
      tg.failNext('sendMessage', { error_code: 403, description: 'Forbidden: bot was blocked by the user' });
      const callback = await kit.sendCallback(
        `${url}/kit/callback`,
        kit.agentMessage(`tg:${CUSTOMER}`, { text: 'Your parcel is on its way' }),
      );
      expect(callback.status).toBe(200);

      // The page refreshes itself: the dead letter appears with its reason.
      const row = page.locator('tr[id^="dead-"]');
      await row.waitFor(PAGE);
      await expect
        .poll(() => row.locator('.reason').textContent(), PAGE)
        .toContain('bot was blocked by the user');
      expect(await row.locator('.excerpt').textContent()).toContain('Your parcel is on its way');
      expect(await page.locator('#leg-outbound .dead').textContent()).toBe('1');
      expect(tg.delivered.filter((c) => c.method === 'sendMessage')).toHaveLength(0);

      // The customer unblocked the bot; the operator retries.
      tg.clearFailures();
      await row.getByRole('button', { name: 'Retry' }).click();
      const sent = await tg.waitFor(
        (c) => c.method === 'sendMessage' && c.params.text === 'Your parcel is on its way',
        15_000,
      );
      expect(sent.params.chat_id).toBe(CUSTOMER);
      await expect.poll(() => page.locator('tr[id^="dead-"]').count(), PAGE).toBe(0);
      await expect
        .poll(
          async () => [
            await page.locator('#leg-outbound .pending').textContent(),
            await page.locator('#leg-outbound .dead').textContent(),
          ],
          PAGE,
        )
        .toEqual(['0', '0']);
      await expect.poll(() => page.locator('#dead-letters .empty').count(), PAGE).toBe(1);
      const delivered = tg.delivered.filter(
        (c) => c.method === 'sendMessage' && c.params.text === 'Your parcel is on its way',
      );
      expect(delivered).toHaveLength(1);

      // Logged out: the page asks for the token again.
      await page.getByRole('button', { name: 'Log out' }).click();
      await page.locator('#token').waitFor();

      // The token travelled in a form body only; the page broke none of its own CSP.
      expect(urls.length).toBeGreaterThan(3);
      for (const u of urls) expect(u).not.toContain(ADMIN_TOKEN);
      // The browser asks for a favicon nobody serves; nothing else failed.
      expect(failed.filter((f) => f !== '404 /favicon.ico')).toEqual([]);
      expect(problems.filter((p) => !p.includes('status of 404'))).toEqual([]);
    } finally {
      await context?.close();
      connector.child.kill('SIGTERM');
      const code = await new Promise((r) => connector.child.once('exit', r));
      expect(code).toBe(0);
    }
    const logs = connector.output();
    expect(logs).toContain('"msg":"dead letter"');
    expect(logs).toContain('"msg":"admin: retry"');
    for (const secret of [ADMIN_TOKEN, botToken, CREDS.apiToken, CREDS.salt, MEDIA_SECRET])
      expect(logs).not.toContain(secret);
  }, 60_000);
});
