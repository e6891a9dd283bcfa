/**
 * Completes a model's configuration from the model's own metadata (Triton's "auto-complete"):
 * what the config leaves out is filled from what the ONNX file declares, what it states is
 * checked against the model, and the result is turned into the typed values the runtime needs
 * (engine LoadOptions, batcher settings, warm-up samples) plus the Triton-style JSON served at
 * `GET /v2/models/{name}/config`.
 */
import * as path from 'node:path';
import type { Datatype, LoadOptions, ModelMetadata, ProviderOptions, TensorSpec } from '../engine/types';
import { TensorwireError, isTensorwireError } from '../errors';
import { type BatcherConfig, DEFAULT_BATCHER_CONFIG, type BatcherConfigPatch, type QueuePolicy, mergeBatcherConfig } from '../scheduler/batcher-config';
import type { ModelConfig, ProviderConfig, QueuePolicyConfig, TensorConfig, VersionPolicy } from './config';
import { CONFIG_DEFAULTS } from './config-limits';
import { TRITON_DATATYPE } from './config';
import { toTritonJson } from './triton-json';
import { type WarmupSample, resolveWarmup } from './warmup';

/** Batch size a batchable model gets when its config names none (see config-limits.ts). */
export const DEFAULT_MAX_BATCH_SIZE = CONFIG_DEFAULTS.maxBatchSize;

/** Default `max_queue_delay_microseconds` of a batchable model (why it is small: config-limits.ts). */
export const DEFAULT_MAX_QUEUE_DELAY_US = CONFIG_DEFAULTS.maxQueueDelayUs;

/** The default model file in each version directory. */
export const DEFAULT_MODEL_FILENAME = CONFIG_DEFAULTS.modelFilename;

/** Options of completeConfig. */
export interface CompleteOptions {
  /** Provider when the config names none (no instance_group kind, or KIND_AUTO). Default CPU. */
  defaultProvider?: ProviderOptions;
  /** max_batch_size of a batchable model whose config names none. Default 64. */
  defaultMaxBatchSize?: number;
  /** instance_group count when the config names none. Default 1. */
  defaultInstances?: number;
  /** Start of every error message (the config file); default `model "<name>"`. */
  where?: string;
  /**
   * Directory a config's TensorRT `engine_cache_path` is resolved in (and must stay inside).
   * Without it, a config that names an engine cache path is refused.
   */
  trtCacheDir?: string;
  /** Largest output of one batch when the config's parameters.max_output_bytes names none (the addon's default: 64 MiB). */
  defaultMaxOutputBytes?: number;
}

/** Everything the runtime needs about one model version's configuration. */
export interface EffectiveConfig {
  name: string;
  /** The completed config, every default filled in. */
  config: ModelConfig;
  /** Triton-style config JSON, served at GET /v2/models/{name}[/versions/{v}]/config. */
  tritonConfig: Record<string, unknown>;
  /** Inputs as requests must send them: full shape, batch dimension (-1) first when maxBatchSize > 0, config narrowing applied. */
  inputs: TensorSpec[];
  /** Outputs, same conventions as `inputs`. */
  outputs: TensorSpec[];
  /** 0 when the model does not batch. */
  maxBatchSize: number;
  /** Options for lib/engine loadModel. */
  load: LoadOptions;
  /** Settings of the dynamic batcher (lib/scheduler). */
  batcher: BatcherConfig;
  versionPolicy: VersionPolicy;
  /** Warm-up samples to run before a version takes traffic (empty: none configured). */
  warmup: WarmupSample[];
  /** File name of the model inside each version directory. */
  modelFilename: string;
}

/** Throws when a config's `name` differs from its directory's name (Triton requires them equal). */
export function checkConfigName(config: ModelConfig, modelName: string, where: string): void {
  if (config.name !== undefined && config.name !== modelName) {
    throw new TensorwireError('INVALID_INPUT', `${where}: name is "${config.name}" but the model directory is "${modelName}"; they must match (or leave name out)`);
  }
}

const fmt = (dims: number[]) => `[${dims.join(', ')}]`;

/** Applies a config override to one model tensor, checking name, datatype and dims. */
function mergeTensors(kind: 'input' | 'output', model: TensorSpec[], overrides: TensorConfig[] | undefined, maxBatchSize: number, where: string): TensorSpec[] {
  const fail = (msg: string): never => {
    throw new TensorwireError('INVALID_INPUT', `${where}: ${msg}`);
  };
  for (const o of overrides ?? []) {
    if (!model.some((t) => t.name === o.name)) fail(`${kind} "${o.name}" is not an ${kind} of the model (its ${kind}s: ${model.map((t) => t.name).join(', ')})`);
  }
  return model.map((t) => {
    const dims = maxBatchSize > 0 ? t.shape.slice(1) : t.shape.slice();
    const o = overrides?.find((x) => x.name === t.name);
    if (!o) return { name: t.name, datatype: t.datatype, shape: maxBatchSize > 0 ? [-1, ...dims] : dims };
    if (o.data_type !== undefined && o.data_type !== t.datatype) {
      fail(`${kind} "${t.name}" data_type is ${TRITON_DATATYPE[o.data_type]} but the model declares ${TRITON_DATATYPE[t.datatype]}`);
    }
    let merged = dims;
    if (o.dims !== undefined) {
      const batchNote = maxBatchSize > 0 ? ' (dims leave out the batch dimension because max_batch_size > 0)' : '';
      if (o.dims.length !== dims.length) fail(`${kind} "${t.name}" dims ${fmt(o.dims)} do not match the model's ${fmt(dims)}${batchNote}`);
      merged = dims.map((d, i) => {
        const c = o.dims![i];
        if (d !== -1 && c !== -1 && d !== c) fail(`${kind} "${t.name}" dims ${fmt(o.dims!)} do not match the model's ${fmt(dims)} at dimension ${i}${batchNote}`);
        // The narrower of the two wins: a fixed size in either one fixes the dimension.
        return d === -1 ? c : d;
      });
    }
    return { name: t.name, datatype: t.datatype, shape: maxBatchSize > 0 ? [-1, ...merged] : merged };
  });
}

/** The first tensor whose first dimension is not dynamic (what makes a model unbatchable), if any. */
function unbatchableTensor(metadata: ModelMetadata): TensorSpec | undefined {
  return [...metadata.inputs, ...metadata.outputs].find((t) => t.shape.length === 0 || t.shape[0] !== -1);
}

function queuePatch(q: QueuePolicyConfig | undefined): Partial<QueuePolicy> | undefined {
  if (q === undefined) return undefined;
  const p: Partial<QueuePolicy> = {};
  if (q.max_queue_size !== undefined) p.maxQueueSize = q.max_queue_size;
  if (q.default_timeout_microseconds !== undefined) p.defaultTimeoutUs = q.default_timeout_microseconds;
  if (q.allow_timeout_override !== undefined) p.allowTimeoutOverride = q.allow_timeout_override;
  if (q.timeout_action !== undefined) p.timeoutAction = q.timeout_action;
  return p;
}

/** Batcher settings: the config's dynamic_batching over tensorwire's defaults. */
function batcherSettings(config: ModelConfig, maxBatchSize: number, where: string): BatcherConfig {
  const db = config.dynamic_batching;
  if (db !== undefined && maxBatchSize === 0) {
    throw new TensorwireError('INVALID_INPUT', `${where}: dynamic_batching needs max_batch_size > 0, but the model is served with max_batch_size 0`);
  }
  for (const size of db?.preferred_batch_size ?? []) {
    if (size > maxBatchSize) throw new TensorwireError('INVALID_INPUT', `${where}: dynamic_batching.preferred_batch_size ${size} is larger than max_batch_size ${maxBatchSize}`);
  }
  const patch: BatcherConfigPatch = {
    maxBatchSize,
    maxQueueDelayUs: db?.max_queue_delay_microseconds ?? (maxBatchSize > 0 ? DEFAULT_MAX_QUEUE_DELAY_US : 0),
  };
  if (db?.preferred_batch_size !== undefined) patch.preferredBatchSizes = db.preferred_batch_size;
  if (db?.priority_levels !== undefined) patch.priorityLevels = db.priority_levels;
  if (db?.default_priority_level !== undefined) patch.defaultPriorityLevel = db.default_priority_level;
  const dq = queuePatch(db?.default_queue_policy);
  if (dq) patch.defaultQueuePolicy = dq;
  if (db?.priority_queue_policy !== undefined) {
    patch.priorityQueuePolicy = {};
    for (const [level, q] of Object.entries(db.priority_queue_policy)) patch.priorityQueuePolicy[Number(level)] = queuePatch(q)!;
  }
  try {
    return mergeBatcherConfig(DEFAULT_BATCHER_CONFIG, patch);
  } catch (e) {
    if (isTensorwireError(e)) throw new TensorwireError(e.code, `${where}: ${e.message}`, { cause: e });
    throw e;
  }
}

/**
 * A config's engine cache path resolved inside `cacheDir`. The validator already refuses
 * absolute paths and `..`; this is the check that holds whatever the string is.
 */
function cachePathInside(configured: string, cacheDir: string | undefined, where: string): string {
  const field = 'optimization.provider.engine_cache_path';
  if (cacheDir === undefined) throw new TensorwireError('INVALID_INPUT', `${where}: ${field} is set but the server has no TensorRT cache directory (trtCacheDir)`);
  const root = path.resolve(cacheDir);
  const resolved = path.resolve(root, configured);
  const rel = path.relative(root, resolved);
  if (rel.startsWith('..') || path.isAbsolute(rel)) throw new TensorwireError('INVALID_INPUT', `${where}: ${field} must stay inside the server's TensorRT cache directory`);
  return resolved;
}

/** Config-form provider -> engine ProviderOptions (a cache path resolved inside `cacheDir`). */
function providerOptions(p: ProviderConfig, cacheDir: string | undefined, where: string): ProviderOptions {
  if (p.kind === 'cpu') return { kind: 'cpu' };
  if (p.kind === 'cuda') {
    const o: ProviderOptions = { kind: 'cuda' };
    if (p.device_id !== undefined) o.deviceId = p.device_id;
    if (p.memory_limit_bytes !== undefined) o.memoryLimitBytes = p.memory_limit_bytes;
    if (p.cudnn_conv_algo_search !== undefined) o.cudnnConvAlgoSearch = p.cudnn_conv_algo_search;
    if (p.arena_extend_strategy !== undefined) o.arenaExtendStrategy = p.arena_extend_strategy;
    return o;
  }
  const o: ProviderOptions = { kind: 'tensorrt' };
  if (p.device_id !== undefined) o.deviceId = p.device_id;
  if (p.fp16 !== undefined) o.fp16 = p.fp16;
  if (p.engine_cache_enable !== undefined) o.engineCacheEnable = p.engine_cache_enable;
  if (p.engine_cache_path !== undefined) o.engineCachePath = cachePathInside(p.engine_cache_path, cacheDir, where);
  if (p.max_workspace_size_bytes !== undefined) o.maxWorkspaceSizeBytes = p.max_workspace_size_bytes;
  if (p.profile_min_shapes !== undefined) o.profileMinShapes = p.profile_min_shapes;
  if (p.profile_opt_shapes !== undefined) o.profileOptShapes = p.profile_opt_shapes;
  if (p.profile_max_shapes !== undefined) o.profileMaxShapes = p.profile_max_shapes;
  return o;
}

/** Engine ProviderOptions -> config form (for the completed config and the served JSON). */
function providerConfig(p: ProviderOptions): ProviderConfig {
  if (p.kind === 'cpu') return { kind: 'cpu' };
  const snake = (s: string) => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(p)) if (v !== undefined) out[snake(k)] = v;
  return out as ProviderConfig;
}

/** The provider as GET .../config shows it: the engine cache path as the config gave it (relative), never the server's directory. */
function shownProvider(provider: ProviderOptions, configured: ProviderConfig | undefined): ProviderConfig {
  const shown = providerConfig(provider);
  if (shown.kind === 'tensorrt' && configured?.kind === 'tensorrt' && configured.engine_cache_path !== undefined) shown.engine_cache_path = configured.engine_cache_path;
  return shown;
}

/**
 * Triton's onnxruntime backend reads CUDA settings from the model's parameters too: they fill
 * what the provider leaves unset; a contradiction is an error, never a silent choice.
 */
function withCudaParameters(provider: ProviderOptions & { kind: 'cuda' }, p: NonNullable<ModelConfig['parameters']>, fail: (msg: string) => never): void {
  const pairs = [
    ['gpu_mem_limit', 'memoryLimitBytes'],
    ['cudnn_conv_algo_search', 'cudnnConvAlgoSearch'],
    ['arena_extend_strategy', 'arenaExtendStrategy'],
  ] as const;
  for (const [param, option] of pairs) {
    const given = p[param];
    if (given === undefined) continue;
    const current = provider[option];
    if (current !== undefined && current !== given) fail(`parameters.${param} (${given}) and the CUDA provider's ${param} (${current}) disagree`);
    (provider as Record<string, unknown>)[option] = given;
  }
}

/**
 * Resolves the provider from instance_group kind/gpus, optimization.provider and the server's
 * default. A contradiction (KIND_CPU with a CUDA provider, two different devices) is an error,
 * never a silent choice.
 */
function resolveProvider(config: ModelConfig, options: CompleteOptions, where: string): ProviderOptions {
  const fail = (msg: string): never => {
    throw new TensorwireError('INVALID_INPUT', `${where}: ${msg}`);
  };
  const group = config.instance_group?.[0] ?? {};
  const gpu = group.gpus?.[0];
  const explicit = config.optimization?.provider;
  let provider: ProviderOptions;
  if (explicit) {
    if (group.kind === 'KIND_CPU' && explicit.kind !== 'cpu') fail(`instance_group[0].kind is KIND_CPU but optimization.provider.kind is ${explicit.kind}`);
    if (group.kind === 'KIND_GPU' && explicit.kind === 'cpu') fail('instance_group[0].kind is KIND_GPU but optimization.provider.kind is cpu');
    provider = providerOptions(explicit, options.trtCacheDir, where);
  } else if (group.kind === 'KIND_CPU') {
    provider = { kind: 'cpu' };
  } else if (group.kind === 'KIND_GPU' || gpu !== undefined) {
    // A GPU instance with no provider named: the server's GPU default if it has one, else
    // ONNX Runtime's CUDA provider (what Triton's onnxruntime backend does for KIND_GPU).
    const d = options.defaultProvider;
    provider = d && d.kind !== 'cpu' ? { ...d } : { kind: 'cuda' };
  } else {
    provider = options.defaultProvider ? { ...options.defaultProvider } : { kind: 'cpu' };
  }
  if (provider.kind === 'cuda') withCudaParameters(provider, config.parameters ?? {}, fail);
  if (gpu !== undefined) {
    if (provider.kind === 'cpu') fail(`instance_group[0].gpus is [${gpu}] but the provider is cpu`);
    else if (explicit && explicit.kind !== 'cpu' && explicit.device_id !== undefined && explicit.device_id !== gpu) {
      fail(`instance_group[0].gpus is [${gpu}] but optimization.provider.device_id is ${explicit.device_id}`);
    } else provider.deviceId = gpu;
  }
  return provider;
}

/**
 * Completes `config` (undefined: no config file) for a model whose file declares `metadata`.
 * A model whose inputs and outputs all have a dynamic first dimension is batchable: it gets
 * max_batch_size 64 and dynamic batching unless the config says otherwise; any other model is
 * served with max_batch_size 0 and its exact shapes. Throws TensorwireError INVALID_INPUT when
 * the config contradicts the model (unknown tensor, other datatype, incompatible dims,
 * max_batch_size > 0 on a model without a batch dimension, ...).
 */
export function completeConfig(config: ModelConfig | undefined, metadata: ModelMetadata, modelName: string, options: CompleteOptions = {}): EffectiveConfig {
  const where = options.where ?? `model "${modelName}"`;
  const c: ModelConfig = config ?? {};
  checkConfigName(c, modelName, where);

  const blocker = unbatchableTensor(metadata);
  let maxBatchSize: number;
  if (c.max_batch_size !== undefined) {
    maxBatchSize = c.max_batch_size;
    if (maxBatchSize > 0 && blocker) {
      const kind = metadata.inputs.includes(blocker) ? 'input' : 'output';
      throw new TensorwireError(
        'INVALID_INPUT',
        `${where}: max_batch_size is ${maxBatchSize} but ${kind} "${blocker.name}" has shape ${fmt(blocker.shape)}; batching needs a dynamic (-1) first dimension on every input and output, so set max_batch_size to 0`,
      );
    }
  } else {
    maxBatchSize = blocker ? 0 : (options.defaultMaxBatchSize ?? DEFAULT_MAX_BATCH_SIZE);
  }

  const inputs = mergeTensors('input', metadata.inputs, c.input, maxBatchSize, where);
  const outputs = mergeTensors('output', metadata.outputs, c.output, maxBatchSize, where);
  const batcher = batcherSettings(c, maxBatchSize, where);
  const warmup = resolveWarmup(c.model_warmup, inputs, maxBatchSize, where);
  const load = engineLoadOptions(c, modelName, options, maxBatchSize);
  const provider = load.provider!;
  const instances = load.instances!;

  const versionPolicy: VersionPolicy = c.version_policy ?? { latest: { num_versions: 1 } };
  const modelFilename = c.default_model_filename ?? DEFAULT_MODEL_FILENAME;
  const dims = (t: TensorSpec) => (maxBatchSize > 0 ? t.shape.slice(1) : t.shape);
  const tensor = (t: TensorSpec): TensorConfig => ({ name: t.name, data_type: t.datatype as Datatype, dims: dims(t) });
  const completed: ModelConfig = {
    name: modelName,
    platform: 'onnxruntime_onnx',
    backend: 'onnxruntime',
    default_model_filename: modelFilename,
    max_batch_size: maxBatchSize,
    input: inputs.map(tensor),
    output: outputs.map(tensor),
    instance_group: [{ name: c.instance_group?.[0]?.name ?? modelName, kind: provider.kind === 'cpu' ? 'KIND_CPU' : 'KIND_GPU', count: instances, gpus: provider.kind === 'cpu' ? [] : [provider.deviceId ?? 0] }],
    optimization: { provider: shownProvider(provider, c.optimization?.provider) },
    version_policy: versionPolicy,
  };
  if (maxBatchSize > 0) {
    const queue = (q: QueuePolicy): QueuePolicyConfig => ({
      max_queue_size: q.maxQueueSize,
      default_timeout_microseconds: q.defaultTimeoutUs,
      allow_timeout_override: q.allowTimeoutOverride,
      timeout_action: q.timeoutAction,
    });
    completed.dynamic_batching = {
      preferred_batch_size: batcher.preferredBatchSizes,
      max_queue_delay_microseconds: batcher.maxQueueDelayUs,
      priority_levels: batcher.priorityLevels,
      default_priority_level: batcher.defaultPriorityLevel,
      default_queue_policy: queue(batcher.defaultQueuePolicy),
    };
    if (batcher.priorityQueuePolicy) {
      completed.dynamic_batching.priority_queue_policy = Object.fromEntries(Object.entries(batcher.priorityQueuePolicy).map(([k, q]) => [k, queue(q)]));
    }
  }
  if (c.parameters && Object.keys(c.parameters).length > 0) completed.parameters = { ...c.parameters };
  if (c.model_warmup) completed.model_warmup = c.model_warmup;
  // Shown so GET .../config tells the whole config (as JSON string parameters, triton-json.ts).
  if (c.routing) completed.routing = c.routing;
  if (c.response_cache) completed.response_cache = c.response_cache;

  return {
    name: modelName,
    config: completed,
    tritonConfig: toTritonJson(completed),
    inputs,
    outputs,
    maxBatchSize,
    load,
    batcher,
    versionPolicy,
    warmup,
    modelFilename,
  };
}

/**
 * The engine options of a model's config, known before the model is loaded (they depend on
 * the config only; `maxBatchSize` sizes the staging slots and defaults to the config's own,
 * else the default batch size).
 */
export function engineLoadOptions(config: ModelConfig | undefined, modelName: string, options: CompleteOptions = {}, maxBatchSize?: number): LoadOptions {
  const c: ModelConfig = config ?? {};
  const where = options.where ?? `model "${modelName}"`;
  const provider = resolveProvider(c, options, where);
  const instances = c.instance_group?.[0]?.count ?? options.defaultInstances ?? 1;
  const load: LoadOptions = { provider, instances, maxBatchSize: maxBatchSize ?? c.max_batch_size ?? options.defaultMaxBatchSize ?? DEFAULT_MAX_BATCH_SIZE };
  const p = c.parameters ?? {};
  if (p.intra_op_thread_count !== undefined) load.intraOpThreads = p.intra_op_thread_count;
  if (p.inter_op_thread_count !== undefined) load.interOpThreads = p.inter_op_thread_count;
  if (p.slots_per_instance !== undefined) load.slotsPerInstance = p.slots_per_instance;
  if (p.graph_optimization_level !== undefined) load.graphOptimizationLevel = p.graph_optimization_level;
  const maxOutputBytes = p.max_output_bytes ?? options.defaultMaxOutputBytes;
  if (maxOutputBytes !== undefined) load.maxOutputBytes = maxOutputBytes;
  return load;
}
