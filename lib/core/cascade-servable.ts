/**
 * tensorwire's cascades (`platform: "tensorwire_cascade"`): a cheap model answers first; when
 * it is unsure (for some row, the max of its confidence output is below `min`) the next stage
 * answers the same request instead, up to the last stage, which always answers. Each stage
 * is another model of the server, run through the service's infer (its own batcher). The
 * whole request escalates when any row is unsure, so an answer always comes from one model.
 * `tensorwire_cascade_answers_total{model, stage, stage_model}` counts which stage answered.
 */
import type { Registry } from 'prom-client';
import { TensorwireError, toTensorwireError } from '../errors';
import { CounterFamily, type CounterCell } from '../metrics/families';
import type { InferInputTensor, InferOutputTensor, InferRequest, InferResponse } from '../protocol/types';
import type { CompleteOptions, EffectiveConfig, ModelConfig } from '../repository';
import type { CascadeStage } from '../repository/config-ensemble';
import type { RunnerResult } from '../scheduler/batch-runner';
import { COMPOSITION_DEPTH_PARAMETER, type StepRunner } from './composed-config';
import { ComposedServable, NO_TIMINGS } from './composed-servable';

const families = new WeakMap<Registry, CounterFamily>();
function answersFamily(registry: Registry): CounterFamily {
  let f = families.get(registry);
  if (f === undefined) {
    f = new CounterFamily('tensorwire_cascade_answers_total', 'Requests of a cascade, by the stage whose model answered.', ['model', 'stage', 'stage_model']).registerWith(registry);
    families.set(registry, f);
  }
  return f;
}

/** The smallest per-row max of `t` (rows: the first dimension), or undefined for a datatype not compared. */
function leastRowMax(t: InferOutputTensor): number | undefined {
  const bytes = t.data.byteOffset % 8 === 0 ? t.data : t.data.slice();
  let values: ArrayLike<number>;
  if (t.datatype === 'FP32') values = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  else if (t.datatype === 'FP64') values = new Float64Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 8);
  else if (t.datatype === 'INT32') values = new Int32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  else return undefined;
  const rows = t.shape.length > 1 ? t.shape[0]! : 1;
  const width = rows > 0 ? values.length / rows : 0;
  let least = Infinity;
  for (let r = 0; r < rows; r++) {
    let max = -Infinity;
    for (let i = r * width; i < (r + 1) * width; i++) if (values[i]! > max) max = values[i]!;
    if (max < least) least = max;
  }
  return least;
}

export class CascadeServable extends ComposedServable {
  private readonly answered: (CounterCell | undefined)[];

  constructor(name: string, effective: EffectiveConfig, private readonly stages: readonly CascadeStage[], run: StepRunner, complete: CompleteOptions & { where: string }, registry: Registry | undefined) {
    super('cascade', name, effective, run, complete);
    const family = registry === undefined ? undefined : answersFamily(registry);
    this.answered = stages.map((s, i) => family?.child(name, String(i), s.model));
  }

  protected isSameKind(config: ModelConfig): boolean {
    return config.platform === 'tensorwire_cascade' && config.cascade !== undefined;
  }

  protected compose(request: InferRequest, inputs: InferInputTensor[], depth: number, signal: AbortSignal | undefined): Promise<RunnerResult> {
    return this.escalate(request, inputs, depth, signal);
  }

  private async escalate(request: InferRequest, inputs: InferInputTensor[], depth: number, signal: AbortSignal | undefined): Promise<RunnerResult> {
    const wanted = request.outputs?.map((o) => o.name) ?? this.served.outputs.map((o) => o.name);
    for (let i = 0; i < this.stages.length; i++) {
      const stage = this.stages[i]!;
      const stageRequest: InferRequest = { inputs, binaryDataOutput: true, parameters: { [COMPOSITION_DEPTH_PARAMETER]: depth }, ...(request.timeoutUs !== undefined ? { timeoutUs: request.timeoutUs } : {}), ...(request.priority !== undefined ? { priority: request.priority } : {}) };
      let answer: InferResponse;
      try {
        answer = await this.run(stage.model, stage.version, stageRequest, signal);
      } catch (e) {
        const err = toTensorwireError(e);
        throw new TensorwireError(err.code, `cascade "${this.name}" stage ${i} (model "${stage.model}"): ${err.message}`, { cause: e, ...(err.retryAfterSeconds !== undefined ? { retryAfterSeconds: err.retryAfterSeconds } : {}) });
      }
      const confidence = stage.confidence;
      if (confidence !== undefined && i < this.stages.length - 1) {
        const out = answer.outputs.find((o) => o.name === confidence.output);
        if (out === undefined) throw new TensorwireError('INTERNAL', `cascade "${this.name}" stage ${i} (model "${stage.model}") has no output "${confidence.output}" to judge its confidence by`);
        const least = leastRowMax(out);
        if (least === undefined) throw new TensorwireError('INTERNAL', `cascade "${this.name}" stage ${i}: confidence output "${confidence.output}" is ${out.datatype}; FP32, FP64 or INT32 is compared`);
        if (!(least >= confidence.min)) continue; // unsure (or NaN): the next stage answers
      }
      this.answered[i]?.inc();
      const outputs = wanted.map((name) => {
        const o = answer.outputs.find((x) => x.name === name);
        if (o === undefined) throw new TensorwireError('INVALID_INPUT', `cascade "${this.name}" stage ${i} (model "${stage.model}") has no output "${name}"`);
        return { name, datatype: o.datatype, shape: o.shape, data: o.data };
      });
      return { outputs, timings: { ...NO_TIMINGS } };
    }
    throw new TensorwireError('INTERNAL', `cascade "${this.name}": no stage answered`);
  }
}
