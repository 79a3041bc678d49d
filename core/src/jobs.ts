/**
 * Singleton jobs (`ctx.exclusive`): a job runs in exactly one process of all
 * that share the store, under a named lease with a fence. The holder renews it
 * a third of the way through; a renewal refused or failing past the lease's
 * end aborts the job's signal, so two holders never run at once for longer
 * than it takes the old one to notice. Processes that do not hold it try again
 * every third of a lease, so a dead holder's job moves within one lease time.
 */
import type { Logger } from './logger.js';
import { backoffDelay, sleep } from './retry.js';
import type { Store } from './store/store.js';

/** The three job-lease calls of a Store. */
type JobLeases = Pick<Store, 'acquireJob' | 'renewJob' | 'releaseJob'>;

export interface SingletonJobsOptions {
  store: JobLeases;
  /** This process, for the lease's diagnostics (host:pid). */
  owner: string;
  /** How long a dead holder keeps a job before another process takes it over. Default 15 s. */
  leaseMs?: number;
  logger: Logger;
}

export class SingletonJobs {
  private readonly stop = new AbortController();
  private readonly running = new Set<Promise<void>>();
  private readonly leaseMs: number;

  constructor(private readonly o: SingletonJobsOptions) {
    this.leaseMs = o.leaseMs ?? 15_000;
  }

  /**
   * Starts competing for `name`. Resolves after the first try: `running` when the
   * lease was taken (the job has been called), else `standby`. Must not be called
   * twice for one name.
   */
  run(name: string, job: (signal: AbortSignal) => Promise<void>): Promise<'running' | 'standby'> {
    let first!: (where: 'running' | 'standby') => void;
    const told = new Promise<'running' | 'standby'>((r) => {
      first = r;
    });
    const p = this.loop(name, job, first).finally(() => {
      this.running.delete(p);
      first('standby');
    });
    this.running.add(p);
    return told;
  }

  /** Aborts every job, waits for them, gives the leases up. */
  async close(): Promise<void> {
    this.stop.abort(new Error('stopping'));
    await Promise.all([...this.running]);
  }

  private async loop(
    name: string,
    job: (signal: AbortSignal) => Promise<void>,
    first: (where: 'running' | 'standby') => void,
  ): Promise<void> {
    const { store, owner, logger } = this.o;
    const signal = this.stop.signal;
    let failures = 0;
    while (!signal.aborted) {
      let fence: number | undefined;
      try {
        fence = await store.acquireJob(name, owner, this.leaseMs);
      } catch (err) {
        logger.warn({ job: name, err: (err as Error).message }, 'job lease could not be read; retrying');
      }
      if (fence === undefined) {
        first('standby');
        await sleep(this.leaseMs / 3, signal).catch(() => {});
        continue;
      }
      logger.info({ job: name, fence }, 'job lease taken; running here');
      const held = new AbortController();
      const onStop = () => held.abort(new Error('stopping'));
      signal.addEventListener('abort', onStop, { once: true });
      const renewal = this.keep(name, fence, held);
      try {
        const running = job(AbortSignal.any([held.signal, signal]));
        first('running');
        await running;
        failures = 0;
      } catch (err) {
        if (!held.signal.aborted) {
          failures++;
          logger.error({ job: name, err: (err as Error).message }, 'singleton job failed; restarting it');
        }
      } finally {
        signal.removeEventListener('abort', onStop);
        held.abort(new Error('job ended'));
        await renewal;
        await store.releaseJob(name, fence).catch(() => {});
      }
      // A job that ended (or failed) runs again after a pause, never in a tight loop.
      const pause =
        failures > 0 ? backoffDelay(failures, { baseMs: 1_000, maxMs: 30_000 }) : this.leaseMs / 3;
      await sleep(pause, signal).catch(() => {});
    }
  }

  /** Renews until `held` aborts; aborts it when the lease is lost or cannot be renewed in time. */
  private async keep(name: string, fence: number, held: AbortController): Promise<void> {
    let renewedAt = Date.now();
    while (!held.signal.aborted) {
      await sleep(this.leaseMs / 3, held.signal).catch(() => {});
      if (held.signal.aborted) return;
      try {
        await this.o.store.renewJob(name, fence, this.leaseMs);
        renewedAt = Date.now();
      } catch (err) {
        const lost = (err as Error).name === 'LeaseLostError' || Date.now() - renewedAt >= this.leaseMs;
        this.o.logger.warn({ job: name, err: (err as Error).message, lost }, 'job lease renewal failed');
        if (lost) held.abort(new Error(`job lease ${name} lost`));
      }
    }
  }
}
