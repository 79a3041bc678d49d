/**
 * The Slack demo: a customer DMs the app (mrkdwn, a screenshot), Slack retries an
 * event, an agent answers with a file, Kit closes, a forged event is refused.
 * Events are POSTed, signed, to the bridge's /slack/events.
 */
import { type DemoScenario, PNG } from './demo.js';
import { FakeSlack } from './fake-slack.js';
import { FileServer } from './file-server.js';

const PDF = Buffer.from('%PDF-1.4\n% a tiny invoice for the demo\n%%EOF\n');

export async function slackDemo(): Promise<DemoScenario> {
  const slack = await new FakeSlack({ botName: 'acme_support', teamName: 'Acme' }).start();
  const files = await new FileServer().start();
  return {
    where: `fake Slack at ${slack.apiUrl}`,
    env: {
      SLACK_BOT_TOKEN: slack.botToken,
      SLACK_SIGNING_SECRET: slack.signingSecret,
      SLACK_API_URL: slack.apiUrl,
    },
    secrets: [slack.botToken, slack.signingSecret],
    config: { showAgentName: true },
    readMore: 'plugins/slack/README.md',
    async close() {
      await files.close();
      await slack.close();
    },
    async steps(ctx) {
      const { kit, bridge, print, show } = ctx;
      const events = `${bridge.url}/slack/events`;
      const ann = slack.user({
        name: 'ann',
        real_name: 'Ann Lee',
        display_name: 'Ann',
        email: 'ann@example.com',
        locale: 'en-GB',
      });
      print('1. A customer DMs the app on Slack (mrkdwn with a mention and a link, then a screenshot).');
      print(`   Slack POSTs each event, signed, to ${events}; kitbridge answers 200 once it is stored.`);
      const first = slack.eventCallback(
        slack.dm(
          ann,
          `Hi <@${slack.botUserId}>! My *order 1042* has not arrived: <https://acme.test/t/1042|tracking>`,
        ),
      );
      const answers = [
        (await slack.sendEvent(events, first)).status,
        (
          await slack.sendEvent(
            events,
            slack.dm(ann, {
              text: 'This is what the tracking page says',
              files: [{ name: 'tracking.png', bytes: PNG, mimetype: 'image/png' }],
            }),
          )
        ).status,
      ];
      print(`   POST /slack/events -> ${answers.join(', ')}`);
      await kit.waitForEvents(2, 15_000);
      print(
        "   Kit received these send_message events (name, e-mail, language and picture from users.info, looked up after Slack's ack):",
      );
      for (const e of kit.events) print(show(e));

      print(
        "\n2. Kit fetches the screenshot from kitbridge's media proxy (url_private needs the bot token, which never leaves the bridge):",
      );
      await ctx.fetchMedia(1, PNG);

      print(
        '\n3. Slack retries the first event (x-slack-retry-num: 1): a duplicate, nothing new reaches Kit.',
      );
      const retry = await slack.sendEvent(events, first, { retryNum: 1, retryReason: 'http_timeout' });
      print(`   POST /slack/events (retry) -> ${retry.status}; Kit has ${kit.events.length} events`);

      print(
        "\n4. An agent answers in Kit with an invoice; with chat:write.customize the agent's name is the sender.",
      );
      const reply = kit.agentMessage(`sl:${slack.teamId}:${ann.id}`, {
        text: 'Sorry about that, Ann! It left our warehouse today & arrives on Friday.',
        payload: [
          {
            type: 'document',
            file_url: files.add('/invoice.pdf', PDF, 'application/pdf'),
            file_name: 'invoice.pdf',
          },
        ],
        sender: { sender_display_name: 'Bob', sender_type: 'agent' },
      });
      const status = await kit.sendCallback(`${bridge.url}/kit/callback`, reply);
      print(`   POST /kit/callback -> ${status.status}`);
      const [text, file] = await slack.waitForDelivered(2, undefined, 15_000);
      const { token: _token, ...params } = text!.call.params;
      print('   Slack chat.postMessage:');
      print(show(params));
      print(
        `   Slack files: ${slack.calls
          .filter((c) => c.method.startsWith('files.') || c.method === 'upload')
          .map((c) => c.method)
          .join(' -> ')}; shared ${file!.files?.[0]?.name} (${file!.files?.[0]?.size} bytes) in the DM`,
      );

      print('\n5. The agent closes the conversation; the customer is told (KITBRIDGE_CLOSE_MESSAGE).');
      await kit.sendCallback(
        `${bridge.url}/kit/callback`,
        kit.closeConversation(`sl:${slack.teamId}:${ann.id}`, 'CLOSED_BY_AGENT'),
      );
      const closing = (await slack.waitForDelivered(3, undefined, 15_000))[2]!;
      print(`   Slack message: ${JSON.stringify(closing.text)}`);

      print('\n6. A forged Slack event (wrong signature) is refused before anything is stored.');
      const forged = await slack.sendEvent(events, slack.dm(ann, 'phishing'), { signature: 'bad' });
      print(`   POST /slack/events with a bad signature -> ${forged.status}`);
    },
  };
}
