/**
 * What a shadow at 100% costs the primary: the MLP (256-1024-16) served alone, against the
 * same model whose every answered request is also sent to a shadow version (same weights),
 * compared, and dropped, in one run. Target: under 10% fewer primary requests/s where the
 * machine has the spare cores for the shadow's work (a shadow doubles the inference work).
 *
 *   npx tsc -p tsconfig.json && node dist/bench/shadow.js [-- --model small|large --seconds 2 --concurrency 8 --rounds 2]
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { mlpModel } from '../test/fixtures/models';
import { closedLoop, mlpRequest, serveInProcess, type LoadResult } from './inprocess-load';
import { formatTable } from './table';

const { values: args } = parseArgs({ options: { seconds: { type: 'string', default: '2' }, concurrency: { type: 'string', default: '8' }, rounds: { type: 'string', default: '2' }, model: { type: 'string', default: 'small' } } });
const SECONDS = Number(args.seconds);
const CONCURRENCY = Number(args.concurrency);
const ROUNDS = Number(args.rounds);
/** small: the MLP 256-1024-16 of design.md; large: 1024-4096-1024 (inference dominates). */
const SIZES = args.model === 'large' ? { inputDim: 1024, hidden: 4096, outputDim: 1024 } : { inputDim: 256, hidden: 1024, outputDim: 16 };
const LABEL = `MLP ${SIZES.inputDim}-${SIZES.hidden}-${SIZES.outputDim}`;

async function main(): Promise<void> {
  const repo = mkdtempSync(join(tmpdir(), 'tw-bench-shadow-'));
  try {
    const models = [
      ['plain', {}],
      ['shadowed', { routing: { weights: { '1': 100 }, shadow: { version: '2', percent: 100 } } }],
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
    const best = new Map<string, LoadResult>();
    for (let r = 0; r < ROUNDS; r++) {
      for (const [model] of models) {
        const result = await closedLoop(door, model, next, SECONDS, CONCURRENCY);
        if ((best.get(model)?.rps ?? 0) < result.rps) best.set(model, result);
        // Let the last shadows of this round finish before the next round measures.
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
    const plain = best.get('plain')!;
    const shadowed = best.get('shadowed')!;
    const copies = (await service.registry.metrics()).match(/tensorwire_shadow_requests_total\{[^}]*outcome="(\w+)"\} (\d+)/g) ?? [];
    console.log(`${LABEL}, batch 1, ${CONCURRENCY} callers in-process; best of ${ROUNDS} x ${SECONDS}s`);
    console.log(
      formatTable(
        ['shadow', 'req/s', 'p50 ms', 'p99 ms', 'vs none'],
        [
          ['none', plain.rps, plain.p50Ms, plain.p99Ms, '1.00x'],
          ['100%', shadowed.rps, shadowed.p50Ms, shadowed.p99Ms, `${(shadowed.rps / plain.rps).toFixed(2)}x`],
        ],
      ),
    );
    console.log(`shadow copies: ${copies.join(', ')}`);
    await service.shutdown();
  } finally {
    rmSync(repo, { recursive: true, force: true });
  }
}

void main();
