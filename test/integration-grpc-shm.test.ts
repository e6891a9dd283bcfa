/**
 * Triton's system shared memory extension over gRPC against a real server and real POSIX
 * shared memory (each object created as shm_open does on Linux: a file in /dev/shm): the
 * SystemSharedMemory* RPCs act on the HTTP server's registry (a region registered over one
 * transport is seen by the other), ModelInfer and ModelStreamInfer read inputs from regions
 * and write outputs into them (parameters as Triton's gRPC clients send them: string_param
 * and int64_param), with the same errors as HTTP, and the CUDA RPCs answer as HTTP's routes.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadProtos } from '../lib/grpc/proto';
import { startGrpcServer } from '../lib/grpc/server';
import { multiIoModel, multiIoReference } from './fixtures/models';
import { failure, openStream, rawOf, startGrpcHarness, unary, type GrpcHarness, type StreamAnswer } from './helpers/grpc-harness';

const SHM_DIR = '/dev/shm';
let counter = 0;
const created: string[] = [];

/** A fresh shared memory object holding `bytes` (or `size` zero bytes); returns its key. */
function createShm(contents: Uint8Array | number): string {
  const key = `/tw-grpc-test-${process.pid}-${++counter}`;
  writeFileSync(SHM_DIR + key, typeof contents === 'number' ? new Uint8Array(contents) : contents);
  created.push(SHM_DIR + key);
  return key;
}

const A = [1, 2, 3, -4, 5, 6];
const B = [0.5, 1.5, -2.5, 3.25, 4, 0];
const aBytes = (): Buffer => rawOf(BigInt64Array.from(A.map(BigInt)));
const bBytes = (): Buffer => rawOf(Float32Array.from(B));
const EXPECTED = multiIoReference(A, B);

/** Shared memory parameters as Triton's gRPC client (tritonclient.grpc) sets them. */
function shmParameters(region: string, byteSize: number, offset?: number): Record<string, object> {
  return {
    shared_memory_region: { string_param: region },
    shared_memory_byte_size: { int64_param: byteSize },
    ...(offset !== undefined ? { shared_memory_offset: { int64_param: offset } } : {}),
  };
}

let h: GrpcHarness;

beforeAll(async () => {
  h = await startGrpcHarness({ models: [{ name: 'multi_io', versions: { 1: (d: string) => multiIoModel(d, { file: 'model.onnx' }) } }], loadModels: ['multi_io'] });
}, 120_000);
afterAll(async () => {
  await h?.close();
  for (const path of created) rmSync(path, { force: true });
});

async function httpStatus(): Promise<unknown> {
  return (await fetch(`${h.tw.url}/v2/systemsharedmemory/status`)).json();
}

describe('SystemSharedMemory RPCs', () => {
  it('register, status (all and by name), unregister: the HTTP server\'s regions', async () => {
    const key = createShm(64);
    expect(await unary(h.client, 'SystemSharedMemoryRegister', { name: 'reg1', key, offset: 8, byte_size: 32 })).toEqual({});
    const status = await unary(h.client, 'SystemSharedMemoryStatus', {});
    expect(status.regions.reg1).toEqual({ name: 'reg1', key, offset: '8', byte_size: '32' });
    expect(await unary(h.client, 'SystemSharedMemoryStatus', { name: 'reg1' })).toEqual({ regions: { reg1: { name: 'reg1', key, offset: '8', byte_size: '32' } } });
    // The same registry: HTTP sees it.
    expect(await httpStatus()).toEqual([{ name: 'reg1', key, offset: 8, byte_size: 32 }]);

    const twice = await failure(h.client, 'SystemSharedMemoryRegister', { name: 'reg1', key, byte_size: 32 });
    expect(twice.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(twice.details).toContain('already registered');

    expect(await unary(h.client, 'SystemSharedMemoryUnregister', { name: 'reg1' })).toEqual({});
    expect(await unary(h.client, 'SystemSharedMemoryStatus', {})).toEqual({ regions: {} });
    const gone = await failure(h.client, 'SystemSharedMemoryStatus', { name: 'reg1' });
    expect(gone.code).toBe(grpc.status.NOT_FOUND);
    expect(gone.details).toBe("Unable to find system shared memory region: 'reg1'");
    // Unknown names unregister without error, as Triton.
    expect(await unary(h.client, 'SystemSharedMemoryUnregister', { name: 'never' })).toEqual({});
  });

  it('an empty name unregisters every region', async () => {
    await unary(h.client, 'SystemSharedMemoryRegister', { name: 'all1', key: createShm(16), byte_size: 16 });
    await unary(h.client, 'SystemSharedMemoryRegister', { name: 'all2', key: createShm(16), byte_size: 16 });
    expect(Object.keys((await unary(h.client, 'SystemSharedMemoryStatus', {})).regions).sort()).toEqual(['all1', 'all2']);
    await unary(h.client, 'SystemSharedMemoryUnregister', {});
    expect(await unary(h.client, 'SystemSharedMemoryStatus', {})).toEqual({ regions: {} });
  });

  it('bad registrations: INVALID_ARGUMENT naming the field, nothing registered', async () => {
    const noKey = await failure(h.client, 'SystemSharedMemoryRegister', { name: 'r', byte_size: 16 });
    expect(noKey.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(noKey.details).toContain('"key" is missing');
    const noName = await failure(h.client, 'SystemSharedMemoryRegister', { key: createShm(16), byte_size: 16 });
    expect(noName.details).toContain("'name' is required");
    const zero = await failure(h.client, 'SystemSharedMemoryRegister', { name: 'r', key: createShm(16) });
    expect(zero.details).toContain('"byte_size" must be a positive integer');
    const missing = await failure(h.client, 'SystemSharedMemoryRegister', { name: 'r', key: `/tw-grpc-absent-${process.pid}`, byte_size: 16 });
    expect(missing.code).toBe(grpc.status.INVALID_ARGUMENT);
    const past = await failure(h.client, 'SystemSharedMemoryRegister', { name: 'r', key: createShm(16), offset: 8, byte_size: 16 });
    expect(past.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(await unary(h.client, 'SystemSharedMemoryStatus', {})).toEqual({ regions: {} });
  });

  it('CUDA shared memory: status empty, register refused with HTTP\'s message, unregister succeeds', async () => {
    expect(await unary(h.client, 'CudaSharedMemoryStatus', {})).toEqual({ regions: {} });
    const named = await failure(h.client, 'CudaSharedMemoryStatus', { name: 'x' });
    expect(named.code).toBe(grpc.status.NOT_FOUND);
    const reg = await failure(h.client, 'CudaSharedMemoryRegister', { name: 'x', raw_handle: Buffer.from([0]), device_id: 0, byte_size: 4 });
    expect(reg.code).toBe(grpc.status.INVALID_ARGUMENT);
    const http = await fetch(`${h.tw.url}/v2/cudasharedmemory/region/x/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ raw_handle: { b64: 'AA==' }, device_id: 0, byte_size: 4 }) });
    expect(reg.details).toBe(((await http.json()) as { error: string }).error);
    expect(await unary(h.client, 'CudaSharedMemoryUnregister', { name: 'x' })).toEqual({});
    expect(await unary(h.client, 'CudaSharedMemoryUnregister', {})).toEqual({});
  });
});

describe('ModelInfer with shared memory', () => {
  it('inputs from a region, one output into it at an offset (no data in the answer), the other raw', async () => {
    // a at 0 (48 bytes), b at 48 (24 bytes), sum written at 80 (24 bytes).
    const key = createShm(Buffer.concat([aBytes(), bBytes(), Buffer.alloc(8), Buffer.alloc(24)]));
    await unary(h.client, 'SystemSharedMemoryRegister', { name: 'io', key, byte_size: 104 });
    try {
      const answer = await unary(h.client, 'ModelInfer', {
        model_name: 'multi_io',
        id: 'shm-1',
        inputs: [
          { name: 'a', datatype: 'INT64', shape: [2, 3], parameters: shmParameters('io', 48) },
          { name: 'b', datatype: 'FP32', shape: [2, 3], parameters: shmParameters('io', 24, 48) },
        ],
        outputs: [{ name: 'sum', parameters: shmParameters('io', 24, 80) }, { name: 'scaled' }],
      });
      expect(answer.id).toBe('shm-1');
      expect(answer.outputs.map((o: { name: string }) => o.name)).toEqual(['sum', 'scaled']);
      expect(answer.outputs[0].parameters).toEqual({
        shared_memory_region: { string_param: 'io', parameter_choice: 'string_param' },
        shared_memory_byte_size: { int64_param: '24', parameter_choice: 'int64_param' },
        shared_memory_offset: { int64_param: '80', parameter_choice: 'int64_param' },
      });
      // The output in shared memory carries no data; the raw one does.
      expect(answer.raw_output_contents[0]).toHaveLength(0);
      expect(Array.from(new BigInt64Array(Uint8Array.from(answer.raw_output_contents[1]).buffer), Number)).toEqual(EXPECTED.scaled);
      const region = readFileSync(SHM_DIR + key);
      expect(new Float32Array(Uint8Array.from(region.subarray(80, 104)).buffer)).toEqual(EXPECTED.sum);
    } finally {
      await unary(h.client, 'SystemSharedMemoryUnregister', { name: 'io' });
    }
  });

  it('one input in a region and one raw: raw_input_contents holds entries for the raw inputs only', async () => {
    const key = createShm(bBytes());
    await unary(h.client, 'SystemSharedMemoryRegister', { name: 'bonly', key, byte_size: 24 });
    try {
      const answer = await unary(h.client, 'ModelInfer', {
        model_name: 'multi_io',
        inputs: [
          { name: 'a', datatype: 'INT64', shape: [2, 3] },
          { name: 'b', datatype: 'FP32', shape: [2, 3], parameters: shmParameters('bonly', 24) },
        ],
        outputs: [{ name: 'sum' }],
        raw_input_contents: [aBytes()],
      });
      expect(new Float32Array(Uint8Array.from(answer.raw_output_contents[0]).buffer)).toEqual(EXPECTED.sum);
    } finally {
      await unary(h.client, 'SystemSharedMemoryUnregister', { name: 'bonly' });
    }
  });

  it('bad references: INVALID_ARGUMENT naming the tensor, the messages HTTP gives, and the server serves on', async () => {
    const key = createShm(Buffer.concat([aBytes(), bBytes()]));
    await unary(h.client, 'SystemSharedMemoryRegister', { name: 'small', key, byte_size: 72 });
    const request = (aParams: Record<string, object>, outParams?: Record<string, object>): object => ({
      model_name: 'multi_io',
      inputs: [
        { name: 'a', datatype: 'INT64', shape: [2, 3], parameters: aParams },
        { name: 'b', datatype: 'FP32', shape: [2, 3], parameters: shmParameters('small', 24, 48) },
      ],
      ...(outParams ? { outputs: [{ name: 'sum', parameters: outParams }] } : {}),
    });
    try {
      const unknown = await failure(h.client, 'ModelInfer', request(shmParameters('nope', 48)));
      expect(unknown.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(unknown.details).toContain("input 'a'");
      expect(unknown.details).toContain('nope');
      const size = await failure(h.client, 'ModelInfer', request(shmParameters('small', 40)));
      expect(size.details).toBe("input 'a': shared_memory_byte_size 40 does not match INT64 shape [2,3] (expected 48 bytes) in region 'small'");
      const past = await failure(h.client, 'ModelInfer', request(shmParameters('small', 48, 40)));
      expect(past.details).toContain("input 'a': shared_memory_offset 40 + shared_memory_byte_size 48 runs past the end of shared memory region 'small' (72 bytes)");
      const alone = await failure(h.client, 'ModelInfer', request({ shared_memory_region: { string_param: 'small' } }));
      expect(alone.details).toBe("input 'a': parameters shared_memory_region and shared_memory_byte_size must be given together");
      const typed = await failure(h.client, 'ModelInfer', request({ shared_memory_region: { string_param: 'small' }, shared_memory_byte_size: { string_param: '48' } }));
      expect(typed.details).toContain('shared_memory_byte_size must be a non-negative integer');
      const tooSmall = await failure(h.client, 'ModelInfer', request(shmParameters('small', 48), shmParameters('small', 8)));
      expect(tooSmall.details).toContain("output 'sum': shared_memory_byte_size 8 is too small for the result (24 bytes)");
      // Every HTTP request of the same kind gets the same message (one reader for both).
      const http = await fetch(`${h.tw.url}/v2/models/multi_io/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ inputs: [{ name: 'a', datatype: 'INT64', shape: [2, 3], parameters: { shared_memory_region: 'small', shared_memory_byte_size: 40 } }, { name: 'b', datatype: 'FP32', shape: [2, 3], data: B }] }),
      });
      expect(((await http.json()) as { error: string }).error).toBe(size.details);
      const ok = await unary(h.client, 'ModelInfer', request(shmParameters('small', 48)));
      expect(new Float32Array(Uint8Array.from(ok.raw_output_contents[0]).buffer)).toEqual(EXPECTED.sum);
    } finally {
      await unary(h.client, 'SystemSharedMemoryUnregister', { name: 'small' });
    }
  });

  it('ModelStreamInfer: a shared memory request answers through the region; a bad one errors and the stream goes on', async () => {
    const key = createShm(Buffer.concat([aBytes(), bBytes(), Buffer.alloc(24)]));
    await unary(h.client, 'SystemSharedMemoryRegister', { name: 'streamed', key, byte_size: 96 });
    const stream = openStream(h.client);
    const answers: StreamAnswer[] = [];
    const ended = new Promise<void>((resolve, reject) => {
      stream.on('data', (a: StreamAnswer) => answers.push(a));
      stream.on('end', resolve);
      stream.on('error', reject);
    });
    const inputs = [
      { name: 'a', datatype: 'INT64', shape: [2, 3], parameters: shmParameters('streamed', 48) },
      { name: 'b', datatype: 'FP32', shape: [2, 3], parameters: shmParameters('streamed', 24, 48) },
    ];
    stream.write({ model_name: 'multi_io', id: 'bad', inputs, outputs: [{ name: 'sum', parameters: shmParameters('gone', 24) }] });
    stream.write({ model_name: 'multi_io', id: 'good', inputs, outputs: [{ name: 'sum', parameters: shmParameters('streamed', 24, 72) }] });
    stream.end();
    await ended;
    try {
      const byId = new Map(answers.map((a) => [a.infer_response.id, a]));
      expect(byId.get('bad')!.error_message).toContain("output 'sum'");
      const good = byId.get('good')!;
      expect(good.error_message).toBe('');
      expect(good.infer_response.raw_output_contents[0]).toHaveLength(0);
      expect(new Float32Array(Uint8Array.from(readFileSync(SHM_DIR + key).subarray(72, 96)).buffer)).toEqual(EXPECTED.sum);
    } finally {
      await unary(h.client, 'SystemSharedMemoryUnregister', { name: 'streamed' });
    }
  });
});

describe('a gRPC server started on its own (startGrpcServer without the HTTP server\'s parts)', () => {
  it('has no regions: the shared memory, trace and log RPCs answer UNIMPLEMENTED, a shared memory tensor is refused by name', async () => {
    const alone = await startGrpcServer(h.tw.service, { port: 0 });
    const { Inference } = loadProtos().clients;
    const client = new Inference(alone.address, grpc.credentials.createInsecure());
    try {
      for (const rpc of ['SystemSharedMemoryStatus', 'SystemSharedMemoryRegister', 'SystemSharedMemoryUnregister', 'TraceSetting', 'LogSettings']) {
        const f = await failure(client, rpc, {});
        expect(f.code, rpc).toBe(grpc.status.UNIMPLEMENTED);
        expect(f.details).toContain('this gRPC server was started without');
      }
      const f = await failure(client, 'ModelInfer', {
        model_name: 'multi_io',
        inputs: [
          { name: 'a', datatype: 'INT64', shape: [2, 3], parameters: shmParameters('io', 48) },
          { name: 'b', datatype: 'FP32', shape: [2, 3] },
        ],
        raw_input_contents: [bBytes()],
      });
      expect(f.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(f.details).toBe("'a' names a shared memory region, but this gRPC server was started without shared memory regions");
      // Raw tensors are served as ever.
      const ok = await unary(client, 'ModelInfer', { model_name: 'multi_io', inputs: [{ name: 'a', datatype: 'INT64', shape: [2, 3] }, { name: 'b', datatype: 'FP32', shape: [2, 3] }], outputs: [{ name: 'sum' }], raw_input_contents: [aBytes(), bBytes()] });
      expect(new Float32Array(Uint8Array.from(ok.raw_output_contents[0]).buffer)).toEqual(EXPECTED.sum);
    } finally {
      client.close();
      await alone.close(1000);
    }
  });
});
