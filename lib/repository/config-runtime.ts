/**
 * Validation of the config sections that decide how a model runs: `instance_group`,
 * `optimization` (tensorwire's `provider`, or Triton's `execution_accelerators` translated to
 * one) and `parameters`. Split from config.ts to keep each file to one job.
 */
import type { GraphOptimizationLevel } from '../engine/types';
import type { InstanceGroupConfig, InstanceKind, OptimizationConfig, ParametersConfig, ProviderConfig } from './config';
import { CONFIG_LIMITS as L } from './config-limits';
import { FieldReader, join } from './field-reader';

const KINDS: Record<string, InstanceKind> = {
  KIND_CPU: 'KIND_CPU', cpu: 'KIND_CPU', KIND_GPU: 'KIND_GPU', gpu: 'KIND_GPU', KIND_AUTO: 'KIND_AUTO', auto: 'KIND_AUTO',
};

/**
 * Reads `instance_group`. The engine loads one model version with one provider on one device,
 * so tensorwire accepts one group with at most one GPU (Triton allows several; the message says so).
 */
export function readInstanceGroups(r: FieldReader, v: unknown, path: string): InstanceGroupConfig[] {
  const groups = r.array(v, path);
  if (groups.length > 1) r.error(`${path}: tensorwire supports one instance group (one provider on one device), got ${groups.length}`);
  return groups.map((item, i) => {
    const at = join(path, i);
    const o = r.object(item, at, ['name', 'kind', 'count', 'gpus']);
    const g: InstanceGroupConfig = {};
    if (o.name !== undefined) g.name = r.string(o.name, join(at, 'name'));
    if (o.kind !== undefined) {
      const kind = typeof o.kind === 'string' ? KINDS[o.kind] : undefined;
      if (o.kind === 'KIND_MODEL') r.error(`${at}.kind: KIND_MODEL is not supported; use KIND_CPU or KIND_GPU`);
      if (!kind) r.fail(join(at, 'kind'), 'KIND_CPU, KIND_GPU or KIND_AUTO (or cpu, gpu, auto)', o.kind);
      g.kind = kind;
    }
    if (o.count !== undefined) g.count = r.int(o.count, join(at, 'count'), 1, L.instanceCount);
    if (o.gpus !== undefined) {
      g.gpus = r.ints(o.gpus, join(at, 'gpus'), 0, L.deviceId, L.deviceId + 1);
      if (g.gpus.length > 1) r.error(`${at}.gpus: tensorwire runs a model version on one GPU, got ${g.gpus.length} (${g.gpus.join(', ')}); serve a copy of the model per GPU instead`);
      if (g.kind === 'KIND_CPU' && g.gpus.length > 0) r.error(`${at}.gpus is set but kind is KIND_CPU`);
    }
    return g;
  });
}

/** ONNX Runtime's OrtCudnnConvAlgoSearch and ArenaExtendStrategy values, in enum order. */
export const CUDNN_ALGO = ['EXHAUSTIVE', 'HEURISTIC', 'DEFAULT'] as const;
export const ARENA = ['kNextPowerOfTwo', 'kSameAsRequested'] as const;

/**
 * A TensorRT engine cache path: relative to the server's TensorRT cache directory (trtCacheDir,
 * default `<repository>/.tensorwire-trt-cache`), where ONNX Runtime writes engine files. A
 * config (or a client's load override) must not make the server write elsewhere, so absolute
 * paths and `..` segments are refused here; completeConfig resolves the path inside the
 * directory and checks again.
 */
function readCachePath(r: FieldReader, v: unknown, path: string): string {
  const s = r.string(v, path, 256);
  const segments = s.split(/[\\/]/);
  if (s.startsWith('/') || s.startsWith('\\') || /^[A-Za-z]:/.test(s) || s.includes('\0') || segments.includes('..')) {
    r.fail(path, 'a path relative to the server\'s TensorRT cache directory, without ".." (the engine cache stays inside it)', v);
  }
  return s;
}

/** Reads tensorwire's `optimization.provider` (snake_case names of lib/engine ProviderOptions). */
function readProvider(r: FieldReader, v: unknown, path: string): ProviderConfig {
  const raw = r.object(v, path);
  const kind = r.oneOf(raw.kind, join(path, 'kind'), ['cpu', 'cuda', 'tensorrt'] as const);
  if (kind === 'cpu') {
    r.object(v, path, ['kind']);
    return { kind };
  }
  if (kind === 'cuda') {
    const o = r.object(v, path, ['kind', 'device_id', 'memory_limit_bytes', 'cudnn_conv_algo_search', 'arena_extend_strategy']);
    const p: ProviderConfig = { kind };
    if (o.device_id !== undefined) p.device_id = r.int(o.device_id, join(path, 'device_id'), 0, L.deviceId);
    if (o.memory_limit_bytes !== undefined) p.memory_limit_bytes = r.int(o.memory_limit_bytes, join(path, 'memory_limit_bytes'), 1, L.memoryBytes);
    if (o.cudnn_conv_algo_search !== undefined) p.cudnn_conv_algo_search = r.oneOf(o.cudnn_conv_algo_search, join(path, 'cudnn_conv_algo_search'), CUDNN_ALGO);
    if (o.arena_extend_strategy !== undefined) p.arena_extend_strategy = r.oneOf(o.arena_extend_strategy, join(path, 'arena_extend_strategy'), ARENA);
    return p;
  }
  const o = r.object(v, path, [
    'kind', 'device_id', 'fp16', 'engine_cache_enable', 'engine_cache_path', 'max_workspace_size_bytes',
    'profile_min_shapes', 'profile_opt_shapes', 'profile_max_shapes',
  ]);
  const p: ProviderConfig = { kind };
  if (o.device_id !== undefined) p.device_id = r.int(o.device_id, join(path, 'device_id'), 0, L.deviceId);
  if (o.fp16 !== undefined) p.fp16 = r.bool(o.fp16, join(path, 'fp16'));
  if (o.engine_cache_enable !== undefined) p.engine_cache_enable = r.bool(o.engine_cache_enable, join(path, 'engine_cache_enable'));
  if (o.engine_cache_path !== undefined) p.engine_cache_path = readCachePath(r, o.engine_cache_path, join(path, 'engine_cache_path'));
  if (o.max_workspace_size_bytes !== undefined) p.max_workspace_size_bytes = r.int(o.max_workspace_size_bytes, join(path, 'max_workspace_size_bytes'), 1, L.memoryBytes);
  for (const k of ['profile_min_shapes', 'profile_opt_shapes', 'profile_max_shapes'] as const) {
    if (o[k] !== undefined) p[k] = r.string(o[k], join(path, k));
  }
  return p;
}

/** One of ONNX Runtime's enum values, by its number (as the ORT backend takes it) or its name. */
function enumOf<T extends string>(r: FieldReader, v: unknown, path: string, names: readonly T[]): T {
  const s = String(v);
  if (/^\d$/.test(s) && Number(s) < names.length) return names[Number(s)]!;
  return r.oneOf(v, path, names);
}

/**
 * Translates one Triton ORT-backend `gpu_execution_accelerator` (`tensorrt` or `cuda`, with the
 * backend's string parameters) into a provider.
 */
function readAccelerator(r: FieldReader, v: unknown, path: string): ProviderConfig {
  const o = r.object(v, path, ['name', 'parameters']);
  const name = r.oneOf(o.name, join(path, 'name'), ['tensorrt', 'cuda'] as const);
  const at = join(path, 'parameters');
  const params = o.parameters === undefined ? {} : r.object(o.parameters, at);
  if (name === 'tensorrt') {
    r.object(params, at, [
      'precision_mode', 'max_workspace_size_bytes', 'trt_engine_cache_enable', 'trt_engine_cache_path',
      'trt_profile_min_shapes', 'trt_profile_opt_shapes', 'trt_profile_max_shapes',
    ]);
    const p: ProviderConfig = { kind: 'tensorrt' };
    if (params.precision_mode !== undefined) p.fp16 = r.oneOf(params.precision_mode, join(at, 'precision_mode'), ['FP32', 'FP16'] as const) === 'FP16';
    if (params.max_workspace_size_bytes !== undefined) p.max_workspace_size_bytes = r.int(params.max_workspace_size_bytes, join(at, 'max_workspace_size_bytes'), 1, L.memoryBytes);
    // The backend passes the string to ONNX Runtime, which reads "1"/"0" as well as true/false.
    const flag = params.trt_engine_cache_enable === '1' ? true : params.trt_engine_cache_enable === '0' ? false : params.trt_engine_cache_enable;
    if (flag !== undefined) p.engine_cache_enable = r.bool(flag, join(at, 'trt_engine_cache_enable'));
    if (params.trt_engine_cache_path !== undefined) p.engine_cache_path = readCachePath(r, params.trt_engine_cache_path, join(at, 'trt_engine_cache_path'));
    if (params.trt_profile_min_shapes !== undefined) p.profile_min_shapes = r.string(params.trt_profile_min_shapes, join(at, 'trt_profile_min_shapes'));
    if (params.trt_profile_opt_shapes !== undefined) p.profile_opt_shapes = r.string(params.trt_profile_opt_shapes, join(at, 'trt_profile_opt_shapes'));
    if (params.trt_profile_max_shapes !== undefined) p.profile_max_shapes = r.string(params.trt_profile_max_shapes, join(at, 'trt_profile_max_shapes'));
    return p;
  }
  r.object(params, at, ['cudnn_conv_algo_search', 'gpu_mem_limit', 'arena_extend_strategy']);
  const p: ProviderConfig = { kind: 'cuda' };
  if (params.cudnn_conv_algo_search !== undefined) p.cudnn_conv_algo_search = enumOf(r, params.cudnn_conv_algo_search, join(at, 'cudnn_conv_algo_search'), CUDNN_ALGO);
  if (params.gpu_mem_limit !== undefined) p.memory_limit_bytes = r.int(params.gpu_mem_limit, join(at, 'gpu_mem_limit'), 1, L.memoryBytes);
  if (params.arena_extend_strategy !== undefined) p.arena_extend_strategy = enumOf(r, params.arena_extend_strategy, join(at, 'arena_extend_strategy'), ARENA);
  return p;
}

/**
 * Triton's onnxruntime backend's `optimization.graph.level`: -1 basic, 1 extended, 2 disabled,
 * anything else (0) everything ONNX Runtime has.
 */
export const GRAPH_LEVELS: Readonly<Record<number, GraphOptimizationLevel>> = { [-1]: 'basic', 0: 'all', 1: 'extended', 2: 'disabled' };

/**
 * Reads `optimization`. `input_pinned_memory`/`output_pinned_memory` are accepted and have no
 * effect: tensorwire's staging slots are always pinned on CUDA.
 */
export function readOptimization(r: FieldReader, v: unknown, path: string): OptimizationConfig {
  const o = r.object(v, path, ['provider', 'execution_accelerators', 'input_pinned_memory', 'output_pinned_memory', 'graph']);
  for (const k of ['input_pinned_memory', 'output_pinned_memory'] as const) {
    if (o[k] !== undefined) r.bool(r.object(o[k], join(path, k), ['enable']).enable ?? true, join(path, `${k}.enable`));
  }
  const out: OptimizationConfig = {};
  if (o.graph !== undefined) {
    const at = join(path, 'graph.level');
    const level = r.int(r.object(o.graph, join(path, 'graph'), ['level']).level ?? 0, at, -1, 2);
    out.graph_optimization_level = GRAPH_LEVELS[level]!;
  }
  if (o.provider !== undefined) out.provider = readProvider(r, o.provider, join(path, 'provider'));
  if (o.execution_accelerators !== undefined) {
    const at = join(path, 'execution_accelerators');
    const ea = r.object(o.execution_accelerators, at, ['gpu_execution_accelerator', 'cpu_execution_accelerator']);
    if (ea.cpu_execution_accelerator !== undefined && r.array(ea.cpu_execution_accelerator, join(at, 'cpu_execution_accelerator')).length > 0) {
      r.error(`${at}.cpu_execution_accelerator is not supported (tensorwire runs ONNX Runtime's own CPU provider); remove it`);
    }
    const gpu = ea.gpu_execution_accelerator === undefined ? [] : r.array(ea.gpu_execution_accelerator, join(at, 'gpu_execution_accelerator'));
    if (gpu.length > 1) r.error(`${at}.gpu_execution_accelerator: tensorwire takes one accelerator (tensorrt or cuda), got ${gpu.length}`);
    if (gpu.length === 1) {
      if (out.provider) r.error(`${path}: give either provider or execution_accelerators, not both`);
      out.provider = readAccelerator(r, gpu[0], join(join(at, 'gpu_execution_accelerator'), 0));
    }
  }
  return out;
}

const PARAMETERS = [
  'intra_op_thread_count', 'inter_op_thread_count', 'slots_per_instance', 'graph_optimization_level', 'max_output_bytes',
  'cudnn_conv_algo_search', 'gpu_mem_limit', 'arena_extend_strategy',
] as const;
const LEVELS: readonly GraphOptimizationLevel[] = ['disabled', 'basic', 'extended', 'all'];

/**
 * Reads `parameters`. Each value may be Triton's `{ "string_value": "2" }`, a string or a
 * number. Unknown keys are rejected like unknown fields (Triton would ignore them silently).
 */
export function readParameters(r: FieldReader, v: unknown, path: string): ParametersConfig {
  const o = r.object(v, path, PARAMETERS);
  const value = (k: string): unknown => {
    const x = o[k];
    if (typeof x === 'object' && x !== null && !Array.isArray(x)) return r.object(x, join(path, k), ['string_value']).string_value;
    return x;
  };
  const p: ParametersConfig = {};
  // 0 is "the default" in Triton's onnxruntime backend: here too (tensorwire's default).
  for (const k of ['intra_op_thread_count', 'inter_op_thread_count'] as const) {
    if (o[k] === undefined) continue;
    const n = r.int(value(k), join(path, k), 0, L.threadCount);
    if (n > 0) p[k] = n;
  }
  if (o.slots_per_instance !== undefined) p.slots_per_instance = r.int(value('slots_per_instance'), join(path, 'slots_per_instance'), 2, L.slotsPerInstance);
  if (o.max_output_bytes !== undefined) p.max_output_bytes = r.int(value('max_output_bytes'), join(path, 'max_output_bytes'), 1, L.maxOutputBytes);
  if (o.graph_optimization_level !== undefined) p.graph_optimization_level = r.oneOf(value('graph_optimization_level'), join(path, 'graph_optimization_level'), LEVELS);
  if (o.cudnn_conv_algo_search !== undefined) p.cudnn_conv_algo_search = enumOf(r, value('cudnn_conv_algo_search'), join(path, 'cudnn_conv_algo_search'), CUDNN_ALGO);
  if (o.gpu_mem_limit !== undefined) p.gpu_mem_limit = r.int(value('gpu_mem_limit'), join(path, 'gpu_mem_limit'), 1, L.memoryBytes);
  if (o.arena_extend_strategy !== undefined) p.arena_extend_strategy = enumOf(r, value('arena_extend_strategy'), join(path, 'arena_extend_strategy'), ARENA);
  return p;
}
