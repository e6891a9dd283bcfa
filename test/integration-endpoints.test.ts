/**
 * Every KServe v2 endpoint against the real server core and engine on 127.0.0.1: health,
 * server and model metadata, readiness, config, statistics, inference on the MLP (values
 * checked against a JS reference), the multi-input/multi-output INT64/FP32 model, a
 * fixed-shape model served with its exact shapes, and a Triton config.pbtxt model directory.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixedShapeModel, fixedShapeReference, mlpModel, mlpReference, mlpWeights, multiIoModel } from './fixtures/models';
import { call, metricValue, postJson, scrape, startHarness, type Harness } from './helpers/server-harness';

const TRITON_PBTXT = `# a Triton model directory, unchanged
name: "triton_mlp"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [ { name: "input" data_type: TYPE_FP32 dims: [ 256 ] } ]
output [ { name: "output" data_type: TYPE_FP32 dims: [ 16 ] } ]
dynamic_batching { max_queue_delay_microseconds: 200 }
instance_group [ { count: 1 kind: KIND_CPU } ]
`;

const W = mlpWeights();
let h: Harness;

beforeAll(async () => {
  h = await startHarness({
    models: [
      { name: 'mlp', versions: { 1: (d) => mlpModel(d, { file: 'model.onnx' }) } },
      { name: 'multi_io', versions: { 1: (d) => multiIoModel(d, { file: 'model.onnx' }) } },
      { name: 'fixed', versions: { 1: (d) => fixedShapeModel(d, { file: 'model.onnx' }) }, config: { max_batch_size: 0 } },
      { name: 'triton_mlp', versions: { 1: (d) => mlpModel(d, { file: 'model.onnx' }) }, pbtxt: TRITON_PBTXT },
    ],
  });
});
afterAll(async () => {
  await h?.close();
});

/** `rows` x 256 distinct inputs derived from `seed`. */
function mlpInput(rows: number, seed: number): number[] {
  return Array.from({ length: rows * 256 }, (_, i) => Math.fround(Math.sin(seed * 7.1 + i * 0.37) * 0.9));
}

function expectClose(actual: number[], expected: ArrayLike<number>, tolerance = 1e-4): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < actual.length; i++) {
    if (Math.abs(actual[i]! - expected[i]!) > tolerance) throw new Error(`element ${i}: got ${actual[i]}, expected ${expected[i]}`);
  }
}

describe('server endpoints', () => {
  it('health live and ready are 200 with an empty body', async () => {
    for (const path of ['/v2/health/live', '/v2/health/ready']) {
      const r = await call(h.base, path);
      expect(r.status).toBe(200);
      expect(r.text).toBe('');
    }
  });

  it('GET /metrics is the Prometheus text exposition with the served models', async () => {
    const r = await call(h.base, '/metrics');
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(metricValue(r.text, 'tensorwire_model_state', { model: 'mlp', version: '1', state: 'ready' })).toBe(1);
    expect(metricValue(r.text, 'tensorwire_model_state', { model: 'mlp', version: '1', state: 'loading' })).toBe(0);
  });

  it('the repository index works in every mode; load and unload only in explicit mode', async () => {
    const index = await postJson(h.base, '/v2/repository/index', { ready: true });
    expect(index.status).toBe(200);
    expect(index.json.map((e: { name: string }) => e.name).sort()).toEqual(['fixed', 'mlp', 'multi_io', 'triton_mlp']);
    for (const action of ['load', 'unload']) {
      const r = await call(h.base, `/v2/repository/models/mlp/${action}`, { method: 'POST' });
      expect(r.status).toBe(400);
      expect(r.json.error).toBe('explicit model load / unload is not allowed unless the server runs with --model-control explicit');
    }
    expect((await call(h.base, '/v2/models/mlp/ready')).status).toBe(200);
  });

  it('GET /v2 names the server and its extensions', async () => {
    const r = await call(h.base, '/v2');
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('application/json');
    expect(r.json).toEqual({
      name: 'tensorwire',
      version: expect.stringMatching(/^\d+\.\d+\.\d+/),
      extensions: ['binary_tensor_data', 'classification', 'model_repository', 'statistics', 'schedule_policy', 'model_configuration', 'system_shared_memory', 'trace', 'logging'],
    });
  });
});

describe('model metadata, readiness and config', () => {
  it('metadata with and without a version gives the batch dimension as -1', async () => {
    const expected = {
      name: 'mlp',
      versions: ['1'],
      platform: 'onnxruntime_onnx',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 256] }],
      outputs: [{ name: 'output', datatype: 'FP32', shape: [-1, 16] }],
    };
    expect((await call(h.base, '/v2/models/mlp')).json).toEqual(expected);
    const versioned = await call(h.base, '/v2/models/mlp/versions/1');
    expect(versioned.status).toBe(200);
    expect(versioned.json).toEqual(expected);
  });

  it('metadata of a fixed-shape model keeps its exact shapes', async () => {
    const r = await call(h.base, '/v2/models/fixed');
    expect(r.json.inputs).toEqual([{ name: 'image', datatype: 'FP32', shape: [1, 3, 4, 4] }]);
    expect(r.json.outputs).toEqual([{ name: 'pooled', datatype: 'FP32', shape: [1, 3] }]);
  });

  it('model ready is 200 for a served model and version', async () => {
    expect((await call(h.base, '/v2/models/mlp/ready')).status).toBe(200);
    expect((await call(h.base, '/v2/models/mlp/versions/1/ready')).status).toBe(200);
  });

  it("unknown models and versions get Triton's status and words on every per-model endpoint", async () => {
    const unknown = "Request for unknown model: 'nosuch' is not found";
    const rows: [string, number, string][] = [
      ['/v2/models/nosuch', 404, unknown],
      ['/v2/models/nosuch/ready', 404, unknown],
      ['/v2/models/nosuch/config', 404, unknown],
      // Triton's statistics call answers 400 with its own words, not the lookup's 404.
      ['/v2/models/nosuch/stats', 400, "requested model 'nosuch' is not available"],
      ['/v2/models/mlp/versions/9', 404, "Request for unknown model: 'mlp' version 9 is not found"],
      ['/v2/models/mlp/versions/9/ready', 404, "Request for unknown model: 'mlp' version 9 is not found"],
      ['/v2/models/mlp/versions/9/config', 404, "Request for unknown model: 'mlp' version 9 is not found"],
      ['/v2/models/mlp/versions/9/stats', 400, "requested model version is not available for model 'mlp'"],
    ];
    for (const [path, status, error] of rows) {
      expect(await call(h.base, path), path).toMatchObject({ status, json: { error } });
    }
    const infer = await postJson(h.base, '/v2/models/nosuch/infer', { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 256], data: mlpInput(1, 1) }] });
    expect(infer).toMatchObject({ status: 404, json: { error: unknown, code: 'NOT_FOUND' } });
  });

  it('config is the completed Triton-style config (dims without the batch dimension)', async () => {
    const r = await call(h.base, '/v2/models/mlp/config');
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({
      name: 'mlp',
      platform: 'onnxruntime_onnx',
      max_batch_size: 64,
      input: [{ name: 'input', data_type: 'TYPE_FP32', dims: [256] }],
      output: [{ name: 'output', data_type: 'TYPE_FP32', dims: [16] }],
      dynamic_batching: { max_queue_delay_microseconds: 100 },
    });
    expect((await call(h.base, '/v2/models/fixed/versions/1/config')).json).toMatchObject({ max_batch_size: 0, input: [{ name: 'image', dims: [1, 3, 4, 4] }] });
  });

  it('serves a Triton config.pbtxt model directory unchanged', async () => {
    const config = await call(h.base, '/v2/models/triton_mlp/config');
    expect(config.json).toMatchObject({
      name: 'triton_mlp',
      max_batch_size: 8,
      input: [{ name: 'input', data_type: 'TYPE_FP32', dims: [256] }],
      dynamic_batching: { max_queue_delay_microseconds: 200 },
      instance_group: [{ kind: 'KIND_CPU', count: 1 }],
    });
    const x = mlpInput(8, 3);
    const r = await postJson(h.base, '/v2/models/triton_mlp/infer', { inputs: [{ name: 'input', datatype: 'FP32', shape: [8, 256], data: x }] });
    expect(r.status).toBe(200);
    expect(r.json.outputs[0].shape).toEqual([8, 16]);
    expectClose(r.json.outputs[0].data, mlpReference(W, x));
    // max_batch_size 8 from the pbtxt is enforced.
    const over = await postJson(h.base, '/v2/models/triton_mlp/infer', { inputs: [{ name: 'input', datatype: 'FP32', shape: [9, 256], data: mlpInput(9, 1) }] });
    expect(over.status).toBe(400);
    expect(over.json.error).toBe('batch size 9 exceeds max_batch_size 8');
  });
});

describe('inference', () => {
  it('MLP JSON inference matches the reference, with the id echoed and Triton key order', async () => {
    const x = mlpInput(2, 11);
    const r = await postJson(h.base, '/v2/models/mlp/infer', { id: 'req-7', inputs: [{ name: 'input', datatype: 'FP32', shape: [2, 256], data: x }] });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('application/json');
    expect(r.headers.get('inference-header-content-length')).toBeNull();
    expect(r.text.startsWith('{"id":"req-7","model_name":"mlp","model_version":"1","outputs":[{"name":"output","datatype":"FP32","shape":[2,16],"data":[')).toBe(true);
    expectClose(r.json.outputs[0].data, mlpReference(W, x));
  });

  it('the versioned infer route serves that version, nested data arrays are accepted', async () => {
    const x = mlpInput(1, 4);
    const nested = [x];
    const r = await postJson(h.base, '/v2/models/mlp/versions/1/infer', { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 256], data: nested }] });
    expect(r.status).toBe(200);
    expect(r.json.model_version).toBe('1');
    expectClose(r.json.outputs[0].data, mlpReference(W, x));
  });

  it('multi-input/multi-output INT64 + FP32: both outputs, INT64 digits exact beyond 2^53', async () => {
    const big = 2n ** 60n + 1n; // 1152921504606846977: not representable as a double
    const r = await postJson(h.base, '/v2/models/multi_io/infer', {
      inputs: [
        { name: 'a', datatype: 'INT64', shape: [2, 3], data: [[1, -2, String(big)], [4, 5, -6]] },
        { name: 'b', datatype: 'FP32', shape: [2, 3], data: [[0.5, 0.25, 0], [1, 2, 'NaN']] },
      ],
    });
    expect(r.status).toBe(200);
    const [sum, scaled] = r.json.outputs;
    expect(sum).toMatchObject({ name: 'sum', datatype: 'FP32', shape: [2, 3] });
    expect(scaled).toMatchObject({ name: 'scaled', datatype: 'INT64', shape: [2, 3] });
    // NaN has no JSON literal: written as the string "NaN".
    expect(sum.data).toEqual([1.5, -1.75, Math.fround(Number(big)), 5, 7, 'NaN']);
    // JSON.parse rounds 2^61+2; the text carries every digit.
    expect(r.text).toContain(`"data":[2,-4,${2n * big},8,10,-12]`);
  });

  it('requested outputs: only those, in the requested order', async () => {
    const r = await postJson(h.base, '/v2/models/multi_io/infer', {
      inputs: [
        { name: 'b', datatype: 'FP32', shape: [1, 3], data: [1, 1, 1] },
        { name: 'a', datatype: 'INT64', shape: [1, 3], data: [7, 8, 9] },
      ],
      outputs: [{ name: 'scaled' }],
    });
    expect(r.status).toBe(200);
    expect(r.json.outputs).toEqual([{ name: 'scaled', datatype: 'INT64', shape: [1, 3], data: [14, 16, 18] }]);
  });

  it('fixed-shape model (max_batch_size 0) runs with its exact shape and refuses a batch dimension', async () => {
    const image = Array.from({ length: 48 }, (_, i) => (i % 16) + Math.floor(i / 16) * 100);
    const r = await postJson(h.base, '/v2/models/fixed/infer', { inputs: [{ name: 'image', datatype: 'FP32', shape: [1, 3, 4, 4], data: image }] });
    expect(r.status).toBe(200);
    expect(r.json.outputs[0].shape).toEqual([1, 3]);
    expectClose(r.json.outputs[0].data, fixedShapeReference(image), 1e-5);
    const batched = await postJson(h.base, '/v2/models/fixed/infer', { inputs: [{ name: 'image', datatype: 'FP32', shape: [2, 3, 4, 4], data: [...image, ...image] }] });
    expect(batched.status).toBe(400);
    expect(batched.json.error).toBe("input 'image': expected shape [1,3,4,4], got [2,3,4,4]");
  });
});

describe('statistics', () => {
  it('counts move exactly: one request of 3 rows is 1 success, 3 inferences, 1 execution; a failure is 1 fail', async () => {
    const stats = async () => (await call(h.base, '/v2/models/triton_mlp/versions/1/stats')).json.model_stats[0];
    const before = await stats();
    expect(before).toMatchObject({ name: 'triton_mlp', version: '1' });
    const metricsBefore = await scrape(h.base);

    const x = mlpInput(3, 5);
    expect((await postJson(h.base, '/v2/models/triton_mlp/infer', { inputs: [{ name: 'input', datatype: 'FP32', shape: [3, 256], data: x }] })).status).toBe(200);
    const after = await stats();
    expect(after.inference_count - before.inference_count).toBe(3);
    expect(after.execution_count - before.execution_count).toBe(1);
    expect(after.inference_stats.success.count - before.inference_stats.success.count).toBe(1);
    expect(after.inference_stats.fail.count).toBe(before.inference_stats.fail.count);
    expect(after.inference_stats.queue.count - before.inference_stats.queue.count).toBe(1);
    expect(after.inference_stats.compute_infer.ns).toBeGreaterThan(before.inference_stats.compute_infer.ns);
    expect(after.last_inference).toBeGreaterThan(Date.now() - 60_000);
    const batch3 = (s: typeof after) => s.batch_stats.find((b: { batch_size: number }) => b.batch_size === 3)?.compute_infer.count ?? 0;
    expect(batch3(after) - batch3(before)).toBe(1);

    // A request refused by validation is one failure and no inference.
    expect((await postJson(h.base, '/v2/models/triton_mlp/infer', { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 255], data: mlpInput(1, 1).slice(0, 255) }] })).status).toBe(400);
    const failed = await stats();
    expect(failed.inference_stats.fail.count - after.inference_stats.fail.count).toBe(1);
    expect(failed.inference_count).toBe(after.inference_count);
    expect(failed.execution_count).toBe(after.execution_count);

    // /metrics agrees with the stats.
    const metrics = await scrape(h.base);
    const labels = { model: 'triton_mlp', version: '1' };
    expect(metricValue(metrics, 'tensorwire_inference_count_total', labels) - metricValue(metricsBefore, 'tensorwire_inference_count_total', labels)).toBe(3);
    expect(metricValue(metrics, 'tensorwire_inference_requests_total', { ...labels, outcome: 'failure', reason: 'INVALID_INPUT' })).toBe(
      metricValue(metricsBefore, 'tensorwire_inference_requests_total', { ...labels, outcome: 'failure', reason: 'INVALID_INPUT' }) + 1,
    );
  });

  it("every field Triton's core writes is there, with its type (perf_analyzer reads them unchecked)", async () => {
    expect((await postJson(h.base, '/v2/models/mlp/infer', { inputs: [{ name: 'input', datatype: 'FP32', shape: [2, 256], data: mlpInput(2, 3) }] })).status).toBe(200);
    const duration = { count: expect.any(Number), ns: expect.any(Number) };
    for (const path of ['/v2/models/mlp/stats', '/v2/models/mlp/versions/1/stats', '/v2/models/stats']) {
      const all = (await call(h.base, path)).json.model_stats as Record<string, unknown>[];
      const s = all.find((m) => m.name === 'mlp')!;
      expect(Object.keys(s).sort(), path).toEqual(['batch_stats', 'execution_count', 'inference_count', 'inference_stats', 'last_inference', 'memory_usage', 'name', 'response_stats', 'version']);
      expect(s).toEqual({
        name: 'mlp',
        version: '1',
        last_inference: expect.any(Number),
        inference_count: expect.any(Number),
        execution_count: expect.any(Number),
        inference_stats: Object.fromEntries(['success', 'fail', 'queue', 'compute_input', 'compute_infer', 'compute_output', 'cache_hit', 'cache_miss'].map((k) => [k, duration])),
        response_stats: {},
        batch_stats: expect.arrayContaining([{ batch_size: 2, compute_input: duration, compute_infer: duration, compute_output: duration }]),
        memory_usage: [],
      });
      // Triton's invariants: queue is counted per success; compute_* per success that ran (no cache here).
      const stats = s.inference_stats as Record<string, { count: number }>;
      expect(stats.queue!.count).toBe(stats.success!.count);
      expect(stats.compute_infer!.count).toBe(stats.success!.count - stats.cache_hit!.count);
    }
  });

  it('GET /v2/models/stats lists every served model', async () => {
    const r = await call(h.base, '/v2/models/stats');
    expect(r.status).toBe(200);
    expect(r.json.model_stats.map((s: { name: string }) => s.name).sort()).toEqual(['fixed', 'mlp', 'multi_io', 'triton_mlp']);
  });
});
