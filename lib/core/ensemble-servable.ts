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
import { TensorwireError, toTensorwireError } from '../errors';
import type { InferInputTensor, InferRequest, InferResponse } from '../protocol/types';
import type { CompleteOptions, EffectiveConfig, ModelConfig } from '../repository';
import type { EnsembleStep } from '../repository/config-ensemble';
import type { RunnerResult } from '../scheduler/batch-runner';
import type { Registry } from 'prom-client';
import type { ServableFactory } from './servable';
import { ComposedServable, NO_TIMINGS } from './composed-servable';
import { CascadeServable } from './cascade-servable';
import { COMPOSITION_DEPTH_PARAMETER, ensembleEffective, type StepRunner } from './composed-config';

export { COMPOSITION_DEPTH_PARAMETER, MAX_COMPOSITION_DEPTH, type StepRunner } from './composed-config';


export class EnsembleServable extends ComposedServable {
  constructor(name: string, effective: EffectiveConfig, private readonly steps: readonly EnsembleStep[], run: StepRunner, complete: CompleteOptions & { where: string }) {
    super('ensemble', name, effective, run, complete);
  }

  protected isSameKind(config: ModelConfig): boolean {
    return config.platform === 'ensemble' && config.ensemble_scheduling !== undefined;
  }

  protected compose(request: InferRequest, inputs: InferInputTensor[], depth: number, signal: AbortSignal | undefined): Promise<RunnerResult> {
    return this.runSteps(request, inputs, depth, signal);
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
