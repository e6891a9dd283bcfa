/**
 * The Servable of today: one ONNX model (its ORT sessions, lib/engine) behind its dynamic
 * batcher (lib/scheduler). `loadOnnxServable` is the default ServableFactory.
 *
 * The servable owns both the engine model and the runner: `drain` empties the runner, `close`
 * rejects what is left and frees the sessions and staging memory.
 */
import { basename } from 'node:path';
import { loadModel, type LoadedModel, type ModelMemory, type ModelMetadata } from '../engine';
import { validateRequest } from '../protocol/validate';
import type { InferRequest } from '../protocol/types';
import { completeConfig, engineLoadOptions, type CompleteOptions, type EffectiveConfig, type ModelConfig } from '../repository';
import { BatchRunner, type RunnerResult } from '../scheduler/batch-runner';
import { fullBatcherPatch } from './live-config';
import type { Servable, ServableFactory, ServableSpec } from './servable';

/** An ONNX model behind the dynamic batcher; see the file comment. */
export class OnnxServable implements Servable {
  /** Validation view of the effective config: what requests must send. */
  private served: ModelMetadata;
  private closing: Promise<void> | undefined;

  constructor(
    readonly model: LoadedModel,
    private current: EffectiveConfig,
    readonly runner: BatchRunner,
    private readonly name: string,
    private readonly complete: CompleteOptions & { where: string },
  ) {
    this.served = servedMetadata(current);
  }

  get effective(): EffectiveConfig {
    return this.current;
  }

  get metadata(): ModelMetadata {
    return this.model.metadata;
  }

  get instanceCount(): number {
    return this.model.instanceCount;
  }

  infer(request: InferRequest, signal?: AbortSignal): Promise<RunnerResult> {
    let validated;
    try {
      validated = validateRequest(request, this.served, this.current.maxBatchSize);
    } catch (e) {
      return Promise.reject(e);
    }
    // The validator may have reordered or converted inputs; the runner copies these.
    request.inputs = validated.inputs;
    return this.runner.infer(request, validated, signal);
  }

  checkConfig(config: ModelConfig | undefined): EffectiveConfig {
    return completeConfig(config, this.model.metadata, this.name, this.complete);
  }

  applyConfig(effective: EffectiveConfig): void {
    this.runner.updateConfig(fullBatcherPatch(effective));
    this.current = effective;
    this.served = servedMetadata(effective);
  }

  memory(): ModelMemory {
    return this.model.memory();
  }

  queueDepth(): number {
    return this.runner.queueDepth();
  }

  async drain(ms: number, graceMs: number, reason: string): Promise<void> {
    await drained(this.runner, ms);
    // Past the drain time: what is still queued is rejected; batches already handed to the
    // engine still finish (unloading would cancel them), bounded again in case one hangs.
    this.runner.close(reason);
    await drained(this.runner, graceMs);
  }

  close(reason: string): Promise<void> {
    this.closing ??= (async () => {
      this.runner.close(reason);
      await this.model.unload();
    })();
    return this.closing;
  }
}

/** The default ServableFactory: loads the ONNX file of `spec.source` and puts a batcher in front of it. */
export const loadOnnxServable: ServableFactory = async (spec: ServableSpec) => {
  // Engine messages name the model as the repository does (name/version/file), never by its absolute path.
  const load = { ...engineLoadOptions(spec.config, spec.name, spec.complete), displayName: `${spec.name}/${spec.version}/${basename(spec.source.modelPath)}` };
  const model = await loadModel(spec.source.modelPath, load);
  try {
    const effective = completeConfig(spec.config, model.metadata, spec.name, spec.complete);
    const runner = new BatchRunner(model, { config: effective.batcher, listener: spec.listener, name: `${spec.name}:${spec.version}` });
    return new OnnxServable(model, effective, runner, spec.name, spec.complete);
  } catch (e) {
    // The config does not fit the model: nothing took traffic yet, free the sessions now.
    await model.unload();
    throw e;
  }
};

function servedMetadata(e: EffectiveConfig): ModelMetadata {
  return { inputs: e.inputs, outputs: e.outputs, batchable: e.maxBatchSize > 0 };
}

/** Resolves when `runner` has nothing queued or running, or after `ms`. */
async function drained(runner: BatchRunner, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([runner.drain(), new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}
