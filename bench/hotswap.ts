/**
 * Latency of a serving model while it is hot-swapped, against the same model in steady state,
 * in the same run: `tensorwire serve` (a child process, explicit model control) serves the
 * 256-1024-16 MLP of design.md; a load generator in a worker thread keeps `--connections`
 * HTTP connections busy (closed loop, binary tensors, batch 1); windows alternate between
 * steady state and swapping (a new version published and loaded every `--swap-every-ms`).
 * Also reports the server's RSS after the first swaps and after all of them.
 *
 *   npm run build:ts && node dist/bench/hotswap.js [--seconds 2 --rounds 6 --connections 8 --swap-every-ms 250]
 */
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { LatencyHistogram } from '../lib/bench/histogram';
import { fetchModelInfo, generateInputs, prepareRequest } from '../lib/bench/inputs';
import type { LoadPlan, WindowStats } from '../lib/bench/load-runner';
import { createDrivers } from '../lib/bench/worker-pool';
import { mlpModel } from '../test/fixtures/models';
import { formatTable } from './table';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '6' },
    connections: { type: 'string', default: '8' },
    'swap-every-ms': { type: 'string', default: '250' },
  },
});
const SECONDS = Number(args.seconds);
const ROUNDS = Number(args.rounds);
const CONNECTIONS = Number(args.connections);
const SWAP_EVERY_MS = Number(args['swap-every-ms']);
const MODEL = 'mlp';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** RSS of a process in bytes (Linux). */
function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

async function post(url: string): Promise<void> {
  const res = await fetch(url, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
  if (res.status !== 200) throw new Error(`POST ${url}: ${res.status} ${await res.text()}`);
}

async function main(): Promise<void> {
  const repo = mkdtempSync(join(tmpdir(), 'tw-bench-hotswap-'));
  const files = mkdtempSync(join(tmpdir(), 'tw-bench-hotswap-files-'));
  // Two weight sets, copied into each new version directory (published atomically by rename).
  const sources = [await mlpModel(files, { seed: 1, file: 'a.onnx' }), await mlpModel(files, { seed: 2, file: 'b.onnx' })];
  let version = 1;
  const publish = (v: number): void => {
    const tmp = join(repo, MODEL, `.tmp-${v}`);
    mkdirSync(tmp, { recursive: true });
    copyFileSync(sources[v % 2], join(tmp, 'model.onnx'));
    renameSync(tmp, join(repo, MODEL, String(v)));
  };
  publish(version);

  const cli = join(__dirname, '..', 'lib', 'cli.js');
  const server = spawn(process.execPath, [cli, 'serve', '--repo', repo, '--port', '0', '--grpc-port', 'off', '--model-control', 'explicit', '--load-model', MODEL], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: string[] = [];
  server.stdout!.on('data', (c: Buffer) => lines.push(...c.toString().split('\n')));
  let url = '';
  for (let i = 0; i < 300 && url === ''; i++) {
    const line = lines.find((l) => l.startsWith('tensorwire serving on '));
    if (line) url = /on (http:\/\/\S+)/.exec(line)![1];
    else await sleep(100);
  }
  if (url === '') throw new Error(`the server did not start:\n${lines.join('\n')}`);
  while ((await fetch(`${url}/v2/health/ready`)).status !== 200) await sleep(50);

  const info = await fetchModelInfo(url, MODEL);
  const { tensors, samples } = generateInputs(info, 1, {});
  const request = prepareRequest({ url, model: MODEL, protocol: 'http-binary' }, tensors, samples);
  const u = new URL(url);
  const plan: LoadPlan = { protocol: 'http', host: u.hostname, port: Number(u.port), wsUrl: '', request: request.bytes, mode: 'concurrency', connections: CONNECTIONS, rate: 0, distribution: 'constant', timeoutMs: 10_000 };
  const [driver] = createDrivers(1);
  await driver!.start(plan);
  await sleep(1500); // warm-up
  await driver!.snapshot();

  let swaps = 0;
  const swapMs: number[] = [];
  /** One swap: a new version directory, an explicit load that returns once it serves, the old directory removed. */
  const swap = async (): Promise<void> => {
    version++;
    publish(version);
    const t0 = performance.now();
    await post(`${url}/v2/repository/models/${MODEL}/load`);
    swapMs.push(performance.now() - t0);
    rmSync(join(repo, MODEL, String(version - 1)), { recursive: true, force: true });
    swaps++;
  };
  // Ten swaps before measuring memory, so allocators have reached their working size.
  for (let i = 0; i < 10; i++) await swap();
  await sleep(500);
  const rssAfterFirst = rssOf(server.pid!);
  await driver!.snapshot();

  const steady = new LatencyHistogram();
  const swapping = new LatencyHistogram();
  const totals = { steady: { ok: 0, errors: 0, ms: 0 }, swapping: { ok: 0, errors: 0, ms: 0, swaps: 0 } };
  const add = (into: LatencyHistogram, t: { ok: number; errors: number; ms: number }, w: WindowStats): void => {
    into.merge(w.latency);
    t.ok += w.ok;
    t.errors += Object.values(w.errors).reduce((a, b) => a + b, 0);
    t.ms += w.elapsedMs;
  };
  for (let round = 0; round < ROUNDS; round++) {
    await driver!.resetWindow();
    await sleep(SECONDS * 1000);
    add(steady, totals.steady, await driver!.snapshot());
    const end = performance.now() + SECONDS * 1000;
    const before = swaps;
    while (performance.now() < end) {
      const next = performance.now() + SWAP_EVERY_MS;
      await swap();
      await sleep(Math.max(0, next - performance.now()));
    }
    add(swapping, totals.swapping, await driver!.snapshot());
    totals.swapping.swaps += swaps - before;
  }
  await driver!.stop(2000);
  await driver!.close();
  await sleep(500);
  const rssEnd = rssOf(server.pid!);
  server.kill('SIGTERM');
  await new Promise((r) => server.on('exit', r));
  rmSync(repo, { recursive: true, force: true });
  rmSync(files, { recursive: true, force: true });

  const ms = (us: number) => us / 1000;
  const row = (name: string, h: LatencyHistogram, t: { ok: number; errors: number; ms: number }, extra: string) => [name, t.ok, t.ok / (t.ms / 1000), ms(h.quantile(0.5)), ms(h.quantile(0.99)), ms(h.max), String(t.errors), extra];
  console.log(`\nHot swap (bench/hotswap): ${info.name} 256-1024-16, ${CONNECTIONS} connections, HTTP binary, batch 1, ${ROUNDS} x ${SECONDS} s per phase, node ${process.version}, ${cpus().length} cores, ${new Date().toISOString().slice(0, 10)}\n`);
  console.log(
    formatTable(
      ['phase', 'requests', 'req/s', 'p50 ms', 'p99 ms', 'max ms', 'errors', 'swaps'],
      [row('steady', steady, totals.steady, '0'), row('swapping', swapping, totals.swapping, String(totals.swapping.swaps))],
    ),
  );
  const ratio = swapping.quantile(0.99) / steady.quantile(0.99);
  console.log(`\np99 during swaps / steady: ${ratio.toFixed(2)}x (target <= 2x)`);
  const sorted = [...swapMs].sort((a, b) => a - b);
  console.log(`swap (load + warm-up + switch, as the load request sees it): median ${sorted[sorted.length >> 1]!.toFixed(1)} ms, max ${sorted[sorted.length - 1]!.toFixed(1)} ms, ${swaps} swaps in all`);
  console.log(`server RSS: ${(rssAfterFirst / 1e6).toFixed(1)} MB after 10 swaps, ${(rssEnd / 1e6).toFixed(1)} MB after ${swaps} (${((rssEnd / rssAfterFirst - 1) * 100).toFixed(1)}%)`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
