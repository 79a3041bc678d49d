/** What `kitbridge help [command]` and `kitbridge <command> --help` print. */
import { PLATFORM_NAMES } from './platforms.js';

const PLATFORMS = PLATFORM_NAMES.join(', ');

export const HELP = `kitbridge — connect chat platforms to Voximplant Kit's custom channel

Usage:
  kitbridge run <platform>      start a connector (${PLATFORMS}); configured by environment variables
  kitbridge check <platform>    validate the configuration, log in to Kit, check the platform token; start nothing
  kitbridge demo [platform]     an offline demo: fake Kit + fake Telegram (or discord, slack) + the real connector
  kitbridge outbox [status]     pending and dead items per leg
  kitbridge outbox list [--dead]
  kitbridge outbox retry <id|--dead>
  kitbridge outbox drop <id>
  kitbridge help <command>      that command's help (also: kitbridge <command> --help)
  kitbridge --version

Configuration: environment variables (KIT_*, KITBRIDGE_*, TELEGRAM_*, DISCORD_*, SLACK_*); .env.example lists them all.`;

export const COMMAND_HELP: Record<string, string> = {
  run: `Usage: kitbridge run <platform>

Starts one connector (${PLATFORMS}) with its HTTP server on KITBRIDGE_HOST:KITBRIDGE_PORT
(0.0.0.0:8080): Kit's callback, the platform's webhooks, the media proxy, /healthz and /readyz.
Every variable is validated before anything starts; a bad one is named and it exits 2.

Configured by environment variables: KIT_*, KITBRIDGE_* and the platform's own
(TELEGRAM_*, DISCORD_*, SLACK_*); .env.example in the repository lists them all.
KITBRIDGE_STORE (sqlite:./kitbridge.db) is held by this process alone.

Stops on SIGTERM or SIGINT: /readyz answers 503, callbacks and webhooks are still served for
KITBRIDGE_DRAIN (5s), then intake stops, in-flight work drains and it exits 0.
Under systemd, a container or any process manager start this process itself
(node node_modules/@kitbridge/cli/bin/kitbridge.js run ${PLATFORM_NAMES[0]}), not through npx:
npx does not pass SIGTERM on, and the connector would go on serving.`,

  check: `Usage: kitbridge check <platform>

Does what run checks before it starts (every variable, the store), then logs in to Kit and asks
the platform whether its token works, and stops. Starts no server and takes no messages, so it
can run beside a running connector. Prints one line per check (ok, FAIL, skip); exit 0 only when
all passed, 1 when a check failed, 2 when the configuration is invalid.`,

  demo: `Usage: kitbridge demo [telegram|discord|slack]

The whole bridge offline, in one process: a fake Kit and a fake platform on 127.0.0.1 and the
real connector between them. A customer writes, an agent answers, Kit closes the chat; it prints
what crossed each leg. Needs no configuration and no network. The fakes are in the package
@kitbridge/demo (npm install @kitbridge/demo), which an operator's install does not need.`,

  outbox: `Usage:
  kitbridge outbox [status]           pending and dead items per leg, the oldest age, the dead letters
  kitbridge outbox list [--dead]      the pending (or dead) items themselves
  kitbridge outbox retry <id|--dead>  make an item (or every dead one) due again
  kitbridge outbox drop <id>          delete an item

Opens the store in KITBRIDGE_STORE (sqlite:./kitbridge.db), shared, so it works beside a
running connector, which picks up retried and dropped items within 30 s. A store that does not
exist is an error (nothing is created); memory: has nothing to inspect.`,
};
