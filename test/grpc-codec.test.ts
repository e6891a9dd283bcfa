/**
 * The gRPC transport's pure parts: ModelInferRequest decoding (zero-copy raw inputs, typed
 * contents, the protocol checks), the answer encoding, deadlines, peer addresses, the status
 * of each catalogue code (and docs/grpc.md listing the same), and the --grpc-port flag.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { parseServeArgs } from '../lib/cli';
import { ERROR_CATALOGUE, TensorwireError } from '../lib/errors';
import { peerAddress } from '../lib/grpc/call-context';
import { decodeInferRequest, encodeInferResponse } from '../lib/grpc/infer-codec';
import { applyDeadline } from '../lib/grpc/model-infer';
import { ERROR_CODE_METADATA, MAX_STATUS_DETAILS, toServiceError } from '../lib/grpc/status';
import type { WireInferRequest } from '../lib/grpc/wire-types';
import { createTensorwire } from '../lib/tensorwire';
import { tempDir } from './helpers/engine-run';

/** A message as proto-loader hands it over (repeated and map fields present). */
function message(fields: Partial<WireInferRequest>): WireInferRequest {
  return { parameters: {}, inputs: [], outputs: [], raw_input_contents: [], ...fields };
}

function input(name: string, datatype: string, shape: string[], contents?: Record<string, unknown[]>) {
  const empty = { bool_contents: [], int_contents: [], int64_contents: [], uint_contents: [], uint64_contents: [], fp32_contents: [], fp64_contents: [], bytes_contents: [] };
  return { name, datatype, shape, parameters: {}, ...(contents ? { contents: { ...empty, ...contents } as never } : {}) };
}

function invalid(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(TensorwireError);
    expect((e as TensorwireError).code).toBe('INVALID_INPUT');
    return (e as Error).message;
  }
  throw new Error('expected INVALID_INPUT');
}

describe('decodeInferRequest', () => {
  it('raw inputs become the tensor data without a copy', () => {
    const raw = Buffer.alloc(32);
    const d = decodeInferRequest(message({ model_name: 'm', model_version: '2', id: 'x', inputs: [input('a', 'FP32', ['2', '4'])], raw_input_contents: [raw] }));
    expect(d).toMatchObject({ model: 'm', version: '2', request: { id: 'x', binaryDataOutput: true, outputs: undefined } });
    expect(d.request.inputs[0]).toMatchObject({ name: 'a', datatype: 'FP32', shape: [2, 4] });
    expect(d.request.inputs[0]!.data).toBe(raw);
  });

  it('empty strings are absent fields (proto3)', () => {
    const d = decodeInferRequest(message({ model_name: 'm', model_version: '', id: '' }));
    expect(d.version).toBeUndefined();
    expect(d.request.id).toBeUndefined();
  });

  it('typed contents: INT64 strings exact, FP16 from fp32_contents', () => {
    const d = decodeInferRequest(message({ model_name: 'm', inputs: [input('a', 'INT64', ['2'], { int64_contents: ['9223372036854775807', '-1'] }), input('h', 'FP16', ['1'], { fp32_contents: [1.5] })] }));
    expect(Array.from(new BigInt64Array(d.request.inputs[0]!.data.slice().buffer))).toEqual([9223372036854775807n, -1n]);
    expect(Array.from(new Uint16Array(d.request.inputs[1]!.data.slice().buffer))).toEqual([0x3e00]);
  });

  it('parameters: priority and timeout as HTTP reads them, others passed through, triton_ reserved', () => {
    const d = decodeInferRequest(message({ model_name: 'm', parameters: { priority: { parameter_choice: 'uint64_param', uint64_param: '2' }, timeout: { parameter_choice: 'int64_param', int64_param: '5000' }, tag: { parameter_choice: 'string_param', string_param: 'v' }, big: { parameter_choice: 'int64_param', int64_param: '9007199254740993' } } }));
    expect(d.request).toMatchObject({ priority: 2, timeoutUs: 5000, parameters: { tag: 'v', big: '9007199254740993' } });
    expect(invalid(() => decodeInferRequest(message({ model_name: 'm', parameters: { triton_x: { parameter_choice: 'bool_param', bool_param: true } } })))).toContain("names starting with 'triton_' are reserved");
    expect(invalid(() => decodeInferRequest(message({ model_name: 'm', parameters: { timeout: { parameter_choice: 'int64_param', int64_param: '-1' } } })))).toContain("'timeout' must be a non-negative");
  });

  it('refuses what the protocol does not allow, naming the tensor', () => {
    expect(invalid(() => decodeInferRequest(message({ model_name: 'm', inputs: [input('a', 'FP32', ['2'])], raw_input_contents: [Buffer.alloc(7)] })))).toBe("input 'a': raw_input_contents holds 7 bytes but FP32 shape [2] needs 8");
    expect(invalid(() => decodeInferRequest(message({ model_name: 'm', inputs: [input('a', 'FP99', ['2'])] })))).toContain("input 'a': unknown datatype \"FP99\"");
    expect(invalid(() => decodeInferRequest(message({ model_name: 'm', inputs: [input('a', 'FP32', ['-1'])] })))).toContain("'shape' must hold non-negative integers");
    expect(invalid(() => decodeInferRequest(message({ model_name: 'm', inputs: [input('a'.repeat(500), 'FP32', ['1'])], raw_input_contents: [Buffer.alloc(1)] })))).toMatch(/^input 'a{61}\.\.\.': raw_input_contents/);
    expect(invalid(() => decodeInferRequest(message({ model_name: 'm', inputs: [{ ...input('a', 'FP32', ['1']), parameters: { shared_memory_region: {} } }] })))).toBe("input 'a': parameters shared_memory_region and shared_memory_byte_size must be given together");
    expect(invalid(() => decodeInferRequest(message({ model_name: 'm', outputs: [{ name: 'y', parameters: { classification: {} } }] })))).toContain('classification extension is not supported');
    expect(invalid(() => decodeInferRequest(message({ model_name: 'm', outputs: [{ name: '', parameters: {} }] })))).toBe("output 0: 'name' is required");
  });

  it('the deadline becomes the timeout, the earlier of it and the request\'s own', () => {
    const d = decodeInferRequest(message({ model_name: 'm', parameters: { timeout: { parameter_choice: 'int64_param', int64_param: '5000' } } }));
    applyDeadline(d, 2000);
    expect(d.request.timeoutUs).toBe(2000);
    applyDeadline(d, 9000);
    expect(d.request.timeoutUs).toBe(2000);
    const e = decodeInferRequest(message({ model_name: 'm' }));
    applyDeadline(e, undefined);
    expect(e.request.timeoutUs).toBeUndefined();
  });
});

describe('encodeInferResponse', () => {
  it('every output in raw_output_contents, in order, with its description', () => {
    const y = new Uint8Array(8);
    const z = new Uint8Array(2);
    const wire = encodeInferResponse({ modelName: 'm', modelVersion: '3', id: 'q', outputs: [{ name: 'y', datatype: 'FP32', shape: [2], data: y, binary: false }, { name: 'z', datatype: 'INT8', shape: [2], data: z, binary: true }] });
    expect(wire).toEqual({ model_name: 'm', model_version: '3', id: 'q', outputs: [{ name: 'y', datatype: 'FP32', shape: [2] }, { name: 'z', datatype: 'INT8', shape: [2] }], raw_output_contents: [y, z] });
  });
});

describe('status', () => {
  const doc = readFileSync(join(__dirname, '..', 'docs', 'grpc.md'), 'utf8');
  const documented = new Map([...doc.matchAll(/^\| ([A-Z_]+) \| [A-Z_]+ \((\d+)\) \|/gm)].map((m) => [m[1], Number(m[2])]));

  it('each catalogue code has its gRPC status, and docs/grpc.md lists the same', () => {
    expect(documented).toEqual(new Map(Object.entries(ERROR_CATALOGUE).map(([code, e]) => [code, e.grpc])));
    expect(ERROR_CATALOGUE.INVALID_INPUT.grpc).toBe(grpc.status.INVALID_ARGUMENT);
    expect(ERROR_CATALOGUE.QUEUE_FULL.grpc).toBe(grpc.status.UNAVAILABLE);
    expect(ERROR_CATALOGUE.TOO_MANY_REQUESTS.grpc).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(ERROR_CATALOGUE.CANCELLED.grpc).toBe(grpc.status.CANCELLED);
  });

  it('carries the catalogue code and retry-after in the trailers, and a bounded message', () => {
    const e = toServiceError(new TensorwireError('QUEUE_FULL', 'x'.repeat(10_000), { retryAfterSeconds: 2 }));
    expect(e.code).toBe(grpc.status.UNAVAILABLE);
    expect(e.details!.length).toBe(MAX_STATUS_DETAILS);
    expect(e.metadata!.get(ERROR_CODE_METADATA)).toEqual(['QUEUE_FULL']);
    expect(e.metadata!.get('retry-after')).toEqual(['2']);
    expect(toServiceError(new Error('boom')).code).toBe(grpc.status.INTERNAL);
  });

  it('peer addresses without the port', () => {
    expect(peerAddress('127.0.0.1:5000')).toBe('127.0.0.1');
    expect(peerAddress('::1:5000')).toBe('::1');
    expect(peerAddress('[::1]:5000')).toBe('::1');
    expect(peerAddress('unix')).toBe('unix');
  });
});

describe('--grpc-port', () => {
  it('defaults to 8001 in serve, takes off and 0, refuses out-of-range values naming the flag', () => {
    expect(parseServeArgs(['--repo', 'r']).grpcPort).toBe(8001);
    expect(parseServeArgs(['--repo', 'r', '--grpc-port', 'off']).grpcPort).toBe('off');
    expect(parseServeArgs(['--repo', 'r', '--grpc-port', '0']).grpcPort).toBe(0);
    expect(() => parseServeArgs(['--repo', 'r', '--grpc-port', '70000'])).toThrow("--grpc-port must be an integer from 0 to 65535, got '70000'");
    expect(() => parseServeArgs(['--repo', 'r', '--grpc-port', 'on'])).toThrow("--grpc-port must be an integer from 0 to 65535, got 'on'");
  });

  it('a gRPC port that cannot be bound stops the start with a message naming it', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as { port: number }).port;
    const { dir, cleanup } = tempDir('tw-grpc-port-');
    try {
      await expect(createTensorwire({ repository: dir, port: 0, grpcPort: port, log: () => undefined })).rejects.toThrow(`cannot listen for gRPC on 127.0.0.1:${port} (address in use)`);
      await expect(createTensorwire({ repository: dir, port: 0, grpcPort: 1.5 as number })).rejects.toThrow('grpcPort must be an integer from 0 to 65535, got 1.5');
    } finally {
      blocker.close();
      cleanup();
    }
  });
});
