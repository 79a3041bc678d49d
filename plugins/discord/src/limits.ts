/**
 * What Discord accepts, and what the bot needs from it: text and upload limits,
 * gateway intents per mode, the permissions of the invite link.
 */
import type { MediaLimits } from '@kitbridge/core';

/** Longest message content, in UTF-16 code units as Discord counts them. */
export const TEXT_LIMIT = 2000;

/** Longest `nonce` Discord takes. */
export const NONCE_LIMIT = 25;

const MiB = 1024 * 1024;

/** Upload limit per file outside boosted servers (and in every DM), since 2024. */
export const DEFAULT_UPLOAD_BYTES = 10 * MiB;

/** The most DISCORD_MAX_UPLOAD_MB may say. */
export const MAX_UPLOAD_LIMIT_MIB = 500;

/** A server's upload limit per file by its boost level (`premium_tier`): 50 MiB at level 2, 100 MiB at 3. */
export function uploadLimitForTier(tier: number | undefined): number {
  if ((tier ?? 0) >= 3) return 100 * MiB;
  if (tier === 2) return 50 * MiB;
  return DEFAULT_UPLOAD_BYTES;
}

/**
 * One upload limit for every kind. Customer files have no download limit of
 * Discord's own (the media proxy streams them); Discord never fetches a file by
 * URL for a bot, so everything is uploaded.
 */
export function mediaLimitsOf(maxUploadBytes: number): MediaLimits {
  const one = { maxUploadBytes };
  return { photo: one, video: one, audio: one, document: one };
}

/** Gateway intent bits (the values of discord.js's GatewayIntentBits). */
export const Intents = {
  Guilds: 1 << 0,
  GuildMessages: 1 << 9,
  DirectMessages: 1 << 12,
  MessageContent: 1 << 15,
} as const;

/** DMs only, or DMs and the support channel (MessageContent is privileged: switched on in the portal). */
export function intentsFor(supportChannel: boolean): number {
  return supportChannel
    ? Intents.DirectMessages | Intents.Guilds | Intents.GuildMessages | Intents.MessageContent
    : Intents.DirectMessages;
}

/** Permission bits the bot needs in the servers it joins. */
export const Permissions = {
  ViewChannel: 1n << 10n,
  SendMessages: 1n << 11n,
  AttachFiles: 1n << 15n,
  ReadMessageHistory: 1n << 16n,
  ManageThreads: 1n << 34n,
  CreatePrivateThreads: 1n << 36n,
  SendMessagesInThreads: 1n << 38n,
} as const;

/**
 * The invite's `permissions`: view, send, attach files, read history (backfill)
 * = 101376; the support channel adds create private threads, send in threads and
 * manage threads (find archived private threads, remove a duplicate) = 360777354240.
 */
export function invitePermissions(supportChannel: boolean): bigint {
  const p = Permissions;
  const base = p.ViewChannel | p.SendMessages | p.AttachFiles | p.ReadMessageHistory;
  return supportChannel ? base | p.CreatePrivateThreads | p.SendMessagesInThreads | p.ManageThreads : base;
}

/** The link that adds the bot to a server with the permissions it needs. */
export function inviteUrl(applicationId: string, supportChannel: boolean): string {
  return `https://discord.com/oauth2/authorize?client_id=${applicationId}&scope=bot&permissions=${invitePermissions(supportChannel)}`;
}
