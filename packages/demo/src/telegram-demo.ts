/** The Telegram demo: a customer writes to the bot (text, a photo), an agent answers, Kit closes. */
import { type DemoScenario, forgedCallback } from './demo.js';
import { FakeTelegram, fakeBotToken } from './fake-telegram.js';

// A 1x1 JPEG, so the photo is a real image.
const JPEG = Buffer.from(
  '/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAP//////////////////////////////////////////////////////////////////////////////////////2wBDAf//////////////////////////////////////////////////////////////////////////////////////wAARCAABAAEDASIAAhEBAxEB/8QAFAABAAAAAAAAAAAAAAAAAAAAA//EABQQAQAAAAAAAAAAAAAAAAAAAAD/xAAUAQEAAAAAAAAAAAAAAAAAAAAA/8QAFBEBAAAAAAAAAAAAAAAAAAAAAP/aAAwDAQACEQMRAD8AN//Z',
  'base64',
);

export async function telegramDemo(): Promise<DemoScenario> {
  const token = fakeBotToken();
  const tg = new FakeTelegram({ token, bot: { first_name: 'Acme Support', username: 'acme_support_bot' } });
  await tg.start();
  return {
    where: `fake Telegram at ${tg.apiRoot}`,
    env: { TELEGRAM_BOT_TOKEN: token, TELEGRAM_API_ROOT: tg.apiRoot },
    secrets: [token],
    readMore: 'the README',
    close: () => tg.close(),
    async steps(ctx) {
      const { kit, bridge, print, show } = ctx;
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

      print(
        `\n2. Kit fetches the photo from kitbridge's media proxy (the bot token never leaves the bridge):`,
      );
      await ctx.fetchMedia(1, JPEG);

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
      await kit.sendCallback(
        `${bridge.url}/kit/callback`,
        kit.closeConversation('tg:4242', 'CLOSED_BY_AGENT'),
      );
      const closing = await tg.waitFor((c) => c.method === 'sendMessage' && c !== sent, 15_000);
      print(`   Telegram ${closing.method}: ${JSON.stringify(closing.params.text)}`);

      await forgedCallback(ctx, 'tg:4242');
    },
  };
}
