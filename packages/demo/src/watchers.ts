/**
 * The waits of a fake platform: a test waits until a check on the fake's records
 * holds; the fake calls `notify()` after every change. One implementation for
 * every fake (Telegram, Discord, Slack, and the next one).
 */
export class Watchers {
  private readonly watchers = new Set<() => void>();

  /** `name` starts the timeout message: `FakeSlack: timed out ...`. */
  constructor(private readonly name: string) {}

  /** Re-runs every pending check. */
  notify(): void {
    for (const w of [...this.watchers]) w();
  }

  /** Resolves with the first defined result of `check`; rejects after `timeoutMs`. */
  until<T>(check: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    return new Promise((resolve, reject) => {
      const done = check();
      if (done !== undefined) return resolve(done);
      const watcher = () => {
        const hit = check();
        if (hit === undefined) return;
        clearTimeout(timer);
        this.watchers.delete(watcher);
        resolve(hit);
      };
      const timer = setTimeout(() => {
        this.watchers.delete(watcher);
        reject(new Error(`${this.name}: timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      this.watchers.add(watcher);
    });
  }
}
