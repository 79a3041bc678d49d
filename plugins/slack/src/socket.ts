/**
 * Socket Mode intake: a bare SocketModeClient (@slack/socket-mode), not Bolt.
 *
 * Bolt acknowledges a Socket Mode envelope before its listeners run, with no
 * option to wait; with the bare client the connector acks each envelope itself,
 * only after core stored the message. An envelope the store refused is not
 * acked: Slack sends it again (retry_attempt + 1) and the repeat is a duplicate
 * of nothing, so it is received once.
 *
 * Reconnects are the connector's, not the client's (autoReconnectEnabled off):
 * Slack refreshes every socket every few hours (`disconnect` refresh_requested),
 * drops them, or stops answering pings; each time the loop here reports
 * `reconnecting` (code `network`, so /readyz says 503), opens a new connection
 * (apps.connections.open, websocket, hello) and reports `connected` again. Owning
 * the loop also avoids the client's own reconnect leaving a rejected promise
 * unhandled when it is disconnected mid-way, and lets a refused app token stop
 * it with `failed` rather than retry for ever.
 *
 * Several replicas may each hold a connection: Slack spreads envelopes over
 * the connections of one app (up to 10), so no singleton job is needed.
 */
import {
  type BackoffOptions,
  backoffDelay,
  type ConnectionStatus,
  type Logger,
  sleep,
} from '@kitbridge/core';
import { SocketModeClient } from '@slack/socket-mode';
import { describeSlackError, isTokenError, neededScope } from './errors.js';
import { sdkClientOptions, sdkLogger, withSignal } from './web.js';

export interface SocketIntakeOptions {
  appToken: string;
  apiUrl: string;
  logger: () => Logger;
  secrets: readonly string[];
  /** Resolves once the envelope's event is stored (or skipped); rejects to leave it unacked. */
  handle(body: Record<string, unknown>, meta: { envelopeId: string; retryNum: number }): Promise<void>;
  setStatus(status: ConnectionStatus): void;
  /** Between connection attempts. Default 1 s .. 30 s. */
  backoff?: BackoffOptions;
  /** The client's pong timeout (it pings every third of it); also how fast a dead socket is noticed. Default 5000. */
  clientPingTimeoutMs?: number;
  /** How long without a ping from Slack before the socket is given up. Default 30000. */
  serverPingTimeoutMs?: number;
}

/** Thrown by {@link SocketIntake.start} when Slack refuses the app token or its scope. */
export class SocketFatalError extends Error {
  constructor(
    message: string,
    readonly code: 'bad_credentials' | 'missing_permission',
  ) {
    super(message);
  }
}

export class SocketIntake {
  private client?: SocketModeClient;
  private loop?: Promise<void>;
  private run?: AbortController;

  constructor(private readonly opts: SocketIntakeOptions) {}

  /**
   * Starts the connection loop. Resolves once connected the first time, or once
   * the first attempt failed for a passing reason (the loop goes on and reports
   * `reconnecting`); rejects with {@link SocketFatalError} when Slack refuses the
   * app token.
   */
  start(): Promise<void> {
    this.run = new AbortController();
    const signal = this.run.signal;
    const client = new SocketModeClient({
      appToken: this.opts.appToken,
      autoReconnectEnabled: false,
      clientPingTimeout: this.opts.clientPingTimeoutMs ?? 5_000,
      serverPingTimeout: this.opts.serverPingTimeoutMs ?? 30_000,
      logger: sdkLogger(this.opts.logger, this.opts.secrets),
      clientOptions: sdkClientOptions({
        apiUrl: this.opts.apiUrl,
        logger: this.opts.logger,
        secrets: this.opts.secrets,
      }),
    });
    this.client = client;
    client.on('slack_event', (e: SlackEvent) => {
      void this.onEnvelope(e);
    });
    return new Promise<void>((resolve, reject) => {
      this.loop = this.connectLoop(client, signal, { resolve, reject });
    });
  }

  /** Closes the connection and ends the loop; unacked envelopes stay with Slack. Idempotent. */
  async stop(): Promise<void> {
    this.run?.abort();
    const client = this.client;
    this.client = undefined;
    if (client) await withTimeout(client.disconnect(), 3_000);
    await withTimeout(this.loop ?? Promise.resolve(), 5_000);
    client?.removeAllListeners();
    this.loop = undefined;
  }

  private async onEnvelope(e: SlackEvent): Promise<void> {
    const log = this.opts.logger();
    try {
      if (e.type === 'events_api' && e.body && typeof e.body === 'object') {
        await this.opts.handle(e.body, { envelopeId: e.envelope_id, retryNum: e.retry_num ?? 0 });
      }
      // Other envelope types (interactivity, slash commands) are not subscribed to: acked, nothing to store.
    } catch (err) {
      log.warn(
        { envelopeId: e.envelope_id, err: describeSlackError(err, this.opts.secrets) },
        'Slack event not stored; not acknowledged, Slack sends it again',
      );
      return;
    }
    try {
      await e.ack();
    } catch (err) {
      // The socket closed meanwhile: Slack redelivers, and core sees a duplicate.
      log.debug({ envelopeId: e.envelope_id, err: (err as Error)?.message }, 'Socket Mode ack not sent');
    }
  }

  private async connectLoop(
    client: SocketModeClient,
    signal: AbortSignal,
    first: { resolve(): void; reject(err: Error): void },
  ): Promise<void> {
    const log = this.opts.logger();
    const backoff = this.opts.backoff ?? { baseMs: 1_000, maxMs: 30_000 };
    let settled = false;
    const settle = (err?: Error) => {
      if (settled) return;
      settled = true;
      if (err) first.reject(err);
      else first.resolve();
    };
    let failures = 0;
    while (!signal.aborted) {
      const closed = onceEvent(client, 'disconnected');
      try {
        // The signal reaches apps.connections.open: a stop mid-way does not wait for Slack to answer.
        await withSignal(signal, () => client.start());
        if (signal.aborted) {
          closed.cancel();
          await withTimeout(client.disconnect(), 3_000);
          break;
        }
        failures = 0;
        this.opts.setStatus({ state: 'connected' });
        settle();
        await Promise.race([closed.promise, aborted(signal)]);
        if (signal.aborted) break;
        this.opts.setStatus({
          state: 'reconnecting',
          code: 'network',
          reason: 'Socket Mode connection closed; reconnecting',
        });
        log.info('Slack Socket Mode connection closed; reconnecting');
      } catch (err) {
        closed.cancel();
        if (signal.aborted) break;
        const fatal = fatalOf(err);
        if (fatal) {
          this.opts.setStatus({ state: 'failed', code: fatal.code, reason: fatal.message });
          log.error({ code: fatal.code }, fatal.message);
          settle(fatal);
          return;
        }
        failures++;
        const reason = `Socket Mode connection failed: ${err === undefined ? 'closed before hello' : describeSlackError(err, this.opts.secrets)}`;
        this.opts.setStatus({ state: 'reconnecting', code: 'network', reason });
        log.warn({ attempt: failures, err: reason }, 'Slack Socket Mode connection failed; retrying');
        settle();
      }
      // Right away after a clean refresh; with growing waits while it keeps failing.
      const wait = failures === 0 ? Math.min(250, backoff.baseMs) : backoffDelay(failures, backoff);
      await sleep(wait, signal).catch(() => {});
    }
    settle();
  }
}

/** What SocketModeClient emits as `slack_event`. */
interface SlackEvent {
  ack: (response?: Record<string, unknown>) => Promise<void>;
  envelope_id: string;
  type: string;
  body?: Record<string, unknown>;
  retry_num?: number;
  retry_reason?: string;
}

function fatalOf(err: unknown): SocketFatalError | undefined {
  if (isTokenError(err)) {
    return new SocketFatalError(
      `Slack rejected SLACK_APP_TOKEN (${describeSlackError(err)}): use an app-level token (xapp-…) of this app with connections:write, and Socket Mode on`,
      'bad_credentials',
    );
  }
  const scope = neededScope(err);
  if (scope) {
    return new SocketFatalError(
      `SLACK_APP_TOKEN lacks the ${scope} scope (Basic Information > App-Level Tokens)`,
      'missing_permission',
    );
  }
  return undefined;
}

function onceEvent(client: SocketModeClient, name: string): { promise: Promise<void>; cancel(): void } {
  let listener: () => void = () => {};
  const promise = new Promise<void>((resolve) => {
    listener = () => resolve();
    client.once(name, listener);
  });
  return { promise, cancel: () => client.off(name, listener) };
}

function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    signal.addEventListener('abort', () => resolve(), { once: true });
  });
}

async function withTimeout(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    p.then(
      () => {},
      () => {},
    ),
    new Promise<void>((r) => {
      timer = setTimeout(r, ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
