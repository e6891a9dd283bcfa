/**
 * The Servable seam: a ModelVersion gets what computes its answers from an injected factory
 * (cheap versions in tests, ensembles and lazily loaded models later), and the default factory
 * (an ONNX model behind the dynamic batcher) on the real engine.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ModelVersion } from '../lib/core/model-version';
import { loadOnnxServable, OnnxServable } from '../lib/core/onnx-servable';
import type { Servable, ServableFactory, ServableSpec } from '../lib/core/servable';
import { engineInfo } from '../lib/engine';
import type { ModelMetadata } from '../lib/engine/types';
import type { InferRequest } from '../lib/protocol/types';
import { completeConfig, scanModel, validateConfig, type EffectiveConfig, type ModelConfig, type ScannedVersion } from '../lib/repository';
import type { RunnerResult } from '../lib/scheduler/batch-runner';
import { tempDir } from './helpers/engine-run';
import { rejection } from './helpers/expect-error';
import { float32, publishVersioned, rowsRequest } from './helpers/hotswap';

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length > 0) cleanups.pop()!();
});

const METADATA: ModelMetadata = {
  inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 4] }],
  outputs: [{ name: 'y', datatype: 'FP32', shape: [-1, 4] }],
  batchable: true,
};

const SOURCE: ScannedVersion = { version: 3, dir: '/nowhere/m/3', modelPath: '/nowhere/m/3/model.onnx', size: 0, mtimeMs: 0, fingerprint: 'f' };

/** A servable that answers from a queue of promises the test controls, and records every call. */
class ScriptedServable implements Servable {
  readonly metadata = METADATA;
  readonly instanceCount = 1;
  effective: EffectiveConfig;
  readonly calls: string[] = [];
  /** Answers of the next infer calls (the test resolves them); default: answer at once. */
  readonly next: Promise<RunnerResult>[] = [];
  readonly requests: InferRequest[] = [];
  /** What the version's statistics said while each request ran (warm-up is not counted). */
  readonly pausedDuring: boolean[] = [];

  constructor(private readonly spec: ServableSpec) {
    this.effective = completeConfig(spec.config, METADATA, spec.name, spec.complete);
  }

  infer(request: InferRequest): Promise<RunnerResult> {
    this.calls.push(`infer ${request.id ?? ''}`);
    this.requests.push(request);
    this.pausedDuring.push((this.spec.listener as { paused?: boolean }).paused === true);
    return this.next.shift() ?? Promise.resolve({ outputs: [], timings: { queueUs: 0, computeInputUs: 0, computeInferUs: 0, computeOutputUs: 0 } });
  }
  checkConfig(config: ModelConfig | undefined) {
    return completeConfig(config, METADATA, this.spec.name, this.spec.complete);
  }
  applyConfig(effective: EffectiveConfig): void {
    this.effective = effective;
  }
  memory() {
    return { host: 1, gpu: 0 };
  }
  queueDepth(): number {
    return 0;
  }
  drain(ms: number, graceMs: number, reason: string): Promise<void> {
    this.calls.push(`drain ${ms} ${graceMs} ${reason}`);
    return Promise.resolve();
  }
  close(reason: string): Promise<void> {
    this.calls.push(`close ${reason}`);
    return Promise.resolve();
  }
}

/** A version of "m" built by `factory`, with the states it went through. */
function scriptedVersion(factory: ServableFactory, config?: ModelConfig) {
  const states: string[] = [];
  const v = new ModelVersion('m', 3, SOURCE, config, { dynamic_batching: { max_queue_delay_microseconds: 900 } }, 'f', { servables: factory, onState: (x) => states.push(x.state) });
  return { v, states };
}

/** A promise and its resolvers, for answers the test releases. */
function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

describe('ModelVersion over an injected servable factory', () => {
  it('builds its servable from the factory with the config, live overlay and statistics hooks, warms it up, serves through it, then drains and closes it', async () => {
    const specs: ServableSpec[] = [];
    let servable!: ScriptedServable;
    const { v, states } = scriptedVersion(async (spec) => {
      specs.push(spec);
      return (servable = new ScriptedServable(spec));
    }, validateConfig({ max_batch_size: 8 }));
    await v.start();
    expect(states).toEqual(['loading', 'warming', 'ready']);
    expect(specs).toHaveLength(1);
    expect(specs[0]).toMatchObject({ name: 'm', version: 3, source: SOURCE, complete: { where: 'model "m" version 3' } });
    expect(specs[0].config).toMatchObject({ max_batch_size: 8, dynamic_batching: { max_queue_delay_microseconds: 900 } });
    expect(specs[0].listener).toBe(v.stats);
    // One generated warm-up request (batch 1 of zeros) ran through the servable, not counted as traffic.
    expect(servable.calls).toEqual(['infer warmup-generated']);
    expect(servable.requests[0].inputs.map((i) => ({ name: i.name, shape: i.shape, bytes: i.data?.byteLength }))).toEqual([{ name: 'x', shape: [1, 4], bytes: 16 }]);
    expect(servable.pausedDuring).toEqual([true]);
    expect(v.stats.paused).toBe(false);
    expect(v.effective!.maxBatchSize).toBe(8);

    await v.infer(rowsRequest(1, 0));
    expect(servable.pausedDuring).toEqual([true, false]);

    await v.retire(250);
    expect(states.slice(3)).toEqual(['draining', 'unloading', 'unavailable']);
    expect(servable.calls.slice(2)).toEqual(['drain 250 10000 model "m" version 3 was unloaded', 'close model "m" version 3 was unloaded']);
    expect(v.servable).toBeUndefined();
  });

  it('a factory that rejects leaves the version failed with the reason (trimmed), and nothing to close', async () => {
    const { v, states } = scriptedVersion(() => Promise.reject(new Error('m/3/model.onnx: no such thing\n')));
    await v.start();
    expect(states).toEqual(['loading', 'failed']);
    expect(v.reason).toBe('m/3/model.onnx: no such thing');
    expect((await rejection(v.infer(rowsRequest(1, 0)))).code).toBe('UNAVAILABLE');
    await v.retire(10); // never served: nothing to drain
    expect(v.state).toBe('failed');
  });

  it('a failed warm-up fails the version and closes its servable once, with the reason', async () => {
    let servable!: ScriptedServable;
    const { v, states } = scriptedVersion(async (spec) => {
      servable = new ScriptedServable(spec);
      servable.next.push(Promise.reject(new Error('kernel exploded')));
      return servable;
    });
    await v.start();
    expect(states).toEqual(['loading', 'warming', 'failed']);
    expect(v.reason).toBe('warm-up "generated" failed: kernel exploded');
    expect(servable.calls).toEqual(['infer warmup-generated', 'close it failed to load: warm-up "generated" failed: kernel exploded']);
    expect(v.servable).toBeUndefined();
  });

  it('retiring a version that is still warming up waits for it to serve, then drains it (no illegal move)', async () => {
    const warm = deferred<RunnerResult>();
    let servable!: ScriptedServable;
    const { v, states } = scriptedVersion(async (spec) => {
      servable = new ScriptedServable(spec);
      servable.next.push(warm.promise);
      return servable;
    });
    const started = v.start();
    await new Promise((r) => setImmediate(r));
    expect(v.state).toBe('warming');
    const retired = v.retire(5);
    await new Promise((r) => setImmediate(r));
    expect(v.state).toBe('warming');
    warm.resolve({ outputs: [], timings: { queueUs: 0, computeInputUs: 0, computeInferUs: 0, computeOutputUs: 0 } });
    await started;
    await retired;
    expect(states).toEqual(['loading', 'warming', 'ready', 'draining', 'unloading', 'unavailable']);
    expect(servable.calls.filter((c) => c.startsWith('close'))).toHaveLength(1);
  });
});

describe('loadOnnxServable (the default factory) on the real engine', () => {
  async function spec(config?: Record<string, unknown>): Promise<ServableSpec> {
    const { dir, cleanup } = tempDir('tw-core-servable-');
    cleanups.push(cleanup);
    await publishVersioned(dir, 'm', 6);
    const source = (await scanModel(join(dir, 'm'), 'm')).versions[0];
    const listener = { onEnqueue() {}, onDequeue() {}, onBatch() {}, onComplete() {} };
    return { name: 'm', version: 6, source, config: config ? validateConfig(config) : undefined, complete: { where: 'model "m" version 6' }, listener };
  }

  it('answers through the batcher, reports memory, checks configs, and frees everything on close', async () => {
    const before = engineInfo().alignedBytes;
    const s = await loadOnnxServable(await spec({ max_batch_size: 16 }));
    expect(s).toBeInstanceOf(OnnxServable);
    expect(s.instanceCount).toBe(1);
    expect(s.metadata.inputs.map((i) => i.name)).toEqual(['x']);
    expect(s.effective.maxBatchSize).toBe(16);
    const r = await s.infer(rowsRequest(2, 1));
    expect(Array.from(float32(r.outputs[0].data))).toEqual([7, 7, 7, 7, 8, 8, 8, 8]);
    expect(s.memory().host).toBeGreaterThan(0);
    expect(s.queueDepth()).toBe(0);
    expect(() => s.checkConfig(validateConfig({ max_batch_size: 16, dynamic_batching: { preferred_batch_size: [32] } }))).toThrow(/preferred_batch_size 32 is larger than max_batch_size 16/);
    const wrong = await rejection(s.infer({ ...rowsRequest(1, 0), inputs: [{ ...rowsRequest(1, 0).inputs[0], name: 'nope' }] }));
    expect(wrong.code).toBe('INVALID_INPUT');

    await s.close('test over');
    await s.close('again'); // idempotent
    expect(s.memory()).toEqual({ host: 0, gpu: 0 });
    expect(engineInfo().alignedBytes).toBe(before);
    const late = await rejection(s.infer(rowsRequest(1, 0)));
    expect(late.code).toBe('UNAVAILABLE');
    expect(late.message).toMatch(/test over/);
  });

  it('a config that does not fit the loaded model rejects, naming it, and frees the sessions it loaded', async () => {
    const before = engineInfo().alignedBytes;
    const e = await rejection(loadOnnxServable(await spec({ name: 'other' })));
    expect(e.code).toBe('INVALID_INPUT');
    expect(e.message).toMatch(/^model "m" version 6: name is "other" but the model directory is "m"/);
    expect(engineInfo().alignedBytes).toBe(before);
  });
});
