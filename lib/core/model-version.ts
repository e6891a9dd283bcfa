/**
 * One model version as a state machine:
 *
 *   loading ──▶ warming ──▶ ready ──▶ draining ──▶ unloading ──▶ unavailable
 *      │           │
 *      └───────────┴──▶ failed (never took traffic; reason kept)
 *
 * Only a `ready` version takes requests. Retiring lets queued and running requests finish
 * (draining), then frees the engine model (unloading).
 */
import * as path from 'node:path';
import { TensorwireError, toTensorwireError } from '../errors';
import { loadModel, type LoadedModel, type ModelMetadata } from '../engine';
import type { TensorwireMetrics } from '../metrics/registry';
import { validateRequest } from '../protocol/validate';
import type { InferRequest } from '../protocol/types';
import { completeConfig, engineLoadOptions, type CompleteOptions, type EffectiveConfig, type ModelConfig, type ScannedVersion } from '../repository';
import { warmupSampleData } from '../repository/warmup';
import { BatchRunner, type RunnerResult } from '../scheduler/batch-runner';
import type { BatcherConfigPatch } from '../scheduler/batcher-config';
import type { VersionState } from './types';
import { VersionStatistics } from './version-statistics';
import { generatedWarmup, warmupRequest } from './warmup-requests';

/** What a version needs from its surroundings. */
export interface VersionContext {
  metrics?: TensorwireMetrics;
  complete?: CompleteOptions;
  /** Called on every state change (logging, metrics). */
  onState?: (v: ModelVersion) => void;
}

export class ModelVersion {
  state: VersionState = 'loading';
  reason = 'loading';
  model: LoadedModel | undefined;
  runner: BatchRunner | undefined;
  effective: EffectiveConfig | undefined;
  /** Validation view of the effective config: what requests must send. */
  private servedMetadata: ModelMetadata | undefined;
  readonly stats: VersionStatistics;
  private retiring: Promise<void> | undefined;

  constructor(
    readonly name: string,
    readonly version: number,
    readonly source: ScannedVersion,
    /** Config of the model (undefined: none), as scanned or given to an explicit load. */
    readonly config: ModelConfig | undefined,
    /** Identifies the files and config this version was built from (hot swap compares it). */
    readonly fingerprint: string,
    private readonly context: VersionContext,
  ) {
    this.stats = new VersionStatistics(name, String(version), context.metrics?.model(name, String(version)));
    this.setState('loading', 'loading');
  }

  get label(): string {
    return `${this.name}:${this.version}`;
  }

  private setState(state: VersionState, reason: string): void {
    this.state = state;
    this.reason = reason;
    this.context.metrics?.setModelState(this.name, String(this.version), state);
    this.context.onState?.(this);
  }

  /** Loads and warms the version; never throws (a failure is state `failed` with its reason). */
  async start(): Promise<void> {
    try {
      const where = `model "${this.name}" version ${this.version}`;
      const complete = { ...this.context.complete, where };
      this.model = await loadModel(this.source.modelPath, engineLoadOptions(this.config, this.name, complete));
      this.effective = completeConfig(this.config, this.model.metadata, this.name, complete);
      this.servedMetadata = { inputs: this.effective.inputs, outputs: this.effective.outputs, batchable: this.effective.maxBatchSize > 0 };
      this.runner = new BatchRunner(this.model, { config: this.effective.batcher, listener: this.stats, name: this.label });
      this.setState('warming', 'warming up');
      this.stats.paused = true;
      await this.warmUp();
      this.stats.paused = false;
      if (this.state !== 'warming') return; // retired while warming
      this.context.metrics?.setModelMemory(this.name, String(this.version), this.model.memory());
      this.setState('ready', '');
    } catch (e) {
      const err = toTensorwireError(e);
      this.setState('failed', err.message);
      await this.release();
    }
  }

  /** Runs the configured warm-up samples, or one generated from the model's metadata. */
  private async warmUp(): Promise<void> {
    const effective = this.effective!;
    const samples = effective.warmup.length > 0 ? effective.warmup : generatedWarmup(effective.inputs, effective.maxBatchSize);
    for (const sample of samples) {
      const data = await warmupSampleData(sample, path.dirname(this.source.dir));
      for (let i = 0; i < sample.count; i++) {
        const request = warmupRequest(sample, data);
        try {
          await this.runner!.infer(request, validateRequest(request, this.servedMetadata!, effective.maxBatchSize));
        } catch (e) {
          const err = toTensorwireError(e);
          throw new TensorwireError('MODEL_LOAD_FAILED', `warm-up "${sample.name}" failed: ${err.message}`);
        }
      }
    }
  }

  /** Queues a request; the caller checked the state is ready. */
  infer(request: InferRequest, signal?: AbortSignal): Promise<RunnerResult> {
    if (this.state !== 'ready') return Promise.reject(new TensorwireError('UNAVAILABLE', `model "${this.name}" version ${this.version} is ${this.state}`, { retryAfterSeconds: 1 }));
    let validated;
    try {
      validated = validateRequest(request, this.servedMetadata!, this.effective!.maxBatchSize);
    } catch (e) {
      return Promise.reject(e);
    }
    request.inputs = validated.inputs;
    return this.runner!.infer(request, validated, signal);
  }

  /** Live batching change (no reload). */
  updateBatching(patch: BatcherConfigPatch): void {
    if (!this.runner) throw new TensorwireError('UNAVAILABLE', `model "${this.name}" version ${this.version} is ${this.state}`);
    this.runner.updateConfig(patch);
  }

  /** Queued plus running requests. */
  queueDepth(): number {
    return this.runner?.queueDepth() ?? 0;
  }

  /**
   * Stops taking traffic, lets queued and running requests finish (bounded by `drainMs`; past
   * it the rest are rejected UNAVAILABLE), then frees the engine model. Idempotent.
   */
  retire(drainMs = 30_000): Promise<void> {
    this.retiring ??= (async () => {
      if (this.state === 'failed') return;
      this.setState('draining', 'draining');
      if (this.runner) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([this.runner.drain(), new Promise<void>((r) => (timer = setTimeout(r, drainMs)))]);
        clearTimeout(timer);
        this.runner.close(`model "${this.name}" version ${this.version} was unloaded`);
      }
      this.setState('unloading', 'unloading');
      await this.release();
      this.setState('unavailable', 'unloaded');
      this.context.metrics?.removeModel(this.name, String(this.version));
    })();
    return this.retiring;
  }

  private async release(): Promise<void> {
    const model = this.model;
    this.model = undefined;
    if (model) await model.unload();
  }
}
