/**
 * The gRPC front end against the real core, engine and models, with a client built from the
 * same .proto files: every RPC of GRPCInferenceService and grpc.health.v1, every datatype
 * both ways (typed contents and raw bytes), output subsets, and one error per status code,
 * the server serving on after each.
 */
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FixedSizeDatatype } from '../lib/engine/types';
import { ERROR_CATALOGUE } from '../lib/errors';
import { ALL_DATATYPES, datatypeExpected, datatypeModel, datatypeSample, decodeValues, encodeValues } from './fixtures/datatypes';
import { mlpModel, mlpReference, mlpWeights, multiIoModel, multiIoReference, slowModel } from './fixtures/models';
import { failsToRunModel } from './helpers/hotswap';
import { failure, floatsOf, rawFp32Request, rawOf, startGrpcHarness, unary, type GrpcHarness } from './helpers/grpc-harness';
import type { HarnessModel } from './helpers/server-harness';

const W = mlpWeights();
let h: GrpcHarness;

const datatypeModels = ALL_DATATYPES.map((type) => ({ name: `dt_${type.toLowerCase()}`, versions: { 1: (d: string) => datatypeModel(d, type, { file: 'model.onnx' }) } }));

beforeAll(async () => {
  const models: HarnessModel[] = [
      { name: 'mlp', versions: { 1: (d: string) => mlpModel(d, { file: 'model.onnx' }) } },
      { name: 'multi_io', versions: { 1: (d: string) => multiIoModel(d, { file: 'model.onnx' }) } },
      { name: 'broken', versions: { 1: async (d: string) => failsToRunModel(d) } },
      // One instance, a queue of one: a burst of full batches overflows it.
      { name: 'queued', versions: { 1: (d: string) => slowModel(d, { file: 'model.onnx', layers: 1500, width: 256 }) }, config: { max_batch_size: 8, instance_group: [{ count: 1, kind: 'KIND_CPU' }], dynamic_batching: { default_queue_policy: { max_queue_size: 1 } } } },
      ...datatypeModels,
  ];
  // Explicit model control: the repository RPCs load and unload.
  h = await startGrpcHarness({ models, modelControl: 'explicit', loadModels: models.map((m) => m.name) });
}, 120_000);
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

/** The contents field each datatype is sent in (FP16/BF16: fp32_contents, tensorwire's extension). */
const FIELD: Record<FixedSizeDatatype, string> = {
  BOOL: 'bool_contents', INT8: 'int_contents', INT16: 'int_contents', INT32: 'int_contents', INT64: 'int64_contents',
  UINT8: 'uint_contents', UINT16: 'uint_contents', UINT32: 'uint_contents', UINT64: 'uint64_contents',
  FP16: 'fp32_contents', BF16: 'fp32_contents', FP32: 'fp32_contents', FP64: 'fp64_contents',
};

describe('health and metadata', () => {
  it('ServerLive, ServerReady, ModelReady', async () => {
    expect(await unary(h.client, 'ServerLive', {})).toEqual({ live: true });
    expect(await unary(h.client, 'ServerReady', {})).toEqual({ ready: false }); // 'broken' failed to load
    expect(await unary(h.client, 'ModelReady', { name: 'mlp' })).toEqual({ ready: true });
    expect(await unary(h.client, 'ModelReady', { name: 'mlp', version: '1' })).toEqual({ ready: true });
    expect(await unary(h.client, 'ModelReady', { name: 'broken' })).toEqual({ ready: false });
    expect((await failure(h.client, 'ModelReady', { name: 'nope' })).code).toBe(grpc.status.NOT_FOUND);
  });

  it('ServerMetadata and ModelMetadata', async () => {
    const server = await unary(h.client, 'ServerMetadata', {});
    expect(server.name).toBe('tensorwire');
    expect(server.extensions).toContain('model_repository');
    const model = await unary(h.client, 'ModelMetadata', { name: 'mlp' });
    expect(model).toMatchObject({ name: 'mlp', versions: ['1'], platform: 'onnxruntime_onnx' });
    expect(model.inputs).toEqual([{ name: 'input', datatype: 'FP32', shape: ['-1', '256'] }]);
    expect(model.outputs).toEqual([{ name: 'output', datatype: 'FP32', shape: ['-1', '16'] }]);
  });

  it('ModelConfig as Triton\'s ModelConfig message', async () => {
    const { config } = await unary(h.client, 'ModelConfig', { name: 'mlp' });
    expect(config.name).toBe('mlp');
    expect(config.max_batch_size).toBe(64);
    expect(config.input).toEqual([expect.objectContaining({ name: 'input', data_type: 'TYPE_FP32', dims: ['256'] })]);
    expect(config.output[0]).toMatchObject({ name: 'output', data_type: 'TYPE_FP32', dims: ['16'] });
    expect(config.dynamic_batching).toBeDefined();
  });

  it('ModelStatistics counts gRPC inferences', async () => {
    const before = (await unary(h.client, 'ModelStatistics', { name: 'mlp' })).model_stats[0];
    await unary(h.client, 'ModelInfer', rawFp32Request('mlp', 'input', [3, 256], input(3, 9)));
    const after = (await unary(h.client, 'ModelStatistics', { name: 'mlp', version: '1' })).model_stats[0];
    expect(after).toMatchObject({ name: 'mlp', version: '1' });
    expect(Number(after.inference_count) - Number(before.inference_count)).toBe(3);
    expect(Number(after.inference_stats.success.count) - Number(before.inference_stats.success.count)).toBe(1);
    const all = await unary(h.client, 'ModelStatistics', {});
    expect(all.model_stats.map((s: { name: string }) => s.name)).toEqual(expect.arrayContaining(['mlp', 'multi_io']));
  });

  it('grpc.health.v1 Check and Watch', async () => {
    const check = (service: string) => unary(h.health, 'Check', { service });
    expect(await check('mlp')).toEqual({ status: 'SERVING' });
    expect(await check('broken')).toEqual({ status: 'NOT_SERVING' });
    expect(await check('')).toEqual({ status: 'NOT_SERVING' }); // not every model loaded
    expect((await failure(h.health, 'Check', { service: 'nope' })).code).toBe(grpc.status.NOT_FOUND);
    const watch = (h.health as unknown as { Watch(r: unknown): grpc.ClientReadableStream<{ status: string }> }).Watch({ service: 'mlp' });
    const first = await new Promise<{ status: string }>((resolve, reject) => {
      watch.once('data', resolve);
      watch.once('error', reject);
    });
    expect(first).toEqual({ status: 'SERVING' });
    watch.cancel();
  });
});

describe('repository extension', () => {
  it('RepositoryIndex, RepositoryModelUnload and RepositoryModelLoad', async () => {
    const { models } = await unary(h.client, 'RepositoryIndex', {});
    expect(models).toEqual(expect.arrayContaining([{ name: 'mlp', version: '1', state: 'READY', reason: '' }]));
    expect(models.find((m: { name: string }) => m.name === 'broken').state).toBe('UNAVAILABLE');
    const ready = await unary(h.client, 'RepositoryIndex', { ready: true });
    expect(ready.models.map((m: { name: string }) => m.name)).not.toContain('broken');
    expect((await failure(h.client, 'RepositoryIndex', { repository_name: 'other' })).code).toBe(grpc.status.NOT_FOUND);

    await unary(h.client, 'RepositoryModelUnload', { model_name: 'dt_int8' });
    expect((await failure(h.client, 'ModelInfer', { model_name: 'dt_int8', inputs: [{ name: 'x', datatype: 'INT8', shape: [1, 4], contents: { int_contents: [1, 2, 3, 4] } }] })).code).toBe(grpc.status.UNAVAILABLE);
    const config = JSON.stringify({ max_batch_size: 8 });
    await unary(h.client, 'RepositoryModelLoad', { model_name: 'dt_int8', parameters: { config: { string_param: config } } });
    expect((await unary(h.client, 'ModelConfig', { name: 'dt_int8' })).config.max_batch_size).toBe(8);
    const bad = await failure(h.client, 'RepositoryModelLoad', { model_name: 'dt_int8', parameters: { config: { string_param: '{nope' } } });
    expect(bad).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, errorCode: 'INVALID_INPUT' });
    expect(bad.details).toContain('parameters.config is not valid JSON');
    expect((await failure(h.client, 'RepositoryModelLoad', { model_name: 'no_such_model' })).code).toBe(grpc.status.NOT_FOUND);
  });
});

describe('ModelInfer', () => {
  it('raw input and raw output: the MLP\'s values, id echoed', async () => {
    const x = input(2, 1);
    const r = await unary(h.client, 'ModelInfer', rawFp32Request('mlp', 'input', [2, 256], x, { id: 'req-1' }));
    expect(r).toMatchObject({ model_name: 'mlp', model_version: '1', id: 'req-1' });
    expect(r.outputs).toEqual([{ name: 'output', datatype: 'FP32', shape: ['2', '16'], parameters: {} }]);
    expect(r.raw_output_contents).toHaveLength(1);
    expectClose(floatsOf(r.raw_output_contents[0]), mlpReference(W, x));
  });

  it('typed fp32_contents give the same bytes as raw input', async () => {
    const x = input(1, 2);
    const raw = await unary(h.client, 'ModelInfer', rawFp32Request('mlp', 'input', [1, 256], x));
    const typed = await unary(h.client, 'ModelInfer', { model_name: 'mlp', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 256], contents: { fp32_contents: Array.from(x) } }] });
    expect(Buffer.compare(typed.raw_output_contents[0], raw.raw_output_contents[0])).toBe(0);
  });

  for (const type of ALL_DATATYPES) {
    it(`${type}: typed contents and raw bytes in, raw bytes out, exact`, async () => {
      const values = datatypeSample(type);
      const expected = datatypeExpected(type, values);
      const model = `dt_${type.toLowerCase()}`;
      const typedValues = type === 'INT64' || type === 'UINT64' ? values.map((v) => String(v)) : values;
      const typed = await unary(h.client, 'ModelInfer', { model_name: model, inputs: [{ name: 'x', datatype: type, shape: [2, 4], contents: { [FIELD[type]]: typedValues } }] });
      const raw = await unary(h.client, 'ModelInfer', { model_name: model, inputs: [{ name: 'x', datatype: type, shape: [2, 4] }], raw_input_contents: [rawOf(encodeValues(type, values))] });
      for (const r of [typed, raw]) {
        expect(r.outputs).toEqual([{ name: 'y', datatype: type, shape: ['2', '4'], parameters: {} }]);
        // Copied: decodeValues reads the ArrayBuffer, and a received Buffer is a view of a larger one.
        expect(decodeValues(type, Uint8Array.from(r.raw_output_contents[0]))).toEqual(expected);
      }
    });
  }

  it('INT64 beyond 2^53 is exact both ways (int64_contents as decimal strings)', async () => {
    const big = ['9007199254740993', '-9007199254740993', '4611686018427387903', '-4611686018427387904'];
    const r = await unary(h.client, 'ModelInfer', { model_name: 'dt_int64', inputs: [{ name: 'x', datatype: 'INT64', shape: [1, 4], contents: { int64_contents: big } }] });
    const out = new BigInt64Array(Uint8Array.from(r.raw_output_contents[0]).buffer);
    expect(Array.from(out, String)).toEqual(big.map((v) => String(BigInt.asIntN(64, BigInt(v) * 2n))));
  });

  it('output subsets: only the outputs asked for, in the order asked', async () => {
    const a = [1, -2, 3, 4, 5, -6];
    const b = [0.5, 0.25, -1, 2, 3, 4];
    const request = (outputs?: { name: string }[]) => ({
      model_name: 'multi_io',
      inputs: [
        { name: 'a', datatype: 'INT64', shape: [2, 3], contents: { int64_contents: a.map(String) } },
        { name: 'b', datatype: 'FP32', shape: [2, 3], contents: { fp32_contents: b } },
      ],
      ...(outputs ? { outputs } : {}),
    });
    const ref = multiIoReference(a, b);
    const only = await unary(h.client, 'ModelInfer', request([{ name: 'scaled' }]));
    expect(only.outputs.map((o: { name: string }) => o.name)).toEqual(['scaled']);
    expect(Array.from(new BigInt64Array(Uint8Array.from(only.raw_output_contents[0]).buffer), Number)).toEqual(ref.scaled);
    const both = await unary(h.client, 'ModelInfer', request([{ name: 'scaled' }, { name: 'sum' }]));
    expect(both.outputs.map((o: { name: string }) => o.name)).toEqual(['scaled', 'sum']);
    expect(floatsOf(both.raw_output_contents[1])).toEqual(ref.sum);
    const all = await unary(h.client, 'ModelInfer', request());
    expect(all.outputs.map((o: { name: string }) => o.name)).toEqual(['sum', 'scaled']);
    expect(all.raw_output_contents).toHaveLength(2);
  });
});

describe('errors: one status per catalogue code, and the server serves on', () => {
  const ok = async () => {
    const x = input(1, 3);
    const r = await unary(h.client, 'ModelInfer', rawFp32Request('mlp', 'input', [1, 256], x));
    expectClose(floatsOf(r.raw_output_contents[0]), mlpReference(W, x));
  };

  it('raw bytes that do not match shape × datatype: INVALID_ARGUMENT naming the input', async () => {
    const f = await failure(h.client, 'ModelInfer', { model_name: 'mlp', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 256] }], raw_input_contents: [Buffer.alloc(1023)] });
    expect(f).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, errorCode: 'INVALID_INPUT' });
    expect(f.details).toBe("input 'input': raw_input_contents holds 1023 bytes but FP32 shape [1,256] needs 1024");
    await ok();
  });

  it('a shape the model does not take, a wrong datatype, a missing input, an unknown output: INVALID_ARGUMENT', async () => {
    const shape = await failure(h.client, 'ModelInfer', rawFp32Request('mlp', 'input', [1, 255], new Float32Array(255)));
    expect(shape.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(shape.details).toContain("input 'input': expected shape [-1,256], got [1,255]");
    const type = await failure(h.client, 'ModelInfer', { model_name: 'mlp', inputs: [{ name: 'input', datatype: 'FP64', shape: [1, 256] }], raw_input_contents: [Buffer.alloc(2048)] });
    expect(type.details).toContain('expected datatype FP32, got FP64');
    const missing = await failure(h.client, 'ModelInfer', { model_name: 'mlp', inputs: [] });
    expect(missing.details).toContain("missing input 'input'");
    const output = await failure(h.client, 'ModelInfer', { ...rawFp32Request('mlp', 'input', [1, 256], new Float32Array(256)), outputs: [{ name: 'nope' }] });
    expect(output.details).toContain("unknown output 'nope'");
    await ok();
  });

  it('malformed messages: typed data in the wrong field or count, raw and typed mixed, BYTES, bad raw count', async () => {
    const cases: [unknown, string][] = [
      [{ model_name: 'mlp', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 256], contents: { int_contents: [1] } }] }, 'FP32 data belongs in contents.fp32_contents, got contents.int_contents'],
      [{ model_name: 'mlp', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 256], contents: { fp32_contents: [1, 2] } }] }, 'expected 256 FP32 values for shape [1,256], got 2'],
      [{ model_name: 'mlp', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 256], contents: { fp32_contents: [1] } }], raw_input_contents: [Buffer.alloc(1024)] }, 'has both typed'],
      // BYTES decodes (grpc-codec tests); the MLP's input is FP32, so the model's check refuses it.
      [{ model_name: 'mlp', inputs: [{ name: 'input', datatype: 'BYTES', shape: [1], contents: { bytes_contents: [Buffer.from('a')] } }] }, "input 'input': expected datatype FP32, got BYTES"],
      [{ model_name: 'mlp', inputs: [{ name: 'input', datatype: 'BYTES', shape: [2], contents: { bytes_contents: [Buffer.from('a')] } }] }, 'contents.bytes_contents holds 1 elements but BYTES shape [2] needs 2'],
      [{ model_name: 'mlp', inputs: [{ name: 'input', datatype: 'BYTES', shape: [1] }], raw_input_contents: [Buffer.from([5, 0, 0, 0, 97])] }, 'BYTES element 0 declares 5 bytes but only 1 remain'],
      [{ model_name: 'mlp', inputs: [{ name: 'input', datatype: 'BYTES', shape: [1000000000] }], raw_input_contents: [Buffer.from([1, 0, 0, 0, 97])] }, 'has 1000000000 elements but raw_input_contents holds only 5 bytes'],
      [{ model_name: 'mlp', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 256] }], raw_input_contents: [Buffer.alloc(1024), Buffer.alloc(4)] }, '1 input(s) but 2 raw_input_contents'],
      [{ model_name: 'mlp', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 256] }] }, "input 'input': no data"],
      [{ model_name: 'dt_int8', inputs: [{ name: 'x', datatype: 'INT8', shape: [1, 4], contents: { int_contents: [1, 2, 300, 4] } }] }, 'value at index 2 (300) is out of range for INT8'],
      [{ inputs: [] }, "'model_name' is required"],
      [{ model_name: 'mlp', parameters: { priority: { string_param: 'high' } }, inputs: [] }, "request parameter 'priority' must be a non-negative int64_param"],
    ];
    for (const [request, message] of cases) {
      const f = await failure(h.client, 'ModelInfer', request);
      expect(f.code, message).toBe(grpc.status.INVALID_ARGUMENT);
      expect(f.details).toContain(message);
    }
    await ok();
  });

  it('bytes that are not a ModelInferRequest: INVALID_ARGUMENT (not grpc-js\'s INTERNAL), the server serves on', async () => {
    const garbage = Buffer.from([0x7f, 0x01, 0x02]); // field 15 with wire type 7, which does not exist
    for (const method of ['ModelInfer', 'ModelMetadata']) {
      const error = await new Promise<grpc.ServiceError | null>((resolve) => {
        h.client.makeUnaryRequest(`/inference.GRPCInferenceService/${method}`, (b: Buffer) => b, (b: Buffer) => b, garbage, (e) => resolve(e));
      });
      expect(error?.code, method).toBe(grpc.status.INVALID_ARGUMENT);
      expect(error?.details).toMatch(new RegExp(`^the 3-byte message is not a valid ${method} request \\(`));
    }
    await ok();
  });

  it('unknown model or version: NOT_FOUND', async () => {
    // Triton's words (its clients show them): the same text as over HTTP and the stream.
    expect(await failure(h.client, 'ModelInfer', rawFp32Request('nope', 'input', [1, 256], new Float32Array(256)))).toMatchObject({ code: grpc.status.NOT_FOUND, errorCode: 'NOT_FOUND', details: "Request for unknown model: 'nope' is not found" });
    expect(await failure(h.client, 'ModelInfer', rawFp32Request('mlp', 'input', [1, 256], new Float32Array(256), { model_version: '7' }))).toMatchObject({ code: grpc.status.NOT_FOUND, details: "Request for unknown model: 'mlp' version 7 is not found" });
    expect((await failure(h.client, 'ModelMetadata', { name: 'nope' })).code).toBe(grpc.status.NOT_FOUND);
    await ok();
  });

  it('a model that failed to load: UNAVAILABLE with retry information', async () => {
    const f = await failure(h.client, 'ModelInfer', { model_name: 'broken', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4] }], raw_input_contents: [Buffer.alloc(16)] });
    expect(f).toMatchObject({ code: grpc.status.UNAVAILABLE, errorCode: 'UNAVAILABLE' });
    await ok();
  });

  it('a full queue: UNAVAILABLE with the QUEUE_FULL code and retry-after; the others are answered', async () => {
    const request = rawFp32Request('queued', 'x', [8, 256], new Float32Array(8 * 256).fill(1));
    const outcomes = await Promise.all(Array.from({ length: 8 }, () => unary(h.client, 'ModelInfer', request).then(() => 'ok', (e: grpc.ServiceError) => e)));
    const refused = outcomes.filter((o): o is grpc.ServiceError => o !== 'ok');
    expect(outcomes.filter((o) => o === 'ok').length).toBeGreaterThan(0);
    expect(refused.length).toBeGreaterThan(0);
    for (const e of refused) {
      expect(e.code).toBe(grpc.status.UNAVAILABLE);
      expect(e.metadata.get('tensorwire-error-code')).toEqual(['QUEUE_FULL']);
      expect(e.metadata.get('retry-after')).toHaveLength(1);
    }
    await ok();
  });

  it('batch over max_batch_size: INVALID_ARGUMENT', async () => {
    const f = await failure(h.client, 'ModelInfer', rawFp32Request('mlp', 'input', [65, 256], new Float32Array(65 * 256)));
    expect(f.details).toContain('batch size 65 exceeds max_batch_size 64');
  });

  it('shared memory, trace and log RPCs answer (test/integration-grpc-shm.test.ts and -settings test them)', async () => {
    expect(await unary(h.client, 'SystemSharedMemoryStatus', {})).toEqual({ regions: {} });
    expect(await unary(h.client, 'CudaSharedMemoryStatus', {})).toEqual({ regions: {} });
    expect((await failure(h.client, 'CudaSharedMemoryRegister', { name: 'x', byte_size: 4 })).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((await unary(h.client, 'LogSettings', { settings: {} })).settings.log_verbose_level).toEqual({ uint32_param: 0, parameter_choice: 'uint32_param' });
    expect((await unary(h.client, 'TraceSetting', { settings: {} })).settings.trace_level).toEqual({ value: ['OFF'] });
    await ok();
  });

  it('every catalogue code maps to a gRPC status', () => {
    for (const [code, entry] of Object.entries(ERROR_CATALOGUE)) expect(grpc.status[entry.grpc], code).toBeDefined();
  });
});
