// STUB (owner: lead) — shape is the contract.
import type { KitRegion } from './kit/decisions.js';

/** Core settings, parsed from KITBRIDGE_* and KIT_* variables (see cli). */
export interface CoreConfig {
  kit: { baseUrl: string; region?: KitRegion; account: string; apiToken: string; channelUuid: string; salt: string };
  http: { host: string; port: number };
  /** Without a trailing slash. */
  publicUrl: string;
  media: { secret: string; ttlMs: number; maxBytes: number; allowPrivate: boolean };
  /** KITBRIDGE_EDITS: an edited customer message is sent again marked as edited, or ignored. */
  edits: 'resend' | 'ignore';
  /** KITBRIDGE_SHOW_AGENT_NAME: prefix agent messages with the agent's display name. */
  showAgentName: boolean;
  /** KITBRIDGE_CLOSE_MESSAGE: told to the customer when Kit closes the conversation. */
  closeMessage?: string;
}
