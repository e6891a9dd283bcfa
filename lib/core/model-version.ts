/**
 * One model version as a state machine:
 *
 *   loading ──▶ warming ──▶ ready ──▶ draining ──▶ unloading ──▶ unavailable
 *      │           │
 *      └───────────┴──▶ failed (never took traffic; reason kept)
 *
 * Only a `ready` version takes requests. Retiring lets queued and running requests finish
 * (draining), then frees the engine model (unloading). Which version takes traffic, and what
 * the per-version metrics show when two objects share a version number (a reload of changed
 * files), is ServedModel's business; a version only reports its own changes (`onState`).
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
import { fullBatcherPatch, withLive, type LiveConfig } from './live-config';
import type { VersionState } from './types';
import { relativeToDirectory } from '../util/message-text';
import { VersionStatistics } from './version-statistics';
import { generatedWarmup, warmupRequest } from './warmup-requests';

/** Least time batches already running get to finish once the drain time is over (ms). */
const RUNNING_GRACE_MS = 10_000;

/** What a version needs from its surroundings. */
export interface VersionContext {
  /** Where its request statistics go (the state gauge is the caller's, through onState). */
  metrics?: TensorwireMetrics;
  complete?: CompleteOptions;
  /** Called on every state change (logging, metrics). */
  onState?: (v: ModelVersion) => void;
}

/** One model version: load, warm up, serve, drain, free. See the file comment. */
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

  /** The live overlay this version's batching follows (see live-config.ts). */
  private live: LiveConfig | undefined;

  constructor(
    readonly name: string,
    readonly version: number,
    readonly source: ScannedVersion,
    /** Config of the model (undefined: none), as scanned or given to an explicit load. */
    readonly baseConfig: ModelConfig | undefined,
    /** Live changes on top of `baseConfig`; the instance count is fixed at load, batching follows `applyLive`. */
    live: LiveConfig | undefined,
    /** Identifies the files and config this version was built from (hot swap compares it). */
    readonly fingerprint: string,
    private readonly context: VersionContext,
  ) {
    this.live = live;
    this.stats = new VersionStatistics(name, String(version), context.metrics?.model(name, String(version)));
    this.setState('loading', 'loading');
  }

  /** The live overlay in force on this version. */
  get liveConfig(): LiveConfig | undefined {
    return this.live;
  }

  /** Instances (sessions) this version runs; 0 until loaded. */
  get instanceCount(): number {
    return this.model?.instanceCount ?? 0;
  }

  private get where(): string {
    return `model "${this.name}" version ${this.version}`;
  }

  get label(): string {
    return `${this.name}:${this.version}`;
  }

  private setState(state: VersionState, reason: string): void {
    this.state = state;
    this.reason = reason;
    this.context.onState?.(this);
  }

  /** Loads and warms the version; never throws (a failure is state `failed` with its reason). */
  async start(): Promise<void> {
    try {
      const complete = { ...this.context.complete, where: this.where };
      const config = withLive(this.baseConfig, this.live, this.where);
      this.model = await loadModel(this.source.modelPath, engineLoadOptions(config, this.name, complete));
      this.effective = completeConfig(config, this.model.metadata, this.name, complete);
      this.servedMetadata = { inputs: this.effective.inputs, outputs: this.effective.outputs, batchable: this.effective.maxBatchSize > 0 };
      this.runner = new BatchRunner(this.model, { config: this.effective.batcher, listener: this.stats, name: this.label });
      this.setState('warming', 'warming up');
      this.stats.paused = true;
      try {
        await this.warmUp();
      } finally {
        this.stats.paused = false;
      }
      if (this.state !== 'warming') return; // retired while warming
      this.setState('ready', '');
    } catch (e) {
      // ONNX Runtime's messages end with a newline; the reason goes into one-line logs and JSON.
      // The reason reaches clients (index, load answers): paths relative to the repository.
      const reason = relativeToDirectory(toTensorwireError(e).message.trim(), path.dirname(path.dirname(this.source.dir)), path.sep);
      this.runner?.close(`it failed to load: ${reason}`);
      this.setState('failed', reason);
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

  /**
   * What this version's effective config would be with `live` (its own instance count kept:
   * that one needs a reload). Throws INVALID_INPUT naming the field when the change does not
   * fit this version (a preferred size above its max_batch_size...). Changes nothing.
   */
  checkLive(live: LiveConfig | undefined): EffectiveConfig {
    if (!this.model) throw new TensorwireError('UNAVAILABLE', `${this.where} is ${this.state}`);
    const complete = { ...this.context.complete, where: this.where };
    return completeConfig(withLive(this.baseConfig, this.keepInstances(live), this.where), this.model.metadata, this.name, complete);
  }

  /** Applies the batching of `live` now, without a reload (queued requests follow the new settings). */
  applyLive(live: LiveConfig | undefined): void {
    const effective = this.checkLive(live);
    this.runner!.updateConfig(fullBatcherPatch(effective));
    this.effective = effective;
    this.live = this.keepInstances(live);
  }

  /** `live`'s batching with the instance count this version was loaded with. */
  private keepInstances(live: LiveConfig | undefined): LiveConfig {
    const out: LiveConfig = {};
    if (live?.dynamic_batching !== undefined) out.dynamic_batching = live.dynamic_batching;
    if (this.live?.instance_count !== undefined) out.instance_count = this.live.instance_count;
    return out;
  }

  /** Requests waiting in its queue (running batches not counted). */
  queueDepth(): number {
    return this.runner?.queueDepth() ?? 0;
  }

  /**
   * Stops taking traffic, lets queued and running requests finish (bounded by `drainMs`; past
   * it the queued ones are rejected UNAVAILABLE and the batches already running get up to
   * another max(drainMs, 10 s) to finish), then frees the engine model. Idempotent.
   */
  retire(drainMs = 30_000): Promise<void> {
    this.retiring ??= (async () => {
      if (this.state === 'failed') return;
      this.setState('draining', 'draining');
      if (this.runner) {
        await drained(this.runner, drainMs);
        // Past the drain time: what is still queued is rejected; batches already handed to the
        // engine still finish (unloading would cancel them), bounded again in case one hangs.
        this.runner.close(`model "${this.name}" version ${this.version} was unloaded`);
        await drained(this.runner, Math.max(drainMs, RUNNING_GRACE_MS));
      }
      this.setState('unloading', 'unloading');
      await this.release();
      this.setState('unavailable', 'unloaded');
    })();
    return this.retiring;
  }

  private async release(): Promise<void> {
    const model = this.model;
    this.model = undefined;
    if (model) await model.unload();
  }
}

/** Resolves when `runner` has nothing queued or running, or after `ms`. */
async function drained(runner: BatchRunner, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([runner.drain(), new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}
