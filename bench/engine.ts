/**
 * In-process engine throughput against onnxruntime-node on the same model, same ONNX Runtime
 * version, same threads, in the same run. Both run one batch at a time on one intra-op thread,
 * so the ratio is the overhead of tensorwire's path (slot write, executor hop, completion)
 * against onnxruntime-node's (tensor creation, synchronous-on-a-worker run).
 *
 *   npm run bench:engine [-- --seconds 1.5 --batches 1,8,32,64,128]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { loadModel, type LoadedModel } from '../lib/engine';
import { mlpModel } from '../test/fixtures/models';
import { uniformFloats } from '../test/fixtures/random';
import { formatTable } from './table';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '1.5' },
    batches: { type: 'string', default: '1,8,32,64,128' },
    rounds: { type: 'string', default: '2' },
  },
});
const SECONDS = Number(args.seconds);
const BATCHES = args.batches!.split(',').map(Number);
/** Alternating rounds per row; each side keeps its best (noise on a shared box only slows a round). */
const ROUNDS = Number(args.rounds);

interface Workload {
  name: string;
  inputDim: number;
  hidden: number;
  outputDim: number;
}
const WORKLOADS: Workload[] = [
  { name: 'MLP 256-1024-16', inputDim: 256, hidden: 1024, outputDim: 16 },
  { name: 'MLP 1024-4096-1024', inputDim: 1024, hidden: 4096, outputDim: 1024 },
];

/** Runs `step` repeatedly for SECONDS (after a short warm-up) and returns batches per second. */
async function rate(step: () => Promise<void>): Promise<number> {
  const warmEnd = performance.now() + 200;
  while (performance.now() < warmEnd) await step();
  let n = 0;
  const start = performance.now();
  const end = start + SECONDS * 1000;
  while (performance.now() < end) {
    await step();
    n++;
  }
  return n / ((performance.now() - start) / 1000);
}

async function tensorwireStep(model: LoadedModel, input: Float32Array, batch: number, dim: number): Promise<void> {
  const slot = model.acquireSlot()!;
  slot.inputView(0, input.byteLength).set(new Uint8Array(input.buffer, input.byteOffset, input.byteLength));
  const r = await slot.run([[batch, dim]]);
  r.outputs[0].data.slice(); // copy out, as a caller must before release (ORT node hands back a fresh buffer)
  slot.release();
}

/** Two slots in flight: the next batch is staged while the current one runs (double buffering). */
async function tensorwirePipelined(model: LoadedModel, input: Float32Array, batch: number, dim: number): Promise<number> {
  let n = 0;
  let stop = false;
  const lane = async () => {
    while (!stop) {
      await tensorwireStep(model, input, batch, dim);
      n++;
    }
  };
  await new Promise((r) => setTimeout(r, 0));
  const start = performance.now();
  const lanes = [lane(), lane()];
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  stop = true;
  await Promise.all(lanes);
  return n / ((performance.now() - start) / 1000);
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'tw-bench-'));
  const rows: (string | number)[][] = [];
  try {
    for (const w of WORKLOADS) {
      const path = await mlpModel(dir, { inputDim: w.inputDim, hidden: w.hidden, outputDim: w.outputDim, file: `${w.name.replace(/\s/g, '_')}.onnx` });
      const maxBatch = Math.max(...BATCHES);
      const model = await loadModel(path, { intraOpThreads: 1, maxBatchSize: maxBatch });
      const session = await ort.InferenceSession.create(path, { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'all', executionMode: 'sequential' });
      for (const batch of BATCHES) {
        const input = uniformFloats(batch, batch * w.inputDim, 1);
        // Alternate the two to spread machine noise evenly; keep each side's best round.
        let twRate = 0;
        let ortRate = 0;
        for (let round = 0; round < ROUNDS; round++) {
          ortRate = Math.max(ortRate, await rate(async () => {
            const out = await session.run({ input: new ort.Tensor('float32', input, [batch, w.inputDim]) });
            void out.output.data;
          }));
          twRate = Math.max(twRate, await rate(() => tensorwireStep(model, input, batch, w.inputDim)));
        }
        const piped = await tensorwirePipelined(model, input, batch, w.inputDim);
        rows.push([w.name, String(batch), ortRate * batch, twRate * batch, (twRate / ortRate).toFixed(2), piped * batch]);
        process.stderr.write(`${w.name} batch ${batch}: ratio ${(twRate / ortRate).toFixed(2)}\n`);
      }
      await model.unload();
      await session.release();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(formatTable(['model', 'batch', 'onnxruntime-node samples/s', 'tensorwire samples/s', 'ratio', 'tensorwire 2 slots in flight samples/s'], rows));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
