/**
 * A batch that fails in the engine because of one client's input is taken apart, against the
 * real engine: a GatherElements model whose run fails for an index out of range. Good
 * requests batched with bad ones get their own exact values, bad ones get the engine's error,
 * and the re-runs respect cancellation, timeouts, shutdown and their budget.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, type LoadedModel } from '../lib/engine';
import type { ErrorCode } from '../lib/errors';
import type { InferRequest } from '../lib/protocol/types';
import { failedRunBudget, type IsolationOutcome } from '../lib/scheduler/batch-isolation';
import { BatchRunner, MAX_ISOLATIONS, type BatchRunnerListener, type RunnerResult } from '../lib/scheduler/batch-runner';
import type { BatcherConfigPatch } from '../lib/scheduler/batcher-config';
import { ManualClock } from '../lib/scheduler/clock';
import { PICK_WIDTH, pickModel, pickReference } from './fixtures/failing-models';
import { uniformFloats } from './fixtures/random';
import { bytesOf, floats, tempDir } from './helpers/engine-run';
import { rejection } from './helpers/expect-error';

const tmp = tempDir('tw-isolation-');
let model: LoadedModel;
beforeAll(async () => {
  model = await loadModel(await pickModel(tmp.dir), { maxBatchSize: 16 });
});
afterAll(async () => {
  await model.unload();
  tmp.cleanup();
});

const OUT_OF_RANGE = /GatherElements op: Out of range value in index tensor/;

/** Records what the runner reports. */
class Recorder implements BatchRunnerListener {
  batches: number[] = [];
  outcomes: (ErrorCode | 'success')[] = [];
  isolations: { outcome: IsolationOutcome; reruns: number }[] = [];
  /** Called on every failure, after it is recorded (tests act at that moment). */
  onFailure: (reason: ErrorCode) => void = () => undefined;
  onEnqueue(): void {}
  onDequeue(): void {}
  onBatch(batchSize: number): void {
    this.batches.push(batchSize);
  }
  onComplete(outcome: 'success' | 'failure', reason: ErrorCode | undefined): void {
    this.outcomes.push(outcome === 'success' ? 'success' : reason!);
    if (outcome === 'failure') this.onFailure(reason!);
  }
  onIsolation(outcome: IsolationOutcome, reruns: number): void {
    this.isolations.push({ outcome, reruns });
  }
}

interface Job {
  x: Float32Array;
  index: BigInt64Array;
  bad: boolean;
  controller: AbortController;
  promise: Promise<RunnerResult>;
}

/** A request of `rows` rows whose x values identify it; `bad` puts an out-of-range index in its last row. */
function job(runner: BatchRunner, seed: number, rows: number, bad: boolean, extra: Partial<InferRequest> = {}): Job {
  const x = uniformFloats(seed, rows * PICK_WIDTH, 1000);
  const index = BigInt64Array.from({ length: rows }, (_, r) => BigInt((seed + r) % PICK_WIDTH));
  if (bad) index[rows - 1] = 9n;
  const request: InferRequest = {
    inputs: [
      { name: 'x', datatype: 'FP32', shape: [rows, PICK_WIDTH], data: bytesOf(x) },
      { name: 'index', datatype: 'INT64', shape: [rows, 1], data: bytesOf(index) },
    ],
    binaryDataOutput: true,
    parameters: {},
    ...extra,
  };
  const controller = new AbortController();
  const promise = runner.infer(request, { batchSize: rows, compatKey: '' }, controller.signal);
  promise.catch(() => undefined); // each test awaits what it checks
  return { x, index, bad, controller, promise };
}

async function expectOwnValues(j: Job): Promise<void> {
  const r = await j.promise;
  expect(r.outputs[0]!.shape).toEqual([j.index.length, 1]);
  expect([...floats(r.outputs[0]!.data)]).toEqual([...pickReference(j.x, j.index)]);
}

function runner(config: BatcherConfigPatch = {}, clock?: ManualClock) {
  const rec = new Recorder();
  return { rec, runner: new BatchRunner(model, { config, listener: rec, name: 'pick:1', clock }) };
}

describe('a batch that fails because of some of its requests', () => {
  it('fails only the bad requests; every good one batched with them gets its own values', async () => {
    const { runner: r, rec } = runner();
    const bad = new Set([3, 11, 12, 30]);
    const jobs = Array.from({ length: 40 }, (_, k) => job(r, k + 1, (k % 3) + 1, bad.has(k)));
    for (const j of jobs) {
      if (j.bad) {
        const err = await rejection(j.promise);
        expect(err.code).toBe('ENGINE_FAILURE');
        expect(err.status).toBe(500);
        expect(err.message).toMatch(OUT_OF_RANGE);
      } else {
        await expectOwnValues(j);
      }
    }
    expect(rec.outcomes.filter((o) => o === 'success')).toHaveLength(36);
    expect(rec.outcomes.filter((o) => o === 'ENGINE_FAILURE')).toHaveLength(4);
    // Every failed batch was isolated; the 4 bad requests cost few re-runs, not one per request.
    expect(rec.isolations.length).toBeGreaterThan(0);
    expect(rec.isolations.every((i) => i.outcome === 'isolated')).toBe(true);
    const reruns = rec.isolations.reduce((a, i) => a + i.reruns, 0);
    expect(reruns).toBeLessThanOrEqual(4 * 2 * Math.ceil(Math.log2(16)));
    expect(r.inflight()).toBe(0);
    await r.drain();
  });

  it('re-runs by halves: a batch of 8 with its first request bad costs 6 re-runs', async () => {
    const { runner: r, rec } = runner();
    const jobs = Array.from({ length: 8 }, (_, k) => job(r, 100 + k, 1, k === 0));
    expect((await rejection(jobs[0]!.promise)).message).toMatch(OUT_OF_RANGE);
    for (const j of jobs.slice(1)) await expectOwnValues(j);
    // One part at a time: [0-3] fails, [0,1] fails, [0] fails, [1] ok, [2,3] ok, [4-7] ok.
    expect(rec.isolations).toEqual([{ outcome: 'isolated', reruns: 6 }]);
    expect(rec.batches).toEqual([1, 2, 4]);
  });

  it('does not re-run a request whose client left, and times out one whose deadline passed while it waited', async () => {
    const clock = new ManualClock(1_000_000);
    const { runner: r, rec } = runner({ defaultQueuePolicy: { allowTimeoutOverride: true } }, clock);
    const jobs = Array.from({ length: 8 }, (_, k) => job(r, 200 + k, 1, k === 0, k === 6 ? { timeoutUs: 1000 } : {}));
    // When the bad request has failed alone ([0-3], [0,1], [0] failed), [1], [2,3] and [4-7] wait for their re-run.
    rec.onFailure = (reason) => {
      if (reason !== 'ENGINE_FAILURE') return;
      expect(r.inflight()).toBe(7);
      jobs[5]!.controller.abort();
      clock.advance(2000);
    };
    expect((await rejection(jobs[0]!.promise)).code).toBe('ENGINE_FAILURE');
    const cancelled = await rejection(jobs[5]!.promise);
    expect(cancelled.code).toBe('CANCELLED');
    expect(cancelled.message).toBe('request cancelled while it waited to be re-run after its batch failed');
    const late = await rejection(jobs[6]!.promise);
    expect(late.code).toBe('DEADLINE_EXCEEDED');
    expect(late.message).toBe('request timed out after 2000 us: its batch failed and it waited to be re-run in pick:1');
    for (const k of [1, 2, 3, 4, 7]) await expectOwnValues(jobs[k]!);
    // [4-7] ran as [4, 7]: the cancelled and the late request were not run again.
    expect(rec.batches).toEqual([1, 2, 2]);
    await r.drain();
    expect(r.inflight()).toBe(0);
  });

  it('close() answers the requests waiting for a re-run with UNAVAILABLE, and drain() resolves', async () => {
    const { runner: r, rec } = runner();
    const jobs = Array.from({ length: 8 }, (_, k) => job(r, 300 + k, 1, k === 0));
    rec.onFailure = (reason) => {
      if (reason === 'ENGINE_FAILURE') r.close('version 1 is unloading');
    };
    expect((await rejection(jobs[0]!.promise)).code).toBe('ENGINE_FAILURE');
    for (const j of jobs.slice(1)) {
      const err = await rejection(j.promise);
      expect(err.code).toBe('UNAVAILABLE');
      expect(err.message).toBe('pick:1 is not available: version 1 is unloading');
    }
    await r.drain();
    expect(r.inflight()).toBe(0);
  });
});

describe('a batch that fails whatever its requests', () => {
  it('gives up after the budget of failed re-runs instead of running every request alone', async () => {
    const { runner: r, rec } = runner();
    const jobs = Array.from({ length: 16 }, (_, k) => job(r, 400 + k, 1, true));
    for (const j of jobs) {
      const err = await rejection(j.promise);
      expect(err.code).toBe('ENGINE_FAILURE');
      expect(err.message).toMatch(OUT_OF_RANGE);
    }
    expect(failedRunBudget(16)).toBe(10);
    // Not 31 runs (every part down to single requests): 10 failed re-runs and no success.
    expect(rec.isolations).toEqual([{ outcome: 'gave_up', reruns: 10 }]);
    expect(rec.batches).toEqual([]);
  });

  it(`takes apart at most ${MAX_ISOLATIONS} failed batches at once; later ones fail as a whole`, async () => {
    // 12 slots: 12 full batches of 2 are staged at once and all fail.
    const many = await loadModel(await pickModel(tmp.dir, { file: 'pick-12-slots.onnx' }), { maxBatchSize: 2, slotsPerInstance: 12 });
    try {
      const rec = new Recorder();
      const r = new BatchRunner(many, { listener: rec, name: 'pick:1' });
      const jobs = Array.from({ length: 24 }, (_, k) => job(r, 500 + k, 1, true));
      for (const j of jobs) expect((await rejection(j.promise)).message).toMatch(OUT_OF_RANGE);
      await r.drain();
      const outcomes = rec.isolations.map((i) => i.outcome).sort();
      expect(outcomes).toEqual([...new Array(MAX_ISOLATIONS).fill('isolated'), ...new Array(12 - MAX_ISOLATIONS).fill('skipped')]);
      expect(rec.isolations.filter((i) => i.outcome === 'isolated').every((i) => i.reruns === 2)).toBe(true);
      expect(r.inflight()).toBe(0);
    } finally {
      await many.unload();
    }
  });
});
