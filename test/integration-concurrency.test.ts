/**
 * 300 concurrent requests with distinct inputs against the real server core and engine:
 * every response must carry its own request's id and the MLP of its own inputs (checked
 * against the JS reference), although the dynamic batcher packs many requests into one
 * engine run. JSON and binary requests, 1 to 3 rows each, are mixed in the same batches.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mlpModel, mlpReference, mlpWeights } from './fixtures/models';
import { binaryRequest, bytes, call, f32, postBinary, postJson, startHarness, type Harness } from './helpers/server-harness';

const W = mlpWeights();
const REQUESTS = 300;
let h: Harness;

beforeAll(async () => {
  h = await startHarness({ models: [{ name: 'mlp', versions: { 1: (d) => mlpModel(d, { file: 'model.onnx' }) } }] });
});
afterAll(async () => {
  await h?.close();
});

function input(n: number, rows: number): Float32Array {
  return Float32Array.from({ length: rows * 256 }, (_, i) => Math.sin(n * 0.731 + i * 0.013) * (1 + (n % 7) / 7));
}

/** Request n: 1..3 rows, JSON for even n and binary (with binary output) for odd n. Resolves to its output values. */
async function infer(n: number): Promise<{ id: string; shape: number[]; values: ArrayLike<number> }> {
  const rows = 1 + (n % 3);
  const x = input(n, rows);
  if (n % 2 === 0) {
    const r = await postJson(h.base, '/v2/models/mlp/infer', { id: `req-${n}`, inputs: [{ name: 'input', datatype: 'FP32', shape: [rows, 256], data: Array.from(x) }] });
    if (r.status !== 200) throw new Error(`request ${n}: ${r.status} ${r.text}`);
    return { id: r.json.id, shape: r.json.outputs[0].shape, values: r.json.outputs[0].data };
  }
  const { body, headerLength } = binaryRequest([{ name: 'input', datatype: 'FP32', shape: [rows, 256], bytes: bytes(x) }], { id: `req-${n}`, parameters: { binary_data_output: true } });
  const r = await postBinary(h.base, '/v2/models/mlp/infer', body, headerLength);
  if (r.status !== 200) throw new Error(`request ${n}: ${r.status} ${r.body.toString()}`);
  return { id: r.json.id, shape: r.json.outputs[0].shape, values: f32(r.binary.output!) };
}

describe('concurrency', () => {
  it(`${REQUESTS} concurrent requests each get their own answer, batched together`, async () => {
    const stats = async () => (await call(h.base, '/v2/models/mlp/stats')).json.model_stats[0];
    const before = await stats();
    const results = await Promise.all(Array.from({ length: REQUESTS }, (_, n) => infer(n)));

    let rowsSent = 0;
    for (let n = 0; n < REQUESTS; n++) {
      const rows = 1 + (n % 3);
      rowsSent += rows;
      const r = results[n]!;
      expect(r.id).toBe(`req-${n}`);
      expect(r.shape).toEqual([rows, 16]);
      const expected = mlpReference(W, input(n, rows));
      for (let i = 0; i < expected.length; i++) {
        if (Math.abs(r.values[i]! - expected[i]!) > 1e-4) throw new Error(`request ${n} element ${i}: got ${r.values[i]}, expected ${expected[i]} (someone else's rows?)`);
      }
    }

    const after = await stats();
    expect(after.inference_stats.success.count - before.inference_stats.success.count).toBe(REQUESTS);
    expect(after.inference_stats.fail.count - before.inference_stats.fail.count).toBe(0);
    expect(after.inference_count - before.inference_count).toBe(rowsSent);
    // batch_stats account for every row exactly once...
    const rowsIn = (s: typeof after) => s.batch_stats.reduce((sum: number, b: { batch_size: number; compute_infer: { count: number } }) => sum + b.batch_size * b.compute_infer.count, 0);
    expect(rowsIn(after) - rowsIn(before)).toBe(rowsSent);
    // ...in fewer engine runs than requests: requests shared batches.
    const runs = after.execution_count - before.execution_count;
    expect(runs).toBeLessThan(REQUESTS);
    expect(after.batch_stats.some((b: { batch_size: number }) => b.batch_size > 3)).toBe(true);
  });
});
