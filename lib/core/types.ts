/**
 * The server's API, independent of HTTP and WebSocket (Triton's "server core"):
 * the HTTP and stream front ends call only this; the implementation combines the
 * repository, the schedulers and the engine.
 */
import type { ModelMetadata } from '../engine/types';
import type { InferRequest, InferResponse } from '../protocol/types';
import type { QueuePolicyConfig } from '../repository/config';

/** State of one model version; the legal moves between them are the table in version-state.ts. */
export type VersionState = 'loading' | 'warming' | 'ready' | 'draining' | 'unloading' | 'unavailable' | 'failed';

/** One row of the repository index (KServe repository extension). */
export interface RepositoryIndexEntry {
  name: string;
  version: string;
  state: VersionState;
  reason: string;
}

/** What admission answers: the version that would handle the request. */
export interface AdmittedVersion {
  readonly name: string;
  readonly version: number;
}

/** Readiness of a model (version), with the reason when not ready. */
export interface Readiness {
  ready: boolean;
  reason?: string;
}

/** KServe v2 model metadata response. */
export interface ModelMetadataResponse {
  name: string;
  versions: string[];
  platform: string;
  inputs: { name: string; datatype: string; shape: number[] }[];
  outputs: { name: string; datatype: string; shape: number[] }[];
}

/** A count and the nanoseconds it took in all (Triton's StatisticDuration). */
export interface StatisticDuration {
  count: number;
  ns: number;
}

/**
 * One version's statistics, every field Triton's core writes (tritonserver.cc,
 * TRITONSERVER_ServerModelStatistics), so readers such as perf_analyzer find each one.
 */
export interface ModelStatistics {
  name: string;
  version: string;
  /** Milliseconds since the epoch of the last answered request; 0 before the first. */
  last_inference: number;
  inference_count: number;
  execution_count: number;
  inference_stats: Record<'success' | 'fail' | 'queue' | 'compute_input' | 'compute_infer' | 'compute_output' | 'cache_hit' | 'cache_miss', StatisticDuration>;
  /** Keyed by response index ("0", "1"...) for decoupled models; empty otherwise. */
  response_stats: Record<string, Record<'compute_infer' | 'compute_output' | 'success' | 'fail' | 'empty_response' | 'cancel', StatisticDuration>>;
  batch_stats: { batch_size: number; compute_input: StatisticDuration; compute_infer: StatisticDuration; compute_output: StatisticDuration }[];
  memory_usage: { type: string; id: number; byte_size: number }[];
}

/** Body of a live change (POST /v2/models/{m}/batching): the `dynamic_batching` fields of a Triton config, plus the instance count. Every field is optional. */
export interface BatchingChange {
  max_queue_delay_microseconds?: number;
  preferred_batch_size?: number[];
  /** Fields left out keep their current value. */
  default_queue_policy?: QueuePolicyConfig;
  priority_levels?: number;
  default_priority_level?: number;
  /** Replaces the per-level policies as a whole, keyed by level. */
  priority_queue_policy?: Record<string, QueuePolicyConfig>;
  /** Instances (sessions) per version: a change reloads the model beside the serving one. */
  instance_count?: number;
}

/** What GET /v2/models/{m}/batching answers: the settings in force on the version that serves unversioned requests. */
export interface BatchingSettings {
  name: string;
  /** Versions taking traffic (the settings apply to each). */
  versions: string[];
  max_batch_size: number;
  max_queue_delay_microseconds: number;
  preferred_batch_size: number[];
  default_queue_policy: Required<QueuePolicyConfig>;
  priority_levels: number;
  default_priority_level: number;
  priority_queue_policy?: Record<string, Required<QueuePolicyConfig>>;
  instance_count: number;
  /** True when a live change is in force (it is dropped when the model's configuration changes). */
  live: boolean;
}

/** What the front ends need from the server core. Every method throws TensorwireError on failure. */
export interface InferenceService {
  /** False once shutdown has begun. */
  isLive(): boolean;
  /** True when every model that should be loaded is loaded and warmed, and not shutting down. */
  isReady(): boolean;
  modelReadiness(name: string, version?: string): Readiness;
  modelMetadata(name: string, version?: string): ModelMetadataResponse;
  /** Engine metadata of the version that would serve (for validation and codecs). */
  servingMetadata(name: string, version?: string): { version: string; metadata: ModelMetadata; maxBatchSize: number };
  modelConfig(name: string, version?: string): Record<string, unknown>;
  /**
   * Admission without inference: the version that would handle a request for `name` (and
   * `version`, if given) now, or NOT_FOUND (unknown model or version) / UNAVAILABLE (shutting
   * down, or the version exists but does not serve; with Retry-After). Cheap: no I/O, no
   * allocation beyond the error. `infer` runs the same check. Optional: a core without it
   * leaves admission to `infer`.
   */
  admit?(name: string, version?: string): AdmittedVersion;
  /**
   * Runs one request through the model's dynamic batcher. Ownership: after this is called the
   * scheduler owns the request until the promise settles; aborting `signal` withdraws it from
   * the queue (or cancels its batch) and the promise rejects with CANCELLED.
   */
  /**
   * Counts a request for `name` that the front end could not decode as a failure of the
   * version that would have served it (`reason`: an error code). False when none serves.
   * Optional: a core without it counts nothing for such requests.
   */
  recordRefused?(name: string, version: string | undefined, reason: string): boolean;
  infer(name: string, version: string | undefined, request: InferRequest, signal?: AbortSignal): Promise<InferResponse>;
  statistics(name?: string, version?: string): ModelStatistics[];
  repositoryIndex(readyOnly?: boolean): RepositoryIndexEntry[];
  /**
   * The index as Triton gives it: also the models of the repository that are not loaded (state
   * unavailable, reason "not loaded"), found by scanning the repository. Optional: front ends
   * fall back to repositoryIndex().
   */
  scanRepositoryIndex?(readyOnly?: boolean): Promise<RepositoryIndexEntry[]>;
  /**
   * Loads (or reloads) `name`; `options.directory` loads it from that directory instead of the
   * repository's `<repository>/<name>` (files uploaded with the load request).
   */
  loadModel(name: string, config?: Record<string, unknown>, options?: { directory?: string }): Promise<void>;
  unloadModel(name: string): Promise<void>;
  /**
   * Live change of a serving model's batching (at once, no reload) and instance count (a hot
   * swap of the same files); resolves with the settings in force. Optional: a core without live
   * configuration leaves it out and the route answers 404.
   */
  updateBatching?(name: string, change: BatchingChange): Promise<BatchingSettings>;
  /** The batching settings and instance count in force (optional, as updateBatching). */
  batchingSettings?(name: string): BatchingSettings;
}
