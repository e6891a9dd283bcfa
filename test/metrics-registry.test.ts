/**
 * The registry's counters, histograms and gauges move exactly as recorded, as seen through
 * the Prometheus text a scrape returns.
 */
import { describe, expect, test } from 'vitest';
import { Registry } from 'prom-client';
import { DURATION_BUCKETS_S, createMetrics } from '../lib/metrics/registry';

/** Parses Prometheus text into `name{a="x",b="y"}` (labels sorted) -> value. */
function parse(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable line: ${line}`);
    const labels = m[2] ? [...m[2].matchAll(/([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"/g)].map((x) => `${x[1]}="${x[2]}"`).sort() : [];
    out.set(`${m[1]}{${labels.join(',')}}`, Number(m[3]));
  }
  return out;
}

async function scrape(metrics: ReturnType<typeof createMetrics>): Promise<Map<string, number>> {
  return parse((await metrics.exposition()).body);
}

const fresh = () => createMetrics(new Registry(), { defaultMetrics: false });
const timings = { queueUs: 100, computeInputUs: 20, computeInferUs: 1_000, computeOutputUs: 30 };

describe('request counters', () => {
  test('count successes, failures by reason, samples and batches exactly', async () => {
    const metrics = fresh();
    for (let i = 0; i < 7; i++) metrics.recordRequest('mlp', '1', 'success', '', timings, 4);
    metrics.recordRequest('mlp', '1', 'failure', 'QUEUE_FULL');
    metrics.recordRequest('mlp', '1', 'failure', 'QUEUE_FULL');
    metrics.recordRequest('mlp', '1', 'failure', 'DEADLINE_EXCEEDED');
    metrics.recordRequest('mlp', '2', 'success', '', timings);
    metrics.recordBatch('mlp', '1', 16);
    metrics.recordBatch('mlp', '1', 12);
    const s = await scrape(metrics);
    expect(s.get('tensorwire_inference_requests_total{model="mlp",outcome="success",reason="",version="1"}')).toBe(7);
    expect(s.get('tensorwire_inference_requests_total{model="mlp",outcome="failure",reason="QUEUE_FULL",version="1"}')).toBe(2);
    expect(s.get('tensorwire_inference_requests_total{model="mlp",outcome="failure",reason="DEADLINE_EXCEEDED",version="1"}')).toBe(1);
    expect(s.get('tensorwire_inference_requests_total{model="mlp",outcome="success",reason="",version="2"}')).toBe(1);
    expect(s.get('tensorwire_inference_count_total{model="mlp",version="1"}')).toBe(28);
    expect(s.get('tensorwire_inference_count_total{model="mlp",version="2"}')).toBe(1);
    expect(s.get('tensorwire_inference_exec_count_total{model="mlp",version="1"}')).toBe(2);
    expect(s.get('tensorwire_batch_size_count{model="mlp",version="1"}')).toBe(2);
    expect(s.get('tensorwire_batch_size_sum{model="mlp",version="1"}')).toBe(28);
    // 12 and 16 both fall in (8, 16].
    expect(s.get('tensorwire_batch_size_bucket{le="8",model="mlp",version="1"}')).toBe(0);
    expect(s.get('tensorwire_batch_size_bucket{le="16",model="mlp",version="1"}')).toBe(2);
  });

  test('a kept ModelMetrics handle records into the same series as recordRequest', async () => {
    const metrics = fresh();
    const handle = metrics.model('m', 'v');
    handle.recordSuccess(timings, 2);
    handle.recordFailure('INVALID_INPUT');
    metrics.recordRequest('m', 'v', 'success', '', timings, 3);
    expect(metrics.model('m', 'v')).toBe(handle);
    const s = await scrape(metrics);
    expect(s.get('tensorwire_inference_requests_total{model="m",outcome="success",reason="",version="v"}')).toBe(2);
    expect(s.get('tensorwire_inference_requests_total{model="m",outcome="failure",reason="INVALID_INPUT",version="v"}')).toBe(1);
    expect(s.get('tensorwire_inference_count_total{model="m",version="v"}')).toBe(5);
  });

  test('a success without timings is refused', () => {
    expect(() => fresh().recordRequest('m', '1', 'success', '')).toThrow(/needs its stage timings/);
  });
});

describe('duration histogram', () => {
  test('stage sums, counts and buckets follow the recorded microseconds', async () => {
    const metrics = fresh();
    metrics.recordRequest('m', '1', 'success', '', timings);
    metrics.recordRequest('m', '1', 'success', '', { queueUs: 5, computeInputUs: 15, computeInferUs: 3_000_000, computeOutputUs: 25 }, 1, 4_000_000);
    const s = await scrape(metrics);
    const key = (suffix: string, stage: string, le?: string) => `tensorwire_request_duration_seconds_${suffix}{${le === undefined ? '' : `le="${le}",`}model="m",stage="${stage}",version="1"}`;
    expect(s.get(key('count', 'queue'))).toBe(2);
    expect(s.get(key('sum', 'queue'))).toBeCloseTo(105e-6, 12);
    expect(s.get(key('sum', 'compute_infer'))).toBeCloseTo(3.001, 9);
    expect(s.get(key('sum', 'compute_output'))).toBeCloseTo(55e-6, 12);
    // total: the sum of stages for the first (1150 µs), the given 4 s for the second.
    expect(s.get(key('sum', 'total'))).toBeCloseTo(4.00115, 9);
    // 5 µs is below the first bound (10 µs); 100 µs lies in (80 µs, 160 µs].
    expect(s.get(key('bucket', 'queue', '0.00001'))).toBe(1);
    expect(s.get(key('bucket', 'queue', '0.00008'))).toBe(1);
    expect(s.get(key('bucket', 'queue', '0.00016'))).toBe(2);
    expect(s.get(key('bucket', 'compute_infer', '2.62144'))).toBe(1);
    expect(s.get(key('bucket', 'compute_infer', '5.24288'))).toBe(2);
    expect(s.get(key('bucket', 'compute_infer', '+Inf'))).toBe(2);
  });

  test('buckets run from 10 µs to about 10 s', () => {
    expect(DURATION_BUCKETS_S[0]).toBe(1e-5);
    expect(DURATION_BUCKETS_S.at(-1)).toBeGreaterThanOrEqual(10);
    expect(DURATION_BUCKETS_S.at(-1)).toBeLessThan(11);
  });

  test('failures record no durations', async () => {
    const metrics = fresh();
    metrics.recordRequest('m', '1', 'failure', 'ENGINE_FAILURE');
    const s = await scrape(metrics);
    expect(s.get('tensorwire_request_duration_seconds_count{model="m",stage="total",version="1"}')).toBe(0);
  });
});

describe('gauges', () => {
  test('queue depth is read from the providers at scrape time', async () => {
    const metrics = fresh();
    let depth = 3;
    const off = metrics.registerQueueDepthProvider(() => [{ model: 'a', version: '1', depth }]);
    metrics.registerQueueDepthProvider(() => [{ model: 'b', version: '1', depth: 9 }]);
    expect((await scrape(metrics)).get('tensorwire_queue_depth{model="a",version="1"}')).toBe(3);
    depth = 41; // no response left, nothing was "updated": the scrape still sees the new depth
    let s = await scrape(metrics);
    expect(s.get('tensorwire_queue_depth{model="a",version="1"}')).toBe(41);
    expect(s.get('tensorwire_queue_depth{model="b",version="1"}')).toBe(9);
    off();
    s = await scrape(metrics);
    expect(s.has('tensorwire_queue_depth{model="a",version="1"}')).toBe(false);
    expect(s.get('tensorwire_queue_depth{model="b",version="1"}')).toBe(9);
  });

  test('in-flight requests, model state, memory and pinned memory', async () => {
    const metrics = fresh();
    metrics.requestStarted();
    metrics.requestStarted();
    metrics.requestStarted();
    metrics.requestFinished();
    metrics.setModelState('m', '1', 'loading');
    metrics.setModelState('m', '1', 'ready');
    metrics.setModelMemory('m', '1', { host: 1_000, gpu: 2_000 });
    metrics.setPinnedMemory(64, 128);
    let s = await scrape(metrics);
    expect(s.get('tensorwire_inflight_requests{}')).toBe(2);
    expect(s.get('tensorwire_model_state{model="m",state="ready",version="1"}')).toBe(1);
    expect(s.get('tensorwire_model_state{model="m",state="loading",version="1"}')).toBe(0);
    expect([...s].filter(([k, v]) => k.startsWith('tensorwire_model_state{') && v === 1)).toHaveLength(1);
    expect([...s].filter(([k]) => k.startsWith('tensorwire_model_state{'))).toHaveLength(7);
    expect(s.get('tensorwire_model_memory_bytes{device="host",model="m",version="1"}')).toBe(1_000);
    expect(s.get('tensorwire_model_memory_bytes{device="gpu",model="m",version="1"}')).toBe(2_000);
    expect(s.get('tensorwire_pinned_memory_bytes{state="used"}')).toBe(64);
    expect(s.get('tensorwire_pinned_memory_bytes{state="total"}')).toBe(128);
    metrics.registerPinnedMemoryProvider(() => ({ usedBytes: 5, totalBytes: 6 }));
    s = await scrape(metrics);
    expect(s.get('tensorwire_pinned_memory_bytes{state="used"}')).toBe(5);
  });

  test('GPU gauges come from the provider', async () => {
    const metrics = createMetrics(new Registry(), {
      defaultMetrics: false,
      gpuProvider: () => [{ gpu: '0', utilization: 0.75, memoryUsedBytes: 3e9, memoryTotalBytes: 80e9 }],
    });
    const s = await scrape(metrics);
    expect(s.get('tensorwire_gpu_utilization_ratio{gpu="0"}')).toBe(0.75);
    expect(s.get('tensorwire_gpu_memory_bytes{gpu="0",state="used"}')).toBe(3e9);
    expect(s.get('tensorwire_gpu_memory_bytes{gpu="0",state="total"}')).toBe(80e9);
    expect(() => metrics.registerGpuProvider(() => [])).toThrow(/already registered/);
  });
});

describe('lifecycle', () => {
  test('removeModel drops the version series and a later record starts from zero', async () => {
    const metrics = fresh();
    metrics.recordRequest('m', '1', 'success', '', timings);
    metrics.recordRequest('m', '2', 'success', '', timings);
    metrics.setModelState('m', '1', 'ready');
    metrics.removeModel('m', '1');
    let s = await scrape(metrics);
    expect([...s.keys()].filter((k) => k.includes('version="1"'))).toEqual([]);
    expect(s.get('tensorwire_inference_requests_total{model="m",outcome="success",reason="",version="2"}')).toBe(1);
    metrics.recordRequest('m', '1', 'success', '', timings);
    s = await scrape(metrics);
    expect(s.get('tensorwire_inference_requests_total{model="m",outcome="success",reason="",version="1"}')).toBe(1);
  });

  test('registry.resetMetrics() zeroes the series and cached handles keep recording', async () => {
    const metrics = fresh();
    const h = metrics.model('m', '1');
    h.recordSuccess(timings);
    metrics.registry.resetMetrics();
    h.recordSuccess(timings);
    const s = await scrape(metrics);
    expect(s.get('tensorwire_inference_requests_total{model="m",outcome="success",reason="",version="1"}')).toBe(1);
    expect(s.get('tensorwire_request_duration_seconds_count{model="m",stage="queue",version="1"}')).toBe(1);
  });

  test('default metrics include the event-loop lag and JSON export works', async () => {
    const metrics = createMetrics(new Registry());
    const json = await metrics.registry.getMetricsAsJSON();
    const names = json.map((m) => m.name);
    expect(names).toContain('nodejs_eventloop_lag_p99_seconds');
    expect(names).toContain('process_resident_memory_bytes');
    expect(json.find((m) => m.name === 'tensorwire_request_duration_seconds')?.type).toBe('histogram');
    expect(() => createMetrics(metrics.registry, { defaultMetrics: false })).toThrow(/already been registered/);
  });
});
