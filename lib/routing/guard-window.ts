/**
 * What the guard compares: per version, requests, errors and a latency histogram over a
 * sliding window. The window is ten sub-windows of window_s/10 each, so memory is fixed
 * (10 × LATENCY_BINS counters a version) whatever the traffic, and old samples leave a
 * sub-window at a time. Time comes from an injected clock so the policy is tested without
 * waiting.
 */

/** Latency bins: 10 µs growing by 2^(1/4) (four per octave), the last one open (≈ 2^25 × 10 µs). */
const LATENCY_BINS = 100;
const FIRST_BOUND_MS = 0.01;
const GROWTH = Math.SQRT2 ** 0.5;
const LOG_GROWTH = Math.log(GROWTH);
const SUBWINDOWS = 10;

function binOf(ms: number): number {
  if (!(ms > FIRST_BOUND_MS)) return 0;
  return Math.min(LATENCY_BINS - 1, Math.ceil(Math.log(ms / FIRST_BOUND_MS) / LOG_GROWTH));
}

/** Upper bound of a bin, ms. */
function boundOf(bin: number): number {
  return FIRST_BOUND_MS * GROWTH ** bin;
}

/** Counts of one version over the whole window. */
export interface WindowSummary {
  requests: number;
  errors: number;
  /** Upper bound of the bin holding the 99th percentile, ms (0 without requests). */
  p99Ms: number;
}

/** One version's sliding window. */
export class VersionWindow {
  private readonly requests = new Float64Array(SUBWINDOWS);
  private readonly errors = new Float64Array(SUBWINDOWS);
  private readonly latency = new Float64Array(SUBWINDOWS * LATENCY_BINS);
  /** The sub-window index (time / span) each slot holds now. */
  private readonly epochs = new Float64Array(SUBWINDOWS).fill(-1);
  private readonly spanMs: number;

  constructor(windowS: number) {
    this.spanMs = (windowS * 1000) / SUBWINDOWS;
  }

  /** Records one answered request at `nowMs`. */
  record(nowMs: number, ok: boolean, latencyMs: number): void {
    const epoch = Math.floor(nowMs / this.spanMs);
    const slot = epoch % SUBWINDOWS;
    if (this.epochs[slot] !== epoch) {
      this.epochs[slot] = epoch;
      this.requests[slot] = 0;
      this.errors[slot] = 0;
      this.latency.fill(0, slot * LATENCY_BINS, (slot + 1) * LATENCY_BINS);
    }
    this.requests[slot]!++;
    if (!ok) this.errors[slot]!++;
    this.latency[slot * LATENCY_BINS + binOf(latencyMs)]!++;
  }

  /** Sums of the sub-windows still inside the window at `nowMs`. */
  summary(nowMs: number): WindowSummary {
    const current = Math.floor(nowMs / this.spanMs);
    let requests = 0;
    let errors = 0;
    const bins = new Float64Array(LATENCY_BINS);
    for (let s = 0; s < SUBWINDOWS; s++) {
      const epoch = this.epochs[s]!;
      if (epoch < 0 || current - epoch >= SUBWINDOWS) continue;
      requests += this.requests[s]!;
      errors += this.errors[s]!;
      for (let b = 0; b < LATENCY_BINS; b++) bins[b]! += this.latency[s * LATENCY_BINS + b]!;
    }
    let p99Ms = 0;
    if (requests > 0) {
      const rank = Math.ceil(requests * 0.99);
      let acc = 0;
      for (let b = 0; b < LATENCY_BINS; b++) {
        acc += bins[b]!;
        if (acc >= rank) {
          p99Ms = boundOf(b);
          break;
        }
      }
    }
    return { requests, errors, p99Ms };
  }
}

/** The verdict on a guarded version: why to roll it back, or undefined to keep it. */
export function judge(
  guarded: WindowSummary,
  stable: WindowSummary,
  limits: { max_error_rate_increase: number; max_p99_ratio: number; min_requests: number },
): string | undefined {
  if (guarded.requests < limits.min_requests) return undefined;
  const guardedRate = guarded.errors / guarded.requests;
  const stableRate = stable.requests > 0 ? stable.errors / stable.requests : 0;
  if (guardedRate - stableRate > limits.max_error_rate_increase) {
    return `error rate ${pct(guardedRate)} vs ${pct(stableRate)} on the stable version (allowed increase ${pct(limits.max_error_rate_increase)}) over ${guarded.requests} requests`;
  }
  if (stable.requests > 0 && stable.p99Ms > 0 && guarded.p99Ms > limits.max_p99_ratio * stable.p99Ms) {
    return `p99 ${guarded.p99Ms.toFixed(2)} ms vs ${stable.p99Ms.toFixed(2)} ms on the stable version (allowed ratio ${limits.max_p99_ratio}) over ${guarded.requests} requests`;
  }
  return undefined;
}

function pct(x: number): string {
  return `${(x * 100).toFixed(1)}%`;
}
