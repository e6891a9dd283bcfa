/**
 * BatchRunner against the real engine: requests are batched into real staging slots, split
 * back row by row with the right numbers, and cancellation, deadlines, priorities, queue
 * limits, live changes and shutdown behave as a client would see them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, type LoadedModel } from '../lib/engine';
import type { Datatype } from '../lib/engine/types';
import type { ErrorCode } from '../lib/errors';
import type { InferInputTensor, InferRequest, StageTimings } from '../lib/protocol/types';
import type { BatcherConfigPatch } from '../lib/scheduler/batcher-config';
import { BatchRunner, type BatchRunnerListener, type RunnerResult } from '../lib/scheduler/batch-runner';
import {
  dynamicSeqModel,
  dynamicSeqReference,
  fixedShapeModel,
  fixedShapeReference,
  mlpModel,
  mlpReference,
  mlpWeights,
  multiIoModel,
  slowModel,
  slowReference,
} from './fixtures/models';
import { uniformFloats } from './fixtures/random';
import { bytesOf, floats, tempDir } from './helpers/engine-run';
import { rejection } from './helpers/expect-error';

const tmp = tempDir('tw-runner-');
afterAll(() => tmp.cleanup());

function tensor(name: string, datatype: Datatype, shape: number[], values: ArrayBufferView): InferInputTensor {
  return { name, datatype, shape, data: bytesOf(values) };
}

function request(inputs: InferInputTensor[], extra: Partial<InferRequest> = {}): InferRequest {
  return { inputs, binaryDataOutput: true, parameters: {}, ...extra };
}

/** Records every listener call, in order. */
class Recorder implements BatchRunnerListener {
  enqueued = 0;
  dequeued = 0;
  batches: number[] = [];
  outcomes: (ErrorCode | 'success')[] = [];
  timings: StageTimings[] = [];
  onEnqueue(): void {
    this.enqueued++;
  }
  onDequeue(count: number): void {
    this.dequeued += count;
  }
  onBatch(batchSize: number): void {
    this.batches.push(batchSize);
  }
  onComplete(outcome: 'success' | 'failure', reason: ErrorCode | undefined, timings: StageTimings | undefined): void {
    this.outcomes.push(outcome === 'success' ? 'success' : reason!);
    if (timings) this.timings.push(timings);
  }
}

/** Lets the runner's setImmediate scheduling run. */
const turn = () => new Promise<void>((r) => setImmediate(r));

/** Polls until `cond` holds (the engine completes batches on its own threads). */
async function until(cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const start = performance.now();
  while (!cond()) {
    if (performance.now() - start > timeoutMs) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 1));
  }
}

function expectClose(actual: Float32Array, expected: Float32Array, tol = 1e-4): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    if (Math.abs(actual[i]! - expected[i]!) > tol) throw new Error(`value ${i}: got ${actual[i]}, expected ${expected[i]}`);
  }
}

describe('batching a small MLP', () => {
  const sizes = { inputDim: 8, hidden: 16, outputDim: 4 };
  const w = mlpWeights(sizes);
  let model: LoadedModel;
  beforeAll(async () => {
    model = await loadModel(await mlpModel(tmp.dir, sizes), { maxBatchSize: 16 });
  });
  afterAll(() => model.unload());

  function mlpRequest(rows: number, seed: number) {
    const x = uniformFloats(seed, rows * sizes.inputDim, 1);
    return { x, req: request([tensor('input', 'FP32', [rows, sizes.inputDim], x)]) };
  }

  it('batches concurrent requests, splits the outputs by request, and the results stay valid after the slot is reused', async () => {
    const rec = new Recorder();
    const runner = new BatchRunner(model, { listener: rec, name: 'mlp:1' });
    const wave = (seedBase: number) =>
      Array.from({ length: 20 }, (_, k) => {
        const rows = (k % 3) + 1;
        const { x, req } = mlpRequest(rows, seedBase + k);
        return { rows, x, promise: runner.infer(req, { batchSize: rows, compatKey: '' }) };
      });
    const first = wave(100);
    const firstResults = await Promise.all(first.map((r) => r.promise));
    const second = wave(200);
    const secondResults = await Promise.all(second.map((r) => r.promise));

    for (const [requests, results] of [
      [first, firstResults],
      [second, secondResults],
    ] as const) {
      requests.forEach((r, k) => {
        const out = results[k]!.outputs;
        expect(out.map((o) => [o.name, o.datatype, o.shape])).toEqual([['output', 'FP32', [r.rows, sizes.outputDim]]]);
        expect(out[0]!.data.byteLength).toBe(r.rows * sizes.outputDim * 4);
        expectClose(floats(out[0]!.data), mlpReference(w, r.x));
      });
    }
    // 40 requests, 2 x 39 rows: batched (fewer batches than requests), no batch over 16 rows.
    expect(rec.batches.reduce((a, b) => a + b, 0)).toBe(78);
    expect(rec.batches.length).toBeLessThan(40);
    expect(Math.max(...rec.batches)).toBeLessThanOrEqual(16);
    expect(rec.enqueued).toBe(40);
    expect(rec.dequeued).toBe(40);
    expect(rec.outcomes).toEqual(new Array(40).fill('success'));
    for (const t of [...firstResults, ...secondResults].map((r) => r.timings)) {
      expect(t.queueUs).toBeGreaterThanOrEqual(0);
      expect(t.computeInferUs).toBeGreaterThan(0);
      expect(t.computeInputUs).toBeGreaterThanOrEqual(0);
      expect(t.computeOutputUs).toBeGreaterThanOrEqual(0);
    }
    expect(runner.queueDepth()).toBe(0);
    expect(runner.inflight()).toBe(0);
  });

  it('dispatches a lone request at once when the instance is idle, whatever max_queue_delay says', async () => {
    const runner = new BatchRunner(model, { config: { maxQueueDelayUs: 5_000_000 } });
    const { x, req } = mlpRequest(1, 7);
    const start = performance.now();
    const result = await runner.infer(req, { batchSize: 1, compatKey: '' });
    expect(performance.now() - start).toBeLessThan(1000);
    expectClose(floats(result.outputs[0]!.data), mlpReference(w, x));
  });

  it('a failing batch whose requests all fail alone too rejects each with the engine error, and the runner keeps serving', async () => {
    const rec = new Recorder();
    const runner = new BatchRunner(model, { listener: rec });
    // Seven features where the model takes eight: consistent bytes, so only ONNX Runtime objects.
    const bad = (seed: number) => request([tensor('input', 'FP32', [1, sizes.inputDim - 1], uniformFloats(seed, sizes.inputDim - 1, 1))]);
    const pa = runner.infer(bad(1), { batchSize: 1, compatKey: 'seven' });
    const pb = runner.infer(bad(2), { batchSize: 1, compatKey: 'seven' });
    const [ea, eb] = await Promise.all([rejection(pa), rejection(pb)]);
    // The batch of two was re-run one request at a time (scheduler-isolation.test.ts): each failed on its own.
    expect(ea).not.toBe(eb);
    expect(eb.code).toBe(ea.code);
    expect(eb.message).toBe(ea.message);
    expect(['INVALID_INPUT', 'ENGINE_FAILURE']).toContain(ea.code);
    expect(rec.batches).toEqual([]);
    expect(rec.outcomes).toEqual([ea.code, ea.code]);
    const { x, req } = mlpRequest(2, 3);
    const ok = await runner.infer(req, { batchSize: 2, compatKey: '' });
    expectClose(floats(ok.outputs[0]!.data), mlpReference(w, x));
  });

  it('rejects a request whose bytes do not match its shape before queueing it', async () => {
    const runner = new BatchRunner(model);
    const short = request([tensor('input', 'FP32', [1, sizes.inputDim], new Float32Array(sizes.inputDim - 1))]);
    const err = await rejection(runner.infer(short, { batchSize: 1, compatKey: '' }));
    expect(err.code).toBe('INVALID_INPUT');
    expect(err.message).toBe("input 'input': shape [1,8] of FP32 needs 32 bytes, got 28");
    expect(runner.queueDepth()).toBe(0);
  });

  it('fails a batch with INTERNAL when requests of different shapes share a compatKey, instead of reading wrong rows', async () => {
    const runner = new BatchRunner(model);
    const seven = request([tensor('input', 'FP32', [1, 7], new Float32Array(7))]);
    const eight = mlpRequest(1, 4).req;
    const [e1, e2] = await Promise.all([rejection(runner.infer(eight, { batchSize: 1, compatKey: '' })), rejection(runner.infer(seven, { batchSize: 1, compatKey: '' }))]);
    expect(e1).toBe(e2);
    expect(e1.code).toBe('INTERNAL');
    expect(e1.message).toBe("requests batched together have different shapes for input 'input': 60 bytes for batch shape [2,8] (compatKey must separate them)");
  });
});

describe('inputs, outputs and shapes', () => {
  it('takes inputs in any order, returns only the requested outputs, and rejects unknown tensors by name', async () => {
    const model = await loadModel(await multiIoModel(tmp.dir), { maxBatchSize: 8 });
    try {
      const runner = new BatchRunner(model);
      const a1 = new BigInt64Array([1n, -2n, 3n, 4n, 5n, 6n]);
      const b1 = new Float32Array([0.5, 0.25, -1, 2, 3, 4]);
      const a2 = new BigInt64Array([7n, 8n, 9n]);
      const b2 = new Float32Array([1, 1, 1]);
      const p1 = runner.infer(request([tensor('b', 'FP32', [2, 3], b1), tensor('a', 'INT64', [2, 3], a1)], { outputs: [{ name: 'scaled', binary: true }] }), {
        batchSize: 2,
        compatKey: '',
      });
      const p2 = runner.infer(request([tensor('a', 'INT64', [1, 3], a2), tensor('b', 'FP32', [1, 3], b2)]), { batchSize: 1, compatKey: '' });
      const [r1, r2] = await Promise.all([p1, p2]);
      expect(r1.outputs.map((o) => [o.name, o.datatype, o.shape])).toEqual([['scaled', 'INT64', [2, 3]]]);
      expect([...new BigInt64Array(r1.outputs[0]!.data.slice().buffer)]).toEqual([2n, -4n, 6n, 8n, 10n, 12n]);
      expect(r2.outputs.map((o) => [o.name, o.shape])).toEqual([
        ['sum', [1, 3]],
        ['scaled', [1, 3]],
      ]);
      expect([...floats(r2.outputs[0]!.data)]).toEqual([8, 9, 10]);
      expect([...new BigInt64Array(r2.outputs[1]!.data.slice().buffer)]).toEqual([14n, 16n, 18n]);

      const unknownOutput = await rejection(
        runner.infer(request([tensor('a', 'INT64', [1, 3], a2), tensor('b', 'FP32', [1, 3], b2)], { outputs: [{ name: 'nope', binary: false }] }), {
          batchSize: 1,
          compatKey: '',
        }),
      );
      expect(unknownOutput.code).toBe('INVALID_INPUT');
      expect(unknownOutput.message).toBe("output 'nope' is not an output of the model (expected 'sum', 'scaled')");
      const missing = await rejection(runner.infer(request([tensor('a', 'INT64', [1, 3], a2)]), { batchSize: 1, compatKey: '' }));
      expect(missing.message).toBe("input 'b' is missing: the model expects 'a', 'b'");

      // Repeats are refused: a request must not make the server copy an output many times over.
      const ab = [tensor('a', 'INT64', [1, 3], a2), tensor('b', 'FP32', [1, 3], b2)];
      const scaled = { name: 'scaled', binary: true };
      const repeated = await rejection(runner.infer(request(ab, { outputs: Array.from({ length: 1000 }, () => scaled) }), { batchSize: 1, compatKey: '' }));
      expect(repeated.code).toBe('INVALID_INPUT');
      expect(repeated.message).toBe("output 'scaled' is requested more than once");
      const twice = await rejection(runner.infer(request([...ab, tensor('a', 'INT64', [1, 3], a2)]), { batchSize: 1, compatKey: '' }));
      expect(twice.message).toBe("input 'a' is given more than once");
      expect(runner.queueDepth()).toBe(0);
    } finally {
      await model.unload();
    }
  });

  it('runs a model that does not batch one request at a time, shapes as given', async () => {
    const model = await loadModel(await fixedShapeModel(tmp.dir));
    try {
      expect(model.maxBatchSize).toBe(0);
      const rec = new Recorder();
      const runner = new BatchRunner(model, { listener: rec });
      const images = [uniformFloats(11, 48, 1), uniformFloats(12, 48, 1), uniformFloats(13, 48, 1)];
      const results = await Promise.all(images.map((img) => runner.infer(request([tensor('image', 'FP32', [1, 3, 4, 4], img)]), { batchSize: 1, compatKey: '' })));
      results.forEach((r, k) => {
        expect(r.outputs[0]!.shape).toEqual([1, 3]);
        expectClose(floats(r.outputs[0]!.data), fixedShapeReference(images[k]!), 1e-6);
      });
      expect(rec.batches).toEqual([1, 1, 1]);
    } finally {
      await model.unload();
    }
  });

  it('batches only requests with the same compatKey (same sequence length)', async () => {
    const model = await loadModel(await dynamicSeqModel(tmp.dir), { maxBatchSize: 8 });
    try {
      const rec = new Recorder();
      const runner = new BatchRunner(model, { listener: rec });
      const cases = Array.from({ length: 8 }, (_, k) => {
        const seq = k % 2 === 0 ? 3 : 5;
        const rows = (k % 3) + 1;
        const tokens = uniformFloats(50 + k, rows * seq, 1);
        return { seq, tokens, p: runner.infer(request([tensor('tokens', 'FP32', [rows, seq], tokens)]), { batchSize: rows, compatKey: `T=${seq}` }) };
      });
      for (const c of cases) {
        const r = await c.p;
        expect(r.outputs[0]!.shape).toEqual([c.tokens.length / c.seq, 1]);
        expectClose(floats(r.outputs[0]!.data), dynamicSeqReference(c.tokens, c.seq), 1e-5);
      }
      // Rows of T=3: 1+3+2+1 = 7; of T=5: 2+1+3+2 = 8; mixed batches would have failed in the engine.
      expect(rec.batches.reduce((a, b) => a + b, 0)).toBe(15);
      expect(rec.outcomes.every((o) => o === 'success')).toBe(true);
    } finally {
      await model.unload();
    }
  });
});

describe('queueing behind a slow batch', () => {
  const WIDTH = 512;
  const opts = { layers: 1000, width: WIDTH };
  let model: LoadedModel;
  beforeAll(async () => {
    model = await loadModel(await slowModel(tmp.dir, opts), { maxBatchSize: 64 });
  });
  afterAll(() => model.unload());

  function slow(runner: BatchRunner, rows: number, seed: number, extra: Partial<InferRequest> = {}, signal?: AbortSignal) {
    const x = uniformFloats(seed, rows * WIDTH, 1);
    const promise = runner.infer(request([tensor('x', 'FP32', [rows, WIDTH], x)], extra), { batchSize: rows, compatKey: '' }, signal);
    return { x, promise };
  }

  async function expectExact(job: { x: Float32Array; promise: Promise<RunnerResult> }): Promise<void> {
    const r = await job.promise;
    expect([...floats(r.outputs[0]!.data)]).toEqual([...slowReference(job.x, opts)]);
  }

  /** Records the order in which promises settle. */
  function order(jobs: Record<string, Promise<unknown>>): Promise<string[]> {
    const seen: string[] = [];
    return Promise.all(Object.entries(jobs).map(([name, p]) => p.then(() => seen.push(name), () => seen.push(`${name}!`)))).then(() => seen);
  }

  function runner(config: BatcherConfigPatch = {}, rec = new Recorder()) {
    return { rec, runner: new BatchRunner(model, { config, listener: rec, name: 'slow:1' }) };
  }

  it('a request withdrawn while queued is rejected CANCELLED at once; the others are answered exactly', async () => {
    const { runner: r, rec } = runner();
    const big = slow(r, 32, 1);
    await turn();
    expect(r.inflight()).toBe(1);
    const ctl = new AbortController();
    const b = slow(r, 1, 2, {}, ctl.signal);
    const c = slow(r, 1, 3);
    await turn();
    expect(r.queueDepth()).toBe(2); // the instance is busy and 2 rows are no full batch: they wait
    const settled = order({ big: big.promise, b: b.promise, c: c.promise });
    ctl.abort();
    const err = await rejection(b.promise);
    expect(err.code).toBe('CANCELLED');
    expect(err.status).toBe(499);
    expect(r.queueDepth()).toBe(1);
    await expectExact(big);
    await expectExact(c);
    expect(await settled).toEqual(['b!', 'big', 'c']);
    expect(rec.outcomes.filter((o) => o === 'CANCELLED')).toHaveLength(1);
    await r.drain();
  });

  it('a request withdrawn while its batch runs is rejected at once and does not disturb the others in the batch', async () => {
    const { runner: r, rec } = runner();
    const ctl = new AbortController();
    const a1 = slow(r, 16, 4, {}, ctl.signal);
    const a2 = slow(r, 16, 5);
    await turn();
    expect(r.inflight()).toBe(2);
    expect(r.queueDepth()).toBe(0);
    const settled = order({ a1: a1.promise, a2: a2.promise });
    ctl.abort();
    expect((await rejection(a1.promise)).code).toBe('CANCELLED');
    await expectExact(a2);
    expect(await settled).toEqual(['a1!', 'a2']);
    expect(rec.batches).toEqual([32]);
  });

  it('cancelling every request of a running batch stops it, and the runner goes on', async () => {
    const { runner: r } = runner();
    const ctl = new AbortController();
    const a = slow(r, 64, 6, {}, ctl.signal);
    await turn();
    ctl.abort();
    expect((await rejection(a.promise)).code).toBe('CANCELLED');
    await until(() => r.inflight() === 0);
    await expectExact(slow(r, 2, 7));
  });

  it('a queued request times out on time while a long batch runs (DEADLINE_EXCEEDED, 504)', async () => {
    const { runner: r, rec } = runner({ defaultQueuePolicy: { allowTimeoutOverride: true } });
    const start = performance.now();
    const big = slow(r, 48, 8);
    await turn();
    const late = slow(r, 1, 9, { timeoutUs: 20_000 });
    const patient = slow(r, 1, 10);
    const settled = order({ big: big.promise, late: late.promise, patient: patient.promise });
    const err = await rejection(late.promise);
    const rejectedAfterMs = performance.now() - start;
    expect(err.code).toBe('DEADLINE_EXCEEDED');
    expect(err.status).toBe(504);
    expect(err.message).toMatch(/^request timed out after \d+ us in the queue of slow:1$/);
    await expectExact(big);
    const bigMs = performance.now() - start;
    await expectExact(patient);
    expect(await settled).toEqual(['late!', 'big', 'patient']);
    expect(rejectedAfterMs).toBeLessThan(bigMs);
    expect(rec.outcomes).toContain('DEADLINE_EXCEEDED');
  });

  it('a high-priority request overtakes queued low-priority ones', async () => {
    const { runner: r } = runner({ maxBatchSize: 1, priorityLevels: 2, defaultPriorityLevel: 2 });
    const a = slow(r, 1, 11);
    await turn();
    await turn(); // a runs; the second slot stays free for the next batch
    const l1 = slow(r, 1, 12);
    const l2 = slow(r, 1, 13);
    const h = slow(r, 1, 14, { priority: 1 });
    const settled = order({ a: a.promise, l1: l1.promise, l2: l2.promise, h: h.promise });
    await Promise.all([expectExact(a), expectExact(l1), expectExact(l2), expectExact(h)]);
    expect(await settled).toEqual(['a', 'h', 'l1', 'l2']);
  });

  it('a full queue rejects at once with QUEUE_FULL and Retry-After 1', async () => {
    const { runner: r, rec } = runner({ defaultQueuePolicy: { maxQueueSize: 2 } });
    const a = slow(r, 8, 15);
    await turn();
    const b = slow(r, 1, 16);
    const c = slow(r, 1, 17);
    const err = await rejection(slow(r, 1, 18).promise);
    expect(err.code).toBe('QUEUE_FULL');
    expect(err.status).toBe(503);
    expect(err.retryAfterSeconds).toBe(1);
    expect(r.queueDepth()).toBe(2);
    await Promise.all([expectExact(a), expectExact(b), expectExact(c)]);
    expect(rec.outcomes.filter((o) => o === 'QUEUE_FULL')).toHaveLength(1);
    expect(rec.enqueued).toBe(3);
  });

  it('a live change to max_batch_size rejects queued requests that no longer fit', async () => {
    const { runner: r } = runner();
    const a = slow(r, 8, 19);
    await turn();
    const big = slow(r, 8, 20);
    const small = slow(r, 2, 21);
    r.updateConfig({ maxBatchSize: 4 });
    expect(r.config.maxBatchSize).toBe(4);
    const err = await rejection(big.promise);
    expect(err.code).toBe('INVALID_INPUT');
    expect(err.message).toBe('batch size 8 exceeds the new max_batch_size 4 of slow:1');
    expect(() => r.updateConfig({ maxBatchSize: 65 })).toThrow("max_batch_size: 65 exceeds the model's limit of 64");
    await Promise.all([expectExact(a), expectExact(small)]);
  });

  it('close() rejects queued and later requests with UNAVAILABLE, lets the running batch finish, and drain() waits for it', async () => {
    const { runner: r, rec } = runner();
    const a = slow(r, 16, 22);
    await turn();
    const queued = slow(r, 1, 23);
    await turn();
    r.close('version 1 is unloading');
    const err = await rejection(queued.promise);
    expect(err.code).toBe('UNAVAILABLE');
    expect(err.message).toBe('slow:1 is not available: version 1 is unloading');
    expect((await rejection(slow(r, 1, 24).promise)).code).toBe('UNAVAILABLE');
    let drained = false;
    const drain = r.drain().then(() => (drained = true));
    expect(drained).toBe(false);
    await expectExact(a);
    await drain;
    expect(r.inflight()).toBe(0);
    expect(rec.outcomes.sort()).toEqual(['UNAVAILABLE', 'UNAVAILABLE', 'success']);
  });
});
