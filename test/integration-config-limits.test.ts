/**
 * Config limits and config errors against a real server (real core, engine, uWebSockets.js):
 * the live batching route, a load request's config override, config.json and config.pbtxt are
 * held to the same bounds (lib/repository/config-limits.ts), hostile bodies get a short 400
 * quickly, an invalid config is logged and shown in the index, default_model_filename in an
 * override is honoured, and a TensorRT cache path cannot leave the cache directory.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { versionedModel, writeCorruptModel } from './fixtures/models';
import { call, postJson, startHarness, type Harness } from './helpers/server-harness';

let h: Harness;

beforeAll(async () => {
  h = await startHarness({
    modelControl: 'explicit',
    loadModels: ['live'],
    models: [
      { name: 'live', versions: { 1: (d) => versionedModel(d, 1) } },
      { name: 'other', versions: { 1: (d) => versionedModel(d, 7, { file: 'other.onnx' }) } },
      { name: 'plain', versions: { 1: (d) => versionedModel(d, 3) } },
      { name: 'broken', versions: { 1: (d) => writeCorruptModel(join(d, 'model.onnx')) } },
    ],
  });
});
afterAll(async () => {
  await h?.close();
});

type Row = { name: string; version: string; state: string; reason: string };
const index = async () => (await postJson(h.base, '/v2/repository/index', {})).json as Row[];
const infer = (model: string) => postJson(h.base, `/v2/models/${model}/infer`, { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: [0, 1, 2, 3] }] });
const load = (model: string, config?: unknown) => postJson(h.base, `/v2/repository/models/${model}/load`, config === undefined ? {} : { parameters: { config: typeof config === 'string' ? config : JSON.stringify(config) } });
const writeModelFile = (model: string, file: string, text: string) => writeFileSync(join(h.repo, model, file), text);

/** The server still answers inferences (nothing ran it out of memory or blocked it). */
async function stillServing(): Promise<void> {
  const r = await infer('live');
  expect(r.status, r.text).toBe(200);
}

describe('live batching route', () => {
  it('priority_levels 100000000 is a 400 naming the field and the bound (it ran the heap out of memory)', async () => {
    const r = await postJson(h.base, '/v2/models/live/batching', { priority_levels: 100_000_000, default_priority_level: 1 });
    expect(r.status).toBe(400);
    expect(r.json.error).toContain('dynamic_batching.priority_levels must be an integer from 0 to 100, got 100000000');
    await stillServing();
    // The bound itself applies.
    const ok = await postJson(h.base, '/v2/models/live/batching', { priority_levels: 100, default_priority_level: 100 });
    expect(ok.status, ok.text).toBe(200);
    expect(ok.json.priority_levels).toBe(100);
    expect((await postJson(h.base, '/v2/models/live/batching', { priority_levels: 0 })).status).toBe(200);
  });

  it('other bounds: instance_count over 64, a minute-long delay, a huge queue', async () => {
    const count = await postJson(h.base, '/v2/models/live/batching', { instance_count: 65 });
    expect(count.status).toBe(400);
    expect(count.json.error).toContain('instance_group[0].count must be an integer from 1 to 64, got 65');
    const delay = await postJson(h.base, '/v2/models/live/batching', { max_queue_delay_microseconds: 60_000_001 });
    expect(delay.status).toBe(400);
    expect(delay.json.error).toContain('dynamic_batching.max_queue_delay_microseconds must be an integer from 0 to 60000000');
    const queue = await postJson(h.base, '/v2/models/live/batching', { default_queue_policy: { max_queue_size: 1_000_001 } });
    expect(queue.status).toBe(400);
    expect(queue.json.error).toContain('max_queue_size must be an integer from 0 to 1000000');
    await stillServing();
  });

  it('an unknown 8 MB key is answered quickly with a short message (the hint took 13 s for 60 MB)', async () => {
    const key = 'q'.repeat(8 * 1024 * 1024);
    const start = performance.now();
    const r = await postJson(h.base, '/v2/models/live/batching', `{"${key}": 1}`);
    const ms = performance.now() - start;
    expect(r.status).toBe(400);
    expect(r.json.error.length).toBeLessThan(600);
    expect(r.json.error).toContain(`(${key.length} characters)`);
    expect(ms).toBeLessThan(3000);
    await stillServing();
  }, 30_000);
});

describe('load request config override', () => {
  it('priority_levels, instance count and instances × threads are bounded', async () => {
    const levels = await load('plain', { max_batch_size: 8, dynamic_batching: { priority_levels: 100_000_000, default_priority_level: 1 } });
    expect(levels.status).toBe(400);
    expect(levels.json.error).toContain('dynamic_batching.priority_levels must be an integer from 0 to 100');
    const count = await load('plain', { instance_group: [{ count: 65 }] });
    expect(count.status).toBe(400);
    expect(count.json.error).toContain('instance_group[0].count must be an integer from 1 to 64');
    const threads = await load('plain', { instance_group: [{ count: 64 }], parameters: { intra_op_thread_count: 256 } });
    expect(threads.status).toBe(400);
    expect(threads.json.error).toMatch(/instance_group\[0\]\.count \(64\) × parameters\.intra_op_thread_count \(256\) is 16384 threads; at most \d+/);
  });

  it('a config nested 100,000 levels is a 400 naming the limit, not a 500', async () => {
    const deep = '['.repeat(100_000) + ']'.repeat(100_000);
    const r = await load('plain', `{"dynamic_batching": ${deep}}`);
    expect(r.status).toBe(400);
    expect(r.json.error).toBe("load request for model 'plain': parameters.config: nested deeper than 64 levels (the nesting limit of a config)");
    await stillServing();
  });

  it('default_model_filename is honoured: the version directory\'s file of that name is loaded', async () => {
    const r = await load('other', { default_model_filename: 'other.onnx' });
    expect(r.status, r.text).toBe(200);
    const y = await infer('other');
    expect(y.status).toBe(200);
    expect(y.json.outputs[0].data).toEqual([7, 8, 9, 10]); // x + 7: other.onnx's model
    expect((await call(h.base, '/v2/models/other/config')).json.default_model_filename).toBe('other.onnx');
    // Only a plain file name inside the version directory.
    for (const name of ['../1/other.onnx', '..', 'a/b.onnx']) {
      const bad = await load('other', { default_model_filename: name });
      expect(bad.status).toBe(400);
      expect(bad.json.error).toContain('default_model_filename must be a file name without directories');
    }
  });

  it('a TensorRT engine cache path outside the cache directory is a 400', async () => {
    for (const p of ['/tmp/evil', '../../outside']) {
      const r = await load('plain', { optimization: { provider: { kind: 'tensorrt', engine_cache_path: p } } });
      expect(r.status).toBe(400);
      expect(r.json.error).toContain("optimization.provider.engine_cache_path must be a path relative to the server's TensorRT cache directory");
    }
    const triton = await load('plain', { optimization: { execution_accelerators: { gpu_execution_accelerator: [{ name: 'tensorrt', parameters: { trt_engine_cache_path: '/etc' } }] } } });
    expect(triton.status).toBe(400);
    expect(triton.json.error).toContain('trt_engine_cache_path must be a path relative');
  });
});

describe('config files', () => {
  it('a model that fails to load is reported with paths relative to the repository', async () => {
    const r = await load('broken');
    expect(r.status).toBe(400);
    expect(r.json.error).toContain('broken/1/model.onnx');
    expect(r.json.error).not.toContain(h.repo);
    const row = (await index()).find((e) => e.name === 'broken')!;
    expect(row.reason).toContain('broken/1/model.onnx');
    expect(row.reason).not.toContain(h.repo);
  });

  it('config.pbtxt nested 100,000 levels: a 400 naming the limit, logged, relative path', async () => {
    mkdirSync(join(h.repo, 'deep', '1'), { recursive: true });
    await versionedModel(join(h.repo, 'deep', '1'), 1);
    writeModelFile('deep', 'config.pbtxt', `${'p{'.repeat(100_000)}${'}'.repeat(100_000)}`);
    const r = await load('deep');
    expect(r.status).toBe(400);
    expect(r.json.error).toMatch(/^failed to load 'deep': deep\/config\.pbtxt:1:\d+: messages nested deeper than 64 levels/);
    expect(r.json.error).not.toContain(h.repo);
    // A new model with an invalid config is logged.
    expect(h.log.some((l) => l.startsWith('model deep: invalid configuration, nothing new loads: deep/config.pbtxt:1:'))).toBe(true);
  });

  it('a config file over 1 MiB is refused without being read', async () => {
    mkdirSync(join(h.repo, 'huge', '1'), { recursive: true });
    await versionedModel(join(h.repo, 'huge', '1'), 1);
    writeModelFile('huge', 'config.json', JSON.stringify({ name: 'huge', pad: 'x'.repeat(2 * 1024 * 1024) }));
    const r = await load('huge');
    expect(r.status).toBe(400);
    expect(r.json.error).toMatch(/^failed to load 'huge': huge\/config\.json: \d+ bytes, larger than a config may be \(1048576\)$/);
  });

  it('config.json priority_levels 100000000: refused before anything is allocated', async () => {
    mkdirSync(join(h.repo, 'prio', '1'), { recursive: true });
    await versionedModel(join(h.repo, 'prio', '1'), 1);
    writeModelFile('prio', 'config.json', JSON.stringify({ dynamic_batching: { priority_levels: 100_000_000, default_priority_level: 1 } }));
    const r = await load('prio');
    expect(r.status).toBe(400);
    expect(r.json.error).toBe("failed to load 'prio': prio/config.json: dynamic_batching.priority_levels must be an integer from 0 to 100, got 100000000");
  });

  it('an invalid config of a serving model is logged and shown on its index row; the previous files keep serving', async () => {
    expect((await load('plain')).status).toBe(200);
    writeModelFile('plain', 'config.json', JSON.stringify({ max_batch_size: 5000 }));
    const r = await load('plain');
    expect(r.status).toBe(400);
    expect(r.json.error).toBe("failed to load 'plain': plain/config.json: max_batch_size must be an integer from 0 to 4096, got 5000; version 1 keeps serving");
    const row = (await index()).find((e) => e.name === 'plain');
    expect(row).toEqual({
      name: 'plain',
      version: '1',
      state: 'READY',
      reason: 'serving the previous files; the new ones were refused: plain/config.json: max_batch_size must be an integer from 0 to 4096, got 5000',
    });
    expect(h.log).toContain(
      'model plain: invalid configuration, nothing new loads (version 1 keeps serving the previous files): plain/config.json: max_batch_size must be an integer from 0 to 4096, got 5000',
    );
    expect((await infer('plain')).json.outputs[0].data).toEqual([3, 4, 5, 6]);
    for (const e of await index()) expect(e.reason).not.toContain(h.repo);
  });
});
