/** The fake Bot API itself (testkit): the Telegram behaviour the connector tests rely on. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeTelegram, tgUser } from '../src/fake-telegram.js';

const bob = tgUser(1, 'Bob');

describe('FakeTelegram', () => {
  let tg: FakeTelegram;
  const call = async (method: string, body?: unknown, token = tg.token) => {
    const res = await fetch(`${tg.apiRoot}/bot${token}/${method}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body ?? {}),
    });
    return {
      status: res.status,
      json: (await res.json()) as { ok: boolean; result?: unknown; error_code?: number },
    };
  };

  beforeEach(async () => {
    tg = await new FakeTelegram().start();
  });
  afterEach(async () => {
    await tg.close();
  });

  it('answers 401 to a wrong token', async () => {
    expect(await call('getMe', {}, '1:wrong')).toEqual({
      status: 401,
      json: { ok: false, error_code: 401, description: 'Unauthorized' },
    });
  });

  it('getUpdates drops updates below the offset and honours limit', async () => {
    const a = tg.textFrom(bob, 'a');
    tg.textFrom(bob, 'b');
    tg.textFrom(bob, 'c');
    const first = await call('getUpdates', { limit: 2 });
    expect((first.json.result as unknown[]).length).toBe(2);
    const rest = await call('getUpdates', { offset: a.update_id + 2 });
    expect((rest.json.result as { message: { text: string } }[]).map((u) => u.message.text)).toEqual(['c']);
    expect(tg.pendingUpdates).toHaveLength(1);
  });

  it('a waiting getUpdates returns when an update arrives; a newer one ends it with 409', async () => {
    const waiting = call('getUpdates', { timeout: 10 });
    await tg.waitForCall((c) => c.method === 'getUpdates');
    tg.textFrom(bob, 'wake');
    expect(((await waiting).json.result as unknown[]).length).toBe(1);

    const older = call('getUpdates', { offset: 1000, timeout: 10 });
    await tg.waitForCall((c) => c.method === 'getUpdates' && c.params['offset'] === 1000);
    const newer = call('getUpdates', { offset: 1000, timeout: 0 });
    expect((await older).status).toBe(409);
    expect((await newer).status).toBe(200);
  });

  it('getUpdates answers 409 while a webhook is set', async () => {
    await call('setWebhook', { url: 'https://x.example/hook', secret_token: 's' });
    expect(tg.webhook).toEqual({ url: 'https://x.example/hook', secret_token: 's' });
    expect((await call('getUpdates', {})).status).toBe(409);
  });

  it('serves registered files by getFile path, and scripted failures once', async () => {
    const f = tg.addFile(Buffer.from('bytes!'), { fileName: 'a.txt' });
    const info = (await call('getFile', { file_id: f.file_id })).json.result as { file_path: string };
    const res = await fetch(`${tg.apiRoot}/file/bot${tg.token}/${info.file_path}`);
    expect(Buffer.from(await res.arrayBuffer()).toString()).toBe('bytes!');
    expect((await call('getFile', { file_id: 'nope' })).status).toBe(400);

    tg.failNext('sendMessage', { error_code: 429, retry_after: 1 });
    const limited = await call('sendMessage', { chat_id: 1, text: 'x' });
    expect(limited.json).toMatchObject({ ok: false, error_code: 429, parameters: { retry_after: 1 } });
    expect((await call('sendMessage', { chat_id: 1, text: 'x' })).json.ok).toBe(true);
  });
});
