import { describe, expect, it } from 'vitest';
import { TensorwireError } from '../lib/errors';
import { decodeStreamFrame, encodeStreamError, encodeStreamResponse, type StreamFrame } from '../lib/protocol/stream-frame';
import type { InferResponse } from '../lib/protocol/types';

/** A binary frame: [uint32 LE JSON length][JSON][tensor bytes], in a fresh ArrayBuffer as uWS hands it over. */
function binaryFrame(header: unknown, ...tensors: ArrayBufferView[]): ArrayBuffer {
  const json = Buffer.from(JSON.stringify(header));
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32LE(json.length, 0);
  const all = Buffer.concat([prefix, json, ...tensors.map((t) => Buffer.from(t.buffer, t.byteOffset, t.byteLength))]);
  return all.buffer.slice(all.byteOffset, all.byteOffset + all.length) as ArrayBuffer;
}
const textFrame = (value: unknown): ArrayBuffer => {
  const b = Buffer.from(typeof value === 'string' ? value : JSON.stringify(value));
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.length) as ArrayBuffer;
};

function failure(frame: StreamFrame): { id: unknown; error: TensorwireError } {
  if (frame.ok) throw new Error('expected a failure');
  return { id: frame.id, error: frame.error };
}

const input = { name: 'x', datatype: 'FP32', shape: [1, 2], data: [1, 2] };

describe('decodeStreamFrame', () => {
  it('decodes a text frame: model, version, id, request with JSON outputs only', () => {
    const frame = decodeStreamFrame(
      textFrame({ id: 'a1', model_name: 'mlp', model_version: '2', inputs: [input], outputs: [{ name: 'y', parameters: { binary_data: true } }], parameters: { binary_data_output: true } }),
      false,
    );
    if (!frame.ok) throw frame.error;
    expect(frame.id).toBe('a1');
    expect(frame.modelName).toBe('mlp');
    expect(frame.modelVersion).toBe('2');
    expect(frame.binary).toBe(false);
    expect(frame.request.id).toBe('a1');
    expect(Array.from(new Float32Array(frame.request.inputs[0].data.buffer))).toEqual([1, 2]);
    // A text frame cannot carry bytes back.
    expect(frame.request.outputs).toEqual([{ name: 'y', binary: false }]);
    expect(frame.request.binaryDataOutput).toBe(false);
  });

  it('keeps a numeric id as a number and a numeric version as a string', () => {
    const frame = decodeStreamFrame(textFrame({ id: 42, model_name: 'mlp', model_version: 3, inputs: [input] }), false);
    if (!frame.ok) throw frame.error;
    expect(frame.id).toBe(42);
    expect(frame.request.id).toBe('42');
    expect(frame.modelVersion).toBe('3');
    const anonymous = decodeStreamFrame(new Uint8Array(textFrame({ model_name: 'mlp', inputs: [input] })), false);
    if (!anonymous.ok) throw anonymous.error;
    expect(anonymous.id).toBeUndefined();
    expect(anonymous.modelVersion).toBeUndefined();
  });

  it('decodes a binary frame: inputs are views of the frame, outputs default to binary', () => {
    const data = binaryFrame(
      { id: 'b7', model_name: 'mlp', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2], parameters: { binary_data_size: 8 } }, { name: 'k', datatype: 'INT64', shape: [1], parameters: { binary_data_size: 8 } }], outputs: [{ name: 'y' }, { name: 'z', parameters: { binary_data: false } }] },
      new Float32Array([3, 4]),
      new BigInt64Array([-5n]),
    );
    const frame = decodeStreamFrame(data, true);
    if (!frame.ok) throw frame.error;
    expect(frame.binary).toBe(true);
    const [x, k] = frame.request.inputs;
    expect(x.data.buffer).toBe(data);
    expect(x.data.byteOffset).toBe(data.byteLength - 16);
    expect(Array.from(new Float32Array(new Uint8Array(x.data).buffer))).toEqual([3, 4]);
    expect(Array.from(new BigInt64Array(new Uint8Array(k.data).buffer))).toEqual([-5n]);
    expect(frame.request.binaryDataOutput).toBe(true);
    expect(frame.request.outputs).toEqual([
      { name: 'y', binary: true },
      { name: 'z', binary: false },
    ]);
  });

  it('reports failures with the id when it could be read', () => {
    let f = failure(decodeStreamFrame(textFrame({ id: 'e1', model_name: 'mlp', inputs: [{ ...input, shape: [3] }] }), false));
    expect(f.id).toBe('e1');
    expect(f.error.message).toBe("input 'x': expected 3 FP32 values for shape [3], got 2");
    expect(f.error.status).toBe(400);

    f = failure(decodeStreamFrame(textFrame({ id: 9, inputs: [input] }), false));
    expect(f.id).toBe(9);
    expect(f.error.message).toBe("'model_name' must be a non-empty string, got undefined");

    f = failure(decodeStreamFrame(textFrame({ id: 'v', model_name: 'm', model_version: 1.5, inputs: [input] }), false));
    expect(f.error.message).toBe("'model_version' must be a string or a non-negative integer, got 1.5");

    f = failure(decodeStreamFrame(textFrame({ id: 'n', model_name: 'm', inputs: [{ name: 'x', datatype: 'FP32', shape: [1], parameters: { binary_data_size: 4 } }] }), false));
    expect(f.id).toBe('n');
    expect(f.error.message).toBe(
      "input 'x': parameters.binary_data_size is set but the request carries no binary data (no Inference-Header-Content-Length header, or a text stream frame)",
    );

    f = failure(decodeStreamFrame(textFrame({ id: { a: 1 }, model_name: 'm', inputs: [] }), false));
    expect(f.id).toBeUndefined();
    expect(f.error.message).toBe(`'id' must be a string or a number, got {"a":1}`);

    f = failure(decodeStreamFrame(textFrame('{"id": "x", '), false));
    expect(f.id).toBeUndefined();
    expect(f.error.message.startsWith('malformed JSON: ')).toBe(true);

    f = failure(decodeStreamFrame(textFrame('[1]'), false));
    expect(f.error.message).toBe('the request must be a JSON object, got [1]');
  });

  it('refuses binary frames whose lengths do not add up', () => {
    let f = failure(decodeStreamFrame(new Uint8Array([1, 0]), true));
    expect(f.error.message).toBe('binary frame of 2 bytes is too short: it must start with a 4-byte JSON length');

    const data = new Uint8Array(binaryFrame({ id: 'q', model_name: 'm', inputs: [] }));
    new DataView(data.buffer).setUint32(0, data.length, true);
    f = failure(decodeStreamFrame(data, true));
    expect(f.error.message).toBe(`binary frame JSON length ${data.length} is beyond the end of the frame (${data.length - 4} bytes after the length)`);

    const short = binaryFrame({ id: 'q2', model_name: 'm', inputs: [{ name: 'x', datatype: 'FP32', shape: [2], parameters: { binary_data_size: 8 } }] }, new Float32Array(1));
    f = failure(decodeStreamFrame(short, true));
    expect(f.id).toBe('q2');
    expect(f.error.message).toBe("input 'x': binary_data_size 8 runs past the end of the body (4 bytes of binary data left)");

    const long = binaryFrame({ id: 'q3', model_name: 'm', inputs: [{ name: 'x', datatype: 'FP32', shape: [1], parameters: { binary_data_size: 4 } }] }, new Float32Array(2));
    f = failure(decodeStreamFrame(long, true));
    expect(f.error.message).toBe("the request carries 8 bytes of binary data but the inputs' binary_data_size add up to 4");
  });
});

describe('encodeStreamResponse / encodeStreamError', () => {
  const y = new Float32Array([0.5, -1]);
  const response: InferResponse = {
    modelName: 'mlp',
    modelVersion: '1',
    id: 'a1',
    outputs: [
      { name: 'y', datatype: 'FP32', shape: [1, 2], data: new Uint8Array(y.buffer), binary: true },
      { name: 'n', datatype: 'INT32', shape: [1], data: new Uint8Array(new Int32Array([4]).buffer), binary: false },
    ],
  };

  it('text frame: every output inline, id echoed (numbers as numbers)', () => {
    expect(encodeStreamResponse(response, false)).toBe(
      '{"id":"a1","model_name":"mlp","model_version":"1","outputs":[{"name":"y","datatype":"FP32","shape":[1,2],"data":[0.5,-1]},{"name":"n","datatype":"INT32","shape":[1],"data":[4]}]}',
    );
    expect((encodeStreamResponse(response, false, 42) as string).startsWith('{"id":42,"model_name"')).toBe(true);
  });

  it('binary frame: [uint32 LE length][JSON][bytes of binary outputs], byte for byte', () => {
    const frame = encodeStreamResponse(response, true) as Uint8Array;
    const json =
      '{"id":"a1","model_name":"mlp","model_version":"1","outputs":[{"name":"y","datatype":"FP32","shape":[1,2],"parameters":{"binary_data_size":8}},{"name":"n","datatype":"INT32","shape":[1],"data":[4]}]}';
    const prefix = Buffer.alloc(4);
    prefix.writeUInt32LE(json.length, 0);
    expect(Buffer.from(frame).equals(Buffer.concat([prefix, Buffer.from(json), Buffer.from(y.buffer)]))).toBe(true);

    // What a client does with it: read the length, parse the JSON, slice the bytes.
    const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
    const length = view.getUint32(0, true);
    const header = JSON.parse(Buffer.from(frame.buffer, frame.byteOffset + 4, length).toString());
    expect(header.outputs[0].parameters.binary_data_size).toBe(8);
    expect(view.getFloat32(4 + length, true)).toBe(0.5);
    expect(view.getFloat32(8 + length, true)).toBe(-1);
  });

  it('error frame: id, message and HTTP status code', () => {
    expect(encodeStreamError('a1', new TensorwireError('QUEUE_FULL', 'queue of model "mlp" is full'))).toBe('{"id":"a1","error":"queue of model \\"mlp\\" is full","code":503}');
    expect(encodeStreamError(7, new TensorwireError('INVALID_INPUT', 'bad'))).toBe('{"id":7,"error":"bad","code":400}');
    expect(encodeStreamError(undefined, new TensorwireError('NOT_FOUND', 'unknown model'))).toBe('{"error":"unknown model","code":404}');
  });
});
