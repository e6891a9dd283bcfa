/**
 * A compact latency histogram for the load generator: log-linear buckets (1 µs wide below
 * 64 µs, then 64 buckets per power of two, so any value is kept within 1.6%) over 1 µs ..
 * ~134 s, in one Float64Array of 1,408 counts. Recording is a log2 and an increment, with
 * no allocation; workers send their counts to the main thread, which merges them.
 */

const SUB_BITS = 6;
const SUB = 1 << SUB_BITS; // 64 linear sub-buckets per power of two
const MAX_EXP = 26; // 2^27 µs ~ 134 s: anything slower lands in the last bucket
const BUCKETS = SUB + (MAX_EXP - SUB_BITS + 1) * SUB;

/** What a histogram looks like on the wire between threads (structured-clone friendly). */
export interface HistogramData {
  counts: Float64Array;
  count: number;
  sum: number;
  min: number;
  max: number;
}

/** Bucket index of a value in microseconds. */
function indexOf(us: number): number {
  if (!(us >= SUB)) return us > 0 ? Math.floor(us) : 0; // also NaN -> 0
  const e = Math.min(Math.floor(Math.log2(us)), MAX_EXP);
  const sub = Math.min(Math.floor(us / 2 ** (e - SUB_BITS)) - SUB, SUB - 1);
  return SUB + (e - SUB_BITS) * SUB + sub;
}

/** Lowest and highest value of bucket `i`, in microseconds. */
function bucketRange(i: number): [number, number] {
  if (i < SUB) return [i, i + 1];
  const e = Math.floor((i - SUB) / SUB) + SUB_BITS;
  const sub = (i - SUB) % SUB;
  const width = 2 ** (e - SUB_BITS);
  return [(SUB + sub) * width, (SUB + sub + 1) * width];
}

/** Latency histogram in microseconds. */
export class LatencyHistogram {
  counts = new Float64Array(BUCKETS);
  count = 0;
  sum = 0;
  min = Infinity;
  max = 0;

  /** Records one latency in microseconds. */
  record(us: number): void {
    this.counts[indexOf(us)]!++;
    this.count++;
    this.sum += us;
    if (us < this.min) this.min = us;
    if (us > this.max) this.max = us;
  }

  /** Adds another histogram's counts (from another worker or window). */
  merge(other: HistogramData): this {
    for (let i = 0; i < BUCKETS; i++) this.counts[i]! += other.counts[i]!;
    this.count += other.count;
    this.sum += other.sum;
    if (other.min < this.min) this.min = other.min;
    if (other.max > this.max) this.max = other.max;
    return this;
  }

  /** Forgets everything recorded. */
  clear(): void {
    this.counts.fill(0);
    this.count = 0;
    this.sum = 0;
    this.min = Infinity;
    this.max = 0;
  }

  /** A copy for postMessage. */
  toData(): HistogramData {
    return { counts: this.counts.slice(), count: this.count, sum: this.sum, min: this.min, max: this.max };
  }

  /** Rebuilds a histogram from its wire form. */
  static fromData(d: HistogramData): LatencyHistogram {
    return new LatencyHistogram().merge(d);
  }

  /**
   * The value at quantile `q` (0..1) in microseconds: the middle of the bucket holding the
   * q-th value, clamped to the exact min and max (so p100 is the true maximum). 0 when empty.
   */
  quantile(q: number): number {
    if (this.count === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.count));
    if (rank >= this.count) return this.max;
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) {
        if (i === BUCKETS - 1) return this.max; // the overflow bucket has no useful middle
        const [lo, hi] = bucketRange(i);
        return Math.min(this.max, Math.max(this.min, (lo + hi) / 2));
      }
    }
    return this.max;
  }

  /** Mean in microseconds (0 when empty). */
  mean(): number {
    return this.count === 0 ? 0 : this.sum / this.count;
  }
}
