/**
 * A 16 MiB tensor in and out of an identity model, through system shared memory against
 * the binary tensor extension over HTTP, one `tensorwire serve` process, one run, requests
 * one at a time (a latency comparison: what moving the bytes costs).
 *
 *   npx tsc -p tsconfig.json && node dist/bench/shm.js [-- --mib 16 --seconds 3 --rounds 2]
 *
 * Rows:
 *   binary HTTP       the input in the body, the output in the answer (binary_data_output)
 *   shm + client copy the client writes the input into its shared memory object and reads the
 *                     output back each request (with fs on the object's file: Node cannot mmap;
 *                     a client with mmap pays a memcpy instead)
 *   shm, in place     the client already holds the input in the region (it produced it there)
 *                     and consumes the output there: only the server touches the bytes
 */
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { node, writeModel } from '../test/fixtures/onnx-builder';
import { startTensorwire } from './serve-process';
import { formatTable } from './table';

const { values: args } = parseArgs({ options: { mib: { type: 'string', default: '16' }, seconds: { type: 'string', default: '3' }, rounds: { type: 'string', default: '2' } } });
const BYTES = Number(args.mib) * 1024 * 1024;
const ELEMENTS = BYTES / 4;
const SECONDS = Number(args.seconds);
const ROUNDS = Number(args.rounds);

interface Timing {
  requests: number;
  meanMs: number;
  p50Ms: number;
  p99Ms: number;
}

async function timed(once: () => Promise<void>): Promise<Timing> {
  await once(); // warm
  const samples: number[] = [];
  const end = performance.now() + SECONDS * 1000;
  while (performance.now() < end) {
    const t0 = performance.now();
    await once();
    samples.push(performance.now() - t0);
  }
  samples.sort((a, b) => a - b);
  const at = (q: number) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))]!;
  return { requests: samples.length, meanMs: samples.reduce((a, b) => a + b, 0) / samples.length, p50Ms: at(0.5), p99Ms: at(0.99) };
}

async function main(): Promise<void> {
  const repo = mkdtempSync(join(tmpdir(), 'tw-bench-shm-'));
  const inKey = `/tw-bench-in-${process.pid}`;
  const outKey = `/tw-bench-out-${process.pid}`;
  const inFd = openSync('/dev/shm' + inKey, 'w+');
  const outFd = openSync('/dev/shm' + outKey, 'w+');
  const server = await (async () => {
    writeModel(join(repo, 'identity', '1', 'model.onnx'), {
      name: 'identity',
      inputs: [{ name: 'x', type: 'FP32', dims: [1, ELEMENTS] }],
      outputs: [{ name: 'y', type: 'FP32', dims: [1, ELEMENTS] }],
      nodes: [node('Identity', ['x'], ['y'])],
    });
    return startTensorwire(['--repo', repo]);
  })();
  try {
    const input = new Uint8Array(BYTES);
    for (let i = 0; i < BYTES; i += 4096) input[i] = (i / 4096) & 0xff;
    const output = new Uint8Array(BYTES);
    writeSync(inFd, input, 0, BYTES, 0);
    writeSync(outFd, new Uint8Array(BYTES), 0, BYTES, 0);
    const json = { 'content-type': 'application/json' };
    for (const [name, key] of [['in', inKey], ['out', outKey]]) {
      const r = await fetch(`${server.url}/v2/systemsharedmemory/region/${name}/register`, { method: 'POST', headers: json, body: JSON.stringify({ key, offset: 0, byte_size: BYTES }) });
      if (r.status !== 200) throw new Error(`register ${name}: ${r.status} ${await r.text()}`);
    }
    const url = `${server.url}/v2/models/identity/infer`;
    const header = Buffer.from(JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1, ELEMENTS], parameters: { binary_data_size: BYTES } }], parameters: { binary_data_output: true } }));
    const binaryBody = Buffer.concat([header, input]);
    const shmBody = JSON.stringify({
      inputs: [{ name: 'x', datatype: 'FP32', shape: [1, ELEMENTS], parameters: { shared_memory_region: 'in', shared_memory_byte_size: BYTES } }],
      outputs: [{ name: 'y', parameters: { shared_memory_region: 'out', shared_memory_byte_size: BYTES } }],
    });
    const check = (bytes: Uint8Array, what: string) => {
      if (bytes.byteLength < BYTES || bytes[4096 * 7] !== 7) throw new Error(`${what}: the output does not match the input`);
    };
    const binary = async (): Promise<void> => {
      const r = await fetch(url, { method: 'POST', body: binaryBody, headers: { 'inference-header-content-length': String(header.length) } });
      const body = new Uint8Array(await r.arrayBuffer());
      if (r.status !== 200) throw new Error(`binary infer: ${r.status} ${Buffer.from(body).toString()}`);
      check(body.subarray(Number(r.headers.get('inference-header-content-length'))), 'binary');
    };
    const shmInPlace = async (): Promise<void> => {
      const r = await fetch(url, { method: 'POST', body: shmBody, headers: json });
      if (r.status !== 200) throw new Error(`shm infer: ${r.status} ${await r.text()}`);
      await r.arrayBuffer();
    };
    const shmCopy = async (): Promise<void> => {
      writeSync(inFd, input, 0, BYTES, 0);
      await shmInPlace();
      readSync(outFd, output, 0, BYTES, 0);
      check(output, 'shm');
    };
    const rows = new Map<string, Timing>();
    for (let round = 0; round < ROUNDS; round++) {
      for (const [label, run] of [['binary HTTP', binary], ['shm + client copy', shmCopy], ['shm, in place', shmInPlace]] as const) {
        const t = await timed(run);
        if ((rows.get(label)?.meanMs ?? Infinity) > t.meanMs) rows.set(label, t);
      }
    }
    const base = rows.get('binary HTTP')!;
    console.log(`identity model, ${args.mib} MiB FP32 in and out, one request at a time, best of ${ROUNDS} x ${SECONDS}s`);
    console.log(
      formatTable(
        ['path', 'requests', 'mean ms', 'p50 ms', 'p99 ms', 'GB/s (in+out)', 'time vs binary'],
        [...rows].map(([label, t]) => [label, t.requests, t.meanMs, t.p50Ms, t.p99Ms, ((2 * BYTES) / (t.meanMs / 1000) / 1e9).toFixed(2), `${(t.meanMs / base.meanMs).toFixed(2)}x`]),
      ),
    );
  } finally {
    await server.stop();
    closeSync(inFd);
    closeSync(outFd);
    rmSync('/dev/shm' + inKey, { force: true });
    rmSync('/dev/shm' + outKey, { force: true });
    rmSync(repo, { recursive: true, force: true });
  }
}

void main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
