/**
 * What the stream's live prediction feed costs serving (docs/streaming.md, "Live prediction
 * feed"): the requests/s of one client of the 256 -> 1024 -> 16 MLP with no subscriber, then
 * with N dashboards subscribed to the same model asking for everything (every prediction,
 * inputs included, the highest `max_per_second` the server takes). `tensorwire serve
 * --stream-feed on` in its own process, `tensorwire bench` (its own process) as the client;
 * the dashboards live in this process and read every frame.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/stream-feed.js [--seconds 3] [--subscribers 0,100]
 *       [--protocol http-json] [--concurrency 4]
 *
 * Subscriptions over the server's caps are refused (error frames); the table says how many
 * took. The last columns are the server process's CPU time per answered request and the feed
 * frames and bytes the dashboards received per second.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { mlpModel } from '../test/fixtures/models';
import { cpuSeconds, runLoad, startTensorwire, type LoadOptions } from './serve-process';
import { formatTable } from './table';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '3' },
    subscribers: { type: 'string', default: '0,100' },
    protocol: { type: 'string', default: 'http-json' },
    concurrency: { type: 'string', default: '4' },
  },
});
const SECONDS = Number(values.seconds);
const COUNTS = values.subscribers.split(',').map(Number);

/** A dashboard: one socket subscribed to `model`, counting the feed frames it reads. */
interface Dashboard {
  socket: WebSocket;
  subscribed: boolean;
  frames: number;
  bytes: number;
}

/** Sends one control frame and resolves with its parsed answer. */
function control(d: Dashboard, frame: Record<string, unknown>): Promise<{ subscribed?: string; error?: string }> {
  return new Promise((resolve) => {
    const id = Math.random().toString(36).slice(2);
    const onMessage = (data: WebSocket.RawData): void => {
      const j = JSON.parse(data.toString());
      if (j.id !== id) return;
      d.socket.off('message', onMessage);
      resolve(j);
    };
    d.socket.on('message', onMessage);
    d.socket.send(JSON.stringify({ id, ...frame }));
  });
}

async function openDashboard(url: string, model: string): Promise<Dashboard> {
  const socket = new WebSocket(url.replace(/^http/, 'ws') + '/v2/stream');
  await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
  const d: Dashboard = { socket, subscribed: false, frames: 0, bytes: 0 };
  socket.on('message', (data) => {
    const text = data.toString();
    if (!text.startsWith('{"feed"')) return;
    d.frames++;
    d.bytes += text.length;
  });
  // Everything: no sampling, inputs, as fast as the server allows (1e9, or its cap).
  let answer = await control(d, { subscribe: model, include_inputs: true, max_per_second: 1e9 });
  if (answer.error?.includes("'max_per_second' must be at most")) answer = await control(d, { subscribe: model, include_inputs: true, max_per_second: 1000 });
  d.subscribed = answer.subscribed === model;
  return d;
}

async function main(): Promise<void> {
  const repo = mkdtempSync(join(tmpdir(), 'tw-feed-bench-'));
  const rows: string[][] = [];
  const loads: number[] = [];
  try {
    const versionDir = join(repo, 'mlp', '1');
    mkdirSync(versionDir, { recursive: true });
    await mlpModel(versionDir, { file: 'model.onnx' });
    const server = await startTensorwire(['--repo', repo, '--stream-feed', 'on']);
    try {
      for (const count of COUNTS) {
        process.stderr.write(`${count} subscribers...\n`);
        const dashboards = await Promise.all(Array.from({ length: count }, () => openDashboard(server.url, 'mlp')));
        try {
          loads.push(loadavg()[0]!);
          const before = cpuSeconds(server.child.pid);
          const framesBefore = dashboards.reduce((n, d) => n + d.frames, 0);
          const bytesBefore = dashboards.reduce((n, d) => n + d.bytes, 0);
          const started = performance.now();
          const result = await runLoad({ url: server.url, model: 'mlp', protocol: values.protocol as LoadOptions['protocol'], concurrency: Number(values.concurrency), durationS: SECONDS, workers: 1 });
          const after = cpuSeconds(server.child.pid);
          const elapsed = (performance.now() - started) / 1000; // warm-up included: the feed ran then too
          const frames = dashboards.reduce((n, d) => n + d.frames, 0) - framesBefore;
          const kib = (dashboards.reduce((n, d) => n + d.bytes, 0) - bytesBefore) / 1024;
          const cpuUs = before !== undefined && after !== undefined && result.totalOk > 0 ? (((after - before) / result.totalOk) * 1e6).toFixed(0) : '-';
          rows.push([String(count), String(dashboards.filter((d) => d.subscribed).length), result.rps.toFixed(0), result.p50.toFixed(2), result.p99.toFixed(2), String(result.errors), cpuUs, (frames / elapsed).toFixed(0), (kib / elapsed).toFixed(0)]);
        } finally {
          for (const d of dashboards) d.socket.terminate();
        }
      }
    } finally {
      await server.stop();
    }
  } finally {
    rmSync(repo, { recursive: true, force: true });
  }
  const machine = `${availableParallelism()} cores, Node ${process.versions.node}, load average ${Math.min(...loads).toFixed(1)}-${Math.max(...loads).toFixed(1)}`;
  console.log(`MLP 256-1024-16, one ${values.protocol} client with ${values.concurrency} in flight, ${SECONDS} s per row (${machine})\n`);
  console.log(formatTable(['dashboards', 'subscribed', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'server CPU µs/req', 'feed frames/s', 'feed KiB/s'], rows));
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
