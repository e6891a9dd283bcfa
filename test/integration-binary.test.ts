/**
 * The binary tensor data extension both ways against the real server core and engine:
 * binary inputs, `binary_data_output`, per-output `binary_data`, the
 * Inference-Header-Content-Length header and the exact bytes after the JSON header.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mlpModel, mlpReference, mlpWeights, multiIoModel } from './fixtures/models';
import { binaryRequest, bytes, f32, postBinary, postJson, startHarness, type Harness } from './helpers/server-harness';

const W = mlpWeights();
let h: Harness;

beforeAll(async () => {
  h = await startHarness({
    models: [
      { name: 'mlp', versions: { 1: (d) => mlpModel(d, { file: 'model.onnx' }) } },
      { name: 'multi_io', versions: { 1: (d) => multiIoModel(d, { file: 'model.onnx' }) } },
    ],
  });
});
afterAll(async () => {
  await h?.close();
});

function input(rows: number, seed: number): Float32Array {
  return Float32Array.from({ length: rows * 256 }, (_, i) => Math.cos(seed + i * 0.11) * 0.8);
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance = 1e-4): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < actual.length; i++) {
    if (Math.abs(actual[i]! - expected[i]!) > tolerance) throw new Error(`element ${i}: got ${actual[i]}, expected ${expected[i]}`);
  }
}

describe('binary requests', () => {
  it('binary input, JSON output: same values as the JSON request', async () => {
    const x = input(2, 1);
    const { body, headerLength } = binaryRequest([{ name: 'input', datatype: 'FP32', shape: [2, 256], bytes: bytes(x) }], { id: 'b1' });
    const r = await postBinary(h.base, '/v2/models/mlp/infer', body, headerLength);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('application/json');
    expect(r.headers.get('inference-header-content-length')).toBeNull();
    expect(r.json.id).toBe('b1');
    expect(r.json.outputs[0]).toMatchObject({ name: 'output', datatype: 'FP32', shape: [2, 16] });
    expectClose(r.json.outputs[0].data, mlpReference(W, x));

    const viaJson = await postJson(h.base, '/v2/models/mlp/infer', { inputs: [{ name: 'input', datatype: 'FP32', shape: [2, 256], data: Array.from(x) }] });
    // FP32 in JSON is written as the shortest decimal of the float: it reads back bit for bit.
    expect(viaJson.json.outputs[0].data).toEqual(r.json.outputs[0].data);
  });

  it('binary_data_output: octet-stream, Inference-Header-Content-Length, exact output bytes', async () => {
    const x = input(3, 2);
    const { body, headerLength } = binaryRequest([{ name: 'input', datatype: 'FP32', shape: [3, 256], bytes: bytes(x) }], { parameters: { binary_data_output: true } });
    const r = await postBinary(h.base, '/v2/models/mlp/infer', body, headerLength);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('application/octet-stream');
    const jsonLength = Number(r.headers.get('inference-header-content-length'));
    expect(r.json).toEqual({
      model_name: 'mlp',
      model_version: '1',
      outputs: [{ name: 'output', datatype: 'FP32', shape: [3, 16], parameters: { binary_data_size: 3 * 16 * 4 } }],
    });
    expect(Buffer.byteLength(JSON.stringify(r.json))).toBe(jsonLength);
    expect(r.body.length).toBe(jsonLength + 192);
    expect(Number(r.headers.get('content-length'))).toBe(r.body.length);
    const out = f32(r.binary.output!);
    expectClose(out, mlpReference(W, x));

    // The same request with JSON output gives the same floats, bit for bit.
    const plain = binaryRequest([{ name: 'input', datatype: 'FP32', shape: [3, 256], bytes: bytes(x) }]);
    const asJson = await postBinary(h.base, '/v2/models/mlp/infer', plain.body, plain.headerLength);
    expect(Array.from(out)).toEqual(asJson.json.outputs[0].data);
  });

  it('a JSON request can ask for binary output too', async () => {
    const x = input(1, 3);
    const res = await fetch(`${h.base}/v2/models/mlp/infer`, {
      method: 'POST',
      body: JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 256], data: Array.from(x) }], outputs: [{ name: 'output', parameters: { binary_data: true } }] }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/octet-stream');
    const body = Buffer.from(await res.arrayBuffer());
    const jsonLength = Number(res.headers.get('inference-header-content-length'));
    expect(body.length - jsonLength).toBe(64);
    expectClose(f32(body.subarray(jsonLength)), mlpReference(W, x));
  });

  it('multi-IO: INT64 + FP32 binary inputs, per-output binary_data picks which outputs are binary', async () => {
    const a = BigInt64Array.from([1n, -2n, 2n ** 60n + 1n, 4n, 5n, -(2n ** 62n)]);
    const b = Float32Array.from([0.5, 0.25, 0, 1, 2, -3]);
    const { body, headerLength } = binaryRequest(
      [
        { name: 'a', datatype: 'INT64', shape: [2, 3], bytes: bytes(a) },
        { name: 'b', datatype: 'FP32', shape: [2, 3], bytes: bytes(b) },
      ],
      { id: 'mixed', outputs: [{ name: 'scaled', parameters: { binary_data: true } }, { name: 'sum', parameters: { binary_data: false } }] },
    );
    const r = await postBinary(h.base, '/v2/models/multi_io/infer', body, headerLength);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('application/octet-stream');
    expect(r.json.id).toBe('mixed');
    expect(r.json.outputs).toEqual([
      { name: 'scaled', datatype: 'INT64', shape: [2, 3], parameters: { binary_data_size: 48 } },
      { name: 'sum', datatype: 'FP32', shape: [2, 3], data: [1.5, -1.75, Math.fround(2 ** 60), 5, 7, -(2 ** 62) /* -2^62 - 3 rounds to -2^62 in FP32 */] },
    ]);
    // INT64 bytes are exact, all 64 bits (2^61 + 2 and -2^63 wrap-free).
    const scaled = new BigInt64Array(new Uint8Array(r.binary.scaled!).buffer);
    expect(Array.from(scaled)).toEqual([2n, -4n, 2n ** 61n + 2n, 8n, 10n, -(2n ** 63n)]);
    expect(r.body.length).toBe(Number(r.headers.get('inference-header-content-length')) + 48);
  });

  it('binary_data_output with one output set back to JSON', async () => {
    const a = BigInt64Array.from([3n, 3n, 3n]);
    const b = Float32Array.from([1, 2, 3]);
    const { body, headerLength } = binaryRequest(
      [
        { name: 'a', datatype: 'INT64', shape: [1, 3], bytes: bytes(a) },
        { name: 'b', datatype: 'FP32', shape: [1, 3], bytes: bytes(b) },
      ],
      { parameters: { binary_data_output: true }, outputs: [{ name: 'sum' }, { name: 'scaled', parameters: { binary_data: false } }] },
    );
    const r = await postBinary(h.base, '/v2/models/multi_io/infer', body, headerLength);
    expect(r.json.outputs[0]).toEqual({ name: 'sum', datatype: 'FP32', shape: [1, 3], parameters: { binary_data_size: 12 } });
    expect(r.json.outputs[1]).toEqual({ name: 'scaled', datatype: 'INT64', shape: [1, 3], data: [6, 6, 6] });
    expect(Array.from(f32(r.binary.sum!))).toEqual([4, 5, 6]);
  });

  it('a binary input next to a JSON input in one request', async () => {
    const b = Float32Array.from([10, 20, 30]);
    const header = JSON.stringify({
      inputs: [
        { name: 'a', datatype: 'INT64', shape: [1, 3], data: [1, 2, 3] },
        { name: 'b', datatype: 'FP32', shape: [1, 3], parameters: { binary_data_size: 12 } },
      ],
    });
    const body = Buffer.concat([Buffer.from(header), Buffer.from(b.buffer)]);
    const r = await postBinary(h.base, '/v2/models/multi_io/infer', body, header.length);
    expect(r.status).toBe(200);
    expect(r.json.outputs[0].data).toEqual([11, 22, 33]);
    expect(r.json.outputs[1].data).toEqual([2, 4, 6]);
  });
});
