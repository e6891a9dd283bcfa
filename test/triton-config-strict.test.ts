/**
 * GET /v2/models/{m}/config parses as Triton's ModelConfig under protobuf's strict JSON rules
 * (no unknown field anywhere, each value of its field's type, one member per oneof), as
 * Triton's tools parse it; and what it shows loads back as the same config. Checked on the
 * configs a real server answers (plain, batching with priorities and warm-up, ensemble,
 * cascade, routing, response cache, a Triton config.pbtxt) and, for providers this machine
 * cannot load (CUDA, TensorRT), on the completed configs themselves.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ModelMetadata } from '../lib/engine/types';
import { completeConfig } from '../lib/repository/complete-config';
import { validateConfig } from '../lib/repository/config';
import { parseConfigPbtxt } from '../lib/repository/pbtxt';
import { mlpModel, versionedModel } from './fixtures/models';
import { call, startHarness, type Harness } from './helpers/server-harness';
import { strictModelConfigErrors } from './helpers/strict-model-config';

describe('the strict ModelConfig parser (the test fixture itself)', () => {
  it('accepts a Triton config and refuses what protobuf JSON refuses', () => {
    const triton = {
      name: 'm', platform: 'onnxruntime_onnx', max_batch_size: 8,
      input: [{ name: 'x', data_type: 'TYPE_FP32', dims: ['256'] }],
      output: [{ name: 'y', dataType: 'TYPE_FP32', dims: [16] }],
      dynamic_batching: { priority_levels: '2', default_priority_level: 1, priority_queue_policy: { 1: { timeout_action: 'DELAY' } } },
      optimization: { execution_accelerators: { gpu_execution_accelerator: [{ name: 'tensorrt', parameters: { precision_mode: 'FP16' } }] } },
      parameters: { intra_op_thread_count: { string_value: '2' } },
      instance_group: [{ kind: 'KIND_GPU', count: 2, gpus: [0] }],
    };
    expect(strictModelConfigErrors(triton)).toEqual([]);
    expect(strictModelConfigErrors({ optimization: { provider: { kind: 'cpu' } } })).toEqual(['optimization.provider: no such field in ModelOptimizationPolicy']);
    expect(strictModelConfigErrors({ routing: {} })).toEqual(['routing: no such field in ModelConfig']);
    expect(strictModelConfigErrors({ parameters: { a: { string_value: 2 } } })).toEqual(['parameters.a.string_value: expected a string, got 2']);
    expect(strictModelConfigErrors({ max_batch_size: 1.5 })).toEqual(['max_batch_size: expected a int32, got 1.5']);
    expect(strictModelConfigErrors({ instance_group: [{ kind: 'cpu' }] })[0]).toMatch(/^instance_group\[0\]\.kind: expected one of KIND_AUTO/);
    expect(strictModelConfigErrors({ dynamic_batching: {}, ensemble_scheduling: { step: [] } })).toEqual(['(root): dynamic_batching and ensemble_scheduling are members of oneof scheduling_choice: at most one may be set']);
    expect(strictModelConfigErrors({ dynamic_batching: { priority_queue_policy: { x: {} } } })[0]).toMatch(/^dynamic_batching\.priority_queue_policy key "x": expected a uint64/);
  });
});

const MLP: ModelMetadata = {
  inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 256] }],
  outputs: [{ name: 'output', datatype: 'FP32', shape: [-1, 16] }],
  batchable: true,
};

describe('completed configs of every provider', () => {
  const cases: [string, Record<string, unknown>, unknown][] = [
    ['cpu', { instance_group: [{ kind: 'KIND_CPU' }] }, undefined],
    [
      'cuda (old spelling)',
      { optimization: { provider: { kind: 'cuda', device_id: 1, memory_limit_bytes: 1 << 30, cudnn_conv_algo_search: 'HEURISTIC', arena_extend_strategy: 'kSameAsRequested' } } },
      { execution_accelerators: { gpu_execution_accelerator: [{ name: 'cuda', parameters: { gpu_mem_limit: String(1 << 30), cudnn_conv_algo_search: 'HEURISTIC', arena_extend_strategy: 'kSameAsRequested' } }] } },
    ],
    [
      'tensorrt (Triton spelling)',
      {
        instance_group: [{ kind: 'KIND_GPU', gpus: [0] }],
        optimization: { execution_accelerators: { gpu_execution_accelerator: [{ name: 'tensorrt', parameters: { precision_mode: 'FP16', max_workspace_size_bytes: '1073741824', trt_engine_cache_enable: 'true', trt_engine_cache_path: 'engines' } }] } },
      },
      { execution_accelerators: { gpu_execution_accelerator: [{ name: 'tensorrt', parameters: { precision_mode: 'FP16', max_workspace_size_bytes: '1073741824', trt_engine_cache_enable: 'true', trt_engine_cache_path: 'engines' } }] } },
    ],
  ];
  for (const [label, raw, optimization] of cases) {
    it(`${label}: shown in Triton's fields only, and what is shown completes to the same config`, () => {
      const options = { trtCacheDir: '/tmp/tw-trt-cache-test' };
      const effective = completeConfig(validateConfig(raw, label), MLP, 'm', options);
      const shown = effective.tritonConfig;
      expect(strictModelConfigErrors(shown)).toEqual([]);
      expect(shown.optimization).toEqual(optimization);
      const again = completeConfig(validateConfig(JSON.parse(JSON.stringify(shown)) as unknown, 'shown'), MLP, 'm', options);
      expect(again.config).toEqual(effective.config);
      expect(again.load).toEqual(effective.load);
    });
  }

  it('a config.pbtxt written for Triton with accelerators and string parameters loads as the same provider', () => {
    const pbtxt = `
      name: "m"
      max_batch_size: 8
      instance_group [ { kind: KIND_GPU gpus: [ 0 ] } ]
      optimization { execution_accelerators { gpu_execution_accelerator : [ { name : "cuda" parameters { key: "gpu_mem_limit" value: "4294967296" } } ] } }
      parameters { key: "intra_op_thread_count" value: { string_value: "1" } }
    `;
    const effective = completeConfig(parseConfigPbtxt(pbtxt, 'm/config.pbtxt'), MLP, 'm');
    expect(effective.load.provider).toEqual({ kind: 'cuda', deviceId: 0, memoryLimitBytes: 4294967296 });
    expect(strictModelConfigErrors(effective.tritonConfig)).toEqual([]);
  });

  it("CUDA settings as model parameters (Triton's onnxruntime backend README): they configure the CUDA provider", () => {
    const pbtxt = `
      name: "m"
      max_batch_size: 8
      instance_group [ { kind: KIND_GPU gpus: [ 1 ] } ]
      parameters { key: "cudnn_conv_algo_search" value: { string_value: "1" } }
      parameters { key: "gpu_mem_limit" value: { string_value: "4294967200" } }
      parameters { key: "arena_extend_strategy" value: { string_value: "1" } }
    `;
    const effective = completeConfig(parseConfigPbtxt(pbtxt, 'm/config.pbtxt'), MLP, 'm');
    expect(effective.load.provider).toEqual({ kind: 'cuda', deviceId: 1, memoryLimitBytes: 4294967200, cudnnConvAlgoSearch: 'HEURISTIC', arenaExtendStrategy: 'kSameAsRequested' });
    const shown = effective.tritonConfig;
    expect(strictModelConfigErrors(shown)).toEqual([]);
    expect(shown.parameters).toEqual({ cudnn_conv_algo_search: { string_value: '1' }, gpu_mem_limit: { string_value: '4294967200' }, arena_extend_strategy: { string_value: '1' } });
    const again = completeConfig(validateConfig(JSON.parse(JSON.stringify(shown)) as unknown, 'shown'), MLP, 'm');
    expect(again.load).toEqual(effective.load);
    // On the CPU they do nothing (as in Triton); against the accelerator's own value, an error.
    expect(completeConfig(validateConfig({ parameters: { gpu_mem_limit: '1024' } }), MLP, 'm').load.provider).toEqual({ kind: 'cpu' });
    const contradiction = { parameters: { gpu_mem_limit: '1024' }, optimization: { execution_accelerators: { gpu_execution_accelerator: [{ name: 'cuda', parameters: { gpu_mem_limit: '2048' } }] } } };
    expect(() => completeConfig(validateConfig(contradiction), MLP, 'm')).toThrow(/parameters\.gpu_mem_limit \(1024\) and the CUDA provider's gpu_mem_limit \(2048\) disagree/);
  });

  it("the onnxruntime backend's own spellings: graph.level, \"1\" for true, 0 threads for the default", () => {
    const pbtxt = `
      name: "m"
      max_batch_size: 8
      instance_group [ { kind: KIND_GPU gpus: [ 0 ] } ]
      optimization {
        graph: { level: 1 }
        execution_accelerators { gpu_execution_accelerator : [ {
          name : "tensorrt"
          parameters { key: "precision_mode" value: "FP16" }
          parameters { key: "max_workspace_size_bytes" value: "1073741824" }
          parameters { key: "trt_engine_cache_enable" value: "1" }
        } ] }
      }
      parameters { key: "intra_op_thread_count" value: { string_value: "0" } }
      parameters { key: "inter_op_thread_count" value: { string_value: "0" } }
    `;
    const effective = completeConfig(parseConfigPbtxt(pbtxt, 'm/config.pbtxt'), MLP, 'm');
    expect(effective.load.provider).toEqual({ kind: 'tensorrt', deviceId: 0, fp16: true, maxWorkspaceSizeBytes: 1073741824, engineCacheEnable: true });
    expect(effective.load.graphOptimizationLevel).toBe('extended');
    expect(effective.config.parameters).toEqual({ graph_optimization_level: 'extended' });
    expect(effective.tritonConfig.optimization).toEqual({
      graph: { level: 1 },
      execution_accelerators: { gpu_execution_accelerator: [{ name: 'tensorrt', parameters: { precision_mode: 'FP16', max_workspace_size_bytes: '1073741824', trt_engine_cache_enable: 'true' } }] },
    });
    expect(strictModelConfigErrors(effective.tritonConfig)).toEqual([]);
    expect(() => validateConfig({ optimization: { graph: { level: -1 } }, parameters: { graph_optimization_level: 'all' } })).toThrow(/optimization\.graph\.level \(basic\) and parameters\.graph_optimization_level \(all\) disagree/);
  });
});

const SERVED = ['plain', 'batching', 'pipeline', 'cascade', 'routed', 'cached', 'triton_pbtxt'] as const;

let h: Harness;

beforeAll(async () => {
  const mlp = (d: string) => mlpModel(d, { file: 'model.onnx' });
  const tensors = { input: [{ name: 'input', data_type: 'TYPE_FP32', dims: [256] }], output: [{ name: 'output', data_type: 'TYPE_FP32', dims: [16] }] };
  h = await startHarness({
    models: [
      { name: 'plain', versions: { 1: mlp } },
      {
        name: 'batching',
        versions: { 1: mlp },
        config: {
          max_batch_size: 16,
          dynamic_batching: {
            preferred_batch_size: [4, 8], max_queue_delay_microseconds: 100, priority_levels: 2, default_priority_level: 2,
            default_queue_policy: { max_queue_size: 64, timeout_action: 'REJECT' }, priority_queue_policy: { 1: { max_queue_size: 8, allow_timeout_override: true } },
          },
          parameters: { intra_op_thread_count: 1, slots_per_instance: 2, graph_optimization_level: 'all' },
          model_warmup: [{ name: 'zeros', batch_size: 2, inputs: { input: { data_type: 'TYPE_FP32', dims: [256], zero_data: true } } }],
          version_policy: { latest: { num_versions: 1 } },
        },
      },
      {
        name: 'pipeline',
        versions: { 1: async () => undefined },
        config: {
          platform: 'ensemble', max_batch_size: 8, ...tensors,
          ensemble_scheduling: { step: [{ model_name: 'plain', model_version: -1, input_map: { input: 'input' }, output_map: { output: 'output' } }] },
        },
      },
      {
        name: 'cascade',
        versions: { 1: async () => undefined },
        config: { platform: 'tensorwire_cascade', max_batch_size: 8, ...tensors, cascade: { stages: [{ model: 'plain', confidence: { output: 'output', min: 0.5 } }, { model: 'batching' }] } },
      },
      {
        name: 'routed',
        versions: { 1: (d) => versionedModel(d, 1, { file: 'model.onnx' }), 2: (d) => versionedModel(d, 2, { file: 'model.onnx' }) },
        config: { version_policy: { all: {} }, routing: { weights: { 1: 90, 2: 10 }, labels: { stable: '1' } } },
      },
      { name: 'cached', versions: { 1: mlp }, config: { response_cache: { enable: true } } },
      {
        name: 'triton_pbtxt',
        versions: { 1: mlp },
        pbtxt: `name: "triton_pbtxt"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [ { name: "input" data_type: TYPE_FP32 dims: [ 256 ] } ]
output [ { name: "output" data_type: TYPE_FP32 dims: [ 16 ] } ]
instance_group [ { count: 1 kind: KIND_CPU } ]
dynamic_batching { max_queue_delay_microseconds: 200 }
optimization { graph { level: -1 } }
parameters { key: "intra_op_thread_count" value: { string_value: "0" } }
parameters { key: "inter_op_thread_count" value: { string_value: "1" } }
`,
      },
    ],
  });
}, 60_000);

afterAll(async () => {
  await h?.close();
});

describe('GET /v2/models/{m}/config of a real server', () => {
  it('every served model is ready', async () => {
    for (const m of SERVED) expect((await call(h.base, `/v2/models/${m}/ready`)).status, m).toBe(200);
  });

  for (const m of SERVED) {
    it(`${m}: parses strictly as Triton's ModelConfig and loads back`, async () => {
      const r = await call(h.base, `/v2/models/${m}/config`);
      expect(r.status).toBe(200);
      expect(strictModelConfigErrors(r.json)).toEqual([]);
      expect(r.json.name).toBe(m);
      // What the server shows is a config tensorwire itself accepts.
      expect(() => validateConfig(r.json, `${m} shown`)).not.toThrow();
    });
  }

  it('tensorwire settings live in Triton fields: parameters carry routing, cascade and session settings as strings', async () => {
    const routed = (await call(h.base, '/v2/models/routed/config')).json;
    expect(JSON.parse(routed.parameters.routing.string_value)).toEqual({ weights: { 1: 90, 2: 10 }, labels: { stable: '1' } });
    expect(validateConfig(routed).routing).toEqual({ weights: { 1: 90, 2: 10 }, labels: { stable: '1' } });
    const cascade = (await call(h.base, '/v2/models/cascade/config')).json;
    expect(cascade.platform).toBe('tensorwire_cascade');
    expect(validateConfig(cascade).cascade).toEqual({ stages: [{ model: 'plain', confidence: { output: 'output', min: 0.5 } }, { model: 'batching' }] });
    const batching = (await call(h.base, '/v2/models/batching/config')).json;
    expect(batching.parameters).toEqual({ intra_op_thread_count: { string_value: '1' }, slots_per_instance: { string_value: '2' } });
    // The CPU provider is no accelerator; the graph level is Triton's optimization.graph.level.
    expect(batching.optimization).toEqual({ graph: { level: 0 } });
    const pipeline = (await call(h.base, '/v2/models/pipeline/config')).json;
    expect(pipeline.dynamic_batching).toBeUndefined();
    expect(pipeline.ensemble_scheduling.step).toHaveLength(1);
    expect((await call(h.base, '/v2/models/cached/config')).json.response_cache).toEqual({ enable: true });
  });

  it('the config.pbtxt written for Triton serves unchanged', async () => {
    const r = await call(h.base, '/v2/models/triton_pbtxt/infer', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 256], data: new Array(256).fill(0.5) }] }),
    });
    expect(r.status).toBe(200);
    expect(r.json.outputs[0].shape).toEqual([1, 16]);
    const shown = (await call(h.base, '/v2/models/triton_pbtxt/config')).json;
    expect(shown.optimization).toEqual({ graph: { level: -1 } });
    expect(shown.parameters).toEqual({ inter_op_thread_count: { string_value: '1' } });
  });
});
