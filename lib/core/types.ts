/**
 * The server's API, independent of HTTP and WebSocket (Triton's "server core"):
 * the HTTP and stream front ends call only this; the implementation combines the
 * repository, the schedulers and the engine.
 */
import type { ModelMetadata } from '../engine/types';
import type { InferRequest, InferResponse } from '../protocol/types';

/** State of one model version (a state machine: loading -> warming -> ready -> draining -> unloading -> unavailable; failed from loading/warming). */
export type VersionState = 'loading' | 'warming' | 'ready' | 'draining' | 'unloading' | 'unavailable' | 'failed';

/** One row of the repository index (KServe repository extension). */
export interface RepositoryIndexEntry {
  name: string;
  version: string;
  state: VersionState;
  reason: string;
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

/** Triton-style statistics of one model version. */
export interface ModelStatistics {
  name: string;
  version: string;
  last_inference: number;
  inference_count: number;
  execution_count: number;
  inference_stats: Record<'success' | 'fail' | 'queue' | 'compute_input' | 'compute_infer' | 'compute_output', { count: number; ns: number }>;
  batch_stats: { batch_size: number; compute_input: { count: number; ns: number }; compute_infer: { count: number; ns: number }; compute_output: { count: number; ns: number } }[];
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
   * Runs one request through the model's dynamic batcher. Ownership: after this is called the
   * scheduler owns the request until the promise settles; aborting `signal` withdraws it from
   * the queue (or cancels its batch) and the promise rejects with CANCELLED.
   */
  infer(name: string, version: string | undefined, request: InferRequest, signal?: AbortSignal): Promise<InferResponse>;
  statistics(name?: string, version?: string): ModelStatistics[];
  repositoryIndex(readyOnly?: boolean): RepositoryIndexEntry[];
  loadModel(name: string, config?: Record<string, unknown>): Promise<void>;
  unloadModel(name: string): Promise<void>;
}
