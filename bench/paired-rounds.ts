/**
 * Paired, interleaved rounds for A/B benchmarks on a shared box: each round runs both sides
 * back to back, alternating which goes first (ABBA...), and the per-round ratio B/A is the
 * number reported (its median and range), with the load average at start and end. Other
 * work on the machine moves both sides of a round alike, so the ratio is steadier than
 * either side's absolute requests/s.
 */
import { loadavg } from 'node:os';
import type { LoadResult } from './inprocess-load';

/** What a paired run measured. */
export interface PairedResult {
  a: LoadResult[];
  b: LoadResult[];
  /** b.rps / a.rps per round. */
  ratios: number[];
  loadStart: number[];
  loadEnd: number[];
}

/** `rounds` rounds of `runA` and `runB`, alternating their order. */
export async function pairedRounds(rounds: number, runA: () => Promise<LoadResult>, runB: () => Promise<LoadResult>, between: () => Promise<void> = async () => undefined): Promise<PairedResult> {
  const out: PairedResult = { a: [], b: [], ratios: [], loadStart: loadavg(), loadEnd: [] };
  for (let r = 0; r < rounds; r++) {
    let a: LoadResult;
    let b: LoadResult;
    if (r % 2 === 0) {
      a = await runA();
      await between();
      b = await runB();
    } else {
      b = await runB();
      await between();
      a = await runA();
    }
    await between();
    out.a.push(a);
    out.b.push(b);
    out.ratios.push(b.rps / a.rps);
  }
  out.loadEnd = loadavg();
  return out;
}

/** The median of `xs` (not empty). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** "0.93x (0.88–0.97)": the median ratio and its range over the rounds. */
export function ratioText(ratios: readonly number[]): string {
  return `${median(ratios).toFixed(2)}x (${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)})`;
}

/** "load 3.1 → 4.2": the 1-minute load average at start and end. */
export function loadText(p: PairedResult): string {
  return `load average ${p.loadStart[0]!.toFixed(1)} → ${p.loadEnd[0]!.toFixed(1)}`;
}
