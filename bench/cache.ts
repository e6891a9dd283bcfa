/**
 * The response cache's effect on the MLP (256-1024-16) when half the requests repeat one of
 * 64 hot inputs, against the same model and the same mix with the cache off, in paired
 * interleaved rounds of one run (the ratio per round is the number: bench/paired-rounds.ts).
 * bench/cache-stage-cost.ts measures the stage's own CPU cost per miss and hit.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/cache.js [-- --model small|large --seconds 1 --concurrency 16 --rounds 6]
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { mlpModel } from '../test/fixtures/models';
import { closedLoop, mlpRequest, serveInProcess, type LoadResult } from './inprocess-load';
import { loadText, median, pairedRounds, ratioText } from './paired-rounds';
import { formatTable } from './table';

const { values: args } = parseArgs({ options: { seconds: { type: 'string', default: '1' }, concurrency: { type: 'string', default: '16' }, rounds: { type: 'string', default: '6' }, model: { type: 'string', default: 'small' }, repeat: { type: 'string', default: '0.5' } } });
const SECONDS = Number(args.seconds);
const CONCURRENCY = Number(args.concurrency);
const ROUNDS = Number(args.rounds);
/** small: the MLP 256-1024-16 of design.md; large: 1024-4096-1024 (inference dominates). */
const SIZES = args.model === 'large' ? { inputDim: 1024, hidden: 4096, outputDim: 1024 } : { inputDim: 256, hidden: 1024, outputDim: 16 };
const LABEL = `MLP ${SIZES.inputDim}-${SIZES.hidden}-${SIZES.outputDim}`;
const REPEAT = Number(args.repeat);
const HOT = 64;

async function main(): Promise<void> {
  const repo = mkdtempSync(join(tmpdir(), 'tw-bench-cache-'));
  try {
    for (const [name, config] of [['cached', { response_cache: { enable: true } }], ['uncached', {}]] as const) {
      mkdirSync(join(repo, name, '1'), { recursive: true });
      await mlpModel(join(repo, name, '1'), { file: 'model.onnx', ...SIZES });
      writeFileSync(join(repo, name, 'config.json'), JSON.stringify(config));
    }
    const { service, door, cache } = await serveInProcess(repo);
    let fresh = 1_000_000;
    // The same mix for both: REPEAT of the requests are one of HOT inputs, the rest never seen before.
    const mix = () => (Math.random() < REPEAT ? mlpRequest(SIZES.inputDim, 1 + Math.floor(Math.random() * HOT)) : mlpRequest(SIZES.inputDim, fresh++));
    const p = await pairedRounds(
      ROUNDS,
      () => closedLoop(door, 'uncached', mix, SECONDS, CONCURRENCY),
      () => closedLoop(door, 'cached', mix, SECONDS, CONCURRENCY),
    );
    const stats = service.statistics('cached', '1')[0]!.inference_stats;
    const hits = stats.cache_hit!.count;
    const misses = stats.cache_miss!.count;
    const med = (xs: LoadResult[], k: 'rps' | 'p50Ms' | 'p99Ms' | 'cpuUsPerRequest') => median(xs.map((x) => x[k] ?? 0));
    const cpuRatios = p.a.map((a, i) => (p.b[i]!.cpuUsPerRequest ?? 0) / (a.cpuUsPerRequest ?? 1));
    console.log(`${LABEL}, batch 1, ${CONCURRENCY} callers in-process, ${Math.round(REPEAT * 100)}% of requests repeat one of ${HOT} inputs; ${ROUNDS} paired rounds of ${SECONDS}s, order alternating; medians`);
    console.log(
      formatTable(
        ['cache', 'req/s', 'p50 ms', 'p99 ms', 'CPU µs/req', 'hit rate', 'req/s vs off', 'CPU/req vs off'],
        [
          ['off', med(p.a, 'rps'), med(p.a, 'p50Ms'), med(p.a, 'p99Ms'), med(p.a, 'cpuUsPerRequest'), '-', '1.00x', '1.00x'],
          ['on', med(p.b, 'rps'), med(p.b, 'p50Ms'), med(p.b, 'p99Ms'), med(p.b, 'cpuUsPerRequest'), `${((hits / (hits + misses)) * 100).toFixed(0)}%`, ratioText(p.ratios), ratioText(cpuRatios)],
        ],
      ),
    );
    console.log(loadText(p));
    console.log(`cache: ${cache.size} entries, ${cache.bytes} bytes`);
    await service.shutdown();
  } finally {
    rmSync(repo, { recursive: true, force: true });
  }
}

void main();
