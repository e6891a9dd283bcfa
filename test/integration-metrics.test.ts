/**
 * /metrics against the real server (uWebSockets.js on 127.0.0.1, real core, real engine): the
 * exposition parses as Prometheus text and holds every family docs/metrics.md documents with
 * the documented type and labels, and each family moves by exactly what a request does:
 *
 * - one request of batch 3 (alone): requests_total{success} +1, inference_count +3,
 *   exec_count +1, one observation per duration stage, one batch of 3 in batch_size;
 * - failures count under their error code (INVALID_INPUT, DEADLINE_EXCEEDED) and nothing
 *   else; an unknown model or version is counted nowhere and creates no series;
 * - queue depth and in-flight gauges rise while a slow model holds requests back, then go
 *   back to 0; GET /v2/models/{m}/stats agrees with the counters after a mixed workload;
 * - unloading a model removes its series.
 *
 * The Prometheus text is parsed strictly (helpers/prometheus-text.ts) rather than grepped, so
 * a malformed exposition fails the test. An unknown model or version is counted nowhere; a body
 * that cannot be decoded counts as a failure of the version it was for (docs/metrics.md).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gpuStats } from '../lib/engine';
import { StreamClient } from '../lib/client';
import { mlpModel, mlpReference, mlpWeights, slowModel, slowReference } from './fixtures/models';
import { Scrape, type Sample } from './helpers/prometheus-text';
import { binaryRequest, bytes, call, f32, postBinary, postJson, startHarness, waitFor, type BinaryReply, type Harness } from './helpers/server-harness';

const ACCESS_CONTROL_FAMILIES = new Set(['tensorwire_auth_requests_total', 'tensorwire_audit_events_total']);
/** Families registered only on servers with a traffic policy or a response cache (routing-stage and response-cache tests check them on such servers). */
const ROUTING_FAMILY = /^tensorwire_(routing|shadow|cache)_/;

/** Rows of docs/metrics.md's tensorwire table: name, type, label names. */
function documentedFamilies(): { name: string; type: string; labels: string[] }[] {
  const doc = readFileSync(join(__dirname, '..', 'docs', 'metrics.md'), 'utf8');
  const rows = [...doc.matchAll(/^\| `(tensorwire_\w+)` \| (\w+) \| ([^|]*) \|/gm)];
  return rows
    .map((r) => ({ name: r[1]!, type: r[2]!, labels: [...r[3]!.matchAll(/`(\w+)`/g)].map((l) => l[1]!) }))
    // Access-control families exist only on servers with access control (test/integration-auth.test.ts checks them).
    .filter((f) => !ACCESS_CONTROL_FAMILIES.has(f.name) && !ROUTING_FAMILY.test(f.name));
}

// ---------------------------------------------------------------------------------------------
// The server: a small MLP (fast, batch up to 8) and a slow model that holds an instance.

const MLP = { inputDim: 8, hidden: 16, outputDim: 3, seed: 5 };
const SLOW = { layers: 600, width: 512 };
const ROWS = 64; // slow requests are full batches: they can never share a batch
const mlpLabels = { model: 'mlp', version: '1' };
const slowLabels = { model: 'slow', version: '1' };
const STAGES = ['total', 'queue', 'compute_input', 'compute_infer', 'compute_output'];
/** Triton's inference_stats entries. */
type StatName = 'success' | 'queue' | 'compute_input' | 'compute_infer' | 'compute_output';

let h: Harness;

beforeAll(async () => {
  h = await startHarness({
    modelControl: 'explicit',
    loadModels: ['mlp', 'slow'],
    models: [
      {
        name: 'mlp',
        versions: { 1: (d) => mlpModel(d, { ...MLP, file: 'model.onnx' }) },
        config: { max_batch_size: 8, dynamic_batching: { max_queue_delay_microseconds: 200 }, instance_group: [{ count: 1, kind: 'KIND_CPU' }] },
      },
      {
        name: 'slow',
        versions: { 1: (d) => slowModel(d, { ...SLOW, file: 'model.onnx' }) },
        config: {
          max_batch_size: ROWS,
          dynamic_batching: { max_queue_delay_microseconds: 100, default_queue_policy: { allow_timeout_override: true } },
          instance_group: [{ count: 1, kind: 'KIND_CPU' }],
        },
      },
    ],
  });
});
afterAll(async () => {
  await h?.close();
});

const scrape = async () => new Scrape((await call(h.base, '/metrics')).text);
const stats = async (model: string) => (await call(h.base, `/v2/models/${model}/versions/1/stats`)).json.model_stats[0];

/** `rows` rows of MLP input whose values depend on `n`. */
function mlpInput(rows: number, n = 0): Float32Array {
  return Float32Array.from({ length: rows * MLP.inputDim }, (_, i) => Math.sin(n * 31 + i) * 0.5);
}

function inferMlp(rows: number, n = 0) {
  return postJson(h.base, '/v2/models/mlp/infer', { inputs: [{ name: 'input', datatype: 'FP32', shape: [rows, MLP.inputDim], data: Array.from(mlpInput(rows, n)) }] });
}

function slowInput(n: number): Float32Array {
  return Float32Array.from({ length: ROWS * SLOW.width }, (_, i) => n * 1000 + (i % 997));
}

function inferSlow(n: number, parameters: Record<string, unknown> = {}): Promise<BinaryReply> {
  const { body, headerLength } = binaryRequest([{ name: 'x', datatype: 'FP32', shape: [ROWS, SLOW.width], bytes: bytes(slowInput(n)) }], { parameters: { binary_data_output: true, ...parameters } });
  return postBinary(h.base, '/v2/models/slow/infer', body, headerLength);
}

/** A slow reply is 200 and its last row is exactly the reference (each output is ± one input). */
function expectSlowResult(r: BinaryReply, n: number): void {
  expect(r.status, r.body.toString('utf8', 0, 200)).toBe(200);
  const got = f32(r.binary.y!);
  expect(got.length).toBe(ROWS * SLOW.width);
  const last = (ROWS - 1) * SLOW.width;
  expect(Array.from(got.subarray(last))).toEqual(Array.from(slowReference(slowInput(n).subarray(last), SLOW)));
}

// ---------------------------------------------------------------------------------------------

describe('the exposition', () => {
  it('parses, and holds every documented tensorwire family with its type and labels', async () => {
    const s = await scrape();
    const documented = documentedFamilies();
    expect(documented.length).toBeGreaterThanOrEqual(12); // the table parsed
    const hasGpu = gpuStats().length > 0;
    for (const d of documented) {
      const f = s.families.get(d.name);
      if (d.name.startsWith('tensorwire_gpu_') && !hasGpu) {
        expect(f, `${d.name} must not exist without a GPU`).toBeUndefined();
        continue;
      }
      expect(f, `${d.name} is documented but not exposed`).toBeDefined();
      expect(f!.type, d.name).toBe(d.type);
      expect(f!.samples.length, `${d.name} has no series`).toBeGreaterThan(0);
      for (const sample of f!.samples) {
        const names = Object.keys(sample.labels).filter((k) => !(sample.name.endsWith('_bucket') && k === 'le'));
        expect(names.sort(), sample.name).toEqual([...d.labels].sort());
      }
    }
    // Nothing undocumented under the tensorwire_ prefix.
    const exposed = [...s.families.keys()].filter((n) => n.startsWith('tensorwire_'));
    expect(exposed.filter((n) => !documented.some((d) => d.name === n))).toEqual([]);
    // Histograms are cumulative and end with +Inf == _count.
    for (const f of [...s.families.values()].filter((x) => x.type === 'histogram')) {
      const series = new Map<string, Sample[]>();
      for (const b of f.samples.filter((x) => x.name.endsWith('_bucket'))) {
        const { le: _le, ...rest } = b.labels;
        const key = JSON.stringify(rest);
        series.set(key, [...(series.get(key) ?? []), b]);
      }
      for (const [key, buckets] of series) {
        const values = buckets.map((b) => b.value);
        expect(values, `${f.name}${key}`).toEqual([...values].sort((a, b) => a - b));
        expect(buckets.at(-1)!.labels.le).toBe('+Inf');
        expect(s.get(`${f.name}_count`, JSON.parse(key))).toBe(buckets.at(-1)!.value);
      }
    }
  });

  it('shows loaded versions ready with their memory, warm-up not counted as traffic, and the process gauges', async () => {
    const s = await scrape();
    for (const labels of [mlpLabels, slowLabels]) {
      expect(s.get('tensorwire_model_state', { ...labels, state: 'ready' })).toBe(1);
      for (const state of ['loading', 'warming', 'draining', 'unloading', 'unavailable', 'failed']) expect(s.get('tensorwire_model_state', { ...labels, state })).toBe(0);
      expect(s.get('tensorwire_model_memory_bytes', { ...labels, device: 'host' })).toBeGreaterThan(0);
      expect(s.get('tensorwire_model_memory_bytes', { ...labels, device: 'gpu' })).toBe(0); // CPU provider
      // Each version ran a warm-up batch; it is not user traffic.
      expect(s.get('tensorwire_inference_requests_total', { ...labels, outcome: 'success' })).toBe(0);
      expect(s.get('tensorwire_inference_exec_count_total', labels)).toBe(0);
      expect(s.get('tensorwire_queue_depth', labels)).toBe(0);
    }
    // At least one staging slot: a full batch of input and of output (64 x 512 floats each).
    expect(s.get('tensorwire_model_memory_bytes', { ...slowLabels, device: 'host' })).toBeGreaterThanOrEqual(2 * ROWS * SLOW.width * 4);
    expect(s.get('tensorwire_inflight_requests')).toBe(0);
    // Staging slots of CPU models are ordinary memory: both series exist and read 0.
    expect(s.get('tensorwire_pinned_memory_bytes', { state: 'used' })).toBe(0);
    expect(s.get('tensorwire_pinned_memory_bytes', { state: 'total' })).toBe(0);
    const lag = s.get('nodejs_eventloop_lag_seconds');
    expect(lag).toBeGreaterThanOrEqual(0);
    expect(lag).toBeLessThan(5);
    expect(s.get('nodejs_eventloop_lag_p99_seconds')).toBeGreaterThanOrEqual(0);
    expect(s.get('process_resident_memory_bytes')).toBeGreaterThan(1e6);
  });
});

describe('counters move by what a request does', () => {
  it('one successful request of batch 3: +1 request, +3 inferences, +1 execution, one observation per stage, one batch of 3', async () => {
    const before = await scrape();
    const statsBefore = await stats('mlp');
    const r = await inferMlp(3, 1);
    expect(r.status, r.text).toBe(200);
    const out = r.json.outputs[0];
    expect(out.shape).toEqual([3, MLP.outputDim]);
    const expected = mlpReference(mlpWeights(MLP), mlpInput(3, 1));
    (out.data as number[]).forEach((v, i) => expect(v).toBeCloseTo(expected[i]!, 4));

    const after = await scrape();
    const delta = (name: string, labels: Record<string, string> = {}) => after.sum(name, labels) - before.sum(name, labels);
    expect(delta('tensorwire_inference_requests_total', { ...mlpLabels, outcome: 'success', reason: '' })).toBe(1);
    expect(delta('tensorwire_inference_requests_total', { ...mlpLabels, outcome: 'failure' })).toBe(0);
    expect(delta('tensorwire_inference_count_total', mlpLabels)).toBe(3);
    expect(delta('tensorwire_inference_exec_count_total', mlpLabels)).toBe(1);
    for (const stage of STAGES) {
      expect(delta('tensorwire_request_duration_seconds_count', { ...mlpLabels, stage }), stage).toBe(1);
      expect(delta('tensorwire_request_duration_seconds_sum', { ...mlpLabels, stage }), stage).toBeGreaterThanOrEqual(0);
    }
    const total = delta('tensorwire_request_duration_seconds_sum', { ...mlpLabels, stage: 'total' });
    const infer = delta('tensorwire_request_duration_seconds_sum', { ...mlpLabels, stage: 'compute_infer' });
    expect(infer).toBeGreaterThan(0);
    expect(total).toBeGreaterThanOrEqual(infer);
    expect(total).toBeLessThan(5);
    expect(delta('tensorwire_batch_size_count', mlpLabels)).toBe(1);
    expect(delta('tensorwire_batch_size_sum', mlpLabels)).toBe(3);
    expect(delta('tensorwire_batch_size_bucket', { ...mlpLabels, le: '2' })).toBe(0);
    expect(delta('tensorwire_batch_size_bucket', { ...mlpLabels, le: '4' })).toBe(1);
    expect(delta('tensorwire_batch_size_bucket', { ...mlpLabels, le: '+Inf' })).toBe(1);
    // The other model did not move.
    expect(delta('tensorwire_inference_count_total', slowLabels)).toBe(0);

    const s = await stats('mlp');
    expect(s.inference_count - statsBefore.inference_count).toBe(3);
    expect(s.execution_count - statsBefore.execution_count).toBe(1);
    expect(s.inference_stats.success.count - statsBefore.inference_stats.success.count).toBe(1);
    const b3 = (x: { batch_stats: { batch_size: number; compute_infer: { count: number } }[] }) => x.batch_stats.find((b) => b.batch_size === 3)?.compute_infer.count ?? 0;
    expect(b3(s) - b3(statsBefore)).toBe(1);
  });

  it('a request over the WebSocket stream is counted like one over HTTP', async () => {
    const before = await scrape();
    const client = await StreamClient.connect(h.base);
    try {
      const r = await client.infer('mlp', { input: { datatype: 'FP32', shape: [2, MLP.inputDim], data: mlpInput(2, 7) } });
      expect(r.outputs.output!.shape).toEqual([2, MLP.outputDim]);
    } finally {
      await client.close();
    }
    const after = await scrape();
    expect(after.get('tensorwire_inference_requests_total', { ...mlpLabels, outcome: 'success' }) - before.get('tensorwire_inference_requests_total', { ...mlpLabels, outcome: 'success' })).toBe(1);
    expect(after.get('tensorwire_inference_count_total', mlpLabels) - before.get('tensorwire_inference_count_total', mlpLabels)).toBe(2);
  });

  it('a bad input counts one INVALID_INPUT failure and nothing else', async () => {
    const before = await scrape();
    const failBefore = (await stats('mlp')).inference_stats.fail.count;
    // 7 features where the model takes 8.
    const r = await postJson(h.base, '/v2/models/mlp/infer', { inputs: [{ name: 'input', datatype: 'FP32', shape: [2, 7], data: new Array(14).fill(0) }] });
    expect(r.status).toBe(400);
    expect(r.json.error).toMatch(/input/);
    // A batch over max_batch_size (8) is the same code.
    const big = await inferMlp(9);
    expect(big.status).toBe(400);
    const after = await scrape();
    const delta = (name: string, labels: Record<string, string>) => after.sum(name, labels) - before.sum(name, labels);
    expect(delta('tensorwire_inference_requests_total', { ...mlpLabels, outcome: 'failure', reason: 'INVALID_INPUT' })).toBe(2);
    expect(delta('tensorwire_inference_requests_total', { ...mlpLabels, outcome: 'success' })).toBe(0);
    expect(delta('tensorwire_inference_count_total', mlpLabels)).toBe(0);
    expect(delta('tensorwire_inference_exec_count_total', mlpLabels)).toBe(0);
    expect(delta('tensorwire_request_duration_seconds_count', { ...mlpLabels, stage: 'total' })).toBe(0); // durations are of successes
    expect((await stats('mlp')).inference_stats.fail.count - failBefore).toBe(2);
  });

  it('an unknown version or model (404) is counted nowhere and creates no series; an undecodable body for a served model counts one INVALID_INPUT failure of it', async () => {
    const before = await scrape();
    const input = { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, MLP.inputDim], data: Array.from(mlpInput(1)) }] };
    expect((await postJson(h.base, '/v2/models/mlp/versions/9/infer', input)).status).toBe(404);
    expect((await postJson(h.base, '/v2/models/nope/infer', input)).status).toBe(404);
    expect((await postJson(h.base, '/v2/models/mlp/versions/9/infer', '{"inputs": [')).status).toBe(400);
    expect((await postJson(h.base, '/v2/models/nope/infer', '{"inputs": [')).status).toBe(400);
    const middle = await scrape();
    expect(middle.samples.some((x) => x.labels.version === '9' || x.labels.model === 'nope')).toBe(false);
    expect(middle.sum('tensorwire_inference_requests_total')).toBe(before.sum('tensorwire_inference_requests_total'));
    expect((await postJson(h.base, '/v2/models/mlp/infer', '{"inputs": [')).status).toBe(400);
    const after = await scrape();
    expect(after.sum('tensorwire_inference_requests_total', { ...mlpLabels, outcome: 'failure', reason: 'INVALID_INPUT' }) - middle.sum('tensorwire_inference_requests_total', { ...mlpLabels, outcome: 'failure', reason: 'INVALID_INPUT' })).toBe(1);
  });
});

describe('held-back requests', () => {
  it('a request whose deadline passes in the queue counts one DEADLINE_EXCEEDED failure', async () => {
    const before = await scrape();
    // Two full batches occupy the only instance; the third waits behind them with a 20 ms timeout.
    const a = inferSlow(1);
    const b = inferSlow(2);
    await waitFor(async () => (await scrape()).get('tensorwire_inflight_requests') === 2, 'two slow requests in flight');
    const late = await inferSlow(3, { timeout: 20_000 });
    expect(late.status).toBe(504);
    expectSlowResult(await a, 1);
    expectSlowResult(await b, 2);
    const after = await scrape();
    const delta = (labels: Record<string, string>) => after.sum('tensorwire_inference_requests_total', labels) - before.sum('tensorwire_inference_requests_total', labels);
    expect(delta({ ...slowLabels, outcome: 'failure', reason: 'DEADLINE_EXCEEDED' })).toBe(1);
    expect(delta({ ...slowLabels, outcome: 'failure' })).toBe(1);
    expect(delta({ ...slowLabels, outcome: 'success' })).toBe(2);
    expect(after.get('tensorwire_inference_exec_count_total', slowLabels) - before.get('tensorwire_inference_exec_count_total', slowLabels)).toBe(2);
  });

  it('queue depth and in-flight rise while a busy instance holds requests back, then return to 0', async () => {
    const before = await scrape();
    const replies = [1, 2, 3, 4, 5].map((n) => inferSlow(10 + n));
    let seen = { inflight: 0, queued: 0, mlpQueued: -1 };
    await waitFor(async () => {
      const s = await scrape();
      seen = { inflight: s.get('tensorwire_inflight_requests'), queued: s.get('tensorwire_queue_depth', slowLabels), mlpQueued: s.get('tensorwire_queue_depth', mlpLabels) };
      return seen.inflight === 5 && seen.queued >= 1;
    }, 'five slow requests in flight, some queued');
    expect(seen.queued).toBeLessThanOrEqual(4); // at least one is running
    expect(seen.mlpQueued).toBe(0); // the other model's queue is its own
    const results = await Promise.all(replies);
    results.forEach((r, i) => expectSlowResult(r, 11 + i));
    const after = await scrape();
    expect(after.get('tensorwire_queue_depth', slowLabels)).toBe(0);
    expect(after.get('tensorwire_inflight_requests')).toBe(0);
    // The wait shows in the queue stage: the last requests waited for several whole batches.
    const d = (stage: string) => after.get('tensorwire_request_duration_seconds_sum', { ...slowLabels, stage }) - before.get('tensorwire_request_duration_seconds_sum', { ...slowLabels, stage });
    expect(after.get('tensorwire_request_duration_seconds_count', { ...slowLabels, stage: 'queue' }) - before.get('tensorwire_request_duration_seconds_count', { ...slowLabels, stage: 'queue' })).toBe(5);
    expect(d('queue')).toBeGreaterThan(0.5 * d('compute_infer'));
    expect(d('total')).toBeGreaterThanOrEqual(0.99 * (d('queue') + d('compute_infer'))); // 1%: the stages and the total come from different clocks
    expect(after.get('tensorwire_batch_size_bucket', { ...slowLabels, le: '64' }) - before.get('tensorwire_batch_size_bucket', { ...slowLabels, le: '64' })).toBe(5);
    expect(after.get('tensorwire_batch_size_bucket', { ...slowLabels, le: '32' }) - before.get('tensorwire_batch_size_bucket', { ...slowLabels, le: '32' })).toBe(0);
  });
});

describe('/stats and /metrics', () => {
  it('agree after a mixed workload (concurrent batches of several sizes, failures)', async () => {
    const work = [];
    for (let i = 0; i < 24; i++) work.push(inferMlp(1 + (i % 4), i));
    for (let i = 0; i < 3; i++) work.push(postJson(h.base, '/v2/models/mlp/infer', { inputs: [{ name: 'input', datatype: 'INT32', shape: [1, MLP.inputDim], data: new Array(MLP.inputDim).fill(1) }] }));
    const replies = await Promise.all(work);
    expect(replies.map((r) => r.status).sort()).toEqual([...new Array(24).fill(200), 400, 400, 400]);

    const s = await scrape();
    for (const labels of [mlpLabels, slowLabels]) {
      const st = await stats(labels.model);
      const where = labels.model;
      expect(st.inference_count, where).toBe(s.get('tensorwire_inference_count_total', labels));
      expect(st.execution_count, where).toBe(s.get('tensorwire_inference_exec_count_total', labels));
      expect(st.inference_stats.success.count, where).toBe(s.get('tensorwire_inference_requests_total', { ...labels, outcome: 'success' }));
      expect(st.inference_stats.fail.count, where).toBe(s.sum('tensorwire_inference_requests_total', { ...labels, outcome: 'failure' }));
      expect(st.execution_count, where).toBe(s.get('tensorwire_batch_size_count', labels));
      // Every executed sample belonged to a successful request.
      expect(st.inference_count, where).toBe(s.get('tensorwire_batch_size_sum', labels));
      const batchStats = st.batch_stats as { batch_size: number; compute_infer: { count: number } }[];
      expect(batchStats.reduce((a, b) => a + b.compute_infer.count, 0), where).toBe(st.execution_count);
      expect(batchStats.reduce((a, b) => a + b.batch_size * b.compute_infer.count, 0), where).toBe(st.inference_count);
      // Same durations: Triton's nanoseconds and Prometheus' seconds, from the same timings.
      const pairs: [StatName, string][] = [['success', 'total'], ['queue', 'queue'], ['compute_input', 'compute_input'], ['compute_infer', 'compute_infer'], ['compute_output', 'compute_output']];
      for (const [statName, stage] of pairs) {
        const d = st.inference_stats[statName] as { count: number; ns: number };
        expect(d.count, `${where} ${stage}`).toBe(s.get('tensorwire_request_duration_seconds_count', { ...labels, stage }));
        expect(Math.abs(d.ns / 1e9 - s.get('tensorwire_request_duration_seconds_sum', { ...labels, stage })), `${where} ${stage}`).toBeLessThan(1e-6 + d.count * 1e-9);
      }
    }
    const mlp = await stats('mlp');
    expect(mlp.inference_stats.success.count).toBe(24 + 1 + 1); // this workload, the batch-3 request, the stream request
    expect(mlp.inference_stats.fail.count).toBe(3 + 2 + 1); // ... and the undecodable body of the 404/400 test
  });
});

describe('unloading', () => {
  it('removes every series of the unloaded version', async () => {
    expect((await scrape()).has('tensorwire_inference_count_total', mlpLabels)).toBe(true);
    const r = await call(h.base, '/v2/repository/models/mlp/unload', { method: 'POST' });
    expect(r.status, r.text).toBe(200);
    const s = await scrape();
    expect(s.samples.filter((x) => x.labels.model === 'mlp').map((x) => x.name)).toEqual([]);
    expect(s.get('tensorwire_model_state', { ...slowLabels, state: 'ready' })).toBe(1);
  });
});
