/**
 * What ensembles and cascades share: the metadata and effective config they declare (their
 * tensors are not read from any file), how they run a step, and the bound on their nesting.
 */
import type { ModelMetadata } from '../engine/types';
import { TensorwireError } from '../errors';
import type { InferRequest, InferResponse } from '../protocol/types';
import { completeConfig, toTritonJson, type CompleteOptions, type EffectiveConfig, type ModelConfig } from '../repository';

/** How a composed model runs a step: the service's own infer (model, version or undefined, request). */
export type StepRunner = (model: string, version: string | undefined, request: InferRequest, signal?: AbortSignal) => Promise<InferResponse>;

/**
 * Ensembles and cascades may name each other; a cycle (A's step is B, B's step is A) would
 * recurse without end. Each composed request carries its depth in this request parameter
 * and is refused past MAX_COMPOSITION_DEPTH.
 */
export const COMPOSITION_DEPTH_PARAMETER = 'tensorwire_composition_depth';
export const MAX_COMPOSITION_DEPTH = 8;

/** The depth of `request` plus one, or INVALID_INPUT naming `what` when that is too deep. */
export function nextDepth(request: InferRequest, what: string): number {
  const given = request.parameters[COMPOSITION_DEPTH_PARAMETER];
  const depth = (typeof given === 'number' && Number.isSafeInteger(given) && given >= 0 ? given : 0) + 1;
  if (depth > MAX_COMPOSITION_DEPTH) throw new TensorwireError('INVALID_INPUT', `${what}: ensembles and cascades nest deeper than ${MAX_COMPOSITION_DEPTH} (do their steps form a cycle?)`);
  return depth;
}

/** The metadata an ensemble's config declares (its tensors are not read from any file). */
export function declaredMetadata(config: ModelConfig): ModelMetadata {
  const batch = (config.max_batch_size ?? 0) > 0;
  const spec = (t: { name: string; data_type?: string; dims?: number[] }) => ({ name: t.name, datatype: t.data_type as ModelMetadata['inputs'][number]['datatype'], shape: batch ? [-1, ...t.dims!] : [...t.dims!] });
  return { inputs: (config.input ?? []).map(spec), outputs: (config.output ?? []).map(spec), batchable: batch };
}

/** The effective config of an ensemble: completed like a model's, shown as Triton shows an ensemble. */
export function ensembleEffective(config: ModelConfig, name: string, complete: CompleteOptions & { where: string }): EffectiveConfig {
  // The default max_batch_size of the server applies to models read from files, not to an ensemble's declared tensors.
  const declared: ModelConfig = { ...config, max_batch_size: config.max_batch_size ?? 0, platform: undefined, ensemble_scheduling: undefined, cascade: undefined, routing: undefined, response_cache: undefined };
  const effective = completeConfig(declared, declaredMetadata(declared), name, complete);
  const composed: ModelConfig = { ...effective.config, platform: config.platform, ...(config.ensemble_scheduling ? { ensemble_scheduling: config.ensemble_scheduling } : {}), ...(config.cascade ? { cascade: config.cascade } : {}) };
  // Shown as Triton shows an ensemble: no backend, instances, provider or model file of its own.
  const { backend: _b, instance_group: _i, optimization: _o, default_model_filename: _f, ...shown } = composed;
  return { ...effective, config: composed, tritonConfig: toTritonJson(shown), warmup: [] };
}

