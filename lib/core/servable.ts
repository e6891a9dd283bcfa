/**
 * The seam between a model version's lifecycle (ModelVersion: states, warm-up, live config,
 * retiring) and what actually computes its answers. Today one implementation: an ONNX model
 * behind the dynamic batcher (onnx-servable.ts). An ensemble or a lazily loaded model is one
 * more implementation of this interface, not a special case in the version or the router.
 *
 * Ownership: a factory hands over a servable that is loaded and ready to run requests (not
 * yet warmed up); from then on the version owns it and ends it with `close` exactly once
 * (closing twice is harmless). A factory that fails frees whatever it took before it rejects.
 */
import type { ModelMemory, ModelMetadata } from '../engine/types';
import type { InferRequest } from '../protocol/types';
import type { CompleteOptions, EffectiveConfig, ModelConfig, ScannedVersion } from '../repository';
import type { BatchRunnerListener, RunnerResult } from '../scheduler/batch-runner';

/** Something that answers inference requests for one model version. */
export interface Servable {
  /** The configuration in force, completed from the model (tensors, batching, warm-up). */
  readonly effective: EffectiveConfig;
  /** What the model itself declares (the codecs and the front ends' validation use it). */
  readonly metadata: ModelMetadata;
  /** False when the version must not be warmed up before it serves (an ensemble: its steps warm themselves). Default true. */
  readonly runsWarmup?: boolean;
  /** Sessions (or their equivalent) answering in parallel. */
  readonly instanceCount: number;
  /**
   * Validates and queues one request (INVALID_INPUT naming the tensor at fault). Ownership as
   * InferenceService.infer: the servable owns the request until the promise settles; aborting
   * `signal` withdraws it and the promise rejects CANCELLED.
   */
  infer(request: InferRequest, signal?: AbortSignal): Promise<RunnerResult>;
  /** What `config` would complete to on this model; INVALID_INPUT naming the field when it does not fit. Changes nothing. */
  checkConfig(config: ModelConfig | undefined): EffectiveConfig;
  /** Applies a config that checkConfig produced: the batching part at once, no reload. */
  applyConfig(effective: EffectiveConfig): void;
  /** Host and device bytes it holds now. */
  memory(): ModelMemory;
  /** Requests waiting to run (running ones not counted). */
  queueDepth(): number;
  /**
   * Lets queued and running requests finish, for up to `ms`; past it rejects those still
   * queued UNAVAILABLE (with `reason`) and gives the running ones up to `graceMs` more.
   * New requests are refused from the moment the time runs out.
   */
  drain(ms: number, graceMs: number, reason: string): Promise<void>;
  /** Rejects whatever is still queued (UNAVAILABLE, `reason`) and frees everything. Idempotent. */
  close(reason: string): Promise<void>;
}

/** What a factory needs to build the servable of one version. */
export interface ServableSpec {
  /** Model name, for messages and the batcher's label. */
  readonly name: string;
  readonly version: number;
  /** The version's directory and model file, as scanned. */
  readonly source: ScannedVersion;
  /** The model config with the live overlay applied (undefined: none, everything completed from the model). */
  readonly config: ModelConfig | undefined;
  /** How to complete the config; `where` starts every error message. */
  readonly complete: CompleteOptions & { where: string };
  /** Statistics hooks: every batch and request the servable runs is reported here. */
  readonly listener: BatchRunnerListener;
}

/** Builds a loaded servable (rejects with the reason when it cannot; then nothing is held). */
export type ServableFactory = (spec: ServableSpec) => Promise<Servable>;
