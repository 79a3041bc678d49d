/**
 * `kitbridge demo [platform]`: the whole bridge, offline, in one process. A fake
 * Kit and a fake platform run on 127.0.0.1; the connector between them is the
 * real one (the platform's SDK against the fake, the real relay, outbox and
 * media proxy). A customer writes, an agent answers, Kit closes the chat; the
 * scenario prints what crossed each leg. This file is the frame every
 * platform's scenario shares: the fakes' and the bridge's start and stop.
 */
import { type Bridge, type ConnectorPlugin, createLogger, parseEnv, startBridge } from '@kitbridge/core';
import { request } from 'undici';
import { freePort, testCoreConfig } from './core-config.js';
import { FakeKit } from './fake-kit.js';

export const DEMO_CREDS = {
  account: 'demo',
  apiToken: 'demo-api-token-0123',
  channelUuid: 'demo-channel-0001',
  salt: 'demo-salt',
};

/** What a scenario's steps get from the frame. */
export interface DemoContext {
  kit: FakeKit;
  bridge: Bridge;
  print: (s: string) => void;
  /** Indented JSON, for what crossed a leg. */
  show: (o: unknown) => string;
  /** Kit fetches the first file of event `n` from the media proxy; prints what it got. */
  fetchMedia: (n: number, sent: Buffer) => Promise<void>;
}

/** One platform's demo: its fake, the connector's variables, and the steps. */
export interface DemoScenario {
  /** The fake(s) on 127.0.0.1, for the first line. */
  readonly where: string;
  /** The plugin's variables pointing at the fake. */
  readonly env: Record<string, string>;
  /** Kept out of the log lines. */
  readonly secrets: string[];
  /** Core settings the scenario shows off (showAgentName). */
  readonly config?: { showAgentName?: boolean };
  /** Where to read on to connect a real bot or app. */
  readonly readMore: string;
  steps(ctx: DemoContext): Promise<void>;
  close(): Promise<void>;
}

/**
 * Runs `scenario` against a fresh fake Kit with the real `plugin`'s connector;
 * resolves 0 when both legs worked. Must not touch the network beyond 127.0.0.1
 * or leave a server running, whatever happens.
 */
export async function runDemo(
  name: string,
  plugin: ConnectorPlugin<unknown>,
  makeScenario: () => Promise<DemoScenario>,
  print: (s: string) => void,
): Promise<number> {
  const kit = new FakeKit(DEMO_CREDS);
  await kit.start();
  let scenario: DemoScenario | undefined;
  let bridge: Bridge | undefined;
  try {
    scenario = await makeScenario();
    const port = await freePort();
    const config = testCoreConfig({ url: kit.url, ...DEMO_CREDS }, port, {
      closeMessage: 'Thanks for writing to Acme. This chat is closed.',
      ...scenario.config,
    });
    // `error`: a demo store keeps checkpoints in memory only, and connectors say so at warn level.
    const logger = createLogger({
      level: 'error',
      secrets: [...scenario.secrets, DEMO_CREDS.apiToken, DEMO_CREDS.salt, config.media.secret],
    });
    const env = parseEnv(plugin.env, scenario.env);
    const connector = plugin.create(env, { publicUrl: config.publicUrl, logger });
    const started = await startBridge({ config, connector, logger });
    bridge = started;
    print(`kitbridge demo ${name}: fake Kit at ${kit.url}, ${scenario.where}, bridge at ${started.url}\n`);
    await scenario.steps({
      kit,
      bridge: started,
      print,
      show: (o) => JSON.stringify(o, null, 2).replace(/^/gm, '    '),
      fetchMedia: async (n, sent) => {
        const event = kit.events[n] as { event_data: { message: { payload: { file_url: string }[] } } };
        const url = event.event_data.message.payload[0]!.file_url;
        const got = await request(url);
        const bytes = Buffer.from(await got.body.arrayBuffer());
        print(
          `   GET ${url.slice(0, 60)}... -> ${got.statusCode} ${got.headers['content-type']}, ${bytes.length} bytes, same as sent: ${bytes.equals(sent)}`,
        );
      },
    });
    await started.relay.idle();
    print(
      `\nBoth legs worked. Run \`npm test\` for the full suite, or see ${scenario.readMore} to connect a real one.`,
    );
    return 0;
  } finally {
    await bridge?.stop(1_000);
    await scenario?.close();
    await kit.close();
  }
}

/** A 1x1 PNG, so a screenshot is a real image. */
export const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=',
  'base64',
);

/** Step 5 of the Telegram and Discord demos: a callback with a wrong signature changes nothing. */
export async function forgedCallback(ctx: DemoContext, clientId: string): Promise<void> {
  ctx.print('\n5. A forged callback (wrong signature) is refused and changes nothing.');
  const forged = await ctx.kit.sendCallback(
    `${ctx.bridge.url}/kit/callback`,
    ctx.kit.agentMessage(clientId, { text: 'phishing' }),
    { signature: 'bad' },
  );
  ctx.print(`   POST /kit/callback with a bad signature -> ${forged.status}`);
}
