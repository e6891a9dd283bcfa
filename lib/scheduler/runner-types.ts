/**
 * The types around BatchRunner: the slice of the engine it drives, what the validator hands
 * it, what it answers, and its metrics hooks.
 */
import type { ErrorCode } from '../errors';
import type { BatchOutput, BatchResult, BatchTiming, ModelMetadata } from '../engine/types';
import type { StageTimings } from '../protocol/types';
import type { IsolationOutcome } from './batch-isolation';
import type { BatcherConfigPatch } from './batcher-config';
import type { Clock } from './clock';

/** The staging slot API the runner uses (the engine's StagingSlot). */
export interface RunnerSlot {
  readonly instance: number;
  inputView(i: number, byteLength: number): Uint8Array;
  run(shapes: number[][]): Promise<BatchResult>;
  cancel(): unknown;
  release(): void;
}

/** The loaded-model API the runner uses (the engine's LoadedModel). */
export interface RunnerModel {
  readonly metadata: ModelMetadata;
  /** Rows a slot holds; 0 = not batchable. */
  readonly maxBatchSize: number;
  readonly instanceCount: number;
  acquireSlot(): RunnerSlot | undefined;
  freeSlotCount(): number;
}

/** What the request validator worked out (the runner trusts it). */
export interface ValidatedRequest {
  /** Rows of the request's batch dimension (ignored for a model that does not batch). */
  batchSize: number;
  /** Requests batch together only when their keys are equal (e.g. same non-batch dimensions). */
  compatKey: string;
}

/** One request's answer: its outputs (in requested order, or model order) and where its time went. */
export interface RunnerResult {
  outputs: BatchOutput[];
  timings: StageTimings;
}

/** Hooks for metrics and statistics. Called synchronously on the JS thread; keep them cheap and never throw. */
export interface BatchRunnerListener {
  /** A request entered the queue. */
  onEnqueue(): void;
  /** `count` requests left the queue (dispatched, expired, cancelled, dropped or closed). */
  onDequeue(count: number): void;
  /** A batch of `batchSize` rows finished; timing includes the runner's own copies. */
  onBatch(batchSize: number, timing: BatchTiming): void;
  /** Every `infer` call ends in exactly one onComplete; timings only on success. */
  onComplete(outcome: 'success' | 'failure', reason: ErrorCode | undefined, timings: StageTimings | undefined): void;
  /**
   * A batch of several requests failed in the engine and was taken apart ('isolated': only the
   * requests that fail alone got the error; 'gave_up': no part succeeded within the budget, the
   * rest got the error) after `reruns` re-runs, or was not ('skipped': too many failed batches
   * were being taken apart already; every request got the error).
   */
  onIsolation?(outcome: IsolationOutcome, reruns: number): void;
}

/** Options of a runner. */
export interface BatchRunnerOptions {
  /** Batching config over the defaults; maxBatchSize defaults to the model's. */
  config?: BatcherConfigPatch;
  clock?: Clock;
  listener?: BatchRunnerListener;
  /** Used in error messages, e.g. "mlp:1". */
  name?: string;
}
