/**
 * A bounded cache with a time to live and one load in flight per key: what every
 * plugin needs for profile lookups (a chatty customer costs one platform call a
 * day, not one per message) and core for late profiles. No I/O of its own.
 */
export interface TtlCacheOptions {
  ttlMs: number;
  /** Entries kept; the least recently stored go first. Default 10,000. */
  maxEntries?: number;
  now?: () => number;
}

export class TtlCache<K, V> {
  private readonly entries = new Map<K, { at: number; value: V }>();
  private readonly loading = new Map<K, Promise<V>>();
  private readonly now: () => number;

  constructor(private readonly opts: TtlCacheOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** The fresh cached value, if any. */
  peek(key: K): V | undefined {
    const hit = this.entries.get(key);
    return hit && this.now() - hit.at < this.opts.ttlMs ? hit.value : undefined;
  }

  /** Whether a fresh value (undefined included) is cached for `key`. */
  has(key: K): boolean {
    const hit = this.entries.get(key);
    return hit !== undefined && this.now() - hit.at < this.opts.ttlMs;
  }

  /**
   * The cached value, or `load`'s (stored, also when it is undefined). Callers
   * asking for one key at once share a load. A rejected load is not stored.
   */
  get(key: K, load: () => Promise<V>): Promise<V> {
    const hit = this.entries.get(key);
    if (hit && this.now() - hit.at < this.opts.ttlMs) return Promise.resolve(hit.value);
    let p = this.loading.get(key);
    if (!p) {
      p = load()
        .then((value) => {
          this.set(key, value);
          return value;
        })
        .finally(() => this.loading.delete(key));
      this.loading.set(key, p);
    }
    return p;
  }

  set(key: K, value: V): void {
    this.entries.delete(key);
    this.entries.set(key, { at: this.now(), value });
    if (this.entries.size > (this.opts.maxEntries ?? 10_000))
      this.entries.delete(this.entries.keys().next().value!);
  }

  delete(key: K): void {
    this.entries.delete(key);
  }
}
