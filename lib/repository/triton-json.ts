/**
 * Renders a completed ModelConfig as Triton's model-config JSON (what
 * `GET /v2/models/{name}/config` returns), which must parse as Triton's ModelConfig protobuf
 * with no unknown field: Triton's tools (model_analyzer, perf_analyzer, json_format.ParseDict)
 * parse it strictly. So tensorwire's own settings are written into Triton's fields:
 * - the graph optimisation level as `optimization.graph.level` (-1 basic, 0 all, 1 extended,
 *   2 disabled, as the onnxruntime backend reads it);
 * - the execution provider as `optimization.execution_accelerators.gpu_execution_accelerator`
 *   (`tensorrt` / `cuda` with the parameter names Triton's onnxruntime backend reads); the
 *   device is `instance_group[0].gpus`; the CPU provider is no accelerator at all;
 * - typed `parameters` as `{string_value}`; the traffic policy and a cascade's stages as JSON
 *   text in `parameters.routing` / `parameters.cascade` (config.ts reads them back);
 * - TYPE_* datatypes. An ensemble shows no dynamic_batching (a oneof with ensemble_scheduling).
 * Integers are JSON numbers (protobuf's JSON parser accepts them for 64-bit fields too).
 * The result loads back as the same config (tested).
 */
import type { ModelConfig, ProviderConfig, TensorConfig, WarmupConfig } from './config';
import { TRITON_DATATYPE } from './config';
import { ARENA, CUDNN_ALGO, GRAPH_LEVELS } from './config-runtime';

function tensor(t: TensorConfig): Record<string, unknown> {
  const out: Record<string, unknown> = { name: t.name };
  if (t.data_type !== undefined) out.data_type = TRITON_DATATYPE[t.data_type];
  if (t.dims !== undefined) out.dims = [...t.dims];
  return out;
}

function warmup(w: WarmupConfig): Record<string, unknown> {
  const inputs: Record<string, unknown> = {};
  for (const [name, x] of Object.entries(w.inputs)) {
    const out: Record<string, unknown> = { ...x };
    if (x.data_type !== undefined) out.data_type = TRITON_DATATYPE[x.data_type];
    inputs[name] = out;
  }
  const out: Record<string, unknown> = { name: w.name, inputs };
  if (w.batch_size !== undefined) out.batch_size = w.batch_size;
  if (w.count !== undefined) out.count = w.count;
  return out;
}

/**
 * A provider as Triton's onnxruntime backend spells it (parameter values are strings there);
 * undefined for the CPU provider. The device id is left out: instance_group carries it.
 */
export function acceleratorOf(p: ProviderConfig): { name: 'tensorrt' | 'cuda'; parameters: Record<string, string> } | undefined {
  if (p.kind === 'cpu') return undefined;
  const parameters: Record<string, string> = {};
  const put = (key: string, v: string | number | boolean | undefined) => {
    if (v !== undefined) parameters[key] = String(v);
  };
  if (p.kind === 'cuda') {
    put('gpu_mem_limit', p.memory_limit_bytes);
    // The backend hands a `cuda` accelerator's parameters to ONNX Runtime's CUDA provider
    // options as they are: ORT's option names and value spellings.
    put('cudnn_conv_algo_search', p.cudnn_conv_algo_search);
    put('arena_extend_strategy', p.arena_extend_strategy);
    return { name: 'cuda', parameters };
  }
  if (p.fp16 !== undefined) put('precision_mode', p.fp16 ? 'FP16' : 'FP32');
  put('max_workspace_size_bytes', p.max_workspace_size_bytes);
  put('trt_engine_cache_enable', p.engine_cache_enable);
  put('trt_engine_cache_path', p.engine_cache_path);
  put('trt_profile_min_shapes', p.profile_min_shapes);
  put('trt_profile_opt_shapes', p.profile_opt_shapes);
  put('trt_profile_max_shapes', p.profile_max_shapes);
  return { name: 'tensorrt', parameters };
}

/** Triton-style JSON of `config` (deep copy; the caller may serialise or mutate it). */
export function toTritonJson(config: ModelConfig): Record<string, unknown> {
  const { optimization, parameters, routing, cascade, ...rest } = config;
  const out: Record<string, unknown> = JSON.parse(JSON.stringify(rest)) as Record<string, unknown>;
  if (config.input) out.input = config.input.map(tensor);
  if (config.output) out.output = config.output.map(tensor);
  const accelerator = optimization?.provider === undefined ? undefined : acceleratorOf(optimization.provider);
  const { graph_optimization_level: graphLevel, ...otherParameters } = parameters ?? {};
  const shownOptimization: Record<string, unknown> = {};
  // The graph level in Triton's own field, where its onnxruntime backend reads it.
  if (graphLevel !== undefined) shownOptimization.graph = { level: Number(Object.entries(GRAPH_LEVELS).find(([, l]) => l === graphLevel)![0]) };
  if (accelerator) shownOptimization.execution_accelerators = { gpu_execution_accelerator: [accelerator] };
  if (Object.keys(shownOptimization).length > 0) out.optimization = shownOptimization;
  const shownParameters: Record<string, { string_value: string }> = {};
  for (const [k, v] of Object.entries(otherParameters)) if (v !== undefined) shownParameters[k] = { string_value: String(v) };
  // As model parameters, the backend reads these two as ONNX Runtime's enum numbers.
  if (otherParameters.cudnn_conv_algo_search !== undefined) shownParameters.cudnn_conv_algo_search = { string_value: String(CUDNN_ALGO.indexOf(otherParameters.cudnn_conv_algo_search)) };
  if (otherParameters.arena_extend_strategy !== undefined) shownParameters.arena_extend_strategy = { string_value: String(ARENA.indexOf(otherParameters.arena_extend_strategy)) };
  if (routing !== undefined) shownParameters.routing = { string_value: JSON.stringify(routing) };
  if (cascade !== undefined) shownParameters.cascade = { string_value: JSON.stringify(cascade) };
  if (Object.keys(shownParameters).length > 0) out.parameters = shownParameters;
  if (config.model_warmup) out.model_warmup = config.model_warmup.map(warmup);
  // Triton's ModelConfig holds one scheduler: an ensemble's steps, or dynamic batching.
  if (config.ensemble_scheduling !== undefined) delete out.dynamic_batching;
  return out;
}
