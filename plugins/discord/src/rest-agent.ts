/**
 * The undici trap (../shared/platform-notes.md): core loads undici 7, which
 * registers its Agent as the process-wide dispatcher; @discordjs/rest's own
 * undici 6 then sends its FormData through that one and every upload fails with
 * `TypeError: action is not a function`. The checked fix is an Agent from the
 * very undici that @discordjs/rest depends on, given to every REST instance.
 */
import { createRequire } from 'node:module';

/** The part of undici 6's Agent used here (its own types are not a dependency of ours). */
export interface RestAgent {
  close(): Promise<void>;
  destroy(err?: Error | null): Promise<void>;
}

const requireHere = createRequire(import.meta.url);

let AgentClass: (new (opts?: Record<string, unknown>) => RestAgent) | undefined;

/** Where @discordjs/rest lives: next to the discord.js we load, wherever npm put it. */
export function discordRestEntry(): string {
  const discord = requireHere.resolve('discord.js');
  return createRequire(discord).resolve('@discordjs/rest');
}

/** A new Agent of @discordjs/rest's own undici. */
export function newRestAgent(opts: Record<string, unknown> = {}): RestAgent {
  AgentClass ??= (createRequire(discordRestEntry())('undici') as { Agent: typeof AgentClass }).Agent;
  return new AgentClass!({ connect: { timeout: 10_000 }, ...opts });
}
