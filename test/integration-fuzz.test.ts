/**
 * Malformed input, generated: seeded random mutations of valid requests (bytes flipped,
 * cut, repeated, inserted; header lengths out of range) sent to the real server over HTTP
 * JSON, HTTP binary and the WebSocket stream. Whatever comes in, every request gets exactly
 * one answer, every failure is a JSON `{"error": "..."}` with a 4xx/5xx status the protocol
 * defines, nothing leaks a stack trace, the socket stays open, and afterwards the server
 * still answers a valid request exactly as before.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CATALOGUE, type ErrorCode } from '../lib/errors';
import { seededRandom } from '../lib/util/seeded-random';
import { mlpModel, multiIoModel } from './fixtures/models';
import { RawStream, binaryFrame, decodeAnswer } from './helpers/raw-stream';
import { bytes, call, postJson, startHarness, type Harness } from './helpers/server-harness';

/** Per protocol; `TW_FUZZ_CASES=20000 npx vitest run test/integration-fuzz.test.ts` for a longer hunt. */
const CASES = Number(process.env.TW_FUZZ_CASES ?? 600);
/** Statuses a KServe request may be answered with (docs/protocol.md). */
const ALLOWED = new Set([200, 400, 404, 413, 503, 504]);
const random = seededRandom(20261123);
let h: Harness;

beforeAll(async () => {
  h = await startHarness({
    models: [
      { name: 'mlp', versions: { 1: (d) => mlpModel(d, { file: 'model.onnx', inputDim: 8, hidden: 16, outputDim: 2 }) } },
      { name: 'multi_io', versions: { 1: (d) => multiIoModel(d, { file: 'model.onnx' }) } },
    ],
  });
});
afterAll(async () => {
  await h?.close();
});

const pick = (n: number): number => Math.floor(random() * n);

/** One random mutation of `input`: a byte changed, a range cut or repeated, bytes inserted, or the end cut off. */
function mutate(input: Uint8Array): Buffer {
  const b = Buffer.from(input);
  const at = pick(b.length);
  const len = 1 + pick(Math.min(16, b.length - at));
  switch (pick(6)) {
    case 0:
      b[at] = pick(256);
      return b;
    case 1:
      b[at] = '{}[]",:-.e0123456789 '.charCodeAt(pick(21));
      return b;
    case 2:
      return Buffer.concat([b.subarray(0, at), b.subarray(at + len)]);
    case 3:
      return Buffer.concat([b.subarray(0, at + len), b.subarray(at)]);
    case 4:
      return Buffer.concat([b.subarray(0, at), Buffer.from(Array.from({ length: len }, () => pick(256))), b.subarray(at)]);
    default:
      return b.subarray(0, at);
  }
}

/** Two or three mutations on top of each other. */
function corrupt(input: Uint8Array): Buffer {
  let b = mutate(input);
  for (let k = pick(3); k > 0 && b.length > 0; k--) b = mutate(b);
  return b;
}

const MLP_JSON = { id: 'r', inputs: [{ name: 'input', datatype: 'FP32', shape: [2, 8], data: Array.from({ length: 16 }, (_, i) => i / 8 - 1) }], parameters: { timeout: 5_000_000 } };
const MULTI_JSON = {
  inputs: [
    { name: 'a', datatype: 'INT64', shape: [1, 3], data: [1, -2, 3] },
    { name: 'b', datatype: 'FP32', shape: [1, 3], data: [0.5, 0.25, -1] },
  ],
  outputs: [{ name: 'sum' }],
};

/** A failure must be a JSON error naming what was wrong, never an internal trace. */
function expectProtocolError(status: number, text: string, what: string): void {
  expect(ALLOWED.has(status), `${what}: status ${status} ${text}`).toBe(true);
  if (status === 200) return;
  const body = JSON.parse(text) as { error?: unknown };
  expect(typeof body.error, `${what}: ${text}`).toBe('string');
  expect((body.error as string).length).toBeGreaterThan(0);
  expect(body.error as string).not.toMatch(/\n\s+at /); // no stack trace
}

/** Runs `send` for every case, `parallel` at a time. */
async function inParallel(cases: number, parallel: number, send: (k: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: parallel }, async () => {
    while (next < cases) await send(next++);
  }));
}

describe('fuzzed requests', () => {
  it('HTTP JSON: every corrupted body gets one well-formed answer; the server then answers exactly as before', async () => {
    const before = await postJson(h.base, '/v2/models/mlp/infer', MLP_JSON);
    expect(before.status).toBe(200);
    const seeds = [Buffer.from(JSON.stringify(MLP_JSON)), Buffer.from(JSON.stringify(MULTI_JSON))];
    const statuses = new Map<number, number>();
    await inParallel(CASES, 16, async (k) => {
      const model = k % 2 === 0 ? 'mlp' : 'multi_io';
      const body = corrupt(seeds[k % 2]!);
      const reply = await call(h.base, `/v2/models/${model}/infer`, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
      expectProtocolError(reply.status, reply.text, `case ${k}: ${body.toString('latin1').slice(0, 200)}`);
      statuses.set(reply.status, (statuses.get(reply.status) ?? 0) + 1);
    });
    expect(statuses.get(400)).toBeGreaterThan(CASES / 3); // the mutations really are mostly invalid
    const after = await postJson(h.base, '/v2/models/mlp/infer', MLP_JSON);
    expect(after.status).toBe(200);
    expect(after.json).toEqual(before.json);
  }, 300_000);

  it('HTTP binary: corrupted headers, tensor bytes and header lengths', async () => {
    const x = bytes(Float32Array.from({ length: 16 }, (_, i) => i - 8));
    const header = Buffer.from(JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [2, 8], parameters: { binary_data_size: 64 } }], parameters: { binary_data_output: true } }));
    const valid = Buffer.concat([header, x]);
    const post = (body: Uint8Array, headerLength: string) =>
      call(h.base, '/v2/models/mlp/infer', { method: 'POST', body, headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': headerLength } });
    const before = await post(valid, String(header.length));
    expect(before.status).toBe(200);
    const lengths = ['-1', '0', '1e3', 'abc', String(2 ** 53), '4294967296', ' 12', ''];
    await inParallel(CASES, 16, async (k) => {
      let body: Buffer;
      let headerLength = String(header.length);
      const kind = k % 3;
      if (kind === 0) {
        const h2 = corrupt(header);
        body = Buffer.concat([h2, x]);
        headerLength = String(h2.length);
      } else if (kind === 1) {
        body = corrupt(valid);
      } else {
        body = valid;
        headerLength = random() < 0.5 ? lengths[pick(lengths.length)]! : String(pick(valid.length * 2));
      }
      const reply = await post(body, headerLength);
      const json = reply.headers.get('inference-header-content-length') === null ? reply.text : reply.text.slice(0, Number(reply.headers.get('inference-header-content-length')));
      expectProtocolError(reply.status, json, `case ${k} (kind ${kind}, header length ${JSON.stringify(headerLength)})`);
    });
    const after = await post(valid, String(header.length));
    expect(after.status).toBe(200);
    expect(Buffer.from(after.text)).toEqual(Buffer.from(before.text));
  }, 300_000);

  it('WebSocket stream: corrupted text and binary frames and garbage each get one answer; the socket stays open', async () => {
    const stream = await RawStream.open(h.base);
    try {
      const text = Buffer.from(JSON.stringify({ ...MLP_JSON, id: 1, model_name: 'mlp' }));
      const x = bytes(Float32Array.from({ length: 16 }, (_, i) => i - 8));
      const binary = binaryFrame({ id: 2, model_name: 'mlp', inputs: [{ name: 'input', datatype: 'FP32', shape: [2, 8], parameters: { binary_data_size: 64 } }] }, x);
      for (let k = 0; k < CASES; k++) {
        const kind = k % 3;
        if (kind === 0) stream.sendText(corrupt(text).toString('latin1'));
        else if (kind === 1) stream.sendBinary(corrupt(binary));
        else stream.sendBinary(Buffer.from(Array.from({ length: pick(40) }, () => pick(256))));
      }
      await stream.count(CASES);
      expect(stream.isOpen).toBe(true);
      for (const frame of stream.frames) {
        const answer = decodeAnswer(frame);
        if (answer.json.error === undefined) continue; // a mutation that still is a valid request
        expect([400, 404, 413, 429, 503, 504]).toContain(answer.json.status); // 429: the surviving valid requests past the in-flight limit
        expect(ERROR_CATALOGUE[answer.json.code as ErrorCode]?.status).toBe(answer.json.status);
        expect(typeof answer.json.error).toBe('string');
        expect(answer.json.error).not.toMatch(/\n\s+at /);
      }
      // Still serving on the same socket, and nothing more than one answer per frame.
      stream.sendBinary(binaryFrame({ id: 'final', model_name: 'mlp', inputs: [{ name: 'input', datatype: 'FP32', shape: [2, 8], parameters: { binary_data_size: 64 } }] }, x));
      await stream.count(CASES + 1);
      const final = decodeAnswer(stream.frames[CASES]!);
      expect(final.json.id).toBe('final');
      expect(final.json.outputs[0].shape).toEqual([2, 2]);
      await new Promise((r) => setTimeout(r, 100));
      expect(stream.received).toBe(CASES + 1);
    } finally {
      stream.close();
    }
  }, 300_000);

  it('control endpoints: corrupted live-batching changes and repository requests', async () => {
    const batching = Buffer.from(JSON.stringify({ max_queue_delay_microseconds: 100, preferred_batch_size: [2, 4], default_queue_policy: { max_queue_size: 64 }, instance_count: 1 }));
    const index = Buffer.from(JSON.stringify({ ready: true }));
    await inParallel(CASES, 8, async (k) => {
      const [path, seed] = k % 2 === 0 ? ['/v2/models/multi_io/batching', batching] : ['/v2/repository/index', index];
      const reply = await call(h.base, path, { method: 'POST', body: corrupt(seed), headers: { 'content-type': 'application/json' } });
      expectProtocolError(reply.status, reply.text, `case ${k}: POST ${path}`);
    });
    // The model whose batching was fuzzed still serves (whatever valid change survived).
    const after = await postJson(h.base, '/v2/models/multi_io/infer', MULTI_JSON);
    expect(after.status).toBe(200);
    expect(after.json.outputs[0].name).toBe('sum');
  }, 300_000);
});
