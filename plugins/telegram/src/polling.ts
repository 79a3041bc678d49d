/**
 * Long polling with at-least-once intake. grammy's `bot.start()` is not used:
 * it records an update as tried before its handler runs, so an update whose
 * handler failed would be confirmed on the next getUpdates (and by `bot.stop()`).
 * Here the offset moves past an update only after its handler resolved, i.e.
 * after core stored the message; a failed handler makes the loop wait and fetch
 * the same updates again.
 */
import { type BackoffOptions, backoffDelay, type Logger, type StatusCode, sleep } from '@kitbridge/core';
import { type Api, GrammyError } from 'grammy';
import type { Update } from 'grammy/types';

export interface PollingOptions {
  /** Long-poll timeout, seconds. Default 30. */
  timeoutSeconds?: number;
  /** Updates per getUpdates. Default 100. */
  limit?: number;
  /** Backoff after network errors and failed handlers. Default 1 s .. 60 s. */
  backoff?: BackoffOptions;
  /** Wait before trying again after a 409 (another consumer) or a 401. Default 30 s. */
  blockedRetryMs?: number;
  /**
   * Polling under a lease shared by replicas: for this long after the first
   * 409 in a row, it is taken for a handover (another replica took the lease
   * over and its getUpdates ended ours) and reported as standby, not failed;
   * the wait before the next try is blockedRetryMs all the same, in which this
   * replica learns that its lease is gone. A 409 that outlasts the window is a
   * conflict. Default 0: every 409 is a conflict.
   */
  handoverMs?: number;
}

export interface PollerEvents {
  /** A getUpdates succeeded. */
  connected(): void;
  /** Operator action needed: another consumer holds the token (`conflict`), or it was revoked (`bad_credentials`). */
  failed(reason: string, code: StatusCode): void;
  /** A transient error; polling goes on. */
  reconnecting(reason: string, code: StatusCode): void;
  /** A 409 within the handover window: another poller is letting go. */
  standby(reason: string): void;
}

export const ALLOWED_UPDATES = ['message', 'edited_message'] as const;

export class Poller {
  private offset = 0;
  private readonly abort = new AbortController();
  private loop?: Promise<void>;
  private handled = false;
  /** The failure reason last logged at error level, so a retry every 30 s does not flood the log. */
  private blockedReason?: string;
  /** When the 409s in a row began (for the handover window). */
  private conflictSince?: number;

  constructor(
    private readonly api: Api,
    /** Resolves once the update is safely handled; rejects to fetch it again. */
    private readonly handle: (update: Update) => Promise<void>,
    private readonly events: PollerEvents,
    private readonly logger: Logger,
    private readonly opts: PollingOptions = {},
  ) {}

  /**
   * Starts the loop; resolves after the first getUpdates answered (or failed),
   * so the caller knows at once whether another consumer holds the token.
   */
  start(): Promise<void> {
    return new Promise((resolve) => {
      this.loop = this.run(resolve);
    });
  }

  /** Stops polling after the running handler (if any) finished, then confirms what was handled. */
  async stop(): Promise<void> {
    this.abort.abort(new Error('polling stopped'));
    await this.loop;
    if (!this.handled) return;
    // Confirm handled updates now, as bot.stop() does, so a restart does not see them again.
    await this.api.getUpdates({ offset: this.offset, limit: 1, timeout: 0 }).catch((err: Error) => {
      this.logger.debug(
        { err: err.message },
        'final getUpdates failed; handled updates will be deduplicated',
      );
    });
  }

  private async run(firstAnswer: () => void): Promise<void> {
    const signal = this.abort.signal;
    const backoff = this.opts.backoff ?? { baseMs: 1_000, maxMs: 60_000 };
    let failures = 0;
    let quick = true; // timeout 0 on the first call and after errors: learn the state at once
    while (!signal.aborted) {
      let updates: Update[];
      try {
        updates = await this.api.getUpdates(
          {
            offset: this.offset,
            limit: this.opts.limit ?? 100,
            timeout: quick ? 0 : (this.opts.timeoutSeconds ?? 30),
            allowed_updates: [...ALLOWED_UPDATES],
          },
          // grammy types signals with its own shim; at run time they are the platform's.
          signal as unknown as Parameters<Api['getUpdates']>[1],
        );
      } catch (err) {
        if (signal.aborted) break;
        const wait = this.onPollError(err, ++failures, backoff);
        quick = true;
        firstAnswer();
        await sleep(wait, signal).catch(() => {});
        continue;
      }
      firstAnswer();
      failures = 0;
      quick = false;
      this.blockedReason = undefined;
      this.conflictSince = undefined;
      this.events.connected();
      for (const update of updates) {
        try {
          await this.handle(update);
        } catch (err) {
          // Not confirmed: the same update comes again on the next getUpdates.
          const wait = backoffDelay(++failures, backoff);
          this.logger.warn(
            { update_id: update.update_id, err: (err as Error).message, retryInMs: wait },
            'update not stored; fetching it again',
          );
          await sleep(wait, signal).catch(() => {});
          break;
        }
        failures = 0;
        this.offset = update.update_id + 1;
        this.handled = true;
      }
    }
  }

  /** Reports a failed getUpdates and returns how long to wait. */
  private onPollError(err: unknown, attempt: number, backoff: BackoffOptions): number {
    const blockedMs = this.opts.blockedRetryMs ?? 30_000;
    const code = err instanceof GrammyError ? err.error_code : undefined;
    const blocked =
      code === 409
        ? 'another consumer (polling or webhook) holds this bot token'
        : code === 401
          ? 'Telegram rejected TELEGRAM_BOT_TOKEN (revoked or wrong)'
          : undefined;
    if (code === 409 && this.opts.handoverMs) {
      this.conflictSince ??= Date.now();
      if (Date.now() - this.conflictSince < this.opts.handoverMs) {
        this.events.standby('another replica polls Telegram now (a handover of the polling lease?)');
        this.logger.info({ retryInMs: blockedMs }, 'getUpdates answered 409, taken for a handover; retrying');
        return blockedMs;
      }
    }
    if (blocked) {
      this.events.failed(blocked, code === 409 ? 'conflict' : 'bad_credentials');
      const level = this.blockedReason === blocked ? 'debug' : 'error';
      this.logger[level](
        { retryInMs: blockedMs },
        `Telegram polling blocked: ${blocked}; retrying until it clears`,
      );
      this.blockedReason = blocked;
      return blockedMs;
    }
    const wait = backoffDelay(attempt, backoff);
    const reason = err instanceof GrammyError ? err.description : 'Telegram unreachable';
    this.events.reconnecting(reason, code === 429 ? 'rate_limited' : 'network');
    this.logger.warn({ err: reason, attempt, retryInMs: wait }, 'getUpdates failed; retrying');
    return wait;
  }
}
