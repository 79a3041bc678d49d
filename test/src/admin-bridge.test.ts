/**
 * The operator page on a running Bridge (FakeKit, the ScriptedConnector, real
 * HTTP): off without KITBRIDGE_ADMIN_TOKEN; with it, a script with the Bearer
 * token sees the bridge's state and an inbound dead letter Kit refused, and
 * its retry is delivered by the running outbox.
 */
import { type Bridge, startBridge } from '@kitbridge/core';
import { FakeKit, freePort, ScriptedConnector, testCoreConfig } from '@kitbridge/testkit';
import { request } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

const CREDS = {
  account: 'acme',
  apiToken: 'api-token-0123456789',
  channelUuid: 'chan-0001-uuid',
  salt: 'salt-abc',
};
const TOKEN = 'bridge-admin-token-0123456789abcdef-01';

let kit: FakeKit;
let connector: ScriptedConnector;
let bridge: Bridge | undefined;

beforeEach(async () => {
  kit = new FakeKit(CREDS);
  await kit.start();
});

afterEach(async () => {
  await bridge?.stop(500);
  bridge = undefined;
  await kit.close();
});

async function start(adminToken?: string): Promise<Bridge> {
  connector = new ScriptedConnector();
  const port = await freePort();
  bridge = await startBridge({
    config: testCoreConfig({ url: kit.url, ...CREDS }, port, adminToken ? { adminToken } : {}),
    connector,
  });
  return bridge;
}

async function call(
  method: 'GET' | 'POST',
  url: string,
  headers: Record<string, string> = {},
  body?: string,
) {
  const r = await request(url, { method, headers, ...(body !== undefined ? { body } : {}) });
  return { status: r.statusCode, text: await r.body.text() };
}

describe('the operator page on a bridge', () => {
  it('is off without KITBRIDGE_ADMIN_TOKEN: every /admin path is a 404', async () => {
    const b = await start();
    for (const path of ['/admin', '/admin/panel', '/admin/status.json', '/admin/admin.js'])
      expect((await call('GET', `${b.url}${path}`)).status, path).toBe(404);
    const login = await call(
      'POST',
      `${b.url}/admin/login`,
      { 'content-type': 'application/x-www-form-urlencoded', origin: b.url },
      `token=${TOKEN}`,
    );
    expect(login.status).toBe(404);
  });

  it('shows the state and a dead letter Kit refused; a Bearer retry is delivered by the running outbox', async () => {
    const b = await start(TOKEN);
    const auth = { authorization: `Bearer ${TOKEN}` };
    kit.rejectNext(1, { error: 'client_id is not valid here', code: 400 });
    await connector.push({ client: { clientId: 'sc:7' }, messageId: 'm1', text: 'refund please' });
    await b.relay.inbound.idle();

    const state = JSON.parse((await call('GET', `${b.url}/admin/status.json`, auth)).text);
    expect(state.status).toMatchObject({ ready: true, kit: true, connector: { state: 'connected' } });
    expect(state.legs[0]).toMatchObject({ leg: 'inbound', pending: 0, dead: 1 });
    expect(state.dead).toHaveLength(1);
    expect(state.dead[0]).toMatchObject({ leg: 'inbound', clientId: 'sc:7', key: 'sc:7/m1' });
    expect(state.dead[0].reason).toContain('client_id is not valid here');
    expect(state.dead[0].excerpt).toBe('send_message: "refund please"');
    expect(kit.events).toHaveLength(0);

    const retry = await call(
      'POST',
      `${b.url}/admin/retry`,
      { ...auth, 'content-type': 'application/x-www-form-urlencoded' },
      `id=${state.dead[0].id}`,
    );
    expect(JSON.parse(retry.text)).toEqual({ revived: 1 });
    await kit.waitForEvents(1);
    expect(kit.events.map((e: any) => e.event_id)).toEqual(['sc:7/m1']);
    await b.relay.inbound.idle();
    const after = JSON.parse((await call('GET', `${b.url}/admin/status.json`, auth)).text);
    expect(after.legs[0]).toMatchObject({ leg: 'inbound', pending: 0, dead: 0 });
    expect(after.dead).toEqual([]);
  });
});
