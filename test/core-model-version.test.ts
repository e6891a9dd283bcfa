/**
 * ModelVersion, the state machine of one model version, on the real engine:
 * loading -> warming -> ready -> draining -> unloading -> unavailable, or failed.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ModelVersion } from '../lib/core/model-version';
import { OnnxServable } from '../lib/core/onnx-servable';
import { isTensorwireError } from '../lib/errors';
import { scanModel, validateConfig, type ModelConfig } from '../lib/repository';
import { writeCorruptModel } from './fixtures/models';
import { tempDir } from './helpers/engine-run';
import { failsToRunModel, float32, publishVersion, publishVersioned, rowsRequest, slowVersionedModel, waitFor } from './helpers/hotswap';

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length > 0) cleanups.pop()!();
});

/** A version of model "m" from a repository written by `write`, with its state changes recorded (with times). */
async function version(write: (repo: string) => Promise<void>, config?: Record<string, unknown>) {
  const { dir, cleanup } = tempDir('tw-core-mv-');
  cleanups.push(cleanup);
  await write(dir);
  const scanned = await scanModel(join(dir, 'm'), 'm');
  const source = scanned.versions[scanned.versions.length - 1];
  const states: string[] = [];
  const times = new Map<string, number>();
  const cfg: ModelConfig | undefined = config ? validateConfig(config) : undefined;
  const v = new ModelVersion('m', source.version, source, cfg, undefined, source.fingerprint, {
    onState: (x) => {
      states.push(x.state);
      times.set(x.state, performance.now());
    },
  });
  return { v, states, times, repo: dir };
}

/** The batcher of a version served by the default (ONNX) servable. */
function runnerOf(v: ModelVersion) {
  expect(v.servable).toBeInstanceOf(OnnxServable);
  return (v.servable as OnnxServable).runner;
}

async function rejection(p: Promise<unknown>) {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected a rejection');
}

describe('ModelVersion', () => {
  it('loads, warms up, then serves y = x + version', async () => {
    const { v, states } = await version((repo) => publishVersioned(repo, 'm', 7));
    expect(v.state).toBe('loading');
    await v.start();
    expect(states).toEqual(['loading', 'warming', 'ready']);
    expect(v.reason).toBe('');
    const r = await v.infer(rowsRequest(2, 10));
    expect(Array.from(float32(r.outputs[0].data))).toEqual([17, 17, 17, 17, 18, 18, 18, 18]);
    // The generated warm-up request is not user traffic.
    expect(v.stats.toJSON().inference_count).toBe(0);
    await v.retire(1000);
    expect(states.slice(3)).toEqual(['draining', 'unloading', 'unavailable']);
    expect(v.servable).toBeUndefined();
  });

  it('a file that is not an ONNX model fails while loading and never serves', async () => {
    const { v, states } = await version((repo) => publishVersion(repo, 'm', 1, (d) => writeCorruptModel(join(d, 'model.onnx'))));
    await v.start();
    expect(states).toEqual(['loading', 'failed']);
    expect(v.reason).toMatch(/model\.onnx/);
    expect(v.reason).not.toMatch(/\n$/);
    expect(v.servable).toBeUndefined();
    const e = await rejection(v.infer(rowsRequest(1, 0)));
    expect(isTensorwireError(e) && e.code).toBe('UNAVAILABLE');
    // Retiring a failed version changes nothing: it never served.
    await v.retire(100);
    expect(v.state).toBe('failed');
  });

  it('a model that loads but cannot run fails its warm-up and never serves', async () => {
    const { v, states } = await version((repo) => publishVersion(repo, 'm', 2, (d) => failsToRunModel(d)));
    await v.start();
    expect(states).toEqual(['loading', 'warming', 'failed']);
    expect(v.reason).toMatch(/^warm-up "generated" failed: .*Reshape/);
    expect(v.servable).toBeUndefined(); // the engine model was freed
  });

  it('runs the configured warm-up samples: a sample that cannot be read fails the version', async () => {
    const config = { model_warmup: [{ name: 'from_file', batch_size: 2, inputs: { x: { dims: [4], input_data_file: 'missing.bin' } } }] };
    const { v, states } = await version((repo) => publishVersioned(repo, 'm', 1), config);
    await v.start();
    expect(states).toEqual(['loading', 'warming', 'failed']);
    expect(v.reason).toMatch(/missing\.bin/);
  });

  it('a valid configured warm-up lets the version serve, and is not counted as traffic', async () => {
    const config = { model_warmup: [{ name: 'zeros', batch_size: 4, count: 3, inputs: { x: { dims: [4], zero_data: true } } }] };
    const { v } = await version((repo) => publishVersioned(repo, 'm', 3), config);
    await v.start();
    expect(v.state).toBe('ready');
    expect(v.stats.toJSON()).toMatchObject({ inference_count: 0, execution_count: 0 });
    await v.infer(rowsRequest(1, 0));
    expect(v.stats.toJSON().execution_count).toBe(1);
    await v.retire(1000);
  });

  it('retiring lets queued and running requests finish on it before it is freed', async () => {
    // One request per run (max_batch_size 1), ~15 ms each: six requests queue up behind each other.
    const { v, states, times } = await version((repo) => publishVersion(repo, 'm', 4, (d) => slowVersionedModel(d, 4, { layers: 300, width: 256 })), { max_batch_size: 1 });
    await v.start();
    const done: number[] = [];
    const answers = Array.from({ length: 6 }, (_, i) =>
      v.infer(rowsRequest(1, i * 10, 256)).then((r) => {
        done.push(performance.now());
        return float32(r.outputs[0].data)[0];
      }),
    );
    await waitFor(() => v.queueDepth() >= 4, 2000, 'requests to queue up');
    const retired = v.retire(10_000);
    expect(v.state).toBe('draining');
    const late = await rejection(v.infer(rowsRequest(1, 0, 256)));
    expect(isTensorwireError(late) && late.code).toBe('UNAVAILABLE');
    expect(await Promise.all(answers)).toEqual([4, 14, 24, 34, 44, 54]);
    await retired;
    expect(states).toEqual(['loading', 'warming', 'ready', 'draining', 'unloading', 'unavailable']);
    // Freed only after the last answer.
    expect(times.get('unloading')!).toBeGreaterThanOrEqual(Math.max(...done));
  });

  it('past the drain time, queued requests are rejected UNAVAILABLE and the running one still answers', async () => {
    const { v } = await version((repo) => publishVersion(repo, 'm', 5, (d) => slowVersionedModel(d, 5, { layers: 1500, width: 256 })), { max_batch_size: 1 });
    await v.start();
    const outcomes = Array.from({ length: 12 }, (_, i) =>
      v.infer(rowsRequest(1, i, 256)).then(
        (r) => float32(r.outputs[0].data)[0],
        (e: unknown) => (isTensorwireError(e) ? e.code : String(e)),
      ),
    );
    await waitFor(() => runnerOf(v).inflight() > 0, 2000, 'the first batch to run');
    await v.retire(1);
    const results = await Promise.all(outcomes);
    // The first one (and the one staged behind it, double buffering) were with the engine when
    // the drain time ran out: they answered; the rest were queued and were rejected.
    expect(results[0]).toBe(5);
    expect(results.filter((r) => r === 'UNAVAILABLE').length).toBeGreaterThanOrEqual(6);
    for (const [i, r] of results.entries()) expect([i + 5, 'UNAVAILABLE']).toContain(r);
    expect(v.state).toBe('unavailable');
  });

  it('applies a live batching change without a reload and refuses one that does not fit', async () => {
    const { v } = await version((repo) => publishVersioned(repo, 'm', 1));
    await v.start();
    const servable = v.servable;
    v.applyLive({ dynamic_batching: { max_queue_delay_microseconds: 2500, preferred_batch_size: [4, 8], default_queue_policy: { max_queue_size: 16 } } });
    expect(v.servable).toBe(servable); // same sessions
    expect(runnerOf(v).config).toMatchObject({ maxQueueDelayUs: 2500, preferredBatchSizes: [4, 8], defaultQueuePolicy: { maxQueueSize: 16 } });
    expect(v.effective!.tritonConfig.dynamic_batching).toMatchObject({ max_queue_delay_microseconds: 2500, preferred_batch_size: [4, 8], default_queue_policy: { max_queue_size: 16 } });
    expect(() => v.applyLive({ dynamic_batching: { preferred_batch_size: [128] } })).toThrow(/preferred_batch_size 128 is larger than max_batch_size 64/);
    expect(runnerOf(v).config.preferredBatchSizes).toEqual([4, 8]);
    const r = await v.infer(rowsRequest(3, 1));
    expect(Array.from(float32(r.outputs[0].data).filter((_, i) => i % 4 === 0))).toEqual([2, 3, 4]);
    await v.retire(1000);
  });
});
