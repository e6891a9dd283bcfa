/**
 * tensorwire's model configuration: Triton's model config with Triton's (snake_case) field
 * names, read from `<model>/config.json` (or a Triton `config.pbtxt`, see pbtxt.ts).
 *
 * Values are normalised while validating: datatypes become KServe names (`FP32`; both
 * `TYPE_FP32` and `FP32` are accepted), instance kinds become `KIND_*`, Triton's string-valued
 * `parameters` become typed numbers, and Triton `execution_accelerators` become a tensorwire
 * `optimization.provider`. Unknown fields are rejected (a typo in a production config must not
 * pass silently); fields that Triton knows but tensorwire does not implement are rejected with
 * a message saying so.
 */
import type { Datatype, GraphOptimizationLevel } from '../engine/types';
import { TensorwireError } from '../errors';
import { truncateForMessage } from '../util/message-text';
import { CONFIG_LIMITS as L, maxTotalThreads } from './config-limits';
import { checkNesting, FieldReader, join, parseJsonText } from './field-reader';
import { readInstanceGroups, readOptimization, readParameters } from './config-runtime';
import { readRouting, readRoutingText, type RoutingPolicy } from './config-routing';
import { checkEnsemble, readCascade, readEnsembleScheduling, type CascadeConfig, type EnsembleScheduling } from './config-ensemble';

/** Tensor override of one input or output. `dims` excludes the batch dimension when max_batch_size > 0 (as in Triton). */
export interface TensorConfig {
  name: string;
  data_type?: Datatype;
  dims?: number[];
  /** Outputs only: a file in the model directory, one class label per line (classification extension). */
  label_filename?: string;
}

/** Triton ModelQueuePolicy. 0 means "no limit" / "no timeout", as in Triton. */
export interface QueuePolicyConfig {
  max_queue_size?: number;
  default_timeout_microseconds?: number;
  allow_timeout_override?: boolean;
  timeout_action?: 'REJECT' | 'DELAY';
}

/** Triton ModelDynamicBatching (the subset tensorwire implements). */
export interface DynamicBatchingConfig {
  preferred_batch_size?: number[];
  max_queue_delay_microseconds?: number;
  /** 0 disables priorities; otherwise levels 1..priority_levels, 1 the highest. */
  priority_levels?: number;
  default_priority_level?: number;
  default_queue_policy?: QueuePolicyConfig;
  /** Keyed by priority level (as a decimal string, like protobuf's JSON map keys). */
  priority_queue_policy?: Record<string, QueuePolicyConfig>;
}

/** Normalised instance kind. KIND_AUTO picks the GPU when the provider is CUDA/TensorRT. */
export type InstanceKind = 'KIND_CPU' | 'KIND_GPU' | 'KIND_AUTO';

/** Triton ModelInstanceGroup (tensorwire supports one group on one device). */
export interface InstanceGroupConfig {
  name?: string;
  kind?: InstanceKind;
  count?: number;
  gpus?: number[];
}

/** Execution provider in config form (snake_case names of lib/engine ProviderOptions). */
export type ProviderConfig =
  | { kind: 'cpu' }
  | {
      kind: 'cuda';
      device_id?: number;
      memory_limit_bytes?: number;
      cudnn_conv_algo_search?: 'EXHAUSTIVE' | 'HEURISTIC' | 'DEFAULT';
      arena_extend_strategy?: 'kNextPowerOfTwo' | 'kSameAsRequested';
    }
  | {
      kind: 'tensorrt';
      device_id?: number;
      fp16?: boolean;
      engine_cache_enable?: boolean;
      engine_cache_path?: string;
      max_workspace_size_bytes?: number;
      profile_min_shapes?: string;
      profile_opt_shapes?: string;
      profile_max_shapes?: string;
    };

/** `optimization`: the provider (also what Triton `execution_accelerators` are turned into). */
export interface OptimizationConfig {
  provider?: ProviderConfig;
  /** Triton's `graph.level`, read; validateConfig moves it to parameters.graph_optimization_level. */
  graph_optimization_level?: GraphOptimizationLevel;
}

/** Session parameters (Triton's `parameters`, typed). */
export interface ParametersConfig {
  intra_op_thread_count?: number;
  inter_op_thread_count?: number;
  /** tensorwire: staging slots per instance (>= 2, double buffering). */
  slots_per_instance?: number;
  /** tensorwire: ORT graph optimisation level. */
  graph_optimization_level?: GraphOptimizationLevel;
  /** tensorwire: largest output of one batch, bytes (default the server's --max-output-bytes). */
  max_output_bytes?: number;
  /**
   * Triton's onnxruntime backend: CUDA provider settings given as model parameters (numbers
   * 0-2 / 0-1 as ONNX Runtime's enums, or the names). They apply to a CUDA provider only, as
   * there; a `cuda` accelerator's own parameter wins only when they agree.
   */
  cudnn_conv_algo_search?: 'EXHAUSTIVE' | 'HEURISTIC' | 'DEFAULT';
  gpu_mem_limit?: number;
  arena_extend_strategy?: 'kNextPowerOfTwo' | 'kSameAsRequested';
}

/** Which versions of a model are served. Default: `{ latest: { num_versions: 1 } }`. */
export type VersionPolicy =
  | { latest: { num_versions: number } }
  | { all: Record<string, never> }
  | { specific: { versions: number[] } };

/** One input of a warm-up sample; exactly one data source (zero_data when none is given). */
export interface WarmupInputConfig {
  data_type?: Datatype;
  /** Without the batch dimension when max_batch_size > 0. */
  dims?: number[];
  zero_data?: boolean;
  random_data?: boolean;
  /** File name inside `<model>/warmup/`, raw little-endian tensor bytes (Triton's layout). */
  input_data_file?: string;
}

/** Triton ModelWarmup. */
export interface WarmupConfig {
  name: string;
  batch_size?: number;
  count?: number;
  inputs: Record<string, WarmupInputConfig>;
}

/** A validated, normalised model configuration. Every field is optional: completion fills the rest from the model. */
export interface ModelConfig {
  name?: string;
  platform?: 'onnxruntime_onnx' | 'ensemble' | 'tensorwire_cascade';
  backend?: 'onnxruntime';
  /** File inside each version directory; default `model.onnx`. */
  default_model_filename?: string;
  max_batch_size?: number;
  input?: TensorConfig[];
  output?: TensorConfig[];
  dynamic_batching?: DynamicBatchingConfig;
  instance_group?: InstanceGroupConfig[];
  optimization?: OptimizationConfig;
  parameters?: ParametersConfig;
  version_policy?: VersionPolicy;
  model_warmup?: WarmupConfig[];
  /** Triton's ensemble: the steps of a `platform: "ensemble"` model (config-ensemble.ts). */
  ensemble_scheduling?: EnsembleScheduling;
  /** tensorwire: the stages of a `platform: "tensorwire_cascade"` model (config-ensemble.ts). */
  cascade?: CascadeConfig;
  /** tensorwire: the traffic policy between versions (config-routing.ts, docs/routing.md). */
  routing?: RoutingPolicy;
  /** Triton's response cache: answers of this model are cached (server-wide budget --cache-bytes). */
  response_cache?: { enable: boolean };
}

/** KServe datatype -> Triton TYPE_* name. */
export const TRITON_DATATYPE: Readonly<Record<Datatype, string>> = {
  BOOL: 'TYPE_BOOL', UINT8: 'TYPE_UINT8', UINT16: 'TYPE_UINT16', UINT32: 'TYPE_UINT32', UINT64: 'TYPE_UINT64',
  INT8: 'TYPE_INT8', INT16: 'TYPE_INT16', INT32: 'TYPE_INT32', INT64: 'TYPE_INT64',
  FP16: 'TYPE_FP16', FP32: 'TYPE_FP32', FP64: 'TYPE_FP64', BF16: 'TYPE_BF16', BYTES: 'TYPE_STRING',
};

const DATATYPES = Object.keys(TRITON_DATATYPE) as Datatype[];

/** Reads a datatype written either Triton style (`TYPE_FP32`) or KServe style (`FP32`). */
export function readDatatype(r: FieldReader, v: unknown, path: string): Datatype {
  if (typeof v === 'string') {
    const bare = v.startsWith('TYPE_') ? v.slice(5) : v;
    if ((DATATYPES as string[]).includes(bare)) return bare as Datatype;
    // Triton spells string tensors TYPE_STRING; KServe calls them BYTES.
    if (bare === 'STRING') return 'BYTES';
  }
  return r.fail(path, `a datatype (${DATATYPES.map((d) => TRITON_DATATYPE[d]).join(', ')}, or the KServe names FP32, ...)`, v);
}

/** Dims: integers, each -1 (dynamic) or positive. */
export function readDims(r: FieldReader, v: unknown, path: string): number[] {
  return r.array(v, path, L.rank).map((d, i) => {
    const n = r.int(d, join(path, i), -1, L.dimension);
    if (n === 0) r.fail(join(path, i), '-1 (dynamic) or a positive integer', d);
    return n;
  });
}

/** A plain file name (no directories, no `..`), for default_model_filename and warm-up files. */
function readFileName(r: FieldReader, v: unknown, path: string): string {
  const s = r.string(v, path);
  if (s.includes('/') || s.includes('\\') || s.includes('\0') || s === '.' || s === '..') r.fail(path, 'a file name without directories', v);
  return s;
}

function readTensors(r: FieldReader, v: unknown, path: string, outputs = false): TensorConfig[] {
  const seen = new Set<string>();
  return r.array(v, path, L.tensors).map((item, i) => {
    const at = join(path, i);
    const o = r.object(item, at, outputs ? ['name', 'data_type', 'dims', 'label_filename'] : ['name', 'data_type', 'dims']);
    const name = r.string(o.name, join(at, 'name'));
    if (seen.has(name)) r.error(`${at}.name: "${name}" is listed twice`);
    seen.add(name);
    const t: TensorConfig = { name };
    if (o.data_type !== undefined) t.data_type = readDatatype(r, o.data_type, join(at, 'data_type'));
    if (o.dims !== undefined) t.dims = readDims(r, o.dims, join(at, 'dims'));
    if (o.label_filename !== undefined) t.label_filename = readFileName(r, o.label_filename, join(at, 'label_filename'));
    return t;
  });
}

function readQueuePolicy(r: FieldReader, v: unknown, path: string): QueuePolicyConfig {
  const o = r.object(v, path, ['max_queue_size', 'default_timeout_microseconds', 'allow_timeout_override', 'timeout_action']);
  const q: QueuePolicyConfig = {};
  if (o.max_queue_size !== undefined) q.max_queue_size = r.int(o.max_queue_size, join(path, 'max_queue_size'), 0, L.maxQueueSize);
  if (o.default_timeout_microseconds !== undefined) q.default_timeout_microseconds = r.int(o.default_timeout_microseconds, join(path, 'default_timeout_microseconds'), 0, L.timeoutUs);
  if (o.allow_timeout_override !== undefined) q.allow_timeout_override = r.bool(o.allow_timeout_override, join(path, 'allow_timeout_override'));
  if (o.timeout_action !== undefined) q.timeout_action = r.oneOf(o.timeout_action, join(path, 'timeout_action'), ['REJECT', 'DELAY'] as const);
  return q;
}

function readDynamicBatching(r: FieldReader, v: unknown, path: string): DynamicBatchingConfig {
  const o = r.object(v, path, [
    'preferred_batch_size', 'max_queue_delay_microseconds', 'priority_levels', 'default_priority_level',
    'default_queue_policy', 'priority_queue_policy',
  ]);
  const d: DynamicBatchingConfig = {};
  if (o.preferred_batch_size !== undefined) d.preferred_batch_size = r.ints(o.preferred_batch_size, join(path, 'preferred_batch_size'), 1, L.maxBatchSize, L.preferredBatchSizes);
  if (o.max_queue_delay_microseconds !== undefined) d.max_queue_delay_microseconds = r.int(o.max_queue_delay_microseconds, join(path, 'max_queue_delay_microseconds'), 0, L.maxQueueDelayUs);
  if (o.priority_levels !== undefined) d.priority_levels = r.int(o.priority_levels, join(path, 'priority_levels'), 0, L.priorityLevels);
  if (o.default_priority_level !== undefined) d.default_priority_level = r.int(o.default_priority_level, join(path, 'default_priority_level'), 0, L.priorityLevels);
  if (o.default_queue_policy !== undefined) d.default_queue_policy = readQueuePolicy(r, o.default_queue_policy, join(path, 'default_queue_policy'));
  const levels = d.priority_levels ?? 0;
  if (levels > 0) {
    const at = join(path, 'default_priority_level');
    if (d.default_priority_level === undefined) r.error(`${at} is required when priority_levels is ${levels} (a level from 1 to ${levels})`);
    if (d.default_priority_level < 1 || d.default_priority_level > levels) r.fail(at, `an integer from 1 to ${levels} (priority_levels)`, d.default_priority_level);
  } else if (d.default_priority_level) {
    r.error(`${join(path, 'default_priority_level')} is set but priority_levels is 0 (priorities are off)`);
  }
  if (o.priority_queue_policy !== undefined) {
    const at = join(path, 'priority_queue_policy');
    const m = r.object(o.priority_queue_policy, at);
    d.priority_queue_policy = {};
    const keys = Object.keys(m);
    if (keys.length > Math.max(levels, 1)) r.error(`${at}: ${keys.length} entries, but there are ${levels} priority levels (priority_levels)`);
    for (const key of keys) {
      const policy = m[key];
      const level = r.int(key, `${at} key`, 1, L.priorityLevels);
      if (level > levels) r.fail(`${at} key`, `a priority level from 1 to priority_levels (${levels})`, key);
      d.priority_queue_policy[String(level)] = readQueuePolicy(r, policy, join(at, key));
    }
  }
  return d;
}

function readVersionPolicy(r: FieldReader, v: unknown, path: string): VersionPolicy {
  const o = r.object(v, path, ['latest', 'all', 'specific']);
  const keys = Object.keys(o);
  if (keys.length !== 1) r.fail(path, 'exactly one of latest, all, specific', v);
  if (o.latest !== undefined) {
    const l = r.object(o.latest, join(path, 'latest'), ['num_versions']);
    return { latest: { num_versions: r.int(l.num_versions ?? 1, join(path, 'latest.num_versions'), 1, L.versions) } };
  }
  if (o.all !== undefined) {
    r.object(o.all, join(path, 'all'), []);
    return { all: {} };
  }
  const s = r.object(o.specific, join(path, 'specific'), ['versions']);
  const versions = r.ints(s.versions, join(path, 'specific.versions'), 1, L.versionNumber, L.versions);
  if (versions.length === 0) r.fail(join(path, 'specific.versions'), 'a non-empty list of versions', s.versions);
  return { specific: { versions } };
}

function readWarmup(r: FieldReader, v: unknown, path: string): WarmupConfig[] {
  return r.array(v, path, L.warmupSamples).map((item, i) => {
    const at = join(path, i);
    const o = r.object(item, at, ['name', 'batch_size', 'count', 'inputs']);
    const w: WarmupConfig = { name: r.string(o.name, join(at, 'name')), inputs: {} };
    if (o.batch_size !== undefined) w.batch_size = r.int(o.batch_size, join(at, 'batch_size'), 0, L.maxBatchSize);
    if (o.count !== undefined) w.count = r.int(o.count, join(at, 'count'), 1, L.warmupCount);
    const inputs = r.object(o.inputs, join(at, 'inputs'));
    const names = Object.keys(inputs);
    if (names.length === 0) r.fail(join(at, 'inputs'), 'an object naming at least one input', o.inputs);
    if (names.length > L.warmupInputs) r.error(`${join(at, 'inputs')}: at most ${L.warmupInputs} inputs, got ${names.length}`);
    for (const name of names) {
      const spec = inputs[name];
      const ip = join(join(at, 'inputs'), r.string(name, join(at, 'inputs key'), 256));
      const s = r.object(spec, ip, ['data_type', 'dims', 'zero_data', 'random_data', 'input_data_file']);
      const x: WarmupInputConfig = {};
      if (s.data_type !== undefined) x.data_type = readDatatype(r, s.data_type, join(ip, 'data_type'));
      if (s.dims !== undefined) x.dims = readDims(r, s.dims, join(ip, 'dims'));
      if (s.zero_data !== undefined) x.zero_data = r.bool(s.zero_data, join(ip, 'zero_data'));
      if (s.random_data !== undefined) x.random_data = r.bool(s.random_data, join(ip, 'random_data'));
      if (s.input_data_file !== undefined) x.input_data_file = readFileName(r, s.input_data_file, join(ip, 'input_data_file'));
      const sources = [x.zero_data, x.random_data, x.input_data_file !== undefined].filter(Boolean).length;
      if (sources > 1) r.error(`${ip}: give only one of zero_data, random_data, input_data_file`);
      // Warm-up allocates each input in full: bound its elements before that happens.
      const elements = (x.dims ?? []).reduce((n, d) => n * Math.max(d, 1), Math.max(w.batch_size ?? 1, 1));
      if (elements > L.warmupElements) r.error(`${ip}.dims: ${elements} elements (with batch_size), at most ${L.warmupElements}`);
      w.inputs[name] = x;
    }
    return w;
  });
}

/**
 * Instances × intra-op threads: each is an OS thread, and past a few per core they only
 * contend (thousands of them can also fail to be created).
 */
function checkThreads(r: FieldReader, c: ModelConfig): void {
  const instances = c.instance_group?.[0]?.count ?? 1;
  const threads = c.parameters?.intra_op_thread_count ?? 1;
  const max = maxTotalThreads();
  if (instances * threads > max) {
    r.error(
      `instance_group[0].count (${instances}) × parameters.intra_op_thread_count (${threads}) is ${instances * threads} threads; ` +
        `at most ${max} (${L.threadsPerCore} per CPU core) on this machine`,
    );
  }
}

/** A parameter's value: Triton's `{string_value}` or the bare string. */
function stringParameter(r: FieldReader, v: unknown, path: string): unknown {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? r.object(v, path, ['string_value']).string_value : v;
}

const TOP_FIELDS = [
  'name', 'platform', 'backend', 'default_model_filename', 'max_batch_size', 'input', 'output',
  'dynamic_batching', 'instance_group', 'optimization', 'parameters', 'version_policy', 'model_warmup',
  'routing', 'response_cache', 'ensemble_scheduling', 'cascade',
] as const;

/**
 * Validates and normalises an untyped config object (parsed JSON, or the object pbtxt.ts builds).
 * Throws TensorwireError INVALID_INPUT naming `where` and the field path.
 */
export function validateConfig(obj: unknown, where = 'config'): ModelConfig {
  checkNesting(obj, where);
  const r = new FieldReader(where);
  const o = r.object(obj, '', TOP_FIELDS);
  const c: ModelConfig = {};
  if (o.name !== undefined) c.name = r.string(o.name, 'name');
  if (o.platform !== undefined) {
    if (o.platform !== 'onnxruntime_onnx' && o.platform !== 'ensemble' && o.platform !== 'tensorwire_cascade') r.fail('platform', '"onnxruntime_onnx" (tensorwire serves ONNX models with ONNX Runtime), "ensemble" or "tensorwire_cascade"', o.platform);
    c.platform = o.platform as ModelConfig['platform'];
  }
  if (o.backend !== undefined) {
    if (o.backend !== 'onnxruntime') r.fail('backend', '"onnxruntime" (tensorwire serves ONNX models with ONNX Runtime)', o.backend);
    c.backend = 'onnxruntime';
  }
  if (o.default_model_filename !== undefined) c.default_model_filename = readFileName(r, o.default_model_filename, 'default_model_filename');
  if (o.max_batch_size !== undefined) c.max_batch_size = r.int(o.max_batch_size, 'max_batch_size', 0, L.maxBatchSize);
  if (o.input !== undefined) c.input = readTensors(r, o.input, 'input');
  if (o.output !== undefined) c.output = readTensors(r, o.output, 'output', true);
  if (o.dynamic_batching !== undefined) c.dynamic_batching = readDynamicBatching(r, o.dynamic_batching, 'dynamic_batching');
  if (o.instance_group !== undefined) c.instance_group = readInstanceGroups(r, o.instance_group, 'instance_group');
  if (o.optimization !== undefined) c.optimization = readOptimization(r, o.optimization, 'optimization');
  if (o.parameters !== undefined) {
    // Triton's ModelConfig has no field for a traffic policy or a cascade: they are JSON text in
    // string parameters (what GET .../config shows); the top-level objects are the older spelling.
    const { routing, cascade, ...session } = r.object(o.parameters, 'parameters');
    if (routing !== undefined) {
      if (o.routing !== undefined) r.error('give the traffic policy either as routing or as parameters.routing, not both');
      c.routing = readRoutingText(r, stringParameter(r, routing, 'parameters.routing'), 'parameters.routing');
    }
    if (cascade !== undefined) {
      if (o.cascade !== undefined) r.error('give the stages either as cascade or as parameters.cascade, not both');
      c.cascade = readCascade(r, parseJsonText(r, stringParameter(r, cascade, 'parameters.cascade'), 'parameters.cascade'), 'parameters.cascade');
    }
    c.parameters = readParameters(r, session, 'parameters');
  }
  const graphLevel = c.optimization?.graph_optimization_level;
  if (graphLevel !== undefined) {
    // One setting, two spellings (Triton's optimization.graph.level; tensorwire's parameter).
    const given = c.parameters?.graph_optimization_level;
    if (given !== undefined && given !== graphLevel) r.error(`optimization.graph.level (${graphLevel}) and parameters.graph_optimization_level (${given}) disagree`);
    c.parameters = { ...c.parameters, graph_optimization_level: graphLevel };
    delete c.optimization!.graph_optimization_level;
  }
  if (o.routing !== undefined) c.routing = readRouting(r, o.routing, 'routing');
  if (o.ensemble_scheduling !== undefined) c.ensemble_scheduling = readEnsembleScheduling(r, o.ensemble_scheduling, 'ensemble_scheduling');
  if (o.cascade !== undefined) c.cascade = readCascade(r, o.cascade, 'cascade');
  checkEnsemble(r, c);
  if (o.response_cache !== undefined) c.response_cache = { enable: r.bool(r.object(o.response_cache, 'response_cache', ['enable']).enable ?? false, 'response_cache.enable') };
  checkThreads(r, c);
  if (o.version_policy !== undefined) c.version_policy = readVersionPolicy(r, o.version_policy, 'version_policy');
  if (o.model_warmup !== undefined) c.model_warmup = readWarmup(r, o.model_warmup, 'model_warmup');
  return c;
}

/** Parses and validates the text of a config.json; `where` (the file path) starts every error message. */
export function parseConfigJson(text: string, where = 'config.json'): ModelConfig {
  checkConfigSize(text, where);
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (e) {
    throw new TensorwireError('INVALID_INPUT', `${where}: not valid JSON (${truncateForMessage((e as Error).message)})`);
  }
  return validateConfig(obj, where);
}

/** Throws INVALID_INPUT when a config's text is larger than CONFIG_LIMITS.configBytes. */
export function checkConfigSize(text: string, where: string): void {
  // Characters, not bytes: a cheap check that is never below the byte count's bound by more than 4×.
  if (text.length > L.configBytes) throw new TensorwireError('INVALID_INPUT', `${where}: ${text.length} characters, larger than a config may be (${L.configBytes})`);
}
