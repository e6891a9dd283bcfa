/**
 * The response cache's effect on the MLP (256-1024-16) when half the requests repeat one of
 * 64 hot inputs, against the same model and the same mix with the cache off, in one run.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/cache.js [-- --model small|large --seconds 2 --concurrency 16 --rounds 2]
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { mlpModel } from '../test/fixtures/models';
import { closedLoop, mlpRequest, serveInProcess, type LoadResult } from './inprocess-load';
import { formatTable } from './table';

const { values: args } = parseArgs({ options: { seconds: { type: 'string', default: '2' }, concurrency: { type: 'string', default: '16' }, rounds: { type: 'string', default: '2' }, model: { type: 'string', default: 'small' }, repeat: { type: 'string', default: '0.5' } } });
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
    const best = new Map<string, LoadResult>();
    for (let r = 0; r < ROUNDS; r++) {
      for (const model of ['uncached', 'cached']) {
        const result = await closedLoop(door, model, mix, SECONDS, CONCURRENCY);
        if ((best.get(model)?.rps ?? 0) < result.rps) best.set(model, result);
      }
    }
    const stats = service.statistics('cached', '1')[0]!.inference_stats;
    const hits = stats.cache_hit!.count;
    const misses = stats.cache_miss!.count;
    const none = best.get('uncached')!;
    const on = best.get('cached')!;
    console.log(`${LABEL}, batch 1, ${CONCURRENCY} callers in-process, ${Math.round(REPEAT * 100)}% of requests repeat one of ${HOT} inputs; best of ${ROUNDS} x ${SECONDS}s`);
    console.log(
      formatTable(
        ['cache', 'req/s', 'p50 ms', 'p99 ms', 'hit rate', 'vs off'],
        [
          ['off', none.rps, none.p50Ms, none.p99Ms, '-', '1.00x'],
          ['on', on.rps, on.p50Ms, on.p99Ms, `${((hits / (hits + misses)) * 100).toFixed(0)}%`, `${(on.rps / none.rps).toFixed(2)}x`],
        ],
      ),
    );
    console.log(`cache: ${cache.size} entries, ${cache.bytes} bytes`);
    await service.shutdown();
  } finally {
    rmSync(repo, { recursive: true, force: true });
  }
}

void main();
