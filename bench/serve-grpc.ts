/**
 * gRPC against the other transports, one tensorwire server, the same run: batch-1 requests on
 * the 256 -> 1024 -> 16 MLP at the same concurrency, under the same load generator
 * (`tensorwire bench`, its own process, one thread): HTTP binary (one connection per request
 * in flight), the WebSocket stream and gRPC ModelStreamInfer (streams of --pipeline
 * requests), and unary gRPC ModelInfer (channels of 8 calls). gRPC requests carry
 * raw_input_contents.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/serve-grpc.js [--seconds 5] [--concurrency 64]
 *       [--pipeline 16] [--rounds 2] [--cpu-prof DIR]
 *
 * With --rounds > 1 the protocols are measured in turn each round and each row keeps its best
 * round (noise on a shared box only ever makes a run slower). "server CPU µs/req" is the
 * server process's CPU time (every thread, from /proc) per answered request, steadier than
 * req/s when other processes share the box. --cpu-prof writes the server's V8 CPU profile.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { mlpModel } from '../test/fixtures/models';
import { cpuSeconds, grpcAddressOf, runLoad, startTensorwire, type LoadOptions, type LoadResult } from './serve-process';
import { formatTable } from './table';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    concurrency: { type: 'string', default: '64' },
    pipeline: { type: 'string', default: '16' },
    rounds: { type: 'string', default: '2' },
    'cpu-prof': { type: 'string' },
  },
});
const SECONDS = Number(values.seconds);
const CONCURRENCY = Number(values.concurrency);
const PIPELINE = Number(values.pipeline);
const ROUNDS = Number(values.rounds);
/** Unary calls in flight per gRPC channel (HTTP/2 connection). */
const UNARY_PER_CHANNEL = 8;

interface Row {
  label: string;
  load: Pick<LoadOptions, 'protocol' | 'pipeline'>;
  result?: LoadResult;
  cpuUs?: number;
}

const rows: Row[] = [
  { label: `HTTP binary (${CONCURRENCY} connections)`, load: { protocol: 'http-binary' } },
  { label: `gRPC stream (${CONCURRENCY / PIPELINE} streams of ${PIPELINE})`, load: { protocol: 'grpc-stream', pipeline: PIPELINE } },
  { label: `gRPC unary (${CONCURRENCY / UNARY_PER_CHANNEL} channels of ${UNARY_PER_CHANNEL})`, load: { protocol: 'grpc', pipeline: UNARY_PER_CHANNEL } },
  { label: `WebSocket stream (${CONCURRENCY / PIPELINE} sockets of ${PIPELINE})`, load: { protocol: 'ws', pipeline: PIPELINE } },
];

async function main(): Promise<void> {
  const repo = mkdtempSync(join(tmpdir(), 'tw-serve-grpc-bench-'));
  const loadBefore = loadavg()[0]!;
  try {
    const versionDir = join(repo, 'mlp', '1');
    mkdirSync(versionDir, { recursive: true });
    await mlpModel(versionDir, { file: 'model.onnx' });
    const profFlags = values['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', values['cpu-prof']] : [];
    const tw = await startTensorwire(['--repo', repo, '--grpc-port', '0'], profFlags);
    try {
      const grpcAddress = await grpcAddressOf(tw);
      for (let round = 1; round <= ROUNDS; round++) {
        for (const row of rows) {
          process.stderr.write(`round ${round}/${ROUNDS}: ${row.label}...\n`);
          const before = cpuSeconds(tw.child.pid);
          const result = await runLoad({ url: tw.url, grpcAddress: row.load.protocol.startsWith('grpc') ? grpcAddress : undefined, model: 'mlp', concurrency: CONCURRENCY, durationS: SECONDS, workers: 1, ...row.load });
          const after = cpuSeconds(tw.child.pid);
          if (row.result !== undefined && row.result.rps >= result.rps) continue;
          row.result = result;
          if (before !== undefined && after !== undefined && result.totalOk > 0) row.cpuUs = ((after - before) / result.totalOk) * 1e6;
        }
      }
    } finally {
      await tw.stop();
    }
  } finally {
    rmSync(repo, { recursive: true, force: true });
  }

  const http = rows[0]!.result!;
  const table = formatTable(
    ['protocol', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'req/s vs HTTP binary', 'server CPU µs/req'],
    rows.map((r) => [r.label, r.result!.rps, r.result!.p50, r.result!.p99, String(r.result!.errors), `${(r.result!.rps / http.rps).toFixed(2)}x`, r.cpuUs === undefined ? '-' : r.cpuUs]),
  );
  const machine = `${availableParallelism()} cores, Node ${process.versions.node}, load average ${loadBefore.toFixed(1)} -> ${loadavg()[0]!.toFixed(1)}, ${new Date().toISOString().slice(0, 10)}`;
  console.log(`MLP 256-1024-16, batch-1 requests, concurrency ${CONCURRENCY}, ${SECONDS} s per row, one load-generator thread${ROUNDS > 1 ? `, best of ${ROUNDS} rounds` : ''} (${machine})\n`);
  console.log(table);
  const stream = rows[1]!.result!;
  console.log('');
  console.log(`${stream.rps >= http.rps ? 'met   ' : 'MISSED'}  gRPC stream >= HTTP binary req/s: ${(stream.rps / http.rps).toFixed(2)}x`);
  for (const r of rows) if (r.result!.errors > 0) console.log(`errors (${r.label}): ${JSON.stringify(r.result!.errorKinds)}`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
