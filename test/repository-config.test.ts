import { describe, expect, it } from 'vitest';
import { type ModelConfig, parseConfigJson, validateConfig } from '../lib/repository/config';
import { parseConfigPbtxt, pbtxtToObject } from '../lib/repository/pbtxt';
import { invalidInputMessage } from './helpers/expect-error';

const errorOf = invalidInputMessage;

const WHERE = 'models/iris/config.json';

describe('config.json', () => {
  it('reads a full config and normalises datatypes, kinds and parameters', () => {
    const config = parseConfigJson(
      JSON.stringify({
        name: 'iris',
        platform: 'onnxruntime_onnx',
        max_batch_size: 32,
        input: [{ name: 'x', data_type: 'TYPE_FP32', dims: [4] }],
        output: [{ name: 'y', data_type: 'FP32', dims: [3] }],
        dynamic_batching: {
          preferred_batch_size: [8, 16],
          max_queue_delay_microseconds: '250', // protobuf JSON writes int64 as strings
          priority_levels: 2,
          default_priority_level: 2,
          default_queue_policy: { max_queue_size: 100, default_timeout_microseconds: 5000, allow_timeout_override: true, timeout_action: 'DELAY' },
          priority_queue_policy: { '1': { max_queue_size: 10 } },
        },
        instance_group: [{ count: 2, kind: 'cpu' }],
        parameters: { intra_op_thread_count: { string_value: '2' }, inter_op_thread_count: 1, graph_optimization_level: 'extended' },
        version_policy: { specific: { versions: [1, 3] } },
        model_warmup: [{ name: 'w', batch_size: 4, inputs: { x: { data_type: 'TYPE_FP32', dims: [4], random_data: true } } }],
      }),
      WHERE,
    );
    expect(config).toEqual<ModelConfig>({
      name: 'iris',
      platform: 'onnxruntime_onnx',
      max_batch_size: 32,
      input: [{ name: 'x', data_type: 'FP32', dims: [4] }],
      output: [{ name: 'y', data_type: 'FP32', dims: [3] }],
      dynamic_batching: {
        preferred_batch_size: [8, 16],
        max_queue_delay_microseconds: 250,
        priority_levels: 2,
        default_priority_level: 2,
        default_queue_policy: { max_queue_size: 100, default_timeout_microseconds: 5000, allow_timeout_override: true, timeout_action: 'DELAY' },
        priority_queue_policy: { '1': { max_queue_size: 10 } },
      },
      instance_group: [{ count: 2, kind: 'KIND_CPU' }],
      parameters: { intra_op_thread_count: 2, inter_op_thread_count: 1, graph_optimization_level: 'extended' },
      version_policy: { specific: { versions: [1, 3] } },
      model_warmup: [{ name: 'w', batch_size: 4, inputs: { x: { data_type: 'FP32', dims: [4], random_data: true } } }],
    });
  });

  it('accepts Triton-exported JSON, where 64-bit integers are strings', () => {
    expect(parseConfigJson('{"max_batch_size": 8, "input": [{"name": "x", "data_type": "TYPE_FP32", "dims": ["-1", "4"]}]}', WHERE)).toEqual({
      max_batch_size: 8,
      input: [{ name: 'x', data_type: 'FP32', dims: [-1, 4] }],
    });
  });

  it('accepts an empty config', () => {
    expect(parseConfigJson('{}', WHERE)).toEqual({});
  });

  it('names the file, the field path, the expectation and the value', () => {
    expect(errorOf(() => parseConfigJson('{"dynamic_batching":{"max_queue_delay_microseconds":"fast"}}', WHERE))).toBe(
      'models/iris/config.json: dynamic_batching.max_queue_delay_microseconds must be an integer from 0 to 60000000, got "fast"',
    );
    expect(errorOf(() => parseConfigJson('{"input":[{"name":"x","dims":[4, 0]}]}', WHERE))).toBe(
      'models/iris/config.json: input[0].dims[1] must be -1 (dynamic) or a positive integer, got 0',
    );
    expect(errorOf(() => parseConfigJson('{"max_batch_size": -1}', WHERE))).toBe('models/iris/config.json: max_batch_size must be an integer from 0 to 4096, got -1');
    expect(errorOf(() => parseConfigJson('{"input":[{"name":"x","data_type":"TYPE_FLOAT"}]}', WHERE))).toMatch(
      /^models\/iris\/config\.json: input\[0\]\.data_type must be a datatype \(TYPE_BOOL, .*TYPE_FP32.*\), got "TYPE_FLOAT"$/,
    );
    expect(errorOf(() => parseConfigJson('{"instance_group":[{"kind":"KIND_TPU"}]}', WHERE))).toBe(
      'models/iris/config.json: instance_group[0].kind must be KIND_CPU, KIND_GPU or KIND_AUTO (or cpu, gpu, auto), got "KIND_TPU"',
    );
    expect(errorOf(() => parseConfigJson('{"dynamic_batching":{"default_queue_policy":{"timeout_action":"DROP"}}}', WHERE))).toBe(
      'models/iris/config.json: dynamic_batching.default_queue_policy.timeout_action must be one of REJECT, DELAY, got "DROP"',
    );
  });

  it('rejects unknown fields with a suggestion', () => {
    expect(errorOf(() => parseConfigJson('{"max_batch_sizes": 8}', WHERE))).toMatch(
      /^models\/iris\/config\.json: unknown field max_batch_sizes \(did you mean max_batch_size\?\); allowed here: name, platform/,
    );
    expect(errorOf(() => parseConfigJson('{"dynamic_batching":{"maxQueueDelayMicroseconds": 8}}', WHERE))).toMatch(
      /unknown field dynamic_batching\.maxQueueDelayMicroseconds \(did you mean dynamic_batching\.max_queue_delay_microseconds\?\)/,
    );
    expect(errorOf(() => parseConfigJson('{"parameters":{"intra_op_threads":"2"}}', WHERE))).toMatch(/unknown field parameters\.intra_op_threads \(did you mean parameters\.intra_op_thread_count\?\)/);
  });

  it('says a Triton-only feature is unsupported rather than unknown', () => {
    expect(errorOf(() => parseConfigJson('{"sequence_batching":{}}', WHERE))).toBe(
      'models/iris/config.json: sequence_batching is a Triton setting tensorwire does not support; remove it',
    );
    expect(errorOf(() => parseConfigJson('{"input":[{"name":"x","format":"FORMAT_NCHW"}]}', WHERE))).toBe(
      'models/iris/config.json: input[0].format is a Triton setting tensorwire does not support; remove it',
    );
  });

  it('rejects other platforms; reads TYPE_STRING as BYTES', () => {
    expect(errorOf(() => parseConfigJson('{"platform":"tensorrt_plan"}', WHERE))).toBe(
      'models/iris/config.json: platform must be "onnxruntime_onnx" (tensorwire serves ONNX models with ONNX Runtime), "ensemble" or "tensorwire_cascade", got "tensorrt_plan"',
    );
    expect(errorOf(() => parseConfigJson('{"backend":"python"}', WHERE))).toMatch(/backend must be "onnxruntime"/);
    expect(parseConfigJson('{"input":[{"name":"t","data_type":"TYPE_STRING","dims":[1]}]}', WHERE).input?.[0]?.data_type).toBe('BYTES');
    expect(parseConfigJson('{"output":[{"name":"p","label_filename":"labels.txt"}]}', WHERE).output?.[0]?.label_filename).toBe('labels.txt');
    expect(errorOf(() => parseConfigJson('{"output":[{"name":"p","label_filename":"../../etc/passwd"}]}', WHERE))).toContain('output[0].label_filename');
    expect(errorOf(() => parseConfigJson('{"input":[{"name":"p","label_filename":"labels.txt"}]}', WHERE))).toContain('label_filename');
  });

  it('checks cross-field rules', () => {
    expect(errorOf(() => parseConfigJson('{"dynamic_batching":{"priority_levels":3}}', WHERE))).toBe(
      'models/iris/config.json: dynamic_batching.default_priority_level is required when priority_levels is 3 (a level from 1 to 3)',
    );
    expect(errorOf(() => parseConfigJson('{"dynamic_batching":{"priority_levels":2,"default_priority_level":3}}', WHERE))).toMatch(
      /default_priority_level must be an integer from 1 to 2 \(priority_levels\), got 3$/,
    );
    expect(errorOf(() => parseConfigJson('{"dynamic_batching":{"priority_levels":2,"default_priority_level":1,"priority_queue_policy":{"5":{}}}}', WHERE))).toMatch(
      /dynamic_batching\.priority_queue_policy key must be a priority level from 1 to priority_levels \(2\), got "5"$/,
    );
    expect(errorOf(() => parseConfigJson('{"input":[{"name":"x"},{"name":"x"}]}', WHERE))).toBe('models/iris/config.json: input[1].name: "x" is listed twice');
    expect(errorOf(() => parseConfigJson('{"version_policy":{"latest":{"num_versions":1},"all":{}}}', WHERE))).toMatch(/version_policy must be exactly one of latest, all, specific/);
    expect(errorOf(() => parseConfigJson('{"instance_group":[{"count":1},{"count":1}]}', WHERE))).toMatch(/instance_group: tensorwire supports one instance group/);
    expect(errorOf(() => parseConfigJson('{"instance_group":[{"kind":"KIND_GPU","gpus":[0,1]}]}', WHERE))).toMatch(/instance_group\[0\]\.gpus: tensorwire runs a model version on one GPU, got 2/);
    expect(errorOf(() => parseConfigJson('{"model_warmup":[{"name":"w","inputs":{"x":{"zero_data":true,"random_data":true}}}]}', WHERE))).toBe(
      'models/iris/config.json: model_warmup[0].inputs.x: give only one of zero_data, random_data, input_data_file',
    );
    expect(errorOf(() => parseConfigJson('{"default_model_filename":"../x.onnx"}', WHERE))).toMatch(/default_model_filename must be a file name without directories/);
  });

  it('reports malformed JSON with the file', () => {
    expect(errorOf(() => parseConfigJson('{"max_batch_size": 8,}', WHERE))).toMatch(/^models\/iris\/config\.json: not valid JSON \(/);
    expect(errorOf(() => parseConfigJson('[1]', WHERE))).toBe('models/iris/config.json: the config must be an object, got [1]');
  });

  it('reads the provider and translates Triton execution accelerators', () => {
    expect(validateConfig({ optimization: { provider: { kind: 'cuda', device_id: 1, memory_limit_bytes: 2 ** 30, cudnn_conv_algo_search: 'HEURISTIC' } } })).toEqual({
      optimization: { provider: { kind: 'cuda', device_id: 1, memory_limit_bytes: 2 ** 30, cudnn_conv_algo_search: 'HEURISTIC' } },
    });
    expect(
      validateConfig({
        optimization: { execution_accelerators: { gpu_execution_accelerator: [{ name: 'cuda', parameters: { cudnn_conv_algo_search: '1', gpu_mem_limit: '1024' } }] } },
      }),
    ).toEqual({ optimization: { provider: { kind: 'cuda', cudnn_conv_algo_search: 'HEURISTIC', memory_limit_bytes: 1024 } } });
    expect(errorOf(() => validateConfig({ optimization: { provider: { kind: 'cuda', fp16: true } } }, WHERE))).toMatch(/unknown field optimization\.provider\.fp16/);
    expect(errorOf(() => validateConfig({ optimization: { provider: { kind: 'rocm' } } }, WHERE))).toBe(
      'models/iris/config.json: optimization.provider.kind must be one of cpu, cuda, tensorrt, got "rocm"',
    );
    expect(errorOf(() => validateConfig({ optimization: { execution_accelerators: { cpu_execution_accelerator: [{ name: 'openvino' }] } } }, WHERE))).toMatch(
      /cpu_execution_accelerator is not supported/,
    );
  });
});

/** A realistic Triton config.pbtxt for an image classifier. */
const RESNET_PBTXT = `
# ResNet-50 exported from PyTorch
name: "resnet"
platform: "onnxruntime_onnx"
max_batch_size: 128
version_policy: { latest: { num_versions: 2 } }
input [
  {
    name: "input"
    data_type: TYPE_FP32
    dims: [ 3, 224, 224 ]
  }
]
output [
  {
    name: "logits"
    data_type: TYPE_FP32
    dims: [ 1000 ]
  }
]
instance_group [
  {
    count: 2
    kind: KIND_GPU
    gpus: [ 0 ]
  }
]
dynamic_batching {
  preferred_batch_size: [ 32, 64 ]
  max_queue_delay_microseconds: 500
  priority_levels: 2
  default_priority_level: 2
  default_queue_policy {
    max_queue_size: 256
    default_timeout_microseconds: 100000
    allow_timeout_override: true
    timeout_action: REJECT
  }
  priority_queue_policy {
    key: 1
    value: { max_queue_size: 64, timeout_action: DELAY }
  }
}
optimization { execution_accelerators {
  gpu_execution_accelerator : [ {
    name : "tensorrt"
    parameters { key: "precision_mode" value: "FP16" }
    parameters { key: "max_workspace_size_bytes" value: "1073741824" }
    parameters { key: "trt_engine_cache_enable" value: "true" }
  } ]
}}
parameters { key: "intra_op_thread_count" value: { string_value: "2" } }
model_warmup [
  {
    name: "zeros"
    batch_size: 8
    inputs {
      key: "input"
      value: {
        data_type: TYPE_FP32
        dims: [ 3, 224, 224 ]
        zero_data: true
      }
    }
  }
]
`;

describe('config.pbtxt', () => {
  it('parses a realistic Triton config into the same ModelConfig as JSON', () => {
    const where = 'models/resnet/config.pbtxt';
    const config = parseConfigPbtxt(RESNET_PBTXT, where);
    const expected: ModelConfig = {
      name: 'resnet',
      platform: 'onnxruntime_onnx',
      max_batch_size: 128,
      version_policy: { latest: { num_versions: 2 } },
      input: [{ name: 'input', data_type: 'FP32', dims: [3, 224, 224] }],
      output: [{ name: 'logits', data_type: 'FP32', dims: [1000] }],
      instance_group: [{ count: 2, kind: 'KIND_GPU', gpus: [0] }],
      dynamic_batching: {
        preferred_batch_size: [32, 64],
        max_queue_delay_microseconds: 500,
        priority_levels: 2,
        default_priority_level: 2,
        default_queue_policy: { max_queue_size: 256, default_timeout_microseconds: 100000, allow_timeout_override: true, timeout_action: 'REJECT' },
        priority_queue_policy: { '1': { max_queue_size: 64, timeout_action: 'DELAY' } },
      },
      optimization: { provider: { kind: 'tensorrt', fp16: true, max_workspace_size_bytes: 1073741824, engine_cache_enable: true } },
      parameters: { intra_op_thread_count: 2 },
      model_warmup: [{ name: 'zeros', batch_size: 8, inputs: { input: { data_type: 'FP32', dims: [3, 224, 224], zero_data: true } } }],
    };
    expect(config).toEqual(expected);
    // The equivalent Triton JSON gives the identical result.
    const json = JSON.stringify({
      ...pbtxtToObject(RESNET_PBTXT, where),
    });
    expect(parseConfigJson(json, 'config.json')).toEqual(expected);
  });

  it('accepts repeated occurrences, <> messages, single quotes, ; separators and adjacent strings', () => {
    const obj = pbtxtToObject(`
      name: 'a' "b"   # concatenated
      input { name: "x" dims: 4 dims: 5 };
      input < name: "y" data_type: TYPE_INT64 dims: [ -1, 0x10 ] >
      dynamic_batching { }
      version_policy { all { } }
    `);
    expect(obj).toEqual({
      name: 'ab',
      input: [{ name: 'x', dims: [4, 5] }, { name: 'y', data_type: 'TYPE_INT64', dims: [-1, 16] }],
      dynamic_batching: {},
      version_policy: { all: {} },
    });
  });

  it('reports syntax errors with file, line and column', () => {
    expect(errorOf(() => parseConfigPbtxt('name: "x"\nmax_batch_size 8\n', 'm/config.pbtxt'))).toBe('m/config.pbtxt:2:16: expected ":" or "{" after max_batch_size, got "8"');
    expect(errorOf(() => parseConfigPbtxt('input [ { name: "x" }\n', 'm/config.pbtxt'))).toBe('m/config.pbtxt:2:1: expected "," or "]" in the list of input, got end of file');
    expect(errorOf(() => parseConfigPbtxt('name: "x\n', 'm/config.pbtxt'))).toMatch(/^m\/config\.pbtxt:1:9: unterminated string/);
    expect(errorOf(() => parseConfigPbtxt('max_batch_size: 8\nmax_batch_size: 9\n', 'm/config.pbtxt'))).toBe('m/config.pbtxt:2:1: max_batch_size is given more than once');
  });

  it('validates with the same messages as JSON, naming the pbtxt file', () => {
    expect(errorOf(() => parseConfigPbtxt('platform: "tensorflow_savedmodel"', 'models/tf/config.pbtxt'))).toBe(
      'models/tf/config.pbtxt: platform must be "onnxruntime_onnx" (tensorwire serves ONNX models with ONNX Runtime), "ensemble" or "tensorwire_cascade", got "tensorflow_savedmodel"',
    );
    expect(errorOf(() => parseConfigPbtxt('backend: "pytorch"', 'models/pt/config.pbtxt'))).toMatch(/^models\/pt\/config\.pbtxt: backend must be "onnxruntime"/);
    expect(errorOf(() => parseConfigPbtxt('dynamic_batching { max_queue_delay_microseconds: fast }', 'c.pbtxt'))).toBe(
      'c.pbtxt: dynamic_batching.max_queue_delay_microseconds must be an integer from 0 to 60000000, got "fast"',
    );
    expect(errorOf(() => parseConfigPbtxt('sequence_batching { max_sequence_idle_microseconds: 5 }', 'c.pbtxt'))).toBe(
      'c.pbtxt: sequence_batching is a Triton setting tensorwire does not support; remove it',
    );
    expect(errorOf(() => parseConfigPbtxt('backend: "onnxruntime"\ninstance_group [ { kind: KIND_CPU, count: 0 } ]', 'c.pbtxt'))).toBe(
      'c.pbtxt: instance_group[0].count must be an integer from 1 to 64, got 0',
    );
  });
});
