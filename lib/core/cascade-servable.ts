/**
 * tensorwire's cascades (`platform: "tensorwire_cascade"`): a cheap model answers first; when
 * it is unsure (for some row, the max of its confidence output is below `min`) the next stage
 * answers the same request instead, up to the last stage, which always answers. Each stage
 * is another model of the server, run through the service's infer (its own batcher). The
 * whole request escalates when any row is unsure, so an answer always comes from one model.
 * `tensorwire_cascade_answers_total{model, stage, stage_model}` counts which stage answered.
 */
import type { Registry } from 'prom-client';
import type { ModelMemory, ModelMetadata } from '../engine/types';
import { TensorwireError, toTensorwireError } from '../errors';
import { CounterFamily, type CounterCell } from '../metrics/families';
import { validateRequest } from '../protocol/validate';
import type { InferInputTensor, InferOutputTensor, InferRequest, InferResponse } from '../protocol/types';
import type { CompleteOptions, EffectiveConfig, ModelConfig } from '../repository';
import type { CascadeStage } from '../repository/config-ensemble';
import type { RunnerResult } from '../scheduler/batch-runner';
import { COMPOSITION_DEPTH_PARAMETER, declaredMetadata, ensembleEffective, nextDepth, type StepRunner } from './composed-config';
import type { Servable } from './servable';

const NO_TIMINGS = Object.freeze({ queueUs: 0, computeInputUs: 0, computeInferUs: 0, computeOutputUs: 0 });

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

export class CascadeServable implements Servable {
  private served: ModelMetadata;
  private closedReason: string | undefined;
  private inflight = 0;
  private idle: (() => void)[] = [];
  private readonly answered: (CounterCell | undefined)[];
  readonly runsWarmup = false;

  constructor(
    private readonly name: string,
    private current: EffectiveConfig,
    private readonly stages: readonly CascadeStage[],
    private readonly run: StepRunner,
    private readonly complete: CompleteOptions & { where: string },
    registry: Registry | undefined,
  ) {
    this.served = declaredMetadata(current.config);
    const family = registry === undefined ? undefined : answersFamily(registry);
    this.answered = stages.map((s, i) => family?.child(name, String(i), s.model));
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
    if (this.closedReason !== undefined) return Promise.reject(new TensorwireError('UNAVAILABLE', `cascade "${this.name}": ${this.closedReason}`, { retryAfterSeconds: 1 }));
    let inputs: InferInputTensor[];
    let depth: number;
    try {
      depth = nextDepth(request, `cascade "${this.name}"`);
      inputs = validateRequest(request, this.served, this.current.maxBatchSize).inputs as InferInputTensor[];
    } catch (e) {
      return Promise.reject(e);
    }
    this.inflight++;
    return this.escalate(request, inputs, depth, signal).finally(() => {
      if (--this.inflight === 0) for (const wake of this.idle.splice(0)) wake();
    });
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

  checkConfig(config: ModelConfig | undefined): EffectiveConfig {
    if (config?.platform !== 'tensorwire_cascade' || config.cascade === undefined) throw new TensorwireError('INVALID_INPUT', `${this.complete.where}: a cascade's config stays a cascade`);
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
    return 0;
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
