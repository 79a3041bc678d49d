/**
 * `kitbridge demo slack`: the whole bridge on Slack, offline, in one process.
 * A fake Kit and a fake Slack (Web API, files, signed Events API) run on
 * 127.0.0.1; the connector between them is the real one (the real WebClient
 * against the fake, events POSTed to the bridge's /slack/events, the real
 * relay, outbox and media proxy). A customer DMs the app, an agent answers
 * with a file, Kit closes the chat; we print what crossed each leg.
 */
import { createLogger, startBridge } from '@kitbridge/core';
import { slackPlugin } from '@kitbridge/slack';
import { FakeKit, FakeSlack, FileServer, freePort, testCoreConfig } from '@kitbridge/testkit';
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
const PDF = Buffer.from('%PDF-1.4\n% a tiny invoice for the demo\n%%EOF\n');

export async function demoSlack(print: (s: string) => void): Promise<number> {
  const kit = new FakeKit(CREDS);
  await kit.start();
  const slack = await new FakeSlack({ botName: 'acme_support', teamName: 'Acme' }).start();
  const files = await new FileServer().start();
  const port = await freePort();
  const config = testCoreConfig({ url: kit.url, ...CREDS }, port, {
    closeMessage: 'Thanks for writing to Acme. This chat is closed.',
    showAgentName: true,
  });
  const logger = createLogger({
    level: 'error',
    secrets: [slack.botToken, slack.signingSecret, CREDS.apiToken, CREDS.salt, config.media.secret],
  });
  const env = slackPlugin.env.parse({
    SLACK_BOT_TOKEN: slack.botToken,
    SLACK_SIGNING_SECRET: slack.signingSecret,
    SLACK_API_URL: slack.apiUrl,
  });
  const connector = slackPlugin.create(env, { publicUrl: config.publicUrl, logger });
  const bridge = await startBridge({ config, connector, logger });
  const events = `${bridge.url}/slack/events`;
  const show = (o: unknown) => JSON.stringify(o, null, 2).replace(/^/gm, '    ');

  try {
    print(
      `kitbridge demo slack: fake Kit at ${kit.url}, fake Slack at ${slack.apiUrl}, bridge at ${bridge.url}\n`,
    );

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

    const photo = (kit.events[1] as { event_data: { message: { payload: { file_url: string }[] } } })
      .event_data.message.payload[0]!;
    const got = await request(photo.file_url);
    const bytes = Buffer.from(await got.body.arrayBuffer());
    print(
      "\n2. Kit fetches the screenshot from kitbridge's media proxy (url_private needs the bot token, which never leaves the bridge):",
    );
    print(
      `   GET ${photo.file_url.slice(0, 60)}... -> ${got.statusCode} ${got.headers['content-type']}, ${bytes.length} bytes, same as sent: ${bytes.equals(PNG)}`,
    );

    print('\n3. Slack retries the first event (x-slack-retry-num: 1): a duplicate, nothing new reaches Kit.');
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

    await bridge.relay.idle();
    print(
      '\nBoth legs worked. Run `npm test` for the full suite, or see plugins/slack/README.md to connect a real app.',
    );
    return 0;
  } finally {
    await bridge.stop(1_000);
    await files.close();
    await slack.close();
    await kit.close();
  }
}
