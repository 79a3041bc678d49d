/**
 * `kitbridge demo`: the whole bridge, offline, in one process. A fake Kit and a
 * fake Telegram Bot API run on 127.0.0.1; the connector between them is the real
 * one (grammy against the fake, the real relay, outbox and media proxy). A
 * customer writes, an agent answers, Kit closes the chat; we print what crossed
 * each leg.
 */
import { createLogger, startBridge } from '@kitbridge/core';
import { telegramPlugin } from '@kitbridge/telegram';
import { FakeKit, FakeTelegram, fakeBotToken, freePort, testCoreConfig } from '@kitbridge/testkit';
import { request } from 'undici';

const CREDS = {
  account: 'demo',
  apiToken: 'demo-api-token-0123',
  channelUuid: 'demo-channel-0001',
  salt: 'demo-salt',
};

// A 1x1 JPEG, so the photo is a real image.
const JPEG = Buffer.from(
  '/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAP//////////////////////////////////////////////////////////////////////////////////////2wBDAf//////////////////////////////////////////////////////////////////////////////////////wAARCAABAAEDASIAAhEBAxEB/8QAFAABAAAAAAAAAAAAAAAAAAAAA//EABQQAQAAAAAAAAAAAAAAAAAAAAD/xAAUAQEAAAAAAAAAAAAAAAAAAAAA/8QAFBEBAAAAAAAAAAAAAAAAAAAAAP/aAAwDAQACEQMRAD8AN//Z',
  'base64',
);

export async function demo(print: (s: string) => void): Promise<number> {
  const kit = new FakeKit(CREDS);
  await kit.start();
  const token = fakeBotToken();
  const tg = new FakeTelegram({ token, bot: { first_name: 'Acme Support', username: 'acme_support_bot' } });
  await tg.start();
  const port = await freePort();
  const config = testCoreConfig({ url: kit.url, ...CREDS }, port, {
    closeMessage: 'Thanks for writing to Acme. This chat is closed.',
  });
  const logger = createLogger({
    level: 'warn',
    secrets: [token, CREDS.apiToken, CREDS.salt, config.media.secret],
  });
  const tgConfig = telegramPlugin.env.parse({ TELEGRAM_BOT_TOKEN: token, TELEGRAM_API_ROOT: tg.apiRoot });
  const connector = telegramPlugin.create(tgConfig, { publicUrl: config.publicUrl, logger });
  const bridge = await startBridge({ config, connector, logger });
  const show = (o: unknown) => JSON.stringify(o, null, 2).replace(/^/gm, '    ');

  try {
    print(
      `kitbridge demo: fake Kit at ${kit.url}, fake Telegram at ${tg.apiRoot}, bridge at ${bridge.url}\n`,
    );

    print('1. A customer writes to the bot on Telegram (text, then a photo with a caption).');
    const ann = {
      id: 4242,
      is_bot: false,
      first_name: 'Ann',
      last_name: 'Lee',
      username: 'annlee',
      language_code: 'en',
    };
    tg.textFrom(ann, 'Hi! My order #1042 has not arrived yet.');
    tg.photoFrom(ann, JPEG, { caption: 'This is what the tracking page says' });
    await kit.waitForEvents(2, 15_000);
    print('   Kit received these send_message events:');
    for (const e of kit.events) print(show(e));

    const photo = (kit.events[1] as { event_data: { message: { payload: { file_url: string }[] } } })
      .event_data.message.payload[0]!;
    const got = await request(photo.file_url);
    const bytes = Buffer.from(await got.body.arrayBuffer());
    print(`\n2. Kit fetches the photo from kitbridge's media proxy (the bot token never leaves the bridge):`);
    print(
      `   GET ${photo.file_url.slice(0, 60)}... -> ${got.statusCode} ${got.headers['content-type']}, ${bytes.length} bytes, same as sent: ${bytes.equals(JPEG)}`,
    );

    print(
      '\n3. An agent answers in Kit; Kit calls the signed callback, and the customer gets it on Telegram.',
    );
    const reply = kit.agentMessage('tg:4242', {
      text: 'Sorry about that, Ann! It left our warehouse today; you will have it on Friday.',
      sender: { sender_display_name: 'Bob', sender_type: 'agent' },
    });
    const status = await kit.sendCallback(`${bridge.url}/kit/callback`, reply);
    print(`   POST /kit/callback -> ${status.status}`);
    const sent = await tg.waitFor((c) => c.method === 'sendMessage', 15_000);
    print(`   Telegram ${sent.method}:`);
    print(show(sent.params));

    print('\n4. The agent closes the conversation; the customer is told (KITBRIDGE_CLOSE_MESSAGE).');
    await kit.sendCallback(`${bridge.url}/kit/callback`, kit.closeConversation('tg:4242', 'CLOSED_BY_AGENT'));
    const closing = await tg.waitFor((c) => c.method === 'sendMessage' && c !== sent, 15_000);
    print(`   Telegram ${closing.method}: ${JSON.stringify(closing.params.text)}`);

    print('\n5. A forged callback (wrong signature) is refused and changes nothing.');
    const forged = await kit.sendCallback(
      `${bridge.url}/kit/callback`,
      kit.agentMessage('tg:4242', { text: 'phishing' }),
      { signature: 'bad' },
    );
    print(`   POST /kit/callback with a bad signature -> ${forged.status}`);

    await bridge.relay.idle();
    print('\nBoth legs worked. Run `npm test` for the full suite, or see the README to connect a real bot.');
    return 0;
  } finally {
    await bridge.stop(1_000);
    await tg.close();
    await kit.close();
  }
}
