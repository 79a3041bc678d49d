/**
 * Job leases of a store that serves one process (MemoryStore, SqliteStore under
 * its exclusive open): kept in memory, since no other process can compete. The
 * rules are the shared store's, so the conformance suite checks both alike.
 */
import { LeaseLostError } from './store.js';

export class LocalJobLeases {
  private readonly jobs = new Map<string, { fence: number; expiresAt: number }>();
  private fence = 0;

  constructor(private readonly now: () => number = Date.now) {}

  acquire(name: string, _owner: string, leaseMs: number): number | undefined {
    const held = this.jobs.get(name);
    const now = this.now();
    if (held && held.expiresAt > now) return undefined;
    const fence = ++this.fence;
    this.jobs.set(name, { fence, expiresAt: now + leaseMs });
    return fence;
  }

  renew(name: string, fence: number, leaseMs: number): void {
    const held = this.jobs.get(name);
    if (!held || held.fence !== fence) throw new LeaseLostError(fence, `renewal of job ${name}`);
    held.expiresAt = this.now() + leaseMs;
  }

  release(name: string, fence: number): void {
    if (this.jobs.get(name)?.fence === fence) this.jobs.delete(name);
  }
}
