/**
 * Start-up and the late lookups: auth.test (a bad token stops start-up with
 * bad_credentials), the scopes the mode needs (a missing one stops it with
 * missing_permission, named), the support channel, `kitbridge check`'s
 * selfCheck, the profile from users.info, and names for mentions learned only
 * after the acknowledgement.
 */
import { FakeSlack } from '@kitbridge/testkit';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { SlackConnector } from '../src/connector.js';
import { decodeRef } from '../src/inbound.js';
import { FileServer, sleep, TestContext, testConnector } from './setup.js';

let fake: FakeSlack;
let tc: TestContext;
const started: SlackConnector[] = [];

beforeEach(async () => {
  fake = await new FakeSlack().start();
  tc = new TestContext({ captureLogs: true });
});

afterEach(async () => {
  tc.abort.abort();
  for (const c of started.splice(0)) await c.stop();
  await fake.close();
});

function make(extra: Parameters<typeof testConnector>[1] = {}): SlackConnector {
  const c = testConnector(fake, extra);
  started.push(c);
  return c;
}

describe('start-up', () => {
  it('a revoked or wrong bot token stops start-up: failed, bad_credentials, SLACK_BOT_TOKEN named', async () => {
    fake.revokeBotToken();
    const c = make();
    await expect(c.start(tc.ctx)).rejects.toThrow(/Slack rejected SLACK_BOT_TOKEN \(token_revoked\)/);
    expect(c.status()).toMatchObject({ state: 'failed', code: 'bad_credentials' });
    const wrong = make({ botToken: 'xoxb-1111-2222-notthetoken' });
    await expect(wrong.start(new TestContext().ctx)).rejects.toThrow(/\(invalid_auth\)/);
    expect(fake.callsOf('apps.connections.open')).toHaveLength(0);
  });

  it('a scope the mode needs is missing: failed, missing_permission, the scope named', async () => {
    fake.scopes.delete('im:history');
    const c = make();
    await expect(c.start(tc.ctx)).rejects.toThrow(/lacks the im:history scope \(to receive DMs/);
    expect(c.status()).toMatchObject({ state: 'failed', code: 'missing_permission' });
    fake.scopes.add('im:history');
    fake.scopes.delete('chat:write');
    await expect(make().start(new TestContext().ctx)).rejects.toThrow(/lacks the chat:write scope/);
  });

  it('recommended scopes that are missing are a warning, not a stop', async () => {
    fake.scopes.delete('files:read');
    fake.scopes.delete('users:read.email');
    const c = make();
    await c.start(tc.ctx);
    expect(c.status().state).toBe('connected');
    const warning = tc.logLines.find((l) => l.includes('lacks recommended scopes'))!;
    expect(warning).toContain('files:read (customer files');
    expect(warning).toContain('users:read.email');
  });

  it('the support channel: unknown, without the app, archived, or without its history scope stops start-up', async () => {
    const pub = fake.channel({ name: 'support' });
    const outside = fake.channel({ name: 'elsewhere', botIsMember: false });
    const secret = fake.channel({ name: 'vip', is_private: true });
    await expect(make({ supportChannelId: 'C0NOTHERE1' }).start(new TestContext().ctx)).rejects.toThrow(
      /SLACK_SUPPORT_CHANNEL_ID C0NOTHERE1: no such channel/,
    );
    await expect(make({ supportChannelId: outside.id }).start(new TestContext().ctx)).rejects.toThrow(
      /the app is not a member of #elsewhere.*\/invite @app/,
    );
    fake.scopes.delete('groups:history');
    await expect(make({ supportChannelId: secret.id }).start(new TestContext().ctx)).rejects.toThrow(
      /lacks the groups:history scope/,
    );
    fake.scopes.delete('channels:read');
    await expect(make({ supportChannelId: pub.id }).start(new TestContext().ctx)).rejects.toThrow(
      /lacks the channels:read scope \(to check SLACK_SUPPORT_CHANNEL_ID\)/,
    );
    fake.scopes.add('channels:read');
    fake.archiveChannel(pub.id);
    await expect(make({ supportChannelId: pub.id }).start(new TestContext().ctx)).rejects.toThrow(/archived/);
    fake.archiveChannel(pub.id, false);
    // The DM mode's scope is not needed with a support channel.
    fake.scopes.delete('im:history');
    const ok = make({ supportChannelId: pub.id });
    await ok.start(tc.ctx);
    expect(ok.status().state).toBe('connected');
  });

  it('selfCheck: the bot, the workspace and org, the mode, the place, what is missing; failures name the variable', async () => {
    const grid = await new FakeSlack({ enterpriseId: 'E0ORG00001', botName: 'acme_support' }).start();
    try {
      grid.scopes.delete('chat:write.customize');
      const socket = testConnector(grid);
      expect(await socket.selfCheck()).toBe(
        `bot @acme_support in Fake Workspace (${grid.teamId}, org E0ORG00001), Socket Mode, DMs to the app; without chat:write.customize`,
      );
      expect(grid.callsOf('apps.connections.open')).toHaveLength(1);
      const support = grid.channel({ name: 'help' });
      const http = testConnector(grid, {
        mode: 'http',
        supportChannelId: support.id,
        publicUrl: 'https://b.example',
      });
      expect(await http.selfCheck()).toMatch(
        /events at https:\/\/b\.example\/slack\/events, support channel #help/,
      );
      grid.failNext('apps.connections.open', { error: 'invalid_auth' });
      await expect(socket.selfCheck()).rejects.toThrow(/Slack rejected SLACK_APP_TOKEN \(invalid_auth\)/);
      grid.revokeBotToken();
      await expect(socket.selfCheck()).rejects.toThrow(/Slack rejected SLACK_BOT_TOKEN \(token_revoked\)/);
      // Nothing was started.
      expect(socket.status().state).toBe('stopped');
    } finally {
      await grid.close();
    }
  });
});

describe('profile', () => {
  it('users.info with include_locale: display_name, else real_name; image_72 as the avatar; the email; the locale', async () => {
    const avatars = await new FileServer().start();
    try {
      const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 9, 9, 9]);
      const image = avatars.add('/ann_72.png', png, 'image/png');
      const ann = fake.user({
        name: 'ann',
        real_name: 'Ann Lee',
        display_name: 'annie',
        email: 'ann@example.com',
        locale: 'de-DE',
        image_72: image,
      });
      const bob = fake.user({ name: 'bob', real_name: 'Bob Stone' });
      const c = make();
      await c.start(tc.ctx);
      const p = await c.resolveProfile(
        { clientId: `sl:${fake.teamId}:${ann.id}` },
        AbortSignal.timeout(5_000),
      );
      expect(p).toMatchObject({ displayName: 'annie', email: 'ann@example.com', language: 'de-DE' });
      expect(fake.callsOf('users.info')[0]?.params).toMatchObject({ user: ann.id, include_locale: true });
      expect(decodeRef(p!.avatar!.ref)).toEqual({ type: 'avatar', url: image });
      const file = await c.resolveAttachment(p!.avatar!);
      const chunks: Buffer[] = [];
      for await (const chunk of file.stream) chunks.push(chunk as Buffer);
      expect(Buffer.concat(chunks).equals(png)).toBe(true);
      expect(file.contentType).toBe('image/png');

      const b = await c.resolveProfile(
        { clientId: `sl:${fake.teamId}:${bob.id}` },
        AbortSignal.timeout(5_000),
      );
      expect(b).toMatchObject({ displayName: 'Bob Stone', language: 'en-US' });
      expect(b!.email).toBeUndefined();
      fake.scopes.delete('users:read.email');
      const noEmail = await c.resolveProfile(
        { clientId: `sl:${fake.teamId}:${ann.id}` },
        AbortSignal.timeout(5_000),
      );
      expect(noEmail!.email).toBeUndefined();
      expect(
        await c.resolveProfile({ clientId: `sl:${fake.teamId}:U0NOBODY1` }, AbortSignal.timeout(5_000)),
      ).toBeUndefined();
      expect(await c.resolveProfile({ clientId: 'tg:1' }, AbortSignal.timeout(5_000))).toBeUndefined();
    } finally {
      await avatars.close();
    }
  });

  it('without users:read, no lookup at all', async () => {
    fake.scopes.delete('users:read');
    const c = make();
    await c.start(tc.ctx);
    const ann = fake.user({ name: 'ann' });
    expect(
      await c.resolveProfile({ clientId: `sl:${fake.teamId}:${ann.id}` }, AbortSignal.timeout(5_000)),
    ).toBeUndefined();
    expect(fake.callsOf('users.info')).toHaveLength(0);
  });
});

describe('names for mentions', () => {
  it("the app's own name from auth.test; unknown names are looked up only after the ack, for the next message", async () => {
    const c = make();
    await c.start(tc.ctx);
    const cara = fake.user({ name: 'cara' });
    const dora = fake.user({ name: 'dora', real_name: 'Dora Diaz', display_name: 'Dora' });
    const release = tc.hold();
    const first = fake.sendEnvelope(fake.dm(cara, `<@${fake.botUserId}> please ask <@${dora.id}>`));
    await tc.until(() => tc.attempts.length === 1, 5_000, 'receive');
    await sleep(100);
    expect(fake.callsOf('users.info')).toHaveLength(0);
    release();
    await fake.waitForAck(first.envelopeId);
    expect(tc.received[0]!.text).toBe(`@kitbridge please ask @${dora.id}`);
    await fake.waitForCall((call) => call.method === 'users.info' && call.status === 200);
    expect(fake.callsOf('users.info')[0]!.at).toBeGreaterThanOrEqual(fake.acks[0]!.at);
    const second = fake.sendEnvelope(fake.dm(cara, `thanks <@${dora.id}>`));
    await fake.waitForAck(second.envelopeId);
    expect(tc.received[1]!.text).toBe('thanks @Dora');
    expect(fake.callsOf('users.info')).toHaveLength(1);
  });
});
