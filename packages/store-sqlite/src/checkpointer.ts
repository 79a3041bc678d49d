/**
 * WAL checkpoints off the main thread. A checkpoint copies the WAL back into
 * the database file and fsyncs it: several milliseconds that, done by
 * SQLite's auto-checkpoint inside a commit, stall the event loop and every
 * webhook behind it (the benchmark's p99 showed it). So the main connection
 * turns auto-checkpoint off and a worker thread with its own connection runs
 * PASSIVE checkpoints (which never wait on the writer) on a timer.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

// Plain CommonJS, run with `eval`, so it works from dist and from sources under test alike.
const WORKER = `
const { workerData, parentPort } = require('node:worker_threads');
const Database = require(workerData.module);
const db = new Database(workerData.path, { timeout: 5000 });
const checkpoint = () => {
  try { db.pragma('wal_checkpoint(PASSIVE)'); } catch (err) { parentPort.postMessage({ error: String(err && err.message) }); }
};
const timer = setInterval(checkpoint, workerData.intervalMs);
parentPort.on('message', (m) => {
  if (m !== 'stop') return;
  clearInterval(timer);
  checkpoint();
  db.close();
  parentPort.postMessage('stopped');
});
`;

export class Checkpointer {
  private readonly worker: Worker;

  constructor(path: string, intervalMs: number, onError: (message: string) => void) {
    const module = createRequire(import.meta.url).resolve('better-sqlite3');
    this.worker = new Worker(WORKER, {
      eval: true,
      workerData: { path, intervalMs, module },
      // It holds one connection and a timer: keep its heap (and so the process's RSS) small.
      resourceLimits: {
        maxYoungGenerationSizeMb: 1,
        maxOldGenerationSizeMb: 8,
        codeRangeSizeMb: 4,
        stackSizeMb: 1,
      },
    });
    this.worker.on('message', (m: { error?: string }) => m?.error && onError(m.error));
    this.worker.on('error', (err) => onError(err.message));
    // Never keeps the process alive on its own.
    this.worker.unref();
  }

  /** A last checkpoint, then the worker ends. */
  async stop(): Promise<void> {
    const done = new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 2_000);
      this.worker.once('message', () => {
        clearTimeout(t);
        resolve();
      });
      this.worker.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
    });
    this.worker.postMessage('stop');
    await done;
    await this.worker.terminate();
  }
}
