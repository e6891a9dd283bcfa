/**
 * One model version and its lifecycle (the transition table is version-state.ts):
 *
 *   loading ──▶ warming ──▶ ready ──▶ draining ──▶ unloading ──▶ unavailable
 *      │           │
 *      └───────────┴──▶ failed (never took traffic; reason kept)
 *
 * Only a `ready` version takes requests. What computes the answers is a Servable (servable.ts)
 * built by the factory in the context (an ONNX model behind the dynamic batcher unless a test
 * or a later kind of model gives another); the version owns it from load to free. Retiring
 * lets queued and running requests finish (draining), then frees the servable (unloading).
 * Which version takes traffic, and what the per-version metrics show when two objects share a
 * version number (a reload of changed files), is ServedModel's business; a version only
 * reports its own changes (`onState`).
 */
import * as path from 'node:path';
import { TensorwireError, toTensorwireError } from '../errors';
import type { TensorwireMetrics } from '../metrics/registry';
import type { InferRequest } from '../protocol/types';
import type { CompleteOptions, EffectiveConfig, ModelConfig, ScannedVersion } from '../repository';
import type { RunnerResult } from '../scheduler/batch-runner';
import { withLive, type LiveConfig } from './live-config';
import { loadOnnxServable } from './onnx-servable';
import type { Servable, ServableFactory } from './servable';
import type { VersionState } from './types';
import { relativeToDirectory } from '../util/message-text';
import { VersionStatistics } from './version-statistics';
import { INITIAL_VERSION_STATE, transition } from './version-state';
import { warmUp } from './warmup-requests';
import { loadOutputLabels, type OutputLabels } from '../repository/output-labels';

/** Least time batches already running get to finish once the drain time is over (ms). */
const RUNNING_GRACE_MS = 10_000;

/** What a version needs from its surroundings. */
export interface VersionContext {
  /** Where its request statistics go (the state gauge is the caller's, through onState). */
  metrics?: TensorwireMetrics;
  complete?: CompleteOptions;
  /** Called on every state change (logging, metrics). */
  onState?: (v: ModelVersion) => void;
  /** Builds what serves the version; default: an ONNX model behind the dynamic batcher. */
  servables?: ServableFactory;
}

/** One model version: load, warm up, serve, drain, free. See the file comment. */
export class ModelVersion {
  state: VersionState = INITIAL_VERSION_STATE;
  reason = 'loading';
  /** What computes its answers (owned: closed when the version fails or is freed). */
  private current: Servable | undefined;
  /** Class labels of outputs whose config names a label_filename (classification extension); read at load. */
  outputLabels: OutputLabels = new Map();
  readonly stats: VersionStatistics;
  private starting: Promise<void> | undefined;
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
    context.onState?.(this);
  }

  /** What computes its answers; undefined until loaded and once freed. */
  get servable(): Servable | undefined {
    return this.current;
  }

  /** The live overlay in force on this version. */
  get liveConfig(): LiveConfig | undefined {
    return this.live;
  }

  /** The configuration in force, completed from the model; undefined until loaded and once freed. */
  get effective(): EffectiveConfig | undefined {
    return this.current?.effective;
  }

  /** Instances (sessions) this version runs; 0 until loaded. */
  get instanceCount(): number {
    return this.current?.instanceCount ?? 0;
  }

  private get where(): string {
    return `model "${this.name}" version ${this.version}`;
  }

  /** Moves to `state` if the transition table allows it (INTERNAL otherwise), then reports it. */
  private setState(state: VersionState, reason: string): void {
    this.state = transition(this.state, state, this.where);
    this.reason = reason;
    this.context.onState?.(this);
  }

  /** Loads and warms the version; never throws (a failure is state `failed` with its reason). Once only. */
  start(): Promise<void> {
    this.starting ??= this.load();
    return this.starting;
  }

  private async load(): Promise<void> {
    try {
      const complete = { ...this.context.complete, where: this.where };
      const config = withLive(this.baseConfig, this.live, this.where);
      const factory = this.context.servables ?? loadOnnxServable;
      this.outputLabels = await loadOutputLabels(path.dirname(this.source.dir), this.name, config ?? {});
      this.current = await factory({ name: this.name, version: this.version, source: this.source, config, complete, listener: this.stats });
      this.setState('warming', 'warming up');
      this.stats.paused = true;
      try {
        await warmUp(this.current, path.dirname(this.source.dir));
      } finally {
        this.stats.paused = false;
      }
      this.setState('ready', '');
    } catch (e) {
      // ONNX Runtime's messages end with a newline; the reason goes into one-line logs and JSON.
      // The reason reaches clients (index, load answers): paths relative to the repository.
      const reason = relativeToDirectory(toTensorwireError(e).message.trim(), path.dirname(path.dirname(this.source.dir)), path.sep);
      const servable = this.current;
      this.current = undefined;
      this.setState('failed', reason);
      await servable?.close(`it failed to load: ${reason}`);
    }
  }

  /** Queues a request; UNAVAILABLE unless the version is ready. */
  infer(request: InferRequest, signal?: AbortSignal): Promise<RunnerResult> {
    if (this.state !== 'ready') return Promise.reject(new TensorwireError('UNAVAILABLE', `${this.where} is ${this.state}`, { retryAfterSeconds: 1 }));
    return this.current!.infer(request, signal);
  }

  /**
   * What this version's effective config would be with `live` (its own instance count kept:
   * that one needs a reload). Throws INVALID_INPUT naming the field when the change does not
   * fit this version (a preferred size above its max_batch_size...). Changes nothing.
   */
  checkLive(live: LiveConfig | undefined): EffectiveConfig {
    if (!this.current) throw new TensorwireError('UNAVAILABLE', `${this.where} is ${this.state}`);
    return this.current.checkConfig(withLive(this.baseConfig, this.keepInstances(live), this.where));
  }

  /** Applies the batching of `live` now, without a reload (queued requests follow the new settings). */
  applyLive(live: LiveConfig | undefined): void {
    const effective = this.checkLive(live);
    this.current!.applyConfig(effective);
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
    return this.current?.queueDepth() ?? 0;
  }

  /**
   * Stops taking traffic, lets queued and running requests finish (bounded by `drainMs`; past
   * it the queued ones are rejected UNAVAILABLE and the batches already running get up to
   * another max(drainMs, 10 s) to finish), then frees the servable. Idempotent. A version still
   * loading finishes its load first; one that failed has nothing to retire.
   */
  retire(drainMs = 30_000): Promise<void> {
    this.retiring ??= (async () => {
      // A load under way finishes first (one never started stays as it is). A ready version
      // stops taking requests synchronously, before retire returns.
      if (this.state === 'loading' || this.state === 'warming') await this.starting;
      if (this.state !== 'ready') return;
      this.setState('draining', 'draining');
      const servable = this.current!;
      await servable.drain(drainMs, Math.max(drainMs, RUNNING_GRACE_MS), `${this.where} was unloaded`);
      this.setState('unloading', 'unloading');
      this.current = undefined;
      await servable.close(`${this.where} was unloaded`);
      this.setState('unavailable', 'unloaded');
    })();
    return this.retiring;
  }
}
