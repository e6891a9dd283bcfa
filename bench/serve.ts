/**
 * Serving throughput and latency, tensorwire against the peer a TypeScript team would write
 * today (bench/peers/ort-node-http.ts: onnxruntime-node + node:http, one run per request),
 * in the same run, on the same model, under the same load generator (`tensorwire bench`, its
 * own process): batch-1 KServe JSON requests at 64 connections for N seconds each, then
 * tensorwire with binary-extension requests, then the same concurrency as gRPC streams
 * (raw_input_contents, 4 streams of 16) and WebSocket streams (4 sockets of 16) on the same
 * tensorwire process. Each server runs alone in its own process. bench/serve-grpc.ts compares
 * the transports alone (unary gRPC too).
 *
 *   npx tsc -p tsconfig.json && node dist/bench/serve.js [--seconds 5] [--concurrency 64]
 *       [--rounds 1] [--workers N] [--cpu-prof DIR]
 *
 * The model is the 256 -> 1024 -> 16 MLP of design.md, in a temporary repository with no
 * config (tensorwire's defaults: batchable, max_batch_size 64, 100 µs queue delay, one
 * instance on one intra-op thread, like the peer's session). With --rounds > 1 the servers
 * are measured alternately and each row keeps its best round (noise on a shared box only
 * ever makes a server slower). The last column is the server process's CPU time (every
 * thread, user + system, from /proc) per answered request: it depends much less on what else
 * runs on the box than req/s does. --cpu-prof writes a V8 CPU profile of each tensorwire
 * server process into DIR.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { mlpModel } from '../test/fixtures/models';
import { cpuSeconds, grpcAddressOf, runLoad, startPeer, startTensorwire, type LoadResult } from './serve-process';
import { formatTable } from './table';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    concurrency: { type: 'string', default: '64' },
    rounds: { type: 'string', default: '1' },
    workers: { type: 'string' },
    'cpu-prof': { type: 'string' },
  },
});
const SECONDS = Number(values.seconds);
const CONCURRENCY = Number(values.concurrency);
const ROUNDS = Number(values.rounds);
const WORKERS = values.workers === undefined ? undefined : Number(values.workers);

interface Row {
  server: string;
  protocol: 'http-json' | 'http-binary' | 'grpc-stream' | 'ws';
  result?: LoadResult;
  /** Server CPU per request (µs), from the best round. */
  cpuUs?: number;
}

/** Runs one load and keeps it in `row` when it is the row's best round so far. */
async function measure(row: Row, pid: number | undefined, run: () => Promise<LoadResult>): Promise<void> {
  const cpuBefore = cpuSeconds(pid);
  const result = await run();
  const cpuAfter = cpuSeconds(pid);
  if (row.result !== undefined && row.result.rps >= result.rps) return;
  row.result = result;
  if (cpuBefore !== undefined && cpuAfter !== undefined && result.totalOk > 0) row.cpuUs = ((cpuAfter - cpuBefore) / result.totalOk) * 1e6;
}

async function main(): Promise<void> {
  const repo = mkdtempSync(join(tmpdir(), 'tw-serve-bench-'));
  const rows: Row[] = [
    { server: 'onnxruntime-node + node:http', protocol: 'http-json' },
    { server: 'tensorwire', protocol: 'http-json' },
    { server: 'tensorwire', protocol: 'http-binary' },
    { server: 'tensorwire', protocol: 'grpc-stream' },
    { server: 'tensorwire', protocol: 'ws' },
  ];
  /** Requests in flight per gRPC stream / WebSocket: CONCURRENCY in all, as the HTTP rows. */
  const PIPELINE = 16;
  try {
    const versionDir = join(repo, 'mlp', '1');
    mkdirSync(versionDir, { recursive: true });
    const modelPath = await mlpModel(versionDir, { file: 'model.onnx' });
    const load = { model: 'mlp', concurrency: CONCURRENCY, durationS: SECONDS, ...(WORKERS !== undefined ? { workers: WORKERS } : {}) };

    for (let round = 1; round <= ROUNDS; round++) {
      process.stderr.write(`round ${round}/${ROUNDS}: peer (onnxruntime-node + node:http)...\n`);
      const peer = await startPeer(modelPath, 'mlp');
      try {
        await measure(rows[0]!, peer.child.pid, () => runLoad({ ...load, url: peer.url, protocol: 'http-json' }));
      } finally {
        await peer.stop();
      }

      process.stderr.write(`round ${round}/${ROUNDS}: tensorwire...\n`);
      const profFlags = values['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', values['cpu-prof']] : [];
      const tw = await startTensorwire(['--repo', repo, '--grpc-port', '0'], profFlags);
      try {
        const grpcAddress = await grpcAddressOf(tw);
        await measure(rows[1]!, tw.child.pid, () => runLoad({ ...load, url: tw.url, protocol: 'http-json' }));
        await measure(rows[2]!, tw.child.pid, () => runLoad({ ...load, url: tw.url, protocol: 'http-binary' }));
        await measure(rows[3]!, tw.child.pid, () => runLoad({ ...load, url: tw.url, grpcAddress, protocol: 'grpc-stream', pipeline: PIPELINE }));
        await measure(rows[4]!, tw.child.pid, () => runLoad({ ...load, url: tw.url, protocol: 'ws', pipeline: PIPELINE }));
      } finally {
        await tw.stop();
      }
    }
  } finally {
    rmSync(repo, { recursive: true, force: true });
  }

  const peer = rows[0]!.result!;
  const json = rows[1]!.result!;
  const binary = rows[2]!.result!;
  const table = formatTable(
    ['server', 'protocol', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'req/s vs peer', 'server CPU µs/req'],
    rows.map((r) => [
      r.server, r.protocol, r.result!.rps, r.result!.p50, r.result!.p99, String(r.result!.errors), `${(r.result!.rps / peer.rps).toFixed(2)}x`,
      r.cpuUs === undefined ? '-' : r.cpuUs,
    ]),
  );
  const machine = `${availableParallelism()} cores, Node ${process.versions.node}, ${new Date().toISOString().slice(0, 10)}`;
  console.log(`MLP 256-1024-16, batch-1 requests, ${CONCURRENCY} connections, ${SECONDS} s per row${ROUNDS > 1 ? `, best of ${ROUNDS} rounds` : ''} (${machine})\n`);
  console.log(table);
  const checks = [
    [`tensorwire JSON >= 5x the peer's req/s`, json.rps >= 5 * peer.rps, `${(json.rps / peer.rps).toFixed(2)}x`],
    [`tensorwire JSON p99 < the peer's`, json.p99 < peer.p99, `${json.p99.toFixed(2)} vs ${peer.p99.toFixed(2)} ms`],
    [`binary >= 1.3x JSON`, binary.rps >= 1.3 * json.rps, `${(binary.rps / json.rps).toFixed(2)}x`],
    [`gRPC stream >= HTTP binary`, rows[3]!.result!.rps >= binary.rps, `${(rows[3]!.result!.rps / binary.rps).toFixed(2)}x`],
  ] as const;
  console.log('');
  for (const [what, ok, value] of checks) console.log(`${ok ? 'met   ' : 'MISSED'}  ${what}: ${value}`);
  for (const r of rows) {
    if (r.result!.errors > 0) console.log(`errors (${r.server} ${r.protocol}): ${JSON.stringify(r.result!.errorKinds)}`);
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
