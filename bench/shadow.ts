/**
 * What a shadow at 100% costs the primary: the MLP served under a policy whose shadow draws
 * 0% of requests, against the same policy drawing 100%, in paired interleaved rounds of one
 * run, with the fraction of drawn requests the shadow lane actually sent (it sends a copy
 * only when the primary's queue is empty and fewer than 4 copies are in flight:
 * lib/routing/shadow-lane.ts). Two loads:
 *
 * - closed loop: N callers, each sending its next request when the previous answered (the
 *   primary saturated: the lane should send little and cost little);
 * - paced: a fixed request rate well under capacity (spare capacity: the lane should send
 *   most copies, and the primary's latency shows what they cost).
 *
 *   npx tsc -p tsconfig.json && node dist/bench/shadow.js [-- --model small|large --seconds 1 --concurrency 8 --rounds 6 --rate 500]
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { FrontDoor } from '../lib/frontdoor/front-door';
import { createRequestContext } from '../lib/frontdoor/request-context';
import type { InferRequest } from '../lib/protocol/types';
import { mlpModel } from '../test/fixtures/models';
import { closedLoop, mlpRequest, serveInProcess, type LoadResult } from './inprocess-load';
import { loadText, median, pairedRounds, ratioText } from './paired-rounds';
import { formatTable } from './table';

const { values: args } = parseArgs({ options: { seconds: { type: 'string', default: '1' }, concurrency: { type: 'string', default: '8' }, rounds: { type: 'string', default: '6' }, model: { type: 'string', default: 'small' }, rate: { type: 'string', default: '500' } } });
const SECONDS = Number(args.seconds);
const CONCURRENCY = Number(args.concurrency);
const ROUNDS = Number(args.rounds);
const RATE = Number(args.rate);
/** small: the MLP 256-1024-16 of design.md; large: 1024-4096-1024 (inference dominates). */
const SIZES = args.model === 'large' ? { inputDim: 1024, hidden: 4096, outputDim: 1024 } : { inputDim: 256, hidden: 1024, outputDim: 16 };
const LABEL = `MLP ${SIZES.inputDim}-${SIZES.hidden}-${SIZES.outputDim}`;

/** Requests at `rate` per second for `seconds` (each answered or not), in ticks of 10 ms. */
async function paced(door: FrontDoor, model: string, next: () => InferRequest, seconds: number, rate: number): Promise<LoadResult> {
  const context = createRequestContext('http', '127.0.0.1', {});
  const latencies: number[] = [];
  const pending: Promise<void>[] = [];
  const start = performance.now();
  let sent = 0;
  while (performance.now() - start < seconds * 1000) {
    const due = Math.floor(((performance.now() - start) / 1000) * rate);
    for (; sent < due; sent++) {
      const t = performance.now();
      pending.push(door.infer({ model, version: undefined, request: next(), context, signal: new AbortController().signal }).then(() => void latencies.push(performance.now() - t)));
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  await Promise.all(pending);
  const elapsed = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q: number): number => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
  return { requests: latencies.length, rps: latencies.length / elapsed, p50Ms: at(0.5), p99Ms: at(0.99) };
}

/** Sum of a counter's series whose labels include every one of `labels`. */
function counter(text: string, family: string, labels: Record<string, string>): number {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(`${family}{`) && want.every((w) => line.includes(w))) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  return sum;
}

async function main(): Promise<void> {
  const repo = mkdtempSync(join(tmpdir(), 'tw-bench-shadow-'));
  try {
    const models = [
      ['shadow0', { routing: { weights: { '1': 100 }, shadow: { version: '2', percent: 0 } } }],
      ['shadow100', { routing: { weights: { '1': 100 }, shadow: { version: '2', percent: 100 } } }],
    ] as const;
    for (const [name, config] of models) {
      for (const v of [1, 2]) {
        mkdirSync(join(repo, name, String(v)), { recursive: true });
        await mlpModel(join(repo, name, String(v)), { file: 'model.onnx', ...SIZES });
      }
      writeFileSync(join(repo, name, 'config.json'), JSON.stringify({ version_policy: { specific: { versions: [1] } }, ...config }));
    }
    const { service, door } = await serveInProcess(repo, 0);
    let seed = 1;
    const next = () => mlpRequest(SIZES.inputDim, seed++);
    // Let the last copies of a run finish before the next run measures.
    const settle = () => new Promise<void>((resolve) => setTimeout(resolve, 200));
    const shadowCounts = async () => {
      const text = await service.registry.metrics();
      const sent = counter(text, 'tensorwire_shadow_requests_total', { model: 'shadow100', outcome: 'success' }) + counter(text, 'tensorwire_shadow_requests_total', { model: 'shadow100', outcome: 'failure' });
      // (outcome="skipped": how builds before the skipped family counted them.)
      return { sent, skipped: counter(text, 'tensorwire_shadow_skipped_total', { model: 'shadow100' }) + counter(text, 'tensorwire_shadow_requests_total', { model: 'shadow100', outcome: 'skipped' }) };
    };
    const rows: (string | number)[][] = [];
    const loads: string[] = [];
    for (const [load, run] of [
      [`closed loop, ${CONCURRENCY} callers`, (model: string) => closedLoop(door, model, next, SECONDS, CONCURRENCY)],
      [`paced, ${RATE} req/s`, (model: string) => paced(door, model, next, SECONDS, RATE)],
    ] as const) {
      const before = await shadowCounts();
      const p = await pairedRounds(ROUNDS, () => run('shadow0'), () => run('shadow100'), settle);
      const after = await shadowCounts();
      const sent = after.sent - before.sent;
      const skipped = after.skipped - before.skipped;
      const cpuRatios = p.a.map((a, i) => (p.b[i]!.cpuUsPerRequest ?? 0) / (a.cpuUsPerRequest ?? 1));
      rows.push([load, median(p.a.map((r) => r.rps)), median(p.b.map((r) => r.rps)), ratioText(p.ratios), load.startsWith('closed') ? ratioText(cpuRatios) : '-', `${median(p.a.map((r) => r.p99Ms)).toFixed(2)} / ${median(p.b.map((r) => r.p99Ms)).toFixed(2)}`, `${((sent / Math.max(1, sent + skipped)) * 100).toFixed(1)}% (${sent} of ${sent + skipped})`]);
      loads.push(`${load}: ${loadText(p)}`);
    }
    console.log(`${LABEL}, batch 1, in-process; ${ROUNDS} paired rounds of ${SECONDS}s, order alternating; medians`);
    console.log(formatTable(['load', 'req/s shadow 0%', 'req/s shadow 100%', 'req/s 100% vs 0%', 'CPU/req 100% vs 0%', 'p99 ms 0% / 100%', 'shadowed'], rows));
    const text = await service.registry.metrics();
    console.log(`skipped by reason: ${['primary_queued', 'shadow_queued', 'in_flight_limit', 'loop_busy'].map((r) => `${r} ${counter(text, 'tensorwire_shadow_skipped_total', { model: 'shadow100', reason: r })}`).join(', ')}`);
    for (const l of loads) console.log(l);
    await service.shutdown();
  } finally {
    rmSync(repo, { recursive: true, force: true });
  }
}

void main();
