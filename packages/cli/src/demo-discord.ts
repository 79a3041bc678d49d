/**
 * `kitbridge demo discord`: the whole bridge on Discord, offline, in one process.
 * A fake Kit and a fake Discord (REST, CDN and gateway) run on 127.0.0.1; the
 * connector between them is the real one (discord.js against the fake, the
 * real relay, outbox and media proxy). A customer DMs the bot, an agent
 * answers, Kit closes the chat; we print what crossed each leg.
 */
import { createLogger, startBridge } from '@kitbridge/core';
import { discordPlugin } from '@kitbridge/discord';
import { FakeDiscord, FakeKit, freePort, testCoreConfig } from '@kitbridge/testkit';
import { request } from 'undici';

const CREDS = {
  account: 'demo',
  apiToken: 'demo-api-token-0123',
  channelUuid: 'demo-channel-0001',
  salt: 'demo-salt',
};

// A 1x1 PNG, so the screenshot is a real image.
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=',
  'base64',
);
const ANN = '424242424242424242';

export async function demoDiscord(print: (s: string) => void): Promise<number> {
  const kit = new FakeKit(CREDS);
  await kit.start();
  const discord = new FakeDiscord({ bot: { username: 'acme-support', global_name: 'Acme Support' } });
  await discord.start();
  discord.user(ANN, { username: 'annlee', global_name: 'Ann Lee', avatarBytes: PNG });
  const port = await freePort();
  const config = testCoreConfig({ url: kit.url, ...CREDS }, port, {
    closeMessage: 'Thanks for writing to Acme. This chat is closed.',
  });
  // `error`: this core keeps Discord's checkpoints in memory only, and the connector says so at warn level.
  const logger = createLogger({
    level: 'error',
    secrets: [discord.token, CREDS.apiToken, CREDS.salt, config.media.secret],
  });
  const env = discordPlugin.env.parse({
    DISCORD_BOT_TOKEN: discord.token,
    DISCORD_API_URL: discord.apiUrl,
    DISCORD_CDN_URL: discord.cdnUrl,
  });
  const connector = discordPlugin.create(env, { publicUrl: config.publicUrl, logger });
  const bridge = await startBridge({ config, connector, logger });
  const show = (o: unknown) => JSON.stringify(o, null, 2).replace(/^/gm, '    ');

  try {
    print(
      `kitbridge demo discord: fake Kit at ${kit.url}, fake Discord at ${discord.apiUrl} (gateway ${discord.gatewayUrl}), bridge at ${bridge.url}\n`,
    );

    print('1. A customer DMs the bot on Discord (text, then a screenshot with a line).');
    discord.dm(ANN, 'Hi! My order #1042 has not arrived yet.');
    discord.dm(ANN, {
      content: 'This is what the tracking page says',
      attachments: [{ filename: 'tracking.png', bytes: PNG, contentType: 'image/png' }],
    });
    await kit.waitForEvents(2, 15_000);
    print('   Kit received these send_message events:');
    for (const e of kit.events) print(show(e));

    const photo = (kit.events[1] as { event_data: { message: { payload: { file_url: string }[] } } })
      .event_data.message.payload[0]!;
    // Discord's CDN links are signed and expire; Kit got a link of kitbridge's own, which signs a fresh one.
    discord.expireCdnLinks();
    const got = await request(photo.file_url);
    const bytes = Buffer.from(await got.body.arrayBuffer());
    print(
      "\n2. Days later, Kit fetches the screenshot from kitbridge's media proxy (Discord's own link has expired; kitbridge asks for a fresh one):",
    );
    print(
      `   GET ${photo.file_url.slice(0, 60)}... -> ${got.statusCode} ${got.headers['content-type']}, ${bytes.length} bytes, same as sent: ${bytes.equals(PNG)}`,
    );

    print(
      '\n3. An agent answers in Kit; Kit calls the signed callback, and the customer gets it in their DMs.',
    );
    const reply = kit.agentMessage(`dc:${ANN}`, {
      text: 'Sorry about that, Ann! It left our warehouse today; you will have it on Friday.',
      sender: { sender_display_name: 'Bob', sender_type: 'agent' },
    });
    const status = await kit.sendCallback(`${bridge.url}/kit/callback`, reply);
    print(`   POST /kit/callback -> ${status.status}`);
    const [sent] = await discord.waitForDelivered(1, undefined, 15_000);
    print('   Discord POST /channels/:channel/messages:');
    print(show(sent!.call.body));

    print('\n4. The agent closes the conversation; the customer is told (KITBRIDGE_CLOSE_MESSAGE).');
    await kit.sendCallback(
      `${bridge.url}/kit/callback`,
      kit.closeConversation(`dc:${ANN}`, 'CLOSED_BY_AGENT'),
    );
    const closing = (await discord.waitForDelivered(2, undefined, 15_000))[1]!;
    print(`   Discord message: ${JSON.stringify(closing.content)}`);

    print('\n5. A forged callback (wrong signature) is refused and changes nothing.');
    const forged = await kit.sendCallback(
      `${bridge.url}/kit/callback`,
      kit.agentMessage(`dc:${ANN}`, { text: 'phishing' }),
      { signature: 'bad' },
    );
    print(`   POST /kit/callback with a bad signature -> ${forged.status}`);

    await bridge.relay.idle();
    print(
      '\nBoth legs worked. Run `npm test` for the full suite, or see plugins/discord/README.md to connect a real bot.',
    );
    return 0;
  } finally {
    await bridge.stop(1_000);
    await discord.close();
    await kit.close();
  }
}
