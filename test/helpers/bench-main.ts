/** Runs `tensorwire bench`'s main() in process with captured output and its --json report. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { main } from '../../lib/bench/cli';
import type { BenchReport } from '../../lib/bench/run';

export interface BenchOutcome {
  code: number;
  out: string;
  err: string;
  /** The --json report, or undefined when the run wrote none (a refused run). */
  report: BenchReport | undefined;
}

/** `dir` is where the --json report is written (a fresh name per call). */
export async function runBenchMain(dir: string, args: string[]): Promise<BenchOutcome> {
  const out: string[] = [];
  const err: string[] = [];
  const json = join(dir, `r${Math.random().toString(36).slice(2)}.json`);
  const code = await main([...args, '--json', json], { stdout: { write: (t: string) => out.push(t) }, stderr: { write: (t: string) => err.push(t) } });
  let report: BenchReport | undefined;
  try {
    report = JSON.parse(readFileSync(json, 'utf8')) as BenchReport;
  } catch {
    report = undefined;
  }
  return { code, out: out.join(''), err: err.join(''), report };
}
