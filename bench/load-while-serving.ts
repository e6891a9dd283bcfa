/**
 * Does loading a big model hurt the models already serving? A tensorwire server (its own
 * process, explicit model control) serves the 256 -> 1024 -> 16 MLP under a steady open-loop
 * load (fixed request rate, batch-1 JSON, from a worker thread of this process); then a
 * ~100 MB model (5000 x 5000 FP32 MatMul) is loaded through POST
 * /v2/repository/models/large/load, unloaded and loaded again, several times. Each trial
 * compares the MLP's p99 over the requests sent while the load ran with its p99 over the
 * seconds just before it (steady state). Target: during-load p99 within 2x of steady.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/load-while-serving.js [--rate 1000]
 *       [--connections 32] [--trials 3] [--steady 3]
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { largeModel, mlpModel } from '../test/fixtures/models';
import { startTensorwire } from './serve-process';
import { formatTable } from './table';

/** What the load worker is told. */
interface LoadPlan {
  port: number;
  rate: number;
  connections: number;
  body: string;
}

/** One request: when it was sent (epoch ms) and how long it took (ms); status 0 = transport error. */
type Sample = [sentMs: number, latencyMs: number, status: number];

/**
 * The worker: sends `rate` requests per second over at most `connections` keep-alive sockets
 * (open loop: a slow answer does not delay the next send), until told to stop, then posts
 * every sample back.
 */
function runWorker(plan: LoadPlan): void {
  const agent = new Agent({ keepAlive: true, maxSockets: plan.connections });
  const samples: Sample[] = [];
  const body = Buffer.from(plan.body);
  const intervalMs = 1000 / plan.rate;
  let stopped = false;
  let pending = 0;
  const origin = performance.timeOrigin;
  const send = (): void => {
    const t0 = performance.now();
    pending++;
    const req = request({ host: '127.0.0.1', port: plan.port, method: 'POST', path: '/v2/models/mlp/infer', agent, headers: { 'content-type': 'application/json', 'content-length': body.length } }, (res) => {
      res.resume();
      res.on('end', () => {
        samples.push([origin + t0, performance.now() - t0, res.statusCode ?? 0]);
        pending--;
      });
    });
    req.on('error', () => {
      samples.push([origin + t0, performance.now() - t0, 0]);
      pending--;
    });
    req.end(body);
  };
  const start = performance.now();
  let sent = 0;
  const tick = (): void => {
    if (stopped) return;
    // Catch up to the schedule: every request due by now goes out.
    const due = Math.floor((performance.now() - start) / intervalMs);
    while (sent < due) {
      send();
      sent++;
    }
    setTimeout(tick, 1);
  };
  tick();
  parentPort!.on('message', (m: string) => {
    if (m !== 'stop') return;
    stopped = true;
    const finish = (): void => {
      if (pending > 0) {
        setTimeout(finish, 10);
        return;
      }
      agent.destroy();
      parentPort!.postMessage(samples);
    };
    finish();
  });
}

function p(values: number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rate: { type: 'string', default: '1000' },
      connections: { type: 'string', default: '32' },
      trials: { type: 'string', default: '3' },
      steady: { type: 'string', default: '3' },
    },
  });
  const rate = Number(values.rate);
  const trials = Number(values.trials);
  const steadyMs = Number(values.steady) * 1000;
  const repo = mkdtempSync(join(tmpdir(), 'tw-load-while-serving-'));
  const rows: (string | number)[][] = [];
  const ratios: number[] = [];
  try {
    mkdirSync(join(repo, 'mlp', '1'), { recursive: true });
    mkdirSync(join(repo, 'large', '1'), { recursive: true });
    await mlpModel(join(repo, 'mlp', '1'), { file: 'model.onnx' });
    await largeModel(join(repo, 'large', '1'), { file: 'model.onnx' });
    const server = await startTensorwire(['--repo', repo, '--model-control', 'explicit', '--load-model', 'mlp']);
    try {
      const input = Array.from({ length: 256 }, (_, i) => Math.sin(i) * 0.5);
      const body = JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 256], data: input }] });
      const worker = new Worker(__filename, { workerData: { port: server.port, rate, connections: Number(values.connections), body } satisfies LoadPlan });
      const windows: { steady: [number, number]; load: [number, number]; loadMs: number }[] = [];
      await sleep(1000); // warm-up, not measured
      for (let t = 0; t < trials; t++) {
        const steadyStart = Date.now();
        await sleep(steadyMs);
        const loadStart = Date.now();
        const res = await fetch(`${server.url}/v2/repository/models/large/load`, { method: 'POST' });
        const loadEnd = Date.now();
        if (res.status !== 200) throw new Error(`load of the large model answered ${res.status}: ${await res.text()}`);
        windows.push({ steady: [steadyStart, loadStart], load: [loadStart, loadEnd], loadMs: loadEnd - loadStart });
        await sleep(500);
        const unload = await fetch(`${server.url}/v2/repository/models/large/unload`, { method: 'POST' });
        if (unload.status !== 200) throw new Error(`unload answered ${unload.status}: ${await unload.text()}`);
      }
      await sleep(500);
      const samples = await new Promise<Sample[]>((resolve) => {
        worker.once('message', resolve);
        worker.postMessage('stop');
      });
      await worker.terminate();
      const pick = ([from, to]: [number, number]) => samples.filter((s) => s[0] >= from && s[0] < to);
      windows.forEach((w, i) => {
        const steady = pick(w.steady);
        const during = pick(w.load);
        const errors = [...steady, ...during].filter((s) => s[2] !== 200).length;
        const steadyP99 = p(steady.map((s) => s[1]), 0.99);
        const loadP99 = p(during.map((s) => s[1]), 0.99);
        ratios.push(loadP99 / steadyP99);
        rows.push([
          String(i + 1), w.loadMs, steady.length, p(steady.map((s) => s[1]), 0.5), steadyP99,
          during.length, p(during.map((s) => s[1]), 0.5), loadP99, Math.max(...during.map((s) => s[1])), `${(loadP99 / steadyP99).toFixed(2)}x`, String(errors),
        ]);
      });
    } finally {
      await server.stop();
    }
  } finally {
    rmSync(repo, { recursive: true, force: true });
  }
  const machine = `${availableParallelism()} cores, Node ${process.versions.node}, ${new Date().toISOString().slice(0, 10)}`;
  console.log(`MLP under ${rate} req/s (batch-1 JSON, open loop) while a 100 MB model loads (${machine})\n`);
  console.log(formatTable(['trial', 'load ms', 'steady reqs', 'steady p50 ms', 'steady p99 ms', 'during reqs', 'during p50 ms', 'during p99 ms', 'during max ms', 'p99 ratio', 'errors'], rows));
  const worst = Math.max(...ratios);
  console.log(`\n${worst <= 2 ? 'met   ' : 'MISSED'}  p99 during the load within 2x of steady state: worst ${worst.toFixed(2)}x`);
}

if (isMainThread) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
} else {
  runWorker(workerData as LoadPlan);
}
