/**
 * The WebClient as kitbridge uses it: no retries of its own (the outbox retries,
 * and a 429 must reach it with Slack's Retry-After), a per-call AbortSignal
 * (WebClient has none: calls made inside {@link withSignal} get it through the
 * fetch function), and its logs folded into kitbridge's at debug level with
 * every secret scrubbed.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Logger } from '@kitbridge/core';
import { LogLevel, type Logger as SlackLogger, WebClient, type WebClientOptions } from '@slack/web-api';

const callSignal = new AsyncLocalStorage<AbortSignal>();

/** Runs `fn` so that every WebClient request it starts is aborted with `signal`. */
export function withSignal<T>(signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
  signal.throwIfAborted();
  return callSignal.run(signal, fn);
}

/** fetch with the signal of the surrounding {@link withSignal}, beside WebClient's own timeout signal. */
const signalledFetch: NonNullable<WebClientOptions['fetch']> = (url, init) => {
  const outer = callSignal.getStore();
  const own = init?.signal ?? undefined;
  const signal = outer && own ? AbortSignal.any([outer, own]) : (outer ?? own);
  return fetch(url, { ...init, ...(signal ? { signal } : {}) } as RequestInit) as ReturnType<
    NonNullable<WebClientOptions['fetch']>
  >;
};

export interface WebClientSettings {
  token: string;
  /** With the trailing slash. */
  apiUrl: string;
  logger: () => Logger;
  secrets: readonly string[];
}

export function createWebClient(s: WebClientSettings): WebClient {
  return new WebClient(s.token, {
    slackApiUrl: s.apiUrl,
    retryConfig: { retries: 0 },
    // A 429 is an error with Slack's wait, handed to the outbox; the client does not sleep on it.
    rejectRateLimitedCalls: true,
    logger: sdkLogger(s.logger, s.secrets),
    fetch: signalledFetch,
  });
}

/** Options for the SDK's own clients (the Socket Mode client builds a WebClient for apps.connections.open). */
export function sdkClientOptions(s: Omit<WebClientSettings, 'token'>): WebClientOptions {
  return {
    slackApiUrl: s.apiUrl,
    retryConfig: { retries: 0 },
    logger: sdkLogger(s.logger, s.secrets),
    fetch: signalledFetch,
  };
}

/** The SDK's logger interface over kitbridge's: everything at debug (the connector logs what matters itself). */
export function sdkLogger(logger: () => Logger, secrets: readonly string[]): SlackLogger {
  const scrub = (args: unknown[]) => {
    let s = args.map((a) => (a instanceof Error ? a.message : String(a))).join(' ');
    for (const secret of secrets) if (secret) s = s.split(secret).join('[secret]');
    // Tokens the SDK might quote that are not ours to know (a wrong one, say).
    s = s.replace(/\bx(?:ox[abpre]|app)-[A-Za-z0-9-]+/g, '[token]');
    return s.length > 1_000 ? `${s.slice(0, 1_000)}…` : s;
  };
  let level = LogLevel.WARN;
  return {
    debug: () => {},
    info: () => {},
    warn: (...args: unknown[]) => logger().debug({ sdk: 'slack' }, scrub(args)),
    error: (...args: unknown[]) => logger().debug({ sdk: 'slack' }, scrub(args)),
    setLevel: (l: LogLevel) => {
      level = l;
    },
    getLevel: () => level,
    setName: () => {},
  };
}
