/**
 * The client's codecs agree with the server's (lib/protocol): requests the client encodes
 * decode on the server side to the same tensors and parameters, responses the server
 * encodes decode on the client side to the same typed arrays. Also the typed array <->
 * datatype rules, FP16/BF16 included.
 */
import { describe, expect, test } from 'vitest';
import type { Datatype } from '../lib/engine/types';
import { TensorwireError } from '../lib/errors';
import { decodeBinaryRequest, encodeResponse } from '../lib/protocol/binary-codec';
import { decodeJsonRequest } from '../lib/protocol/json-codec';
import { decodeStreamFrame, encodeStreamError, encodeStreamResponse } from '../lib/protocol/stream-frame';
import type { InferResponse } from '../lib/protocol/types';
import { toFloat32, toWireTensor, toWireTensors, type TypedArray } from '../lib/client/tensor';
import { decodeHttpResponse, decodeStreamMessage, encodeBinaryRequest, encodeJsonRequest, encodeStreamBinaryFrame, encodeStreamTextFrame, errorFromResponse } from '../lib/client/wire';

/** One tensor of every datatype, with awkward values (negative, extremes, 64-bit beyond 2^53). */
const SAMPLES: [Datatype, TypedArray][] = [
  ['FP32', new Float32Array([1.5, -0, 3.4e38, 1e-45])],
  ['FP64', new Float64Array([Math.PI, -1e300])],
  ['INT8', new Int8Array([-128, 127])],
  ['INT16', new Int16Array([-32768, 32767])],
  ['INT32', new Int32Array([-2147483648, 2147483647])],
  ['INT64', new BigInt64Array([-(2n ** 63n), 2n ** 63n - 1n, -1n, 9007199254740993n])],
  ['UINT8', new Uint8Array([0, 255])],
  ['UINT16', new Uint16Array([0, 65535])],
  ['UINT32', new Uint32Array([0, 4294967295])],
  ['UINT64', new BigUint64Array([0n, 2n ** 64n - 1n])],
  ['BOOL', new Uint8Array([1, 0, 1])],
  ['FP16', new Uint16Array([0x3c00, 0xc000, 0x7bff])],
  ['BF16', new Uint16Array([0x3f80, 0xc000])],
];

describe('requests: client encode -> server decode', () => {
  test.each(SAMPLES)('%s, JSON and binary, with parameters', (datatype, data) => {
    const t = toWireTensor('t', { datatype, shape: [data.length], data });
    const options = { id: 'r1', outputs: ['o'], binaryOutputs: false, priority: 2, timeoutUs: 1500, parameters: { custom: 'x' } };
    const fromJson = decodeJsonRequest(encodeJsonRequest([t], options));
    const bin = encodeBinaryRequest([t], { ...options, binaryOutputs: true });
    const fromBinary = decodeBinaryRequest(bin.body, bin.headerLength);
    for (const r of [fromJson, fromBinary]) {
      expect(r.id).toBe('r1');
      expect(r.priority).toBe(2);
      expect(r.timeoutUs).toBe(1500);
      expect(r.parameters).toEqual({ custom: 'x' });
      expect(r.inputs).toHaveLength(1);
      expect(r.inputs[0]!.datatype).toBe(datatype);
      expect(r.inputs[0]!.shape).toEqual([data.length]);
      expect(Buffer.from(r.inputs[0]!.data)).toEqual(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    }
    expect(fromJson.outputs).toEqual([{ name: 'o', binary: false }]);
    expect(fromBinary.binaryDataOutput).toBe(true);
    expect(fromBinary.outputs).toEqual([{ name: 'o', binary: true }]);
  });

  test('stream frames carry model, version and id', () => {
    const t = toWireTensor('x', { shape: [2], data: new Float32Array([1, 2]) });
    const bin = decodeStreamFrame(encodeStreamBinaryFrame('m', '3', [t], { id: 7, binaryOutputs: true }), true);
    const txt = decodeStreamFrame(Buffer.from(encodeStreamTextFrame('m', undefined, [t], { id: 'a', binaryOutputs: true })), false);
    expect(bin).toMatchObject({ ok: true, id: 7, modelName: 'm', modelVersion: '3', binary: true });
    expect(txt).toMatchObject({ ok: true, id: 'a', modelName: 'm', modelVersion: undefined, binary: false });
    if (!bin.ok || !txt.ok || bin.kind !== 'infer' || txt.kind !== 'infer') throw new Error('unreachable');
    expect(bin.request.binaryDataOutput).toBe(true);
    expect(txt.request.binaryDataOutput).toBe(false);
    expect(Array.from(new Float32Array(new Uint8Array(bin.request.inputs[0]!.data).buffer))).toEqual([1, 2]);
  });
});

describe('responses: server encode -> client decode', () => {
  test.each(SAMPLES)('%s, as JSON, binary extension and stream frames', (datatype, data) => {
    const bytes = new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
    const resp = (binary: boolean): InferResponse => ({ id: 'q', modelName: 'm', modelVersion: '1', outputs: [{ name: 'o', datatype, shape: [1, data.length], data: bytes, binary }] });
    const asJson = encodeResponse(resp(false));
    const asBinary = encodeResponse(resp(true));
    expect(asJson.headerLength).toBeUndefined();
    const decoded = [
      decodeHttpResponse(asJson.body, undefined),
      decodeHttpResponse(asBinary.body, asBinary.headerLength),
      (decodeStreamMessage(Buffer.from(encodeStreamResponse(resp(true), true, 5) as Uint8Array), true) as { response: ReturnType<typeof decodeHttpResponse> }).response,
      (decodeStreamMessage(Buffer.from(encodeStreamResponse(resp(false), false, 'q') as string), false) as { response: ReturnType<typeof decodeHttpResponse> }).response,
    ];
    for (const d of decoded) {
      const o = d.outputs.o!;
      expect(o.datatype).toBe(datatype);
      expect(o.shape).toEqual([1, data.length]);
      expect(o.data.constructor).toBe(data.constructor);
      expect(Array.from(o.data as ArrayLike<number | bigint>)).toEqual(Array.from(data as ArrayLike<number | bigint>));
    }
    expect(decoded[0]!.id).toBe('q');
    expect(decoded[2]!.id).toBe(5);
  });

  test('a stream error frame becomes a TensorwireError with the code of its status', () => {
    const msg = decodeStreamMessage(Buffer.from(encodeStreamError(9, new TensorwireError('QUEUE_FULL', 'queue of m is full'))), false);
    expect(msg.id).toBe(9);
    expect('error' in msg && msg.error.code).toBe('QUEUE_FULL');
    expect(errorFromResponse(404, { error: 'unknown model' }).code).toBe('NOT_FOUND');
    expect(errorFromResponse(503, { error: 'model m is loading' }, 2)).toMatchObject({ code: 'UNAVAILABLE', retryAfterSeconds: 2 });
    expect(errorFromResponse(504, { error: 'late' }).code).toBe('DEADLINE_EXCEEDED');
    expect(errorFromResponse(500, 'plain text').message).toBe('HTTP 500: "plain text"');
    expect(errorFromResponse(500, { error: 'x', code: 'ENGINE_FAILURE' }).code).toBe('ENGINE_FAILURE');
    // A body without a code (Triton, a proxy) maps by status only, never by its message.
    expect(errorFromResponse(500, { error: 'the engine failed' }).code).toBe('INTERNAL');
    expect(errorFromResponse(503, { error: 'queue is full' }).code).toBe('UNAVAILABLE');
    expect(errorFromResponse(413, { error: 'output too large' }).code).toBe('PAYLOAD_TOO_LARGE');
    expect(errorFromResponse(400, { error: 'model could not be loaded' }).code).toBe('INVALID_INPUT');
    expect(errorFromResponse(429, { error: 'slow down' }).code).toBe('TOO_MANY_REQUESTS');
    expect(errorFromResponse(400, { error: 'x', code: 'NOT_A_CODE' }).code).toBe('INVALID_INPUT');
  });

  test('a response whose binary data does not add up is refused', () => {
    const header = '{"model_name":"m","model_version":"1","outputs":[{"name":"o","datatype":"FP32","shape":[2],"parameters":{"binary_data_size":8}}]}';
    const body = Buffer.concat([Buffer.from(header), Buffer.alloc(4)]);
    expect(() => decodeHttpResponse(body, header.length)).toThrow("output 'o': binary data runs past the end of the response");
  });
});

describe('typed arrays and datatypes', () => {
  test('the datatype follows the array when not given; plain arrays need one', () => {
    expect(toWireTensor('a', { shape: [2], data: new Int32Array([1, 2]) }).datatype).toBe('INT32');
    expect(toWireTensor('a', { shape: [2], data: new BigInt64Array([1n, 2n]) }).datatype).toBe('INT64');
    expect(Array.from(toWireTensor('a', { datatype: 'INT16', shape: [2], data: [3, -4] }).data)).toEqual([3, 0, 0xfc, 0xff]);
    expect(() => toWireTensor('a', { shape: [2], data: [1, 2] })).toThrow("input 'a': a plain array needs a datatype, got undefined");
    expect(toWireTensors([{ name: 'p', shape: [1], data: new Uint8Array([1]) }])[0]!.name).toBe('p');
  });

  test('mismatches name the input, what was expected and what came', () => {
    expect(() => toWireTensor('x', { datatype: 'FP32', shape: [2], data: new Int32Array(2) })).toThrow("input 'x': datatype FP32 needs a Float32Array, got Int32Array");
    expect(() => toWireTensor('x', { shape: [2, 3], data: new Float32Array(5) })).toThrow("input 'x': shape [2,3] needs 6 elements, got 5");
    expect(() => toWireTensor('x', { datatype: 'FP16', shape: [1], data: new Float64Array(1) })).toThrow('needs a Uint16Array (or a Float32Array to convert), got Float64Array');
  });

  test('FP16/BF16: Float32Array in is rounded to nearest even, Uint16Array passes raw, toFloat32 widens', () => {
    const fp16 = toWireTensor('h', { datatype: 'FP16', shape: [3], data: new Float32Array([1, 1 + 2 ** -11, 65520]) });
    // 1 + 2^-11 is halfway between 1 and the next half: ties go to the even 0x3c00; 65520 overflows to +inf.
    expect(Array.from(new Uint16Array(new Uint8Array(fp16.data).buffer))).toEqual([0x3c00, 0x3c00, 0x7c00]);
    const bf16 = toWireTensor('b', { datatype: 'BF16', shape: [1], data: new Float32Array([1.00390625]) });
    expect(Array.from(new Uint16Array(new Uint8Array(bf16.data).buffer))).toEqual([0x3f80]);
    const raw = toWireTensor('r', { datatype: 'FP16', shape: [1], data: new Uint16Array([0xc000]) });
    expect(Array.from(raw.data)).toEqual([0x00, 0xc0]);
    expect(Array.from(toFloat32({ datatype: 'FP16', shape: [2], data: new Uint16Array([0xc000, 0x3555]) }))).toEqual([-2, 0.333251953125]);
    expect(Array.from(toFloat32({ datatype: 'BF16', shape: [1], data: new Uint16Array([0x4049]) }))).toEqual([3.140625]);
    expect(Array.from(toFloat32({ datatype: 'INT64', shape: [1], data: new BigInt64Array([-5n]) }))).toEqual([-5]);
  });
});
