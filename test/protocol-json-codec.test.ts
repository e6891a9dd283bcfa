import { describe, expect, it } from 'vitest';
import { decodeJsonRequest, encodeJsonResponse } from '../lib/protocol/json-codec';
import type { InferResponse } from '../lib/protocol/types';
import { thrownError } from './helpers/expect-error';

const body = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));

const errorOf = (fn: () => unknown) => thrownError(fn, { status: 400 });

describe('decodeJsonRequest', () => {
  it('decodes id, inputs, outputs and parameters', () => {
    const request = decodeJsonRequest(
      body({
        id: 'req-1',
        inputs: [
          { name: 'x', datatype: 'FP32', shape: [1, 2], data: [[0.5, 1.5]] },
          { name: 'mask', datatype: 'BOOL', shape: [2], data: [true, false] },
        ],
        outputs: [{ name: 'y', parameters: { binary_data: true } }, { name: 'z' }],
        parameters: { priority: 2, timeout: 1500, binary_data_output: false, sequence_id: 7, note: 'kept' },
      }),
    );
    expect(request.id).toBe('req-1');
    expect(request.inputs.map((i) => [i.name, i.datatype, i.shape])).toEqual([
      ['x', 'FP32', [1, 2]],
      ['mask', 'BOOL', [2]],
    ]);
    expect(Array.from(new Float32Array(request.inputs[0].data.buffer))).toEqual([0.5, 1.5]);
    expect(Array.from(request.inputs[1].data)).toEqual([1, 0]);
    expect(request.outputs).toEqual([
      { name: 'y', binary: true },
      { name: 'z', binary: false },
    ]);
    expect(request.priority).toBe(2);
    expect(request.timeoutUs).toBe(1500);
    expect(request.binaryDataOutput).toBe(false);
    expect(request.parameters).toEqual({ sequence_id: 7, note: 'kept' });
  });

  it('defaults: no id, no outputs, JSON outputs, empty parameters; binary_data_output applies to outputs without binary_data', () => {
    const plain = decodeJsonRequest('{"inputs":[{"name":"x","datatype":"INT32","shape":[1],"data":[3]}]}');
    expect(plain.id).toBeUndefined();
    expect(plain.outputs).toBeUndefined();
    expect(plain.binaryDataOutput).toBe(false);
    expect(plain.priority).toBeUndefined();
    expect(plain.timeoutUs).toBeUndefined();
    expect(plain.parameters).toEqual({});

    const binary = decodeJsonRequest(
      body({
        inputs: [{ name: 'x', datatype: 'INT32', shape: [1], data: [3] }],
        outputs: [{ name: 'a' }, { name: 'b', parameters: { binary_data: false } }],
        parameters: { binary_data_output: true },
      }),
    );
    expect(binary.binaryDataOutput).toBe(true);
    expect(binary.outputs).toEqual([
      { name: 'a', binary: true },
      { name: 'b', binary: false },
    ]);
  });

  it('keeps every bit of INT64/UINT64 numbers beyond 2^53 written as bare JSON numbers', () => {
    const text =
      '{"id":"12345678901234567890","inputs":[' +
      '{"name":"a","datatype":"INT64","shape":[3],"data":[9223372036854775807,-9223372036854775808,9007199254740993]},' +
      '{"name":"b","datatype":"UINT64","shape":[1],"data":[18446744073709551615]},' +
      '{"name":"c","datatype":"FP64","shape":[2],"data":[0.12345678901234567890,1e300]}]}';
    const request = decodeJsonRequest(Buffer.from(text));
    expect(request.id).toBe('12345678901234567890');
    expect(Array.from(new BigInt64Array(request.inputs[0].data.buffer))).toEqual([2n ** 63n - 1n, -(2n ** 63n), 9007199254740993n]);
    expect(Array.from(new BigUint64Array(request.inputs[1].data.buffer))).toEqual([2n ** 64n - 1n]);
    expect(Array.from(new Float64Array(request.inputs[2].data.buffer))).toEqual([0.12345678901234568, 1e300]);
  });

  it('refuses malformed JSON', () => {
    const e = errorOf(() => decodeJsonRequest(Buffer.from('{"inputs": [')));
    expect(e.code).toBe('INVALID_INPUT');
    expect(e.message.startsWith('malformed JSON: ')).toBe(true);
    expect(e.message.length).toBeGreaterThan('malformed JSON: '.length);
  });

  it('names the field at fault', () => {
    const x = { name: 'x', datatype: 'FP32', shape: [1], data: [1] };
    const cases: [unknown, string][] = [
      [[1], 'the request must be a JSON object, got [1]'],
      [{ inputs: [x], id: 5 }, "'id' must be a string, got 5"],
      [{}, "'inputs' must be an array, got undefined"],
      [{ inputs: [5] }, 'input 0 must be an object, got 5'],
      [{ inputs: [{ ...x, name: '' }] }, `input 0: 'name' must be a non-empty string, got ""`],
      [{ inputs: [{ ...x, datatype: 'FLOAT' }] }, `input 'x': unknown datatype "FLOAT"; expected one of BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BF16, BYTES`],
      [{ inputs: [{ ...x, datatype: 'BYTES' }] }, "input 'x': BYTES element 0 must be a string, got number 1"],
      [{ inputs: [{ ...x, shape: [1, -1] }] }, "input 'x': 'shape' must be an array of non-negative integers, got [1,-1]"],
      [{ inputs: [{ ...x, shape: '1' }] }, `input 'x': 'shape' must be an array of non-negative integers, got "1"`],
      [{ inputs: [{ name: 'x', datatype: 'FP32', shape: [1] }] }, "input 'x': no 'data' and no parameters.binary_data_size"],
      [{ inputs: [{ ...x, parameters: [] }] }, "input 'x': 'parameters' must be an object, got []"],
      [{ inputs: [{ ...x, parameters: { shared_memory_region: 'r' } }] }, "input 'x': parameters shared_memory_region and shared_memory_byte_size must be given together"],
      [{ inputs: [{ ...x, parameters: { shared_memory_region: 'r', shared_memory_byte_size: 4 } }] }, "input 'x': has both 'data' and shared memory parameters"],
      [{ inputs: [{ name: 'x', datatype: 'FP32', shape: [2], parameters: { shared_memory_region: 'r', shared_memory_byte_size: 4 } }] }, "input 'x': shared_memory_byte_size 4 does not match FP32 shape [2] (expected 8 bytes) in region 'r'"],
      [{ inputs: [{ name: 'x', datatype: 'FP32', shape: [1], parameters: { shared_memory_region: 'r', shared_memory_byte_size: 4, binary_data_size: 4 } }] }, "input 'x': has both shared memory parameters and binary_data_size"],
      [{ inputs: [{ name: 'x', datatype: 'FP32', shape: [1], parameters: { shared_memory_region: 7, shared_memory_byte_size: 4 } }] }, "input 'x': parameters.shared_memory_region must be a non-empty string, got 7"],
      [
        { inputs: [{ name: 'x', datatype: 'FP32', shape: [1], parameters: { binary_data_size: 4 } }] },
        "input 'x': parameters.binary_data_size is set but the request carries no binary data (no Inference-Header-Content-Length header, or a text stream frame)",
      ],
      [{ inputs: [{ ...x, parameters: { binary_data_size: -4 } }] }, "input 'x': parameters.binary_data_size must be a non-negative integer, got -4"],
      [{ inputs: [x], outputs: {} }, "'outputs' must be an array, got {}"],
      [{ inputs: [x], outputs: [{}] }, 'output 0: \'name\' must be a non-empty string, got undefined'],
      [{ inputs: [x], outputs: [{ name: 'y', parameters: { binary_data: 'yes' } }] }, `output 'y': parameters.binary_data must be a boolean, got "yes"`],
      [{ inputs: [x], outputs: [{ name: 'y', parameters: { classification: 0 } }] }, "output 'y': parameters.classification must be an integer from 1 to 4096, got 0"],
      [{ inputs: [x], parameters: 1 }, "'parameters' must be an object, got 1"],
      [{ inputs: [x], parameters: { priority: -1 } }, "request parameter 'priority' must be a non-negative integer, got -1"],
      [{ inputs: [x], parameters: { timeout: 1.5 } }, "request parameter 'timeout' must be a non-negative integer (microseconds), got 1.5"],
      [{ inputs: [x], parameters: { binary_data_output: 1 } }, "request parameter 'binary_data_output' must be a boolean, got 1"],
      [{ inputs: [x], parameters: { triton_enable_empty_final_response: true } }, "request parameter 'triton_enable_empty_final_response': names starting with 'triton_' are reserved"],
      [{ inputs: [{ ...x, shape: [2] }] }, "input 'x': expected 2 FP32 values for shape [2], got 1"],
    ];
    for (const [request, message] of cases) expect(errorOf(() => decodeJsonRequest(body(request))).message).toBe(message);
  });

  it('keeps a "__proto__" parameter as data, not as a prototype', () => {
    const request = decodeJsonRequest('{"inputs":[],"parameters":{"__proto__":{"polluted":true}}}');
    expect(Object.getPrototypeOf(request.parameters)).toBe(Object.prototype);
    expect((request.parameters as { polluted?: boolean }).polluted).toBeUndefined();
    expect(Object.keys(request.parameters)).toEqual(['__proto__']);
  });
});

describe('encodeJsonResponse', () => {
  const response: InferResponse = {
    modelName: 'mlp',
    modelVersion: '3',
    id: 'r"1',
    outputs: [
      { name: 'probs', datatype: 'FP32', shape: [1, 3], data: new Uint8Array(new Float32Array([0.25, 0.5, 0.1]).buffer), binary: true },
      { name: 'label', datatype: 'INT64', shape: [1], data: new Uint8Array(new BigInt64Array([2n ** 62n]).buffer), binary: false },
    ],
  };

  it("writes Triton's layout with every output inline", () => {
    expect(encodeJsonResponse(response)).toBe(
      '{"id":"r\\"1","model_name":"mlp","model_version":"3","outputs":[' +
        '{"name":"probs","datatype":"FP32","shape":[1,3],"data":[0.25,0.5,0.10000000149011612]},' +
        '{"name":"label","datatype":"INT64","shape":[1],"data":[4611686018427387904]}]}',
    );
  });

  it('leaves id out when the request had none', () => {
    const { id: _unused, ...anonymous } = response;
    expect(encodeJsonResponse({ ...anonymous, outputs: [] })).toBe('{"model_name":"mlp","model_version":"3","outputs":[]}');
  });

  it('refuses output bytes that do not match the shape (an internal error)', () => {
    const bad: InferResponse = { modelName: 'm', modelVersion: '1', outputs: [{ name: 'y', datatype: 'FP32', shape: [2], data: new Uint8Array(4), binary: false }] };
    expect(() => encodeJsonResponse(bad)).toThrow("output 'y': shape [2] of FP32 needs 8 bytes, got 4");
  });
});
