/**
 * A Map from client-sent strings (Authorization headers, tokens) to what verifying them
 * found, bounded both in entries and in characters held: a token can be 8 KiB, so a count
 * alone would let clients make the cache large. Oldest insertion goes first (Map order);
 * entries expire at their `expiresAtMs`.
 */
export class BoundedCache<V> {
  private readonly map = new Map<string, { value: V; expiresAtMs: number }>();
  private chars = 0;

  constructor(
    private readonly maxEntries: number,
    private readonly maxChars: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** The value for `key` when present and not expired. */
  get(key: string): V | undefined {
    const hit = this.map.get(key);
    if (hit === undefined) return undefined;
    // Entries that never expire skip the clock read (API keys: the hot path).
    if (hit.expiresAtMs !== Infinity && hit.expiresAtMs <= this.now()) {
      this.delete(key);
      return undefined;
    }
    return hit.value;
  }

  /** Remembers `value` for `key` until `expiresAtMs` (Infinity: until evicted or cleared). */
  set(key: string, value: V, expiresAtMs = Infinity): void {
    if (key.length > this.maxChars) return;
    this.delete(key);
    while (this.map.size >= this.maxEntries || this.chars + key.length > this.maxChars) {
      this.delete(this.map.keys().next().value!);
    }
    this.map.set(key, { value, expiresAtMs });
    this.chars += key.length;
  }

  delete(key: string): void {
    if (this.map.delete(key)) this.chars -= key.length;
  }

  clear(): void {
    this.map.clear();
    this.chars = 0;
  }

  get size(): number {
    return this.map.size;
  }
}
