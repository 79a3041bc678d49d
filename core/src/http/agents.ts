/**
 * undici Agents for connections a connector opens itself (platform file
 * downloads): made on first use, so an idle connector holds no pool, and
 * closed with a grace for downloads still streaming.
 */
import { Agent } from 'undici';

/** Closes `agent`; what still runs after `graceMs` is cut. */
export async function closeAgent(agent: Agent, graceMs = 2_000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), graceMs);
  });
  const result = await Promise.race([agent.close().then(() => 'done' as const), late]);
  clearTimeout(timer);
  if (result === 'late') await agent.destroy();
}

/** An Agent made when first asked for (same options each time); `close` ends it until the next use. */
export class LazyAgent {
  private agent?: Agent;

  constructor(private readonly options: Agent.Options = DOWNLOAD_AGENT_OPTIONS) {}

  /** The agent, made now if there is none. No I/O. */
  get dispatcher(): Agent {
    this.agent ??= new Agent(this.options);
    return this.agent;
  }

  /** Closes the connections; running downloads get `graceMs` to finish. */
  async close(graceMs = 2_000): Promise<void> {
    const agent = this.agent;
    this.agent = undefined;
    if (agent) await closeAgent(agent, graceMs);
  }
}

/** Platform file downloads: a few parallel streams, patient with a slow body. */
export const DOWNLOAD_AGENT_OPTIONS: Agent.Options = {
  connections: 16,
  headersTimeout: 30_000,
  bodyTimeout: 60_000,
};
