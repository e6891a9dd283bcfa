import { describe, expect, it } from 'vitest';
import { TensorwireError } from '../lib/errors';
import { decodeStreamFrame, encodeFeedFrame, encodeFeedHead, encodeFeedInputs, encodeStreamError, encodeStreamResponse, type StreamControl, type StreamFrame } from '../lib/protocol/stream-frame';
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

/** Why a frame expected to be an inference request is not one. */
function notRequest(frame: StreamFrame): Error {
  return frame.ok ? new Error(`expected an inference request, got a ${frame.kind} frame`) : frame.error;
}

const input = { name: 'x', datatype: 'FP32', shape: [1, 2], data: [1, 2] };

describe('decodeStreamFrame', () => {
  it('decodes a text frame: model, version, id, request with JSON outputs only', () => {
    const frame = decodeStreamFrame(
      textFrame({ id: 'a1', model_name: 'mlp', model_version: '2', inputs: [input], outputs: [{ name: 'y', parameters: { binary_data: true } }], parameters: { binary_data_output: true } }),
      false,
    );
    if (!frame.ok || frame.kind !== 'infer') throw notRequest(frame);
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
    if (!frame.ok || frame.kind !== 'infer') throw notRequest(frame);
    expect(frame.id).toBe(42);
    expect(frame.request.id).toBe('42');
    expect(frame.modelVersion).toBe('3');
    const anonymous = decodeStreamFrame(new Uint8Array(textFrame({ model_name: 'mlp', inputs: [input] })), false);
    if (!anonymous.ok || anonymous.kind !== 'infer') throw notRequest(anonymous);
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
    if (!frame.ok || frame.kind !== 'infer') throw notRequest(frame);
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

  it('error frame: id, message, catalogue code and HTTP status', () => {
    expect(encodeStreamError('a1', new TensorwireError('QUEUE_FULL', 'queue of model "mlp" is full'))).toBe('{"id":"a1","error":"queue of model \\"mlp\\" is full","code":"QUEUE_FULL","status":503}');
    expect(encodeStreamError(7, new TensorwireError('INVALID_INPUT', 'bad'))).toBe('{"id":7,"error":"bad","code":"INVALID_INPUT","status":400}');
    expect(encodeStreamError(undefined, new TensorwireError('NOT_FOUND', 'unknown model'))).toBe('{"error":"unknown model","code":"NOT_FOUND","status":404}');
  });
});

describe('control frames (live prediction feed)', () => {
  function control(value: unknown): { id: unknown; control: StreamControl } {
    const frame = decodeStreamFrame(textFrame(value), false);
    if (!frame.ok) throw frame.error;
    if (frame.kind !== 'control') throw new Error('expected a control frame');
    return { id: frame.id, control: frame.control };
  }

  it('decodes subscribe with its defaults, or with every field, and unsubscribe', () => {
    expect(control({ id: 1, subscribe: 'mlp' })).toEqual({ id: 1, control: { op: 'subscribe', model: 'mlp', sampleRate: 1, maxPerSecond: 10, includeInputs: false } });
    expect(control({ id: 's', subscribe: 'mlp', sample_rate: 0.25, max_per_second: 0.5, include_inputs: true })).toEqual({
      id: 's',
      control: { op: 'subscribe', model: 'mlp', sampleRate: 0.25, maxPerSecond: 0.5, includeInputs: true },
    });
    expect(control({ id: 2, unsubscribe: 'mlp' })).toEqual({ id: 2, control: { op: 'unsubscribe', model: 'mlp' } });
  });

  it('is never read as an inference request, even with model_name and inputs', () => {
    expect(control({ id: 3, subscribe: 'a', model_name: 'b', inputs: [input] }).control).toMatchObject({ op: 'subscribe', model: 'a' });
  });

  it('refuses bad fields naming the field, what was expected and what came', () => {
    const cases: [unknown, string][] = [
      [{ id: 1, subscribe: '' }, `'subscribe' must be a non-empty model name (a string), got ""`],
      [{ id: 1, subscribe: 5 }, `'subscribe' must be a non-empty model name (a string), got 5`],
      [{ id: 1, unsubscribe: null }, `'unsubscribe' must be a non-empty model name (a string), got null`],
      [{ id: 1, subscribe: 'm', sample_rate: 0 }, `'sample_rate' must be a number in (0, 1], got 0`],
      [{ id: 1, subscribe: 'm', sample_rate: 1.5 }, `'sample_rate' must be a number in (0, 1], got 1.5`],
      [{ id: 1, subscribe: 'm', sample_rate: '0.5' }, `'sample_rate' must be a number in (0, 1], got "0.5"`],
      [{ id: 1, subscribe: 'm', max_per_second: 0 }, `'max_per_second' must be a positive number, got 0`],
      [{ id: 1, subscribe: 'm', max_per_second: -3 }, `'max_per_second' must be a positive number, got -3`],
      [{ id: 1, subscribe: 'm', include_inputs: 'yes' }, `'include_inputs' must be true or false, got "yes"`],
      [{ id: 1, subscribe: 'a', unsubscribe: 'b' }, `a control frame has either 'subscribe' or 'unsubscribe', got both ("a" and "b")`],
      [{ subscribe: 'm' }, `every subscribe frame needs an 'id' (a string or a number) to match its answer; this one for model 'm' has none`],
    ];
    for (const [value, message] of cases) {
      const f = failure(decodeStreamFrame(textFrame(value), false));
      expect(f.error.code, JSON.stringify(value)).toBe('INVALID_INPUT');
      expect(f.error.message, JSON.stringify(value)).toBe(message);
    }
    expect(failure(decodeStreamFrame(textFrame({ id: 9, subscribe: 'm', sample_rate: 2 }), false)).id).toBe(9);
  });

  it('must be a text frame', () => {
    const f = failure(decodeStreamFrame(binaryFrame({ id: 4, subscribe: 'm' }), true));
    expect(f.id).toBe(4);
    expect(f.error.message).toBe('a subscribe frame must be a text frame, got a binary frame');
  });
});

describe('feed frames', () => {
  const response: InferResponse = {
    modelName: 'm',
    modelVersion: '2',
    id: '7',
    outputs: [{ name: 'y', datatype: 'FP32', shape: [1, 2], data: new Uint8Array(new Float32Array([0.5, -1]).buffer), binary: true }],
  };
  const inputs = [{ name: 'x', datatype: 'INT64' as const, shape: [1], data: new Uint8Array(new BigInt64Array([-5n]).buffer) }];

  it('carries the outputs as JSON data (binary or not), the request id as sent, inputs and dropped only when there are some', () => {
    const head = encodeFeedHead('m', response, 7);
    expect(encodeFeedFrame(head, undefined, 0)).toBe('{"feed":"m","model_version":"2","request_id":7,"outputs":[{"name":"y","datatype":"FP32","shape":[1,2],"data":[0.5,-1]}]}');
    expect(JSON.parse(encodeFeedFrame(head, encodeFeedInputs(inputs), 3))).toEqual({
      feed: 'm',
      model_version: '2',
      request_id: 7,
      outputs: [{ name: 'y', datatype: 'FP32', shape: [1, 2], data: [0.5, -1] }],
      inputs: [{ name: 'x', datatype: 'INT64', shape: [1], data: [-5] }],
      dropped: 3,
    });
    expect(encodeFeedHead('m', response, undefined)).not.toContain('request_id');
  });
});
