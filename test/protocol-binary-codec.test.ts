import { describe, expect, it } from 'vitest';
import { decodeBinaryRequest, decodeInferRequest, encodeResponse, parseHeaderLength } from '../lib/protocol/binary-codec';
import type { InferResponse } from '../lib/protocol/types';
import { thrownError } from './helpers/expect-error';

/** A binary-extension body as Triton's clients build it: JSON header, then tensor bytes. */
function binaryBody(header: unknown, ...tensors: ArrayBufferView[]): { body: Buffer; headerLength: number } {
  const json = Buffer.from(JSON.stringify(header));
  const parts = tensors.map((t) => Buffer.from(t.buffer, t.byteOffset, t.byteLength));
  return { body: Buffer.concat([json, ...parts]), headerLength: json.length };
}

const errorOf = (fn: () => unknown) => thrownError(fn, { status: 400 });

describe('decodeBinaryRequest', () => {
  it('takes binary inputs as views of the body, in order, mixed with JSON inputs', () => {
    const { body, headerLength } = binaryBody(
      {
        id: 'b1',
        inputs: [
          { name: 'input0', shape: [2, 2], datatype: 'UINT32', parameters: { binary_data_size: 16 } },
          { name: 'scale', shape: [1], datatype: 'FP32', data: [2] },
          { name: 'input1', shape: [3], datatype: 'BOOL', parameters: { binary_data_size: 3 } },
        ],
        outputs: [{ name: 'output0', parameters: { binary_data: true } }],
      },
      new Uint32Array([1, 2, 3, 0xffffffff]),
      new Uint8Array([1, 0, 1]),
    );
    const request = decodeBinaryRequest(body, headerLength);
    const [input0, scale, input1] = request.inputs;
    expect(input0.data.buffer).toBe(body.buffer);
    expect(input0.data.byteOffset).toBe(body.byteOffset + headerLength);
    expect(input0.data.byteLength).toBe(16);
    expect(Array.from(new Uint32Array(new Uint8Array(input0.data).buffer))).toEqual([1, 2, 3, 0xffffffff]);
    expect(input1.data.buffer).toBe(body.buffer);
    expect(input1.data.byteOffset).toBe(body.byteOffset + headerLength + 16);
    expect(Array.from(input1.data)).toEqual([1, 0, 1]);
    expect(Array.from(new Float32Array(scale.data.buffer))).toEqual([2]);
    expect(request.outputs).toEqual([{ name: 'output0', binary: true }]);
    expect(request.id).toBe('b1');
  });

  it('accepts the header length as the header text, and a body that is all header', () => {
    const { body, headerLength } = binaryBody({ inputs: [{ name: 'x', datatype: 'INT8', shape: [1], data: [-3] }] });
    expect(Array.from(new Int8Array(decodeBinaryRequest(body, String(headerLength)).inputs[0].data.buffer))).toEqual([-3]);
    expect(decodeInferRequest(body, undefined).inputs[0].name).toBe('x');
    expect(decodeInferRequest(body, ` ${headerLength}`).inputs[0].name).toBe('x');
  });

  it('decodes a zero-byte binary input', () => {
    const { body, headerLength } = binaryBody({ inputs: [{ name: 'x', datatype: 'FP32', shape: [0, 4], parameters: { binary_data_size: 0 } }] });
    expect(decodeBinaryRequest(body, headerLength).inputs[0].data.byteLength).toBe(0);
  });

  it('refuses header lengths that do not fit the body', () => {
    const { body, headerLength } = binaryBody({ inputs: [] });
    expect(errorOf(() => decodeBinaryRequest(body, body.length + 1)).message).toBe(
      `Inference-Header-Content-Length ${body.length + 1} is beyond the end of the body (${body.length} bytes)`,
    );
    expect(errorOf(() => decodeBinaryRequest(body, 0)).message).toBe('Inference-Header-Content-Length is 0: raw binary requests are not supported');
    expect(errorOf(() => decodeBinaryRequest(body, 'abc')).message).toBe("Inference-Header-Content-Length must be a non-negative integer, got 'abc'");
    expect(errorOf(() => decodeBinaryRequest(body, -1)).message).toBe("Inference-Header-Content-Length must be a non-negative integer, got '-1'");
    expect(errorOf(() => parseHeaderLength('1.5', 10)).message).toBe("Inference-Header-Content-Length must be a non-negative integer, got '1.5'");
    // A header length cutting the JSON short is malformed JSON.
    expect(errorOf(() => decodeBinaryRequest(body, headerLength - 1)).message.startsWith('malformed JSON: ')).toBe(true);
  });

  it('refuses binary sizes that do not match the shape or the body', () => {
    const header = (size: number) => ({ inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 4], parameters: { binary_data_size: size } }] });
    let b = binaryBody(header(24), new Float32Array(6));
    expect(errorOf(() => decodeBinaryRequest(b.body, b.headerLength)).message).toBe("input 'x': binary_data_size 24 does not match FP32 shape [2,4] (expected 32 bytes)");
    b = binaryBody(header(32), new Float32Array(6));
    expect(errorOf(() => decodeBinaryRequest(b.body, b.headerLength)).message).toBe("input 'x': binary_data_size 32 runs past the end of the body (24 bytes of binary data left)");
    b = binaryBody(header(32), new Float32Array(10));
    expect(errorOf(() => decodeBinaryRequest(b.body, b.headerLength)).message).toBe("the request carries 40 bytes of binary data but the inputs' binary_data_size add up to 32");
    b = binaryBody({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1], data: [1], parameters: { binary_data_size: 4 } }] }, new Float32Array(1));
    expect(errorOf(() => decodeBinaryRequest(b.body, b.headerLength)).message).toBe("input 'x': has both 'data' and parameters.binary_data_size");
  });
});

describe('encodeResponse', () => {
  const probs = new Float32Array([0.5, 0.25, 1, -2, 0, 3]);
  const labels = new BigInt64Array([7n]);
  const base: InferResponse = {
    modelName: 'clf',
    modelVersion: '1',
    id: 'abc',
    outputs: [
      { name: 'output0', datatype: 'FP32', shape: [3, 2], data: new Uint8Array(probs.buffer), binary: true },
      { name: 'label', datatype: 'INT64', shape: [1], data: new Uint8Array(labels.buffer), binary: false },
      { name: 'mask', datatype: 'BOOL', shape: [2], data: new Uint8Array([1, 0]), binary: true },
    ],
  };

  it('writes the JSON header with binary_data_size, then the binary outputs in order, byte for byte', () => {
    const encoded = encodeResponse(base);
    const json =
      '{"id":"abc","model_name":"clf","model_version":"1","outputs":[' +
      '{"name":"output0","datatype":"FP32","shape":[3,2],"parameters":{"binary_data_size":24}},' +
      '{"name":"label","datatype":"INT64","shape":[1],"data":[7]},' +
      '{"name":"mask","datatype":"BOOL","shape":[2],"parameters":{"binary_data_size":2}}]}';
    const expected = Buffer.concat([Buffer.from(json), Buffer.from(probs.buffer), Buffer.from([1, 0])]);
    expect(encoded.contentType).toBe('application/octet-stream');
    expect(encoded.headerLength).toBe(Buffer.byteLength(json));
    expect(encoded.body.length).toBe(Buffer.byteLength(json) + 26);
    expect(encoded.body.equals(expected)).toBe(true);
  });

  it('counts the header length in UTF-8 bytes', () => {
    const encoded = encodeResponse({ ...base, modelName: 'modèle', outputs: [base.outputs[2]] });
    const json = '{"id":"abc","model_name":"modèle","model_version":"1","outputs":[{"name":"mask","datatype":"BOOL","shape":[2],"parameters":{"binary_data_size":2}}]}';
    expect(encoded.headerLength).toBe(json.length + 1);
    expect(encoded.body.equals(Buffer.concat([Buffer.from(json), Buffer.from([1, 0])]))).toBe(true);
  });

  it('writes plain JSON when no output is binary', () => {
    const encoded = encodeResponse({ ...base, outputs: base.outputs.map((o) => ({ ...o, binary: false })) });
    expect(encoded.contentType).toBe('application/json');
    expect(encoded.headerLength).toBeUndefined();
    expect(encoded.body.toString()).toBe(
      '{"id":"abc","model_name":"clf","model_version":"1","outputs":[' +
        '{"name":"output0","datatype":"FP32","shape":[3,2],"data":[0.5,0.25,1,-2,0,3]},' +
        '{"name":"label","datatype":"INT64","shape":[1],"data":[7]},' +
        '{"name":"mask","datatype":"BOOL","shape":[2],"data":[true,false]}]}',
    );
  });

  it('round-trips through the decoder: a binary response decodes like a request with the same tensors', () => {
    const encoded = encodeResponse(base);
    const header = JSON.parse(encoded.body.toString('utf8', 0, encoded.headerLength));
    expect(header.outputs[0].parameters.binary_data_size).toBe(24);
    const bytes = encoded.body.subarray(encoded.headerLength!, encoded.headerLength! + 24);
    expect(Array.from(new Float32Array(new Uint8Array(bytes).buffer))).toEqual(Array.from(probs));
  });
});
