/**
 * KServe JSON request decoding in process: the general path (JSON.parse of the whole body,
 * then tensor-data.ts) against the fast path (lib/protocol/fast-json-request.ts, numbers
 * read straight from the bytes), on request bodies written exactly as `tensorwire bench`
 * and tensorwire's client write them. Rounds alternate between the two and each keeps its
 * best round, so a busy neighbour on the machine hurts both alike. Times are CPU time of
 * this process per decoded request.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/json-decode.js [--rounds 15] [--ms 150]
 */
import { parseArgs } from 'node:util';
import { encodeJsonRequest } from '../lib/client/wire';
import { decodeJsonRequestGeneral } from '../lib/protocol/json-codec';
import { decodeJsonRequestFast } from '../lib/protocol/fast-json-request';
import type { InferRequest } from '../lib/protocol/types';
import { formatTable } from './table';
import { seededRandom as random } from '../lib/util/seeded-random';

const { values: args } = parseArgs({
  options: { rounds: { type: 'string', default: '15' }, ms: { type: 'string', default: '150' } },
});
const ROUNDS = Number(args.rounds);
const ROUND_MS = Number(args.ms);


interface Case {
  name: string;
  body: Buffer;
}

function floatBody(count: number, rand: () => number, scale: number): Buffer {
  const values = new Float32Array(count);
  for (let i = 0; i < count; i++) values[i] = (rand() - 0.5) * scale;
  const data = new Uint8Array(values.buffer);
  return Buffer.from(encodeJsonRequest([{ name: 'input', datatype: 'FP32', shape: [1, count], data }], { binaryOutputs: false }));
}

function intBody(count: number, rand: () => number): Buffer {
  const values = new Int32Array(count);
  for (let i = 0; i < count; i++) values[i] = Math.floor(rand() * 30000);
  const data = new Uint8Array(values.buffer);
  return Buffer.from(encodeJsonRequest([{ name: 'tokens', datatype: 'INT32', shape: [1, count], data }], { binaryOutputs: false }));
}

const rand = random(0x5eed);
const CASES: Case[] = [
  { name: '256 FP32 (tensorwire bench: 16-17 digits)', body: floatBody(256, rand, 2) },
  { name: '4 FP32', body: floatBody(4, rand, 2) },
  { name: '256 FP32 of magnitude 1e-6 (exponent form)', body: floatBody(256, rand, 2e-6) },
  { name: '150528 FP32 (1x3x224x224 image)', body: floatBody(150528, rand, 6) },
  { name: '512 INT32 (token ids)', body: intBody(512, rand) },
];

/** CPU microseconds per call of `decode` over about ROUND_MS of repetitions. */
function round(decode: (body: Buffer) => InferRequest | undefined, body: Buffer, calls: number): number {
  const start = process.cpuUsage();
  for (let i = 0; i < calls; i++) decode(body);
  const used = process.cpuUsage(start);
  return (used.user + used.system) / calls;
}

function fast(body: Buffer): InferRequest {
  const request = decodeJsonRequestFast(body);
  if (request === undefined) throw new Error('the fast path declined a benchmark body');
  return request;
}

function sameBytes(a: InferRequest, b: InferRequest): boolean {
  return a.inputs.length === b.inputs.length && a.inputs.every((t, i) => Buffer.compare(t.data, b.inputs[i].data) === 0);
}

const rows: (string | number)[][] = [];
for (const c of CASES) {
  if (!sameBytes(decodeJsonRequestGeneral(c.body), fast(c.body))) throw new Error(`${c.name}: the two paths disagree`);
  // Calibrate the number of calls per round on the general path.
  let calls = 1;
  while (round(decodeJsonRequestGeneral, c.body, calls) * calls < ROUND_MS * 1000 / 4) calls *= 2;
  calls *= 4;
  let general = Infinity;
  let quick = Infinity;
  for (let r = 0; r < ROUNDS; r++) {
    general = Math.min(general, round(decodeJsonRequestGeneral, c.body, calls));
    quick = Math.min(quick, round(fast, c.body, calls));
  }
  rows.push([c.name, c.body.byteLength, general, quick, (general / quick).toFixed(2) + 'x']);
}

console.log(`Node ${process.version}, ${ROUNDS} alternating rounds of ~${ROUND_MS} ms, best round each, CPU µs per request`);
console.log(formatTable(['request', 'body bytes', 'JSON.parse path µs', 'fast path µs', 'speed-up'], rows));
