/**
 * The WebSocket stream (/v2/stream) against HTTP keep-alive on the same server, in the same
 * run, at the same concurrency: the 256 -> 1024 -> 16 MLP of design.md, batch-1 requests,
 * `tensorwire serve` in its own process and `tensorwire bench` (its own process) as the load:
 *
 * - http-json and http-binary: one request in flight per keep-alive connection (HTTP/1.1).
 * - ws, pipeline P: the same requests in flight spread over concurrency / P WebSockets, P on
 *   each (P = 1 is one socket per request in flight, like HTTP; larger P is what a stream is
 *   for: many requests on one socket, answers written together).
 *
 *   npx tsc -p tsconfig.json && node dist/bench/stream.js [--seconds 5] [--concurrency 64]
 *       [--pipelines 1,8,64] [--rounds 3] [--workers N] [--cpu-prof DIR]
 *
 * Each round starts a fresh server and measures every row once, in a rotated order; each row
 * keeps its best round (noise on a shared box only ever makes a row slower). The last column
 * is the server process's CPU time (all threads) per answered request, steadier than req/s
 * when other work shares the machine. --cpu-prof writes a V8 CPU profile of each server.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { mlpModel } from '../test/fixtures/models';
import { cpuSeconds, runLoad, startTensorwire, type LoadResult } from './serve-process';
import { formatTable } from './table';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    concurrency: { type: 'string', default: '64' },
    pipelines: { type: 'string', default: '1,8,64' },
    rounds: { type: 'string', default: '1' },
    workers: { type: 'string' },
    'cpu-prof': { type: 'string' },
  },
});
const SECONDS = Number(values.seconds);
const CONCURRENCY = Number(values.concurrency);
const PIPELINES = values.pipelines.split(',').map(Number);
const ROUNDS = Number(values.rounds);
/** The WebSocket row the target is checked on: the middle pipeline depth (several sockets, several requests each). */
const HEADLINE_PIPELINE = PIPELINES.includes(8) ? 8 : PIPELINES[Math.floor(PIPELINES.length / 2)]!;
/** Target of issue 5: the stream answers at least this many times the requests/s of HTTP. */
const TARGET = 1.5;

interface Row {
  protocol: 'http-json' | 'http-binary' | 'ws';
  pipeline: number;
  result?: LoadResult;
  cpuUs?: number;
}

function label(r: Row): string {
  return r.protocol === 'ws' ? `ws, pipeline ${r.pipeline}` : r.protocol;
}

async function main(): Promise<void> {
  const repo = mkdtempSync(join(tmpdir(), 'tw-stream-bench-'));
  const rows: Row[] = [{ protocol: 'http-json', pipeline: 1 }, { protocol: 'http-binary', pipeline: 1 }, ...PIPELINES.map((p) => ({ protocol: 'ws' as const, pipeline: p }))];
  const loads: number[] = [];
  try {
    const versionDir = join(repo, 'mlp', '1');
    mkdirSync(versionDir, { recursive: true });
    await mlpModel(versionDir, { file: 'model.onnx' });
    for (let round = 1; round <= ROUNDS; round++) {
      const profFlags = values['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', values['cpu-prof']] : [];
      const server = await startTensorwire(['--repo', repo], profFlags);
      try {
        for (let k = 0; k < rows.length; k++) {
          const row = rows[(k + round - 1) % rows.length]!;
          process.stderr.write(`round ${round}/${ROUNDS}: ${label(row)}...\n`);
          loads.push(loadavg()[0]!);
          const before = cpuSeconds(server.child.pid);
          const result = await runLoad({
            url: server.url, model: 'mlp', protocol: row.protocol, concurrency: CONCURRENCY, durationS: SECONDS,
            workers: values.workers === undefined ? undefined : Number(values.workers),
            pipeline: row.protocol === 'ws' ? row.pipeline : undefined,
          });
          const after = cpuSeconds(server.child.pid);
          if (row.result !== undefined && row.result.rps >= result.rps) continue;
          row.result = result;
          if (before !== undefined && after !== undefined && result.totalOk > 0) row.cpuUs = ((after - before) / result.totalOk) * 1e6;
        }
      } finally {
        await server.stop();
      }
    }
  } finally {
    rmSync(repo, { recursive: true, force: true });
  }

  const http = rows[1]!.result!;
  const table = formatTable(
    ['protocol', 'sockets', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'vs http-binary', 'server CPU µs/req'],
    rows.map((r) => [
      label(r), String(Math.ceil(CONCURRENCY / r.pipeline)), r.result!.rps, r.result!.p50, r.result!.p99, String(r.result!.errors),
      `${(r.result!.rps / http.rps).toFixed(2)}x`, r.cpuUs === undefined ? '-' : r.cpuUs,
    ]),
  );
  const machine = `${availableParallelism()} cores, Node ${process.versions.node}, ${new Date().toISOString().slice(0, 10)}, load average ${Math.min(...loads).toFixed(1)}-${Math.max(...loads).toFixed(1)}`;
  console.log(`MLP 256-1024-16, batch-1 requests, ${CONCURRENCY} in flight, ${SECONDS} s per row${ROUNDS > 1 ? `, best of ${ROUNDS} rounds` : ''} (${machine})\n`);
  console.log(table);
  const headline = rows.find((r) => r.protocol === 'ws' && r.pipeline === HEADLINE_PIPELINE)!.result!;
  const best = Math.max(rows[0]!.result!.rps, http.rps);
  const ratio = headline.rps / best;
  console.log('');
  console.log(`${ratio >= TARGET ? 'met   ' : 'MISSED'}  ws (pipeline ${HEADLINE_PIPELINE}) >= ${TARGET}x the faster HTTP's req/s: ${ratio.toFixed(2)}x`);
  for (const r of rows) if (r.result!.errors > 0) console.log(`errors (${label(r)}): ${JSON.stringify(r.result!.errorKinds)}`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
