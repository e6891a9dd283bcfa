/**
 * What every composed model (an ensemble, a cascade) is as a Servable, written once: it
 * serves the metadata its config declares, holds no engine memory, queues nothing itself
 * (its requests queue in the batchers of the models it calls), counts its requests in
 * flight so a drain can wait for them, refuses requests once closed, and validates each
 * request and its composition depth before `compose` runs it. Subclasses say how the
 * models are combined (`compose`) and which configs stay theirs (`checkConfig`).
 */
import type { ModelMemory, ModelMetadata } from '../engine/types';
import { TensorwireError } from '../errors';
import { validateRequest } from '../protocol/validate';
import type { InferInputTensor, InferRequest } from '../protocol/types';
import type { CompleteOptions, EffectiveConfig, ModelConfig } from '../repository';
import type { RunnerResult } from '../scheduler/batch-runner';
import { declaredMetadata, ensembleEffective, nextDepth, type StepRunner } from './composed-config';
import type { Servable } from './servable';

/** A composed answer has no stage timings of its own (its steps record theirs). */
export const NO_TIMINGS = Object.freeze({ queueUs: 0, computeInputUs: 0, computeInferUs: 0, computeOutputUs: 0 });

export abstract class ComposedServable implements Servable {
  readonly runsWarmup = false;
  protected served: ModelMetadata;
  private inflight = 0;
  private idle: (() => void)[] = [];
  private closedReason: string | undefined;

  /** @param kind 'ensemble' or 'cascade', for messages. */
  constructor(
    protected readonly kind: 'ensemble' | 'cascade',
    protected readonly name: string,
    private current: EffectiveConfig,
    protected readonly run: StepRunner,
    protected readonly complete: CompleteOptions & { where: string },
  ) {
    this.served = declaredMetadata(current.config);
  }

  get effective(): EffectiveConfig {
    return this.current;
  }

  get metadata(): ModelMetadata {
    return this.served;
  }

  get instanceCount(): number {
    return 1;
  }

  infer(request: InferRequest, signal?: AbortSignal): Promise<RunnerResult> {
    if (this.closedReason !== undefined) return Promise.reject(new TensorwireError('UNAVAILABLE', `${this.kind} "${this.name}": ${this.closedReason}`, { retryAfterSeconds: 1 }));
    let inputs: InferInputTensor[];
    let depth: number;
    try {
      depth = nextDepth(request, `${this.kind} "${this.name}"`);
      inputs = validateRequest(request, this.served, this.current.maxBatchSize).inputs as InferInputTensor[];
    } catch (e) {
      return Promise.reject(e);
    }
    this.inflight++;
    return this.compose(request, inputs, depth, signal).finally(() => {
      if (--this.inflight === 0) for (const wake of this.idle.splice(0)) wake();
    });
  }

  /** Runs one validated request (`inputs` in model order; `depth`: the composition depth its calls carry). */
  protected abstract compose(request: InferRequest, inputs: InferInputTensor[], depth: number, signal: AbortSignal | undefined): Promise<RunnerResult>;

  /** Whether `config` still describes this kind of model (its own extra checks may follow). */
  protected abstract isSameKind(config: ModelConfig | undefined): boolean;

  checkConfig(config: ModelConfig | undefined): EffectiveConfig {
    const a = this.kind === 'ensemble' ? 'an' : 'a';
    if (config === undefined || !this.isSameKind(config)) throw new TensorwireError('INVALID_INPUT', `${this.complete.where}: ${a} ${this.kind}'s config stays ${a} ${this.kind}`);
    return ensembleEffective(config, this.name, this.complete);
  }

  applyConfig(effective: EffectiveConfig): void {
    this.current = effective;
    this.served = declaredMetadata(effective.config);
  }

  memory(): ModelMemory {
    return { host: 0, gpu: 0 };
  }

  queueDepth(): number {
    return 0; // its requests queue in the batchers of the models it calls
  }

  async drain(ms: number, _graceMs: number, reason: string): Promise<void> {
    if (this.inflight > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([new Promise<void>((r) => this.idle.push(r)), new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
      clearTimeout(timer);
    }
    this.closedReason ??= reason;
  }

  close(reason: string): Promise<void> {
    this.closedReason ??= reason;
    return Promise.resolve();
  }
}
