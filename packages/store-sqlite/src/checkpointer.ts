/**
 * WAL checkpoints off the main thread. A checkpoint copies the WAL back into
 * the database file and fsyncs it: several milliseconds that, done by
 * SQLite's auto-checkpoint inside a commit, stall the event loop and every
 * webhook behind it (the benchmark's p99 showed it). So the main connection
 * turns auto-checkpoint off and a worker thread with its own connection runs
 * PASSIVE checkpoints (which never wait on the writer) on a timer.
 *
 * The worker (a thread with its own V8 heap: some 8 MB) runs only while there
 * is something to checkpoint: the first write starts it, and it ends itself
 * once the WAL has had nothing new for `idleTicks` checkpoints in a row.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

// Plain CommonJS, run with `eval`, so it works from dist and from sources under test alike.
const WORKER = `
const { workerData, parentPort } = require('node:worker_threads');
const Database = require(workerData.module);
const db = new Database(workerData.path, { timeout: 5000 });
let idle = 0;
let lastLog = -1;
const end = () => {
  clearInterval(timer);
  db.close();
  parentPort.close();
};
const checkpoint = () => {
  try {
    const [r] = db.pragma('wal_checkpoint(PASSIVE)');
    // Idle: all of the WAL is in the file, and it has not grown since the last tick.
    if (r && r.log === r.checkpointed && r.log === lastLog) idle++;
    else idle = 0;
    lastLog = r ? r.log : -1;
  } catch (err) {
    idle = 0;
    parentPort.postMessage({ error: String(err && err.message) });
  }
};
const timer = setInterval(() => {
  checkpoint();
  if (idle >= workerData.idleTicks) end();
}, workerData.intervalMs);
parentPort.on('message', (m) => {
  if (m !== 'stop') return;
  checkpoint();
  end();
});
`;

export interface CheckpointerOptions {
  path: string;
  /** Between two checkpoints, ms. */
  intervalMs: number;
  /** Checkpoints in a row with nothing to do before the worker ends. Default 30. */
  idleTicks?: number;
  /** The worker failed: the caller falls back to SQLite's own checkpoints. */
  onError: (message: string) => void;
}

export class Checkpointer {
  private worker?: Worker;
  private stopped = false;
  private failed = false;
  private readonly module = createRequire(import.meta.url).resolve('better-sqlite3');

  constructor(private readonly opts: CheckpointerOptions) {}

  /** After a write: makes sure a worker is there to checkpoint it. Cheap when one runs. */
  wake(): void {
    if (this.worker || this.stopped || this.failed) return;
    const worker = new Worker(WORKER, {
      eval: true,
      workerData: {
        path: this.opts.path,
        intervalMs: this.opts.intervalMs,
        idleTicks: this.opts.idleTicks ?? 30,
        module: this.module,
      },
      // It holds one connection and a timer: keep its heap (and so the process's RSS) small.
      resourceLimits: {
        maxYoungGenerationSizeMb: 1,
        maxOldGenerationSizeMb: 8,
        codeRangeSizeMb: 4,
        stackSizeMb: 1,
      },
    });
    const fail = (message: string) => {
      this.failed = true;
      this.opts.onError(message);
    };
    worker.on('message', (m: { error?: string }) => m?.error && fail(m.error));
    worker.on('error', (err) => fail(err.message));
    worker.once('exit', () => {
      if (this.worker === worker) this.worker = undefined;
    });
    // Never keeps the process alive on its own.
    worker.unref();
    this.worker = worker;
  }

  /** True while a worker runs (tests). */
  get running(): boolean {
    return this.worker !== undefined;
  }

  /** A last checkpoint, then the worker ends; no new one starts. */
  async stop(): Promise<void> {
    this.stopped = true;
    const worker = this.worker;
    if (!worker) return;
    const exited = new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 2_000);
      worker.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
    });
    worker.postMessage('stop');
    await exited;
    await worker.terminate();
  }
}
