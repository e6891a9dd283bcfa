/**
 * The weighted split between versions: a pure function of the weights and, when the request
 * carries one, its routing key. A key hashes to a bucket (FNV-1a, 32 bits), so one user stays
 * on one variant while the weights stay the same; a request without a key draws at random.
 */

/** Weights folded into cumulative bounds, built once per policy (not per request). */
export class WeightedSplit {
  private readonly versions: string[];
  private readonly bounds: number[];
  readonly total: number;

  /** `weights`: version → non-negative integer share; versions at 0 never get traffic. */
  constructor(weights: Readonly<Record<string, number>>) {
    this.versions = [];
    this.bounds = [];
    let total = 0;
    // Ascending version order: the same weights always give the same buckets.
    for (const version of Object.keys(weights).sort((a, b) => Number(a) - Number(b))) {
      const w = weights[version]!;
      if (w <= 0) continue;
      total += w;
      this.versions.push(version);
      this.bounds.push(total);
    }
    this.total = total;
  }

  /** True when no version has a weight above 0 (the split picks nothing). */
  get empty(): boolean {
    return this.total === 0;
  }

  /** The version for a request: by `key`'s bucket when given, else at random. Undefined when empty. */
  pick(key: string | undefined, random: () => number = Math.random): string | undefined {
    if (this.total === 0) return undefined;
    const point = key === undefined ? Math.floor(random() * this.total) : fnv1a(key) % this.total;
    const bounds = this.bounds;
    for (let i = 0; i < bounds.length; i++) if (point < bounds[i]!) return this.versions[i];
    return this.versions[this.versions.length - 1];
  }
}

/** FNV-1a over UTF-16 code units, 32 bits unsigned: cheap, stable across processes and restarts. */
export function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
