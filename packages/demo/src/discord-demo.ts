/** The Discord demo: a customer DMs the bot (text, a screenshot), an agent answers, Kit closes. */
import { type DemoScenario, forgedCallback, PNG } from './demo.js';
import { FakeDiscord } from './fake-discord.js';

const ANN = '424242424242424242';

export async function discordDemo(): Promise<DemoScenario> {
  const discord = new FakeDiscord({ bot: { username: 'acme-support', global_name: 'Acme Support' } });
  await discord.start();
  discord.user(ANN, { username: 'annlee', global_name: 'Ann Lee', avatarBytes: PNG });
  return {
    where: `fake Discord at ${discord.apiUrl} (gateway ${discord.gatewayUrl})`,
    env: {
      DISCORD_BOT_TOKEN: discord.token,
      DISCORD_API_URL: discord.apiUrl,
      DISCORD_CDN_URL: discord.cdnUrl,
    },
    secrets: [discord.token],
    readMore: 'plugins/discord/README.md',
    close: () => discord.close(),
    async steps(ctx) {
      const { kit, bridge, print, show } = ctx;
      print('1. A customer DMs the bot on Discord (text, then a screenshot with a line).');
      discord.dm(ANN, 'Hi! My order #1042 has not arrived yet.');
      discord.dm(ANN, {
        content: 'This is what the tracking page says',
        attachments: [{ filename: 'tracking.png', bytes: PNG, contentType: 'image/png' }],
      });
      await kit.waitForEvents(2, 15_000);
      print('   Kit received these send_message events:');
      for (const e of kit.events) print(show(e));

      // Discord's CDN links are signed and expire; Kit got a link of kitbridge's own, which signs a fresh one.
      discord.expireCdnLinks();
      print(
        "\n2. Days later, Kit fetches the screenshot from kitbridge's media proxy (Discord's own link has expired; kitbridge asks for a fresh one):",
      );
      await ctx.fetchMedia(1, PNG);

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

      await forgedCallback(ctx, `dc:${ANN}`);
    },
  };
}
