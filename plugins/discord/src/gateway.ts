/**
 * One gateway session: a discord.js Client logged in, its raw dispatches handed
 * on as they come. The connector reads the raw payloads (MESSAGE_CREATE,
 * MESSAGE_UPDATE, READY, RESUMED, threads) rather than discord.js's events:
 * discord.js drops MESSAGE_UPDATE for a DM channel it has not cached, and raw
 * payloads are what the REST history returns too, so live and backfilled
 * messages are mapped the same way.
 *
 * A session lives as long as discord.js can keep or resume it; an unrecoverable
 * close (a revoked token, a privileged intent switched off) ends it, and the
 * connector starts a new one (a new Client: discord.js's Client is not reusable
 * after destroy).
 */
import type { Logger } from '@kitbridge/core';
import { Client, type ClientOptions, Options, Partials } from 'discord.js';
import { scrubToken } from './errors.js';
import type { RestAgent } from './rest-agent.js';

export interface GatewayPacket {
  t: string | null;
  s?: number | null;
  d: unknown;
}

export interface GatewayEvents {
  dispatch(packet: GatewayPacket): void;
  /** The connection dropped; discord.js is resuming or re-identifying. */
  reconnecting(reason: string): void;
}

/** Why a session cannot go on without an operator. */
export interface GatewayFatal {
  code: 'bad_credentials' | 'missing_permission' | 'misconfigured';
  reason: string;
  closeCode?: number;
}

export class GatewayFatalError extends Error {
  override name = 'GatewayFatalError';
  constructor(readonly fatal: GatewayFatal) {
    super(fatal.reason);
  }
}

export const TOKEN_REJECTED =
  'Discord rejected DISCORD_BOT_TOKEN (revoked or wrong): copy a new one from the Developer Portal, Applications > your app > Bot > Reset Token';

export function intentRefused(applicationId: string | undefined, supportChannel: boolean): string {
  const where = `the Developer Portal (https://discord.com/developers/applications${applicationId ? `/${applicationId}/bot` : ''}), Bot > Privileged Gateway Intents`;
  return supportChannel
    ? `Discord refused the Message Content intent (gateway close 4014), which the support channel (DISCORD_SUPPORT_CHANNEL_ID) needs to read what customers write: switch on "Message Content Intent" in ${where}, or unset DISCORD_SUPPORT_CHANNEL_ID to serve DMs only`
    : `Discord refused a privileged intent (gateway close 4014): switch it on in ${where}`;
}

/** Close codes after which discord.js gives up, and what they mean for an operator. */
export function fatalOfClose(
  code: number,
  applicationId: string | undefined,
  support: boolean,
): GatewayFatal | undefined {
  switch (code) {
    case 4004:
      return { code: 'bad_credentials', reason: TOKEN_REJECTED, closeCode: code };
    case 4014:
      return { code: 'missing_permission', reason: intentRefused(applicationId, support), closeCode: code };
    case 4013:
      return {
        code: 'misconfigured',
        reason: 'Discord refused the gateway intents as invalid (close 4013)',
        closeCode: code,
      };
    case 4010:
    case 4011:
    case 4012:
      return {
        code: 'misconfigured',
        reason: `Discord refused the gateway session (close ${code})`,
        closeCode: code,
      };
    default:
      return undefined;
  }
}

export interface GatewaySessionOptions {
  token: string;
  intents: number;
  support: boolean;
  applicationId?: string;
  api: string;
  cdn: string;
  agent: RestAgent;
  restTimeoutMs: number;
  events: GatewayEvents;
  logger: Logger;
  /** Merged into the Client's options (tests: `ws.buildIdentifyThrottler`, `waitGuildTimeout`). */
  client?: Partial<ClientOptions>;
}

export class GatewaySession {
  readonly client: Client;
  /** The last close code the gateway sent. */
  closeCode?: number;
  /** Resolves when the session ends for good (an unrecoverable close). */
  readonly ended: Promise<GatewayFatal | { code: 'closed'; closeCode: number }>;
  private endSession!: (end: GatewayFatal | { code: 'closed'; closeCode: number }) => void;
  private destroyed = false;

  constructor(private readonly o: GatewaySessionOptions) {
    this.ended = new Promise((resolve) => {
      this.endSession = resolve;
    });
    const { rest, ws, ...others } = o.client ?? {};
    this.client = new Client({
      intents: o.intents,
      partials: [Partials.Channel],
      // The connector reads raw payloads; discord.js's caches hold only what names and threads need.
      makeCache: Options.cacheWithLimits({
        MessageManager: 0,
        ReactionManager: 0,
        PresenceManager: 0,
        GuildMemberManager: { maxSize: 0, keepOverLimit: (m) => m.id === m.client.user.id },
      }),
      rest: {
        api: o.api,
        cdn: o.cdn,
        agent: o.agent as never,
        timeout: o.restTimeoutMs,
        ...rest,
      },
      ...(ws ? { ws } : {}),
      ...others,
    } as ClientOptions);
    this.client.on('raw', (packet: GatewayPacket) => {
      try {
        o.events.dispatch(packet);
      } catch (err) {
        o.logger.error({ t: packet.t, err: (err as Error).message }, 'gateway dispatch not handled');
      }
    });
    this.client.on('shardReconnecting', () => {
      if (!this.destroyed) o.events.reconnecting('gateway connection lost; reconnecting');
    });
    this.client.on('shardDisconnect', (event: { code: number }) => {
      this.closeCode = event.code;
      if (this.destroyed) return;
      o.logger.warn({ closeCode: event.code }, 'gateway closed for good');
      this.endSession(
        fatalOfClose(event.code, o.applicationId, o.support) ?? { code: 'closed', closeCode: event.code },
      );
    });
    this.client.on('shardError', (err: Error) => {
      o.logger.debug({ err: scrubToken(err.message, o.token) }, 'gateway connection error');
    });
    this.client.on('error', (err: Error) => {
      o.logger.warn({ err: scrubToken(err.message, o.token) }, 'discord.js error');
    });
    this.client.on('debug', (line: string) => {
      if (/Heartbeat acknowledged/.test(line)) return;
      o.logger.trace({ djs: scrubToken(line, o.token) }, 'discord.js');
    });
  }

  /**
   * Logs in: GET /gateway/bot, HELLO, IDENTIFY, READY. Rejects with
   * {@link GatewayFatalError} when Discord refuses the token or an intent, with
   * another error when it cannot be reached (or `signal` aborts).
   */
  async open(signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    const onAbort = () => void this.destroy();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      await this.client.login(this.o.token);
    } catch (err) {
      signal.throwIfAborted();
      throw this.classify(err);
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  private classify(err: unknown): Error {
    const e = err as { code?: unknown; message?: string; status?: number };
    if (e?.code === 'TokenInvalid' || e?.status === 401) {
      return new GatewayFatalError({ code: 'bad_credentials', reason: TOKEN_REJECTED });
    }
    const byClose =
      this.closeCode !== undefined
        ? fatalOfClose(this.closeCode, this.o.applicationId, this.o.support)
        : undefined;
    if (byClose) return new GatewayFatalError(byClose);
    const msg = e?.message ?? String(err);
    if (/disallowed intents/i.test(msg))
      return new GatewayFatalError({
        code: 'missing_permission',
        reason: intentRefused(this.o.applicationId, this.o.support),
        closeCode: 4014,
      });
    if (/authentication failed/i.test(msg))
      return new GatewayFatalError({ code: 'bad_credentials', reason: TOKEN_REJECTED, closeCode: 4004 });
    return new Error(`Discord gateway unreachable: ${scrubToken(msg, this.o.token)}`);
  }

  /** Closes the session (1000: Discord ends it; a new process identifies afresh and backfills). */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    this.endSession({ code: 'closed', closeCode: 1000 });
    await this.client.destroy().catch(() => {});
  }
}
