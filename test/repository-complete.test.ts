import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ModelMetadata } from '../lib/engine/types';
import { completeConfig } from '../lib/repository/complete-config';
import { parseConfigJson, validateConfig } from '../lib/repository/config';
import { parseConfigPbtxt } from '../lib/repository/pbtxt';
import { missingVersions, selectVersions } from '../lib/repository/version-policy';
import { warmupSampleData } from '../lib/repository/warmup';
import { invalidInputMessage } from './helpers/expect-error';

/** A 256 -> 16 MLP exported with a dynamic batch dimension. */
const MLP: ModelMetadata = {
  inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 256] }],
  outputs: [{ name: 'y', datatype: 'FP32', shape: [-1, 16] }],
  batchable: true,
};

/** An image model exported with a fixed batch of 1. */
const FIXED: ModelMetadata = {
  inputs: [{ name: 'image', datatype: 'FP32', shape: [1, 3, 224, 224] }],
  outputs: [{ name: 'logits', datatype: 'FP32', shape: [1, 1000] }],
  batchable: false,
};

/** A text model: dynamic batch and sequence length, int64 ids. */
const TEXT: ModelMetadata = {
  inputs: [
    { name: 'ids', datatype: 'INT64', shape: [-1, -1] },
    { name: 'mask', datatype: 'INT64', shape: [-1, -1] },
  ],
  outputs: [{ name: 'emb', datatype: 'FP32', shape: [-1, 384] }],
  batchable: true,
};

const errorOf = invalidInputMessage;

describe('completeConfig without a config file', () => {
  it('makes a batchable model batch: max_batch_size 64, dynamic batching on, CPU, one instance', () => {
    const e = completeConfig(undefined, MLP, 'mlp');
    expect(e.maxBatchSize).toBe(64);
    expect(e.inputs).toEqual([{ name: 'x', datatype: 'FP32', shape: [-1, 256] }]);
    expect(e.outputs).toEqual([{ name: 'y', datatype: 'FP32', shape: [-1, 16] }]);
    expect(e.load).toEqual({ provider: { kind: 'cpu' }, instances: 1, maxBatchSize: 64 });
    expect(e.batcher).toEqual({
      maxBatchSize: 64,
      preferredBatchSizes: [],
      maxQueueDelayUs: 100,
      priorityLevels: 0,
      defaultPriorityLevel: 0,
      defaultQueuePolicy: { maxQueueSize: 0, defaultTimeoutUs: 0, allowTimeoutOverride: false, timeoutAction: 'REJECT' },
    });
    expect(e.versionPolicy).toEqual({ latest: { num_versions: 1 } });
    expect(e.warmup).toEqual([]);
    expect(e.modelFilename).toBe('model.onnx');
    expect(e.tritonConfig).toEqual({
      name: 'mlp',
      platform: 'onnxruntime_onnx',
      backend: 'onnxruntime',
      default_model_filename: 'model.onnx',
      max_batch_size: 64,
      input: [{ name: 'x', data_type: 'TYPE_FP32', dims: [256] }],
      output: [{ name: 'y', data_type: 'TYPE_FP32', dims: [16] }],
      instance_group: [{ name: 'mlp', kind: 'KIND_CPU', count: 1, gpus: [] }],
      version_policy: { latest: { num_versions: 1 } },
      dynamic_batching: {
        preferred_batch_size: [],
        max_queue_delay_microseconds: 100,
        priority_levels: 0,
        default_priority_level: 0,
        default_queue_policy: { max_queue_size: 0, default_timeout_microseconds: 0, allow_timeout_override: false, timeout_action: 'REJECT' },
      },
    });
  });

  it('serves a model with a fixed first dimension with its exact shapes and no batching', () => {
    const e = completeConfig(undefined, FIXED, 'resnet');
    expect(e.maxBatchSize).toBe(0);
    expect(e.inputs).toEqual([{ name: 'image', datatype: 'FP32', shape: [1, 3, 224, 224] }]);
    expect(e.outputs).toEqual([{ name: 'logits', datatype: 'FP32', shape: [1, 1000] }]);
    expect(e.load.maxBatchSize).toBe(0);
    expect(e.batcher.maxBatchSize).toBe(0);
    expect(e.batcher.maxQueueDelayUs).toBe(0);
    expect(e.tritonConfig.max_batch_size).toBe(0);
    expect(e.tritonConfig.input).toEqual([{ name: 'image', data_type: 'TYPE_FP32', dims: [1, 3, 224, 224] }]);
    expect(e.tritonConfig.dynamic_batching).toBeUndefined();
  });

  it('uses the server default provider and batch size when the config names none', () => {
    const e = completeConfig(undefined, MLP, 'mlp', { defaultProvider: { kind: 'cuda', deviceId: 0 }, defaultMaxBatchSize: 256 });
    expect(e.load).toEqual({ provider: { kind: 'cuda', deviceId: 0 }, instances: 1, maxBatchSize: 256 });
    expect(e.tritonConfig.instance_group).toEqual([{ name: 'mlp', kind: 'KIND_GPU', count: 1, gpus: [0] }]);
    expect(e.tritonConfig.optimization).toEqual({ execution_accelerators: { gpu_execution_accelerator: [{ name: 'cuda', parameters: {} }] } });
  });
});

describe('completeConfig with a config', () => {
  it('fills what the config leaves out and keeps what it says', () => {
    const config = parseConfigJson(
      JSON.stringify({
        max_batch_size: 16,
        input: [{ name: 'ids', dims: [128] }], // narrows the dynamic sequence length
        dynamic_batching: { preferred_batch_size: [8, 4], default_queue_policy: { max_queue_size: 32 } },
        instance_group: [{ count: 3, kind: 'KIND_CPU' }],
        parameters: { intra_op_thread_count: '2', slots_per_instance: 3 },
      }),
      'm/config.json',
    );
    const e = completeConfig(config, TEXT, 'bert');
    expect(e.maxBatchSize).toBe(16);
    expect(e.inputs).toEqual([
      { name: 'ids', datatype: 'INT64', shape: [-1, 128] },
      { name: 'mask', datatype: 'INT64', shape: [-1, -1] },
    ]);
    expect(e.load).toEqual({ provider: { kind: 'cpu' }, instances: 3, maxBatchSize: 16, intraOpThreads: 2, slotsPerInstance: 3 });
    expect(e.batcher.preferredBatchSizes).toEqual([4, 8]);
    expect(e.batcher.maxQueueDelayUs).toBe(100);
    expect(e.batcher.defaultQueuePolicy).toEqual({ maxQueueSize: 32, defaultTimeoutUs: 0, allowTimeoutOverride: false, timeoutAction: 'REJECT' });
    expect(e.tritonConfig.parameters).toEqual({ intra_op_thread_count: { string_value: '2' }, slots_per_instance: { string_value: '3' } });
    expect(e.tritonConfig.input).toEqual([
      { name: 'ids', data_type: 'TYPE_INT64', dims: [128] },
      { name: 'mask', data_type: 'TYPE_INT64', dims: [-1] },
    ]);
    // The served JSON is itself a valid config that completes to the same thing.
    const again = completeConfig(validateConfig(e.tritonConfig, 'served'), TEXT, 'bert');
    expect(again.tritonConfig).toEqual(e.tritonConfig);
    expect(again.load).toEqual(e.load);
  });

  it('max_batch_size 0 on a batchable model serves full shapes', () => {
    const e = completeConfig({ max_batch_size: 0 }, MLP, 'mlp');
    expect(e.maxBatchSize).toBe(0);
    expect(e.inputs[0].shape).toEqual([-1, 256]);
    expect(e.tritonConfig.input).toEqual([{ name: 'x', data_type: 'TYPE_FP32', dims: [-1, 256] }]);
  });

  it('rejects configs that contradict the model, saying what the model has', () => {
    const where = { where: 'models/resnet/config.json' };
    expect(errorOf(() => completeConfig({ max_batch_size: 8 }, FIXED, 'resnet', where))).toBe(
      'models/resnet/config.json: max_batch_size is 8 but input "image" has shape [1, 3, 224, 224]; batching needs a dynamic (-1) first dimension on every input and output, so set max_batch_size to 0',
    );
    expect(errorOf(() => completeConfig({ input: [{ name: 'img' }] }, FIXED, 'resnet', where))).toBe(
      'models/resnet/config.json: input "img" is not an input of the model (its inputs: image)',
    );
    expect(errorOf(() => completeConfig({ output: [{ name: 'logits', data_type: 'FP16' }] }, FIXED, 'resnet', where))).toBe(
      'models/resnet/config.json: output "logits" data_type is TYPE_FP16 but the model declares TYPE_FP32',
    );
    expect(errorOf(() => completeConfig({ input: [{ name: 'image', dims: [3, 224, 224] }] }, FIXED, 'resnet', where))).toBe(
      "models/resnet/config.json: input \"image\" dims [3, 224, 224] do not match the model's [1, 3, 224, 224]",
    );
    expect(errorOf(() => completeConfig({ input: [{ name: 'x', dims: [255] }] }, MLP, 'mlp', where))).toBe(
      "models/resnet/config.json: input \"x\" dims [255] do not match the model's [256] at dimension 0 (dims leave out the batch dimension because max_batch_size > 0)",
    );
    expect(errorOf(() => completeConfig({ dynamic_batching: {} }, FIXED, 'resnet', where))).toBe(
      'models/resnet/config.json: dynamic_batching needs max_batch_size > 0, but the model is served with max_batch_size 0',
    );
    expect(errorOf(() => completeConfig({ max_batch_size: 8, dynamic_batching: { preferred_batch_size: [16] } }, MLP, 'mlp', where))).toBe(
      'models/resnet/config.json: dynamic_batching.preferred_batch_size 16 is larger than max_batch_size 8',
    );
    expect(errorOf(() => completeConfig({ name: 'other' }, MLP, 'mlp'))).toBe('model "mlp": name is "other" but the model directory is "mlp"; they must match (or leave name out)');
  });

  it('resolves providers from instance_group and optimization, refusing contradictions', () => {
    expect(completeConfig({ instance_group: [{ kind: 'KIND_GPU', gpus: [1], count: 2 }] }, MLP, 'm').load).toEqual({
      provider: { kind: 'cuda', deviceId: 1 },
      instances: 2,
      maxBatchSize: 64,
    });
    expect(completeConfig({ instance_group: [{ gpus: [0] }] }, MLP, 'm').load.provider).toEqual({ kind: 'cuda', deviceId: 0 });
    // The engine cache path is resolved inside the server's TensorRT cache directory.
    const trt = completeConfig({ optimization: { provider: { kind: 'tensorrt', fp16: true, engine_cache_path: 'mlp' } } }, MLP, 'm', { trtCacheDir: '/srv/trt' });
    expect(trt.load.provider).toEqual({ kind: 'tensorrt', fp16: true, engineCachePath: '/srv/trt/mlp' });
    // The served config shows the path as the config gave it, never the server's directory.
    expect(trt.tritonConfig.optimization).toEqual({ execution_accelerators: { gpu_execution_accelerator: [{ name: 'tensorrt', parameters: { precision_mode: 'FP16', trt_engine_cache_path: 'mlp' } }] } });
    expect(errorOf(() => completeConfig({ instance_group: [{ kind: 'KIND_CPU' }], optimization: { provider: { kind: 'cuda' } } }, MLP, 'm'))).toBe(
      'model "m": instance_group[0].kind is KIND_CPU but optimization.provider.kind is cuda',
    );
    expect(errorOf(() => completeConfig({ instance_group: [{ gpus: [1] }], optimization: { provider: { kind: 'cuda', device_id: 0 } } }, MLP, 'm'))).toBe(
      'model "m": instance_group[0].gpus is [1] but optimization.provider.device_id is 0',
    );
    expect(errorOf(() => completeConfig({ instance_group: [{ gpus: [0] }], optimization: { provider: { kind: 'cpu' } } }, MLP, 'm'))).toBe(
      'model "m": instance_group[0].gpus is [0] but the provider is cpu',
    );
  });

  it('completes the realistic Triton pbtxt: TensorRT fp16 on GPU 0, two instances, priorities, warm-up', () => {
    const resnet: ModelMetadata = {
      inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 3, 224, 224] }],
      outputs: [{ name: 'logits', datatype: 'FP32', shape: [-1, 1000] }],
      batchable: true,
    };
    const config = parseConfigPbtxt(
      `name: "resnet" platform: "onnxruntime_onnx" max_batch_size: 128
       instance_group [ { count: 2 kind: KIND_GPU gpus: [ 0 ] } ]
       dynamic_batching { preferred_batch_size: [ 32, 64 ] max_queue_delay_microseconds: 500 priority_levels: 2 default_priority_level: 2
         priority_queue_policy { key: 1 value: { max_queue_size: 64 timeout_action: DELAY } } }
       optimization { execution_accelerators { gpu_execution_accelerator: [ { name: "tensorrt" parameters { key: "precision_mode" value: "FP16" } } ] } }
       model_warmup [ { name: "zeros" batch_size: 8 inputs { key: "input" value: { data_type: TYPE_FP32 dims: [ 3, 224, 224 ] zero_data: true } } } ]`,
      'models/resnet/config.pbtxt',
    );
    const e = completeConfig(config, resnet, 'resnet');
    expect(e.load).toEqual({ provider: { kind: 'tensorrt', fp16: true, deviceId: 0 }, instances: 2, maxBatchSize: 128 });
    expect(e.batcher).toEqual({
      maxBatchSize: 128,
      preferredBatchSizes: [32, 64],
      maxQueueDelayUs: 500,
      priorityLevels: 2,
      defaultPriorityLevel: 2,
      defaultQueuePolicy: { maxQueueSize: 0, defaultTimeoutUs: 0, allowTimeoutOverride: false, timeoutAction: 'REJECT' },
      priorityQueuePolicy: { 1: { maxQueueSize: 64, defaultTimeoutUs: 0, allowTimeoutOverride: false, timeoutAction: 'DELAY' } },
    });
    expect(e.warmup).toEqual([
      { name: 'zeros', batchSize: 8, count: 1, inputs: [{ name: 'input', datatype: 'FP32', shape: [8, 3, 224, 224], source: { kind: 'zero' } }] },
    ]);
    expect(e.tritonConfig.instance_group).toEqual([{ name: 'resnet', kind: 'KIND_GPU', count: 2, gpus: [0] }]);
    expect(e.tritonConfig.optimization).toEqual({ execution_accelerators: { gpu_execution_accelerator: [{ name: 'tensorrt', parameters: { precision_mode: 'FP16' } }] } });
    expect(e.tritonConfig.model_warmup).toEqual([{ name: 'zeros', batch_size: 8, inputs: { input: { data_type: 'TYPE_FP32', dims: [3, 224, 224], zero_data: true } } }]);
  });
});

describe('warm-up', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'tw-warmup-'));
    await mkdir(path.join(dir, 'warmup'));
    // One batch element of [4] FP32: 1, 2, 3, 4.
    await writeFile(path.join(dir, 'warmup', 'x.bin'), Buffer.from(new Float32Array([1, 2, 3, 4]).buffer));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const SMALL: ModelMetadata = { inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 4] }, { name: 'n', datatype: 'INT64', shape: [-1, 2] }], outputs: [{ name: 'y', datatype: 'FP32', shape: [-1] }], batchable: true };

  it('builds zero, random and file data of the right sizes', async () => {
    const e = completeConfig(
      { model_warmup: [{ name: 'w', batch_size: 3, count: 2, inputs: { x: { input_data_file: 'x.bin' }, n: { random_data: true } } }] },
      SMALL,
      'small',
    );
    expect(e.warmup[0].count).toBe(2);
    const [x, n] = await warmupSampleData(e.warmup[0], dir);
    expect(Array.from(new Float32Array(x.buffer, x.byteOffset, 12))).toEqual([1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4]);
    expect(n.byteLength).toBe(3 * 2 * 8);
    for (const v of new BigInt64Array(n.buffer, n.byteOffset, 6)) expect(v === 0n || v === 1n).toBe(true);

    const z = completeConfig({ model_warmup: [{ name: 'z', inputs: { x: {}, n: { zero_data: true } } }] }, SMALL, 'small');
    const [zx, zn] = await warmupSampleData(z.warmup[0], dir);
    expect(zx).toEqual(new Uint8Array(16));
    expect(zn).toEqual(new Uint8Array(16));
  });

  it('rejects warm-ups that do not fit the model', async () => {
    expect(errorOf(() => completeConfig({ model_warmup: [{ name: 'w', inputs: { x: {} } }] }, SMALL, 's'))).toBe(
      'model "s": model_warmup[0].inputs is missing input "n" (a warm-up request must give every input)',
    );
    expect(errorOf(() => completeConfig({ model_warmup: [{ name: 'w', batch_size: 65, inputs: { x: {}, n: {} } }] }, SMALL, 's'))).toBe(
      'model "s": model_warmup[0].batch_size 65 is larger than max_batch_size 64',
    );
    expect(errorOf(() => completeConfig({ model_warmup: [{ name: 'w', inputs: { ids: {}, mask: { dims: [8] } } }] }, TEXT, 't'))).toBe(
      'model "t": model_warmup[0].inputs.ids.dims is needed: the input\'s shape [-1] has dynamic dimensions',
    );
    const e = completeConfig({ model_warmup: [{ name: 'w', inputs: { x: { input_data_file: 'x.bin' }, n: {} } }] }, { ...SMALL, inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 5] }, SMALL.inputs[1]] }, 's');
    await expect(warmupSampleData(e.warmup[0], dir)).rejects.toThrow(/x\.bin holds 16 bytes, expected 20 \(shape \[1, 5\] of FP32\)/);
  });
});

describe('version policy', () => {
  it('selects the latest, all, or specific versions', () => {
    expect(selectVersions(undefined, [3, 1, 2])).toEqual([3]);
    expect(selectVersions({ latest: { num_versions: 2 } }, [1, 10, 2])).toEqual([2, 10]);
    expect(selectVersions({ latest: { num_versions: 5 } }, [1, 2])).toEqual([1, 2]);
    expect(selectVersions({ all: {} }, [2, 1])).toEqual([1, 2]);
    expect(selectVersions({ specific: { versions: [1, 4] } }, [1, 2, 3])).toEqual([1]);
    expect(missingVersions({ specific: { versions: [1, 4] } }, [1, 2, 3])).toEqual([4]);
    expect(selectVersions(undefined, [])).toEqual([]);
  });
});
