/**
 * Triton's ensembles as a Servable: a `platform: "ensemble"` model whose steps are other
 * models of the same server. A request runs the steps in their listed order (the config
 * check guarantees each step's inputs exist by then); each step goes through its model's own
 * version, batcher and instances (the service's infer), so steps of different requests
 * pipeline and batch with the models' other traffic. Intermediate tensors stay in the server
 * as bytes (no JSON round-trips). An error names the step and its model.
 *
 * The ensemble holds no engine memory and runs no warm-up (its steps may still be loading
 * when it loads; a step that does not serve answers 503 naming the step).
 */
import type { ModelMemory, ModelMetadata } from '../engine/types';
import { TensorwireError, toTensorwireError } from '../errors';
import { validateRequest } from '../protocol/validate';
import type { InferInputTensor, InferRequest, InferResponse } from '../protocol/types';
import type { CompleteOptions, EffectiveConfig, ModelConfig } from '../repository';
import type { EnsembleStep } from '../repository/config-ensemble';
import type { RunnerResult } from '../scheduler/batch-runner';
import type { Registry } from 'prom-client';
import type { Servable, ServableFactory } from './servable';
import { CascadeServable } from './cascade-servable';
import { COMPOSITION_DEPTH_PARAMETER, declaredMetadata, ensembleEffective, nextDepth, type StepRunner } from './composed-config';

export { COMPOSITION_DEPTH_PARAMETER, MAX_COMPOSITION_DEPTH, type StepRunner } from './composed-config';


const NO_TIMINGS = Object.freeze({ queueUs: 0, computeInputUs: 0, computeInferUs: 0, computeOutputUs: 0 });

export class EnsembleServable implements Servable {
  private served: ModelMetadata;
  private inflight = 0;
  private idle: (() => void)[] = [];
  private closedReason: string | undefined;
  readonly runsWarmup = false;

  constructor(
    private readonly name: string,
    private current: EffectiveConfig,
    private readonly steps: readonly EnsembleStep[],
    private readonly run: StepRunner,
    private readonly complete: CompleteOptions & { where: string },
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
    if (this.closedReason !== undefined) return Promise.reject(new TensorwireError('UNAVAILABLE', `ensemble "${this.name}": ${this.closedReason}`, { retryAfterSeconds: 1 }));
    let inputs: InferInputTensor[];
    let depth: number;
    try {
      depth = nextDepth(request, `ensemble "${this.name}"`);
      inputs = validateRequest(request, this.served, this.current.maxBatchSize).inputs as InferInputTensor[];
    } catch (e) {
      return Promise.reject(e);
    }
    this.inflight++;
    return this.runSteps(request, inputs, depth, signal).finally(() => {
      if (--this.inflight === 0) for (const wake of this.idle.splice(0)) wake();
    });
  }

  private async runSteps(request: InferRequest, inputs: InferInputTensor[], depth: number, signal: AbortSignal | undefined): Promise<RunnerResult> {
    const tensors = new Map<string, InferInputTensor>();
    for (const t of inputs) tensors.set(t.name, t);
    for (let i = 0; i < this.steps.length; i++) {
      const step = this.steps[i]!;
      const stepRequest: InferRequest = {
        inputs: Object.entries(step.input_map).map(([stepInput, tensor]) => ({ ...tensors.get(tensor)!, name: stepInput })),
        outputs: Object.keys(step.output_map).map((name) => ({ name, binary: true })),
        binaryDataOutput: true,
        parameters: { [COMPOSITION_DEPTH_PARAMETER]: depth },
        ...(request.priority !== undefined ? { priority: request.priority } : {}),
        ...(request.timeoutUs !== undefined ? { timeoutUs: request.timeoutUs } : {}),
      };
      let answer: InferResponse;
      try {
        answer = await this.run(step.model_name, step.model_version === -1 ? undefined : String(step.model_version), stepRequest, signal);
      } catch (e) {
        const err = toTensorwireError(e);
        throw new TensorwireError(err.code, `ensemble "${this.name}" step ${i} (model "${step.model_name}"): ${err.message}`, { cause: e, ...(err.retryAfterSeconds !== undefined ? { retryAfterSeconds: err.retryAfterSeconds } : {}) });
      }
      for (const o of answer.outputs) {
        const tensor = step.output_map[o.name];
        if (tensor !== undefined) tensors.set(tensor, { name: tensor, datatype: o.datatype, shape: o.shape, data: o.data });
      }
    }
    const wanted = request.outputs?.map((o) => o.name) ?? this.served.outputs.map((o) => o.name);
    const outputs = wanted.map((name) => {
      const t = tensors.get(name);
      if (t === undefined || !this.served.outputs.some((o) => o.name === name)) throw new TensorwireError('INVALID_INPUT', `ensemble "${this.name}" has no output "${name}"`);
      return { name, datatype: t.datatype, shape: t.shape, data: t.data };
    });
    return { outputs, timings: { ...NO_TIMINGS } };
  }

  checkConfig(config: ModelConfig | undefined): EffectiveConfig {
    if (config === undefined || config.platform !== 'ensemble' || config.ensemble_scheduling === undefined) throw new TensorwireError('INVALID_INPUT', `${this.complete.where}: an ensemble's config stays an ensemble`);
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
    return 0; // its requests queue in the steps' batchers
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

/**
 * A factory that builds ensembles for `platform: "ensemble"` configs (and cascades for
 * `platform: "tensorwire_cascade"`, cascade-servable.ts) and leaves every other
 * model to `base`. `run` is the service's infer (bound late: the service exists by the time
 * a request runs).
 */
export function withEnsembles(base: ServableFactory, run: StepRunner, registry?: Registry): ServableFactory {
  return async (spec) => {
    if (spec.config?.platform === 'tensorwire_cascade') return new CascadeServable(spec.name, ensembleEffective(spec.config, spec.name, spec.complete), spec.config.cascade!.stages, run, spec.complete, registry);
    if (spec.config?.platform !== 'ensemble') return base(spec);
    const effective = ensembleEffective(spec.config, spec.name, spec.complete);
    return new EnsembleServable(spec.name, effective, spec.config.ensemble_scheduling!.step, run, spec.complete);
  };
}
