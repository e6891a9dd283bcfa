/**
 * Loading a ~100 MB model must not stall the models already serving: the load runs on the
 * engine's loader thread, never on the event loop. The MLP takes a steady open-loop load
 * (batch-1 JSON at a fixed rate) while `large` (a 5000 x 5000 FP32 MatMul) is loaded through
 * the repository API; the MLP's latency over the requests sent during the load is compared
 * with the seconds before it.
 *
 * What the test asserts is what the server controls: the event loop is never held up by the
 * load (its longest delay stays far below the load's duration), and the MLP keeps answering
 * at the offered rate with its steady-state median. The p99 is logged, not asserted: on a
 * 2-core box the loader thread takes one core for the whole load, and here the load
 * generator shares the process with the server, so the p99 measures CPU contention more than
 * tensorwire. bench/load-while-serving.ts measures the p99 criterion (within 2x of steady
 * state) with server and generator in separate processes, and docs/benchmarks.md records it.
 */
import { Agent, request } from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { largeModel, mlpModel } from './fixtures/models';
import { uniformFloats } from './fixtures/random';
import { call, f32, readBinaryReply, startHarness, type Harness } from './helpers/server-harness';

const RATE = 400;
let h: Harness;

beforeAll(async () => {
  h = await startHarness({
    modelControl: 'explicit',
    loadModels: ['mlp'],
    models: [
      { name: 'mlp', versions: { 1: (d) => mlpModel(d, { file: 'model.onnx' }) } },
      { name: 'large', versions: { 1: (d) => largeModel(d, { file: 'model.onnx' }) } },
    ],
  });
});
afterAll(async () => {
  await h?.close();
});

/** [sent at (ms, performance clock), latency ms, status] */
type Sample = [number, number, number];

/** Sends RATE requests/s to the MLP until `stop()`; resolves with every sample once all answered. */
function steadyLoad(port: number): { stop: () => Promise<Sample[]> } {
  const agent = new Agent({ keepAlive: true, maxSockets: 16 });
  const body = Buffer.from(JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 256], data: Array.from({ length: 256 }, (_, i) => Math.cos(i) / 2) }] }));
  const samples: Sample[] = [];
  let pending = 0;
  let stopped = false;
  const start = performance.now();
  let sent = 0;
  const send = (): void => {
    const t0 = performance.now();
    pending++;
    const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/v2/models/mlp/infer', agent, headers: { 'content-length': body.length } }, (res) => {
      res.resume();
      res.on('end', () => {
        samples.push([t0, performance.now() - t0, res.statusCode ?? 0]);
        pending--;
      });
    });
    req.on('error', () => {
      samples.push([t0, performance.now() - t0, 0]);
      pending--;
    });
    req.end(body);
  };
  const tick = (): void => {
    if (stopped) return;
    const due = Math.floor(((performance.now() - start) * RATE) / 1000);
    while (sent < due) {
      send();
      sent++;
    }
    setTimeout(tick, 1);
  };
  tick();
  return {
    stop: async () => {
      stopped = true;
      while (pending > 0) await new Promise((r) => setTimeout(r, 10));
      agent.destroy();
      return samples;
    },
  };
}

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}

describe('loading a 100 MB model while another model serves', () => {
  it('keeps the serving model answering with its steady-state latency', async () => {
    const load = steadyLoad(h.port);
    await new Promise((r) => setTimeout(r, 500)); // warm-up
    const steadyFrom = performance.now();
    await new Promise((r) => setTimeout(r, 2000));
    const loop = monitorEventLoopDelay({ resolution: 1 });
    const loadFrom = performance.now();
    loop.enable();
    const loaded = await call(h.base, '/v2/repository/models/large/load', { method: 'POST' });
    loop.disable();
    const loadTo = performance.now();
    await new Promise((r) => setTimeout(r, 200));
    const samples = await load.stop();
    expect(loaded.status, loaded.text).toBe(200);

    const steady = samples.filter((s) => s[0] >= steadyFrom && s[0] < loadFrom);
    const during = samples.filter((s) => s[0] >= loadFrom && s[0] < loadTo);
    expect(samples.every((s) => s[2] === 200)).toBe(true);
    const loadMs = loadTo - loadFrom;
    // The MLP kept taking requests at the offered rate during the load.
    expect(during.length).toBeGreaterThanOrEqual(Math.floor((loadMs * RATE) / 1000 * 0.8) - 2);
    const lat = (xs: Sample[]) => xs.map((s) => s[1]);
    const steadyP50 = quantile(lat(steady), 0.5);
    const steadyP99 = quantile(lat(steady), 0.99);
    const duringP50 = quantile(lat(during), 0.5);
    const duringP99 = quantile(lat(during), 0.99);
    const loopMaxMs = loop.max / 1e6;
    console.log(
      `load ${loadMs.toFixed(0)} ms, longest event-loop delay ${loopMaxMs.toFixed(1)} ms; MLP p50/p99 steady ${steadyP50.toFixed(2)}/${steadyP99.toFixed(2)} ms, ` +
        `during the load ${duringP50.toFixed(2)}/${duringP99.toFixed(2)} ms (${during.length} requests)`,
    );
    // The load ran off the event loop: no stall anywhere near its duration (idle, the longest
    // delay is a few ms; other processes on a busy 2-core box can add tens of ms).
    expect(loopMaxMs).toBeLessThan(loadMs / 2);
    // The median stays near steady state; the allowance covers the core the loader thread takes
    // (and other test files running beside this one). A blocking load would put it near loadMs / 2.
    expect(duringP50).toBeLessThanOrEqual(3 * steadyP50 + 10);
    // A load on the event loop would hold every request sent during it for most of the load.
    expect(Math.max(...lat(during))).toBeLessThan(Math.max(loadMs * 0.75, 2 * steadyP99 + 10));

    // And the big model serves: y = x W, so a one-hot x on row 0 gives W's first row.
    const x = new Array(5000).fill(0);
    x[0] = 1;
    const res = await fetch(`${h.base}/v2/models/large/infer`, {
      method: 'POST',
      body: JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 5000], data: x }], parameters: { binary_data_output: true } }),
    });
    const y = await readBinaryReply(res);
    expect(y.status).toBe(200);
    // The weight is row-major from one seeded sequence: its first row is the first 5000 draws.
    expect(Array.from(f32(y.binary.y!))).toEqual(Array.from(uniformFloats(11, 5000, 0.01)));
  });
});
