/**
 * One client's bad input no longer fails the other clients' requests it was batched with,
 * through HTTP against the real server and engine: 200 concurrent requests to a model whose
 * run fails for an out-of-range index, 10 of them bad. Before, a failed batch answered 500
 * to every request in it (10 bad made dozens of good ones fail).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { PICK_WIDTH, pickModel, pickReference } from './fixtures/failing-models';
import { metricValue, postJson, scrape, startHarness, type Harness } from './helpers/server-harness';

let h: Harness;
beforeAll(async () => {
  h = await startHarness({
    models: [
      {
        name: 'pick',
        versions: { 1: (d) => pickModel(d, { file: 'model.onnx' }) },
        config: { max_batch_size: 16, dynamic_batching: { max_queue_delay_microseconds: 2000 }, instance_group: [{ count: 1, kind: 'KIND_CPU' }] },
      },
    ],
  });
});
afterAll(async () => {
  await h?.close();
});

it('200 concurrent requests, 10 with an out-of-range index: only those 10 fail, each good one gets its own values', async () => {
  const COUNT = 200;
  const bad = new Set(Array.from({ length: 10 }, (_, k) => 7 + k * 19));
  const cases = Array.from({ length: COUNT }, (_, n) => {
    const x = Array.from({ length: PICK_WIDTH }, (_, i) => n * 10 + i);
    const index = bad.has(n) ? 1000 + n : n % PICK_WIDTH;
    return { n, x, index };
  });
  const replies = await Promise.all(
    cases.map((c) =>
      postJson(h.base, '/v2/models/pick/infer', {
        id: `r${c.n}`,
        inputs: [
          { name: 'x', datatype: 'FP32', shape: [1, PICK_WIDTH], data: c.x },
          { name: 'index', datatype: 'INT64', shape: [1, 1], data: [c.index] },
        ],
      }),
    ),
  );
  let failed = 0;
  replies.forEach((r, n) => {
    const c = cases[n]!;
    if (bad.has(n)) {
      failed++;
      expect(r.status, `request ${n}`).toBe(500);
      expect(r.json.error).toMatch(/GatherElements op: Out of range value in index tensor/);
    } else {
      expect(r.status, `request ${n}: ${r.text.slice(0, 200)}`).toBe(200);
      expect(r.json.id).toBe(`r${n}`);
      const expected = pickReference(Float32Array.from(c.x), [BigInt(c.index)]);
      expect(r.json.outputs[0].data).toEqual([...expected]);
    }
  });
  expect(failed).toBe(10);

  const text = await scrape(h.base);
  const labels = { model: 'pick', version: '1' };
  expect(metricValue(text, 'tensorwire_inference_requests_total', { ...labels, outcome: 'success' })).toBe(190);
  expect(metricValue(text, 'tensorwire_inference_requests_total', { ...labels, outcome: 'failure', reason: 'ENGINE_FAILURE' })).toBe(10);
  // The bad requests were batched with good ones, and those batches were taken apart.
  expect(metricValue(text, 'tensorwire_batch_isolation_total', { ...labels, outcome: 'isolated' })).toBeGreaterThan(0);
  expect(metricValue(text, 'tensorwire_batch_isolation_runs_total', labels)).toBeGreaterThan(0);
  expect(metricValue(text, 'tensorwire_batch_isolation_total', { ...labels, outcome: 'gave_up' })).toBe(0);

  // The server serves on.
  const after = await postJson(h.base, '/v2/models/pick/infer', {
    inputs: [
      { name: 'x', datatype: 'FP32', shape: [1, PICK_WIDTH], data: [1, 2, 3, 4] },
      { name: 'index', datatype: 'INT64', shape: [1, 1], data: [3] },
    ],
  });
  expect(after.status).toBe(200);
  expect(after.json.outputs[0].data).toEqual([4]);
});
