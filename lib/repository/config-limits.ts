/**
 * Every bound and default a model configuration can set, in one table: config.json,
 * config.pbtxt, a load request's config override and the live batching route
 * (POST /v2/models/{m}/batching) all validate against these, and docs/repository.md lists
 * them. Each bound is there because something is sized by the value (queues, threads,
 * staging memory, timers) and a hostile or mistyped config must get a 400 naming the field,
 * not exhaust the process.
 *
 * The engine limits (instances, slots, threads, batch size) must stay within the addon's own
 * (native/model_options.cpp); `CONFIG_LIMITS` is exported so a test can compare the two.
 */
import { availableParallelism } from 'node:os';

/** Upper bounds (inclusive) of the numbers a config can set. */
export const CONFIG_LIMITS = Object.freeze({
  /** max_batch_size: staging slots are sized by it (instances × slots × batch × sample bytes). */
  maxBatchSize: 4096,
  /** dynamic_batching.preferred_batch_size: entries in the list. */
  preferredBatchSizes: 64,
  /** dynamic_batching.max_queue_delay_microseconds: 60 s. */
  maxQueueDelayUs: 60_000_000,
  /** dynamic_batching.priority_levels: one queue per level. */
  priorityLevels: 100,
  /** *_queue_policy.max_queue_size: requests one level may hold (0 = unbounded). */
  maxQueueSize: 1_000_000,
  /** *_queue_policy.default_timeout_microseconds: 1 hour. */
  timeoutUs: 3_600_000_000,
  /** instance_group[0].count: the addon refuses more than 64 instances. */
  instanceCount: 64,
  /** instance_group[0].gpus and provider device_id: device ordinals. */
  deviceId: 63,
  /** parameters.intra_op_thread_count / inter_op_thread_count: the addon's bound. */
  threadCount: 256,
  /**
   * instances × intra_op_thread_count, per CPU core: more threads than this only contend
   * (and each is a real OS thread; thousands of them can fail to be created).
   */
  threadsPerCore: 8,
  /** parameters.max_output_bytes: the addon's ceiling (16 GiB). */
  maxOutputBytes: 16 * 1024 ** 3,
  /** parameters.slots_per_instance (at least 2: double buffering): the addon's bound. */
  slotsPerInstance: 16,
  /** input / output: tensors listed. */
  tensors: 1024,
  /** dims: rank of a tensor. */
  rank: 16,
  /** dims: one dimension (ONNX Runtime's shapes are int64; nothing real is larger). */
  dimension: 2 ** 31 - 1,
  /** model_warmup: samples. */
  warmupSamples: 64,
  /** model_warmup[].count: runs of one sample. */
  warmupCount: 1000,
  /** model_warmup[].inputs: inputs of one sample. */
  warmupInputs: 1024,
  /** model_warmup[].inputs[].dims × batch_size: elements of one warm-up input (each is allocated). */
  warmupElements: 64 * 1024 * 1024,
  /** version_policy.latest.num_versions and specific.versions entries. */
  versions: 64,
  /** A version number (the scanner reads version directories of up to 15 digits). */
  versionNumber: 999_999_999_999_999,
  /** provider memory_limit_bytes / max_workspace_size_bytes: 1 TiB. */
  memoryBytes: 2 ** 40,
  /** Any string value (names, file names, shape strings). */
  stringChars: 4096,
  /** Nesting of a config (JSON objects and arrays, pbtxt messages). */
  nestingDepth: 64,
  /** Size of a config.json / config.pbtxt file, and of a load request's config override. */
  configBytes: 1024 * 1024,
  /** ensemble_scheduling.step: steps of an ensemble. */
  ensembleSteps: 64,
  /** cascade.stages: models of a cascade. */
  cascadeStages: 8,
  /** routing.weights / routing.labels: versions (and labels) one traffic policy names. */
  routingVersions: 16,
  /** routing weights: each an integer share of 0..100 (a split sums them; nothing else is implied). */
  routingWeight: 100,
  /** routing.guard.window_s: seconds of history the guard compares (1 hour). */
  routingWindowS: 3600,
  /** routing.guard.min_requests: requests of the guarded version before it is judged. */
  routingMinRequests: 1_000_000,
  /** routing.guard.max_p99_ratio: p99 of the guarded version over the stable one's. */
  routingMaxP99Ratio: 1000,
  /** routing labels and the route_key header name: characters. */
  routingNameChars: 64,
  /** Keys longer than this get no "did you mean" hint (the edit distance is quadratic). */
  hintKeyChars: 64,
});

/** Defaults a config leaves out. */
export const CONFIG_DEFAULTS = Object.freeze({
  /** max_batch_size of a batchable model whose config names none (Triton's auto-complete uses a similar value). */
  maxBatchSize: 64,
  /**
   * max_queue_delay_microseconds of a batchable model. Small on purpose: the batcher
   * dispatches at once when an instance is idle, so the delay is only ever paid while every
   * instance is busy, when a request could not run anyway; it caps the extra latency at 0.1 ms
   * (below a loopback HTTP round trip) while letting requests that arrive in the same burst
   * join one batch.
   */
  maxQueueDelayUs: 100,
  /** The model file in each version directory. */
  modelFilename: 'model.onnx',
  /** TensorRT engine cache directory, relative to the repository (see trtCacheDir). */
  trtCacheDirName: '.tensorwire-trt-cache',
});

/** Most instances × intra_op_thread_count on this machine. */
export function maxTotalThreads(): number {
  return CONFIG_LIMITS.threadsPerCore * availableParallelism();
}
