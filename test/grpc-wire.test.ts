/**
 * The hand-written protobuf codec of the inference hot path (lib/grpc/infer-wire.ts) against
 * protobufjs/proto-loader on the same bytes: every request proto-loader encodes decodes to
 * the same plain object, every answer written decodes (through proto-loader) to what was
 * written; truncated and mistyped bytes are errors, never a read past the message. Also
 * BYTES tensors through the codec (typed bytes_contents and raw), the load generator's gRPC
 * framing, and the cancellation signal of a call answered before its stream closed.
 */
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { GrpcFrameReader, grpcFrame } from '../lib/bench/grpc-connection';
import { TensorwireError } from '../lib/errors';
import { cancellationSignal } from '../lib/grpc/call-context';
import { decodeInferRequest } from '../lib/grpc/infer-codec';
import { readInferRequest, writeInferResponse, writeStreamResponse } from '../lib/grpc/infer-wire';
import { loadProtos } from '../lib/grpc/proto';
import type { WireInferRequest, WireInferResponse } from '../lib/grpc/wire-types';
import { bytesElementsAsText, serializeBytesElements } from '../lib/protocol/bytes-tensor';

const method = (name: string) => loadProtos().inference[name]!;
const encodeRequest = (m: object): Buffer => method('ModelInfer').requestSerialize(m);
const protoLoaderDecode = (b: Buffer): WireInferRequest => method('ModelInfer').requestDeserialize(b) as WireInferRequest;

/** proto-loader's object with its 64-bit strings and ours side by side: both as strings. */
function normalised(m: unknown): unknown {
  return JSON.parse(JSON.stringify(m, (_k, v: unknown) => (Buffer.isBuffer(v) ? `buf:${v.toString('hex')}` : (v as { type?: string; data?: number[] })?.type === 'Buffer' ? `buf:${Buffer.from((v as { data: number[] }).data).toString('hex')}` : v)));
}

const REQUESTS: Record<string, object> = {
  'raw FP32, id, version': {
    model_name: 'mlp', model_version: '3', id: 'req-7',
    inputs: [{ name: 'input', datatype: 'FP32', shape: [2, 256] }],
    raw_input_contents: [Buffer.alloc(2048, 7)],
  },
  'parameters of every kind, outputs with parameters': {
    model_name: 'm',
    parameters: {
      priority: { int64_param: 3 }, timeout: { uint64_param: '18446744073709551615' }, flag: { bool_param: true },
      ratio: { double_param: 0.25 }, who: { string_param: 'é✓' }, neg: { int64_param: '-9007199254740993' }, small: { int64_param: -5 },
    },
    inputs: [{ name: 'x', datatype: 'INT64', shape: [3], parameters: { a: { string_param: 'b' } }, contents: { int64_contents: ['-1', '9223372036854775807', '-9223372036854775808'] } }],
    outputs: [{ name: 'y', parameters: { binary_data: { bool_param: true } } }, { name: 'z' }],
  },
  'typed contents of every field': {
    model_name: 'm',
    inputs: [
      { name: 'b', datatype: 'BOOL', shape: [2], contents: { bool_contents: [true, false] } },
      { name: 'i', datatype: 'INT32', shape: [3], contents: { int_contents: [-1, 2147483647, -2147483648] } },
      { name: 'u', datatype: 'UINT32', shape: [2], contents: { uint_contents: [0, 4294967295] } },
      { name: 'u64', datatype: 'UINT64', shape: [2], contents: { uint64_contents: ['0', '18446744073709551615'] } },
      { name: 'f', datatype: 'FP32', shape: [2], contents: { fp32_contents: [1.5, -0] } },
      { name: 'd', datatype: 'FP64', shape: [2], contents: { fp64_contents: [Math.PI, -1e300] } },
      { name: 's', datatype: 'BYTES', shape: [3], contents: { bytes_contents: [Buffer.from('ab'), Buffer.alloc(0), Buffer.from([0, 255])] } },
    ],
  },
  'negative and large shape dimensions (refused later, decoded the same)': {
    model_name: 'm', inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, '9007199254740993', 0] }],
  },
  empty: {},
};

describe('ModelInferRequest: the hand-written reader and proto-loader agree', () => {
  for (const [name, fields] of Object.entries(REQUESTS)) {
    it(name, () => {
      const bytes = encodeRequest(fields);
      const ours = readInferRequest(bytes);
      expect(normalised(ours)).toEqual(normalised(protoLoaderDecode(bytes)));
    });
  }

  it('raw_input_contents are views of the received message, not copies', () => {
    const bytes = encodeRequest(REQUESTS['raw FP32, id, version']!);
    const raw = readInferRequest(bytes).raw_input_contents[0]!;
    expect(raw.buffer).toBe(bytes.buffer);
    expect(raw.length).toBe(2048);
  });

  it('repeated scalars sent unpacked (one tag per element) read as packed ones do', () => {
    // InferInputTensor{shape: 2, 3 unpacked}: tag (3<<3|0) per element.
    const tensor = Buffer.from([0x0a, 0x01, 0x78, 0x18, 0x02, 0x18, 0x03]);
    const bytes = Buffer.concat([Buffer.from([0x2a, tensor.length]), tensor]);
    expect(readInferRequest(bytes).inputs[0]!.shape).toEqual(['2', '3']);
    expect(normalised(readInferRequest(bytes))).toEqual(normalised(protoLoaderDecode(bytes)));
  });

  it('truncated or mistyped bytes are errors naming the offset, at every cut of a real message', () => {
    const bytes = encodeRequest(REQUESTS['parameters of every kind, outputs with parameters']!);
    let errors = 0;
    for (let cut = 1; cut < bytes.length; cut++) {
      try {
        readInferRequest(bytes.subarray(0, cut));
      } catch (e) {
        errors++;
        expect((e as Error).message).toMatch(/offset \d+/);
      }
    }
    expect(errors).toBeGreaterThan(bytes.length / 2);
    expect(() => readInferRequest(Buffer.from([0x7f, 0x01, 0x02]))).toThrow(/invalid wire type 7 at offset 0/);
    expect(() => readInferRequest(Buffer.from([0x08, 0x01]))).toThrow(/invalid wire type 0 at offset 0/); // model_name as a varint
    expect(() => readInferRequest(Buffer.from([0x3a, 0xff, 0xff, 0xff, 0xff, 0x0f]))).toThrow(/runs past the end/); // a 4 GiB raw entry in 6 bytes
    expect(() => readInferRequest(Buffer.from([0x0a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]))).toThrow(/longer than 10 bytes/);
  });
});

describe('ModelInferResponse and ModelStreamInferResponse: written by hand, read by proto-loader', () => {
  const answer: WireInferResponse = {
    model_name: 'mlp', model_version: '1', id: 'é-7',
    outputs: [{ name: 'output', datatype: 'FP32', shape: [2, 16] }, { name: 'dyn', datatype: 'INT64', shape: [-1, 300, 0] }, { name: 's', datatype: 'BYTES', shape: [] }],
    raw_output_contents: [new Uint8Array(128).fill(3), new Uint8Array(0), serializeBytesElements(['x'])],
  };

  it('an answer decodes to what was written', () => {
    const decoded = method('ModelInfer').responseDeserialize(writeInferResponse(answer)) as Record<string, unknown>;
    expect(normalised(decoded)).toEqual(normalised({
      ...answer,
      outputs: answer.outputs.map((o) => ({ ...o, shape: o.shape.map(String), parameters: {} })),
      raw_output_contents: answer.raw_output_contents.map((r) => Buffer.from(r)),
      parameters: {},
    }));
  });

  it('a stream answer and a stream error (with its error_code parameter) decode to what was written', () => {
    const stream = method('ModelStreamInfer');
    const ok = stream.responseDeserialize(writeStreamResponse({ error_message: '', infer_response: answer })) as { error_message: string; infer_response: { id: string; raw_output_contents: Buffer[] } };
    expect(ok.error_message).toBe('');
    expect(ok.infer_response.id).toBe('é-7');
    expect(ok.infer_response.raw_output_contents[0]).toEqual(Buffer.alloc(128, 3));
    const failed = stream.responseDeserialize(writeStreamResponse({
      error_message: 'no such model',
      infer_response: { model_name: 'm', model_version: '', id: 'r1', parameters: { error_code: { string_param: 'NOT_FOUND' } }, outputs: [], raw_output_contents: [] },
    })) as { error_message: string; infer_response: { id: string; parameters: Record<string, { string_param: string }> } };
    expect(failed.error_message).toBe('no such model');
    expect(failed.infer_response.id).toBe('r1');
    expect(failed.infer_response.parameters.error_code!.string_param).toBe('NOT_FOUND');
  });
});

describe('shared memory outputs through the hand-written writer', () => {
  it('an output written into a region: its parameters (string and int64, large offsets too) and an empty raw entry, as protobufjs reads them', () => {
    const written: WireInferResponse = {
      model_name: 'm', model_version: '1', id: '',
      outputs: [
        { name: 'in_shm', datatype: 'FP32', shape: [2, 3], parameters: { shared_memory_region: { string_param: 'région' }, shared_memory_byte_size: { int64_param: 24 }, shared_memory_offset: { int64_param: 2 ** 40 + 5 } } },
        { name: 'raw', datatype: 'INT64', shape: [1] },
      ],
      raw_output_contents: [new Uint8Array(0), new Uint8Array(8).fill(1)],
    };
    const decoded = method('ModelInfer').responseDeserialize(writeInferResponse(written)) as { outputs: { name: string; parameters: Record<string, unknown> }[]; raw_output_contents: Buffer[] };
    expect(decoded.outputs[0]!.parameters).toEqual({
      shared_memory_region: { string_param: 'région', parameter_choice: 'string_param' },
      shared_memory_byte_size: { int64_param: '24', parameter_choice: 'int64_param' },
      shared_memory_offset: { int64_param: String(2 ** 40 + 5), parameter_choice: 'int64_param' },
    });
    expect(decoded.outputs[1]!.parameters).toEqual({});
    expect(decoded.raw_output_contents.map((r) => r.length)).toEqual([0, 8]);
  });

  it('shared memory parameters of inputs and outputs decode to the request fields HTTP\'s decoder makes', () => {
    const request = decodeInferRequest(readInferRequest(encodeRequest({
      model_name: 'm',
      inputs: [
        { name: 'a', datatype: 'FP32', shape: [2], parameters: { shared_memory_region: { string_param: 'r' }, shared_memory_byte_size: { int64_param: 8 }, shared_memory_offset: { int64_param: 16 } } },
        { name: 'b', datatype: 'INT32', shape: [1] },
      ],
      outputs: [{ name: 'y', parameters: { shared_memory_region: { string_param: 'r' }, shared_memory_byte_size: { int64_param: 4 } } }],
      raw_input_contents: [Buffer.alloc(4)],
    }))).request;
    expect(request.inputs[0]).toMatchObject({ name: 'a', datatype: 'FP32', shape: [2], sharedMemory: { region: 'r', offset: 16, byteSize: 8 } });
    expect(request.inputs[0]!.data.byteLength).toBe(0);
    expect(request.inputs[1]!.data.byteLength).toBe(4);
    expect(request.outputs).toEqual([{ name: 'y', binary: true, sharedMemory: { region: 'r', offset: 0, byteSize: 4 } }]);
  });
});

describe('BYTES tensors through the gRPC codec', () => {
  const decode = (fields: object) => decodeInferRequest(readInferRequest(encodeRequest(fields))).request.inputs[0]!;
  const refusal = (fields: object): string => {
    try {
      decode(fields);
    } catch (e) {
      expect(e).toBeInstanceOf(TensorwireError);
      expect((e as TensorwireError).code).toBe('INVALID_INPUT');
      return (e as Error).message;
    }
    throw new Error('expected INVALID_INPUT');
  };

  it('typed bytes_contents become the one BYTES form (length-prefixed elements)', () => {
    const input = decode({ model_name: 'm', inputs: [{ name: 'text', datatype: 'BYTES', shape: [1, 3], contents: { bytes_contents: [Buffer.from('héllo'), Buffer.alloc(0), Buffer.from('z')] } }] });
    expect(input.datatype).toBe('BYTES');
    expect(input.shape).toEqual([1, 3]);
    expect(Buffer.from(input.data)).toEqual(serializeBytesElements(['héllo', '', 'z']));
    expect(bytesElementsAsText('t', input.data, 3)).toEqual(['héllo', '', 'z']);
  });

  it('raw_input_contents for BYTES already are that form: checked and passed through without a copy', () => {
    const raw = serializeBytesElements(['a', 'bc']);
    const bytes = encodeRequest({ model_name: 'm', inputs: [{ name: 'text', datatype: 'BYTES', shape: [2] }], raw_input_contents: [raw] });
    const input = decodeInferRequest(readInferRequest(bytes)).request.inputs[0]!;
    expect(Buffer.from(input.data)).toEqual(raw);
    expect(input.data.buffer).toBe(bytes.buffer);
  });

  it('BYTES data that does not match its shape is refused naming the input', () => {
    const text = (contents: object, shape = [2]) => ({ model_name: 'm', inputs: [{ name: 'text', datatype: 'BYTES', shape, contents }] });
    expect(refusal(text({ bytes_contents: [Buffer.from('a')] }))).toBe("input 'text': contents.bytes_contents holds 1 elements but BYTES shape [2] needs 2");
    expect(refusal(text({ int_contents: [1, 2] }))).toBe("input 'text': BYTES data belongs in contents.bytes_contents, got contents.int_contents");
    const raw = (data: Buffer, shape = [2]) => ({ model_name: 'm', inputs: [{ name: 'text', datatype: 'BYTES', shape }], raw_input_contents: [data] });
    expect(refusal(raw(serializeBytesElements(['abcdefgh'])))).toMatch(/input 'text': .*says 2 BYTES elements but the data ends after 1/);
    expect(refusal(raw(serializeBytesElements(['a', 'b', 'c'])))).toMatch(/input 'text': .*more bytes after them/);
    expect(refusal(raw(Buffer.from([9, 0, 0, 0, 1]), [1]))).toMatch(/BYTES element 0 declares 9 bytes/);
    // A shape of 2^40 elements against 8 bytes: refused before anything is sized by the shape.
    expect(refusal(raw(serializeBytesElements(['a']), [1 << 20, 1 << 20]))).toMatch(/has 1099511627776 elements but raw_input_contents holds only 5 bytes/);
    expect(refusal({ ...raw(serializeBytesElements(['a']), [1]), inputs: [{ name: 'text', datatype: 'BYTES', shape: [1], contents: { bytes_contents: [Buffer.from('a')] } }] })).toMatch(/has both typed 'contents' and raw_input_contents/);
  });
});

describe('the load generator framing', () => {
  it('messages split across chunks and several in one chunk come out whole, in order', () => {
    const messages = [Buffer.from('a'), Buffer.alloc(0), Buffer.alloc(70_000, 5), Buffer.from('last')];
    const stream = Buffer.concat(messages.map(grpcFrame));
    for (const chunkSize of [1, 3, 5, 4096, stream.length]) {
      const got: Buffer[] = [];
      const reader = new GrpcFrameReader((m) => got.push(Buffer.from(m)));
      for (let at = 0; at < stream.length; at += chunkSize) reader.push(stream.subarray(at, at + chunkSize));
      expect(got).toEqual(messages);
    }
  });
});

describe('cancellation of a unary call', () => {
  it("grpc-js's 'cancelled' after the answer was sent aborts nothing and builds no error", () => {
    const call = Object.assign(new EventEmitter(), { cancelled: false });
    let reasons = 0;
    let answered = false;
    const signal = cancellationSignal(call, () => ++reasons, () => answered);
    answered = true;
    call.emit('cancelled');
    expect(signal.aborted).toBe(false);
    expect(reasons).toBe(0);
  });

  it('a cancel before the answer aborts the request', () => {
    const call = Object.assign(new EventEmitter(), { cancelled: false });
    const signal = cancellationSignal(call, () => 'gone', () => false);
    call.emit('cancelled');
    expect(signal.aborted).toBe(true);
    expect(signal.reason).toBe('gone');
  });
});
