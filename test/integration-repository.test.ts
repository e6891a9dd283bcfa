/**
 * The model repository extension (index, load, unload) against the real server core and
 * engine, in explicit model-control mode: only `mlp` is loaded at start; the test loads,
 * reloads with a config override, and unloads the others through HTTP.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mlpModel, versionedModel, writeCorruptModel } from './fixtures/models';
import { call, postJson, startHarness, type Harness } from './helpers/server-harness';

let h: Harness;

beforeAll(async () => {
  h = await startHarness({
    modelControl: 'explicit',
    loadModels: ['mlp'],
    models: [
      { name: 'mlp', versions: { 1: (d) => mlpModel(d, { file: 'model.onnx', inputDim: 8, hidden: 16, outputDim: 2 }) } },
      { name: 'versioned', versions: { 1: (d) => versionedModel(d, 1), 2: (d) => versionedModel(d, 2) } },
      { name: 'broken', versions: { 1: (d) => writeCorruptModel(join(d, 'model.onnx')) } },
    ],
  });
});
afterAll(async () => {
  await h?.close();
});

const index = async (body: unknown = {}) => (await postJson(h.base, '/v2/repository/index', body)).json as { name: string; version: string; state: string; reason: string }[];
const inferX = (path: string, rows = 1) => postJson(h.base, path, { inputs: [{ name: 'x', datatype: 'FP32', shape: [rows, 4], data: Array.from({ length: rows * 4 }, (_, i) => i) }] });

describe('repository extension, explicit mode', () => {
  it('the index lists every model of the repository, loaded or not, in Triton wire states', async () => {
    expect(await index()).toEqual([
      { name: 'broken', version: '', state: 'UNAVAILABLE', reason: 'not loaded' },
      { name: 'mlp', version: '1', state: 'READY', reason: '' },
      { name: 'versioned', version: '', state: 'UNAVAILABLE', reason: 'not loaded' },
    ]);
    expect(await index({ ready: true })).toEqual([{ name: 'mlp', version: '1', state: 'READY', reason: '' }]);
    // An empty body is allowed too.
    const r = await call(h.base, '/v2/repository/index', { method: 'POST' });
    expect(r.status).toBe(200);
    expect(r.json).toHaveLength(3);
    const bad = await postJson(h.base, '/v2/repository/index', { ready: 'yes' });
    expect(bad.status).toBe(400);
    expect(bad.json.error).toBe('repository index request: "ready" must be a boolean, got "yes"');
  });

  it('a model not loaded yet is unknown', async () => {
    const r = await call(h.base, '/v2/models/versioned');
    expect(r.status).toBe(404);
    expect((await inferX('/v2/models/versioned/infer')).status).toBe(404);
  });

  it('load serves the latest version (default policy); other versions are 404', async () => {
    const r = await call(h.base, '/v2/repository/models/versioned/load', { method: 'POST' });
    expect(r.status).toBe(200);
    expect(r.text).toBe('');
    expect((await call(h.base, '/v2/models/versioned/ready')).status).toBe(200);
    const y = await inferX('/v2/models/versioned/infer');
    expect(y.json.model_version).toBe('2');
    expect(y.json.outputs[0].data).toEqual([2, 3, 4, 5]); // x + 2
    expect((await inferX('/v2/models/versioned/versions/1/infer')).status).toBe(404);
    expect(await index({ ready: true })).toContainEqual({ name: 'versioned', version: '2', state: 'READY', reason: '' });
  });

  it('load with a config override applies it: every version, a smaller max_batch_size', async () => {
    const config = JSON.stringify({ max_batch_size: 2, version_policy: { all: {} } });
    const r = await postJson(h.base, '/v2/repository/models/versioned/load', { parameters: { config } });
    expect(r.status, r.text).toBe(200);
    expect((await inferX('/v2/models/versioned/versions/1/infer')).json.outputs[0].data).toEqual([1, 2, 3, 4]);
    expect((await inferX('/v2/models/versioned/versions/2/infer')).json.outputs[0].data).toEqual([2, 3, 4, 5]);
    expect((await call(h.base, '/v2/models/versioned/config')).json.max_batch_size).toBe(2);
    const over = await inferX('/v2/models/versioned/infer', 3);
    expect(over.status).toBe(400);
    expect(over.json.error).toBe('batch size 3 exceeds max_batch_size 2');
    const metadata = await call(h.base, '/v2/models/versioned');
    expect(metadata.json.versions).toEqual(['1', '2']);
  });

  it('a bad load request names the field', async () => {
    const notJson = await postJson(h.base, '/v2/repository/models/versioned/load', { parameters: { config: '{max_batch_size' } });
    expect(notJson.status).toBe(400);
    expect(notJson.json.error).toMatch(/^load request for model 'versioned': parameters.config is not valid JSON/);
    const unknownParam = await postJson(h.base, '/v2/repository/models/versioned/load', { parameters: { 'file:1/model.onnx': 'AAAA' } });
    // Loading from bytes is off unless the server was started with --allow-model-upload.
    expect(unknownParam.status).toBe(403);
    expect(unknownParam.json.error).toBe("load request for model 'versioned': loading a model from bytes (\"file:\" parameters) is off on this server; start it with --allow-model-upload to allow it");
    const badConfig = await postJson(h.base, '/v2/repository/models/versioned/load', { parameters: { config: JSON.stringify({ max_batch_sizes: 4 }) } });
    expect(badConfig.status).toBe(400);
    expect(badConfig.json.error).toMatch(/max_batch_sizes.*did you mean max_batch_size/);
    // The failed attempts changed nothing.
    expect((await inferX('/v2/models/versioned/versions/1/infer')).status).toBe(200);
  });

  it('loading a model that is not in the repository is 404 and registers nothing', async () => {
    const r = await call(h.base, '/v2/repository/models/ghost/load', { method: 'POST' });
    expect(r.status).toBe(404);
    expect(r.json.error).toContain('ghost');
    // The server stays ready and the name stays unknown.
    expect((await call(h.base, '/v2/health/ready')).status).toBe(200);
    expect((await call(h.base, '/v2/models/ghost/ready')).status).toBe(404);
    expect((await index()).some((e) => e.name === 'ghost')).toBe(false);
  });

  it('loading a corrupt model fails with its reason, visible in the index; nothing serves it', async () => {
    const r = await call(h.base, '/v2/repository/models/broken/load', { method: 'POST' });
    expect(r.status).toBe(400);
    expect(r.json.error).toMatch(/^failed to load 'broken'/);
    const row = (await index()).find((e) => e.name === 'broken');
    expect(row).toMatchObject({ name: 'broken', version: '1', state: 'UNAVAILABLE' });
    expect(row!.reason).not.toBe('');
    expect((await index({ ready: true })).some((e) => e.name === 'broken')).toBe(false);
    const ready = await call(h.base, '/v2/models/broken/ready');
    expect(ready.status).toBe(503);
    expect(ready.json.error).toMatch(/^Request for unknown model: 'broken' has no available versions: /);
  });

  it('unload stops serving: not ready, infer 503 with Retry-After, index UNAVAILABLE; reload serves again', async () => {
    const r = await call(h.base, '/v2/repository/models/versioned/unload', { method: 'POST' });
    expect(r.status).toBe(200);
    expect((await call(h.base, '/v2/models/versioned/ready')).status).toBe(503);
    const y = await inferX('/v2/models/versioned/infer');
    expect(y.status).toBe(503);
    expect(y.headers.get('retry-after')).toBe('1');
    expect(y.json.error).toMatch(/'versioned' has no available versions/);
    const rows = (await index()).filter((e) => e.name === 'versioned');
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.every((e) => e.state === 'UNAVAILABLE' || e.state === 'UNLOADING')).toBe(true);
    expect(await index({ ready: true })).toEqual([{ name: 'mlp', version: '1', state: 'READY', reason: '' }]);

    expect((await call(h.base, '/v2/repository/models/versioned/load', { method: 'POST' })).status).toBe(200);
    expect((await inferX('/v2/models/versioned/infer')).json.outputs[0].data).toEqual([2, 3, 4, 5]);
  });

  it('unloading an unknown model is 404; mlp kept serving throughout', async () => {
    const r = await call(h.base, '/v2/repository/models/ghost/unload', { method: 'POST' });
    expect(r.status).toBe(404);
    const y = await postJson(h.base, '/v2/models/mlp/infer', { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 8], data: [1, 2, 3, 4, 5, 6, 7, 8] }] });
    expect(y.status).toBe(200);
    expect(y.json.outputs[0].shape).toEqual([1, 2]);
  });
});
