/**
 * Triton's ensembles in config form: `platform: "ensemble"` with `ensemble_scheduling { step
 * [...] }`, each step naming a model (and version, -1: the one that serves unversioned
 * requests) and mapping its inputs from ensemble tensors (`input_map { key: "<step input>"
 * value: "<ensemble tensor>" }`) and its outputs to ensemble tensors (`output_map`). The
 * graph is checked here, before anything loads: every step input is an ensemble input or an
 * output of an earlier step, every ensemble output is produced, no tensor is produced twice.
 */
import { CONFIG_LIMITS as L } from './config-limits';
import type { ModelConfig } from './config';
import { FieldReader, join } from './field-reader';

/** One step of an ensemble. */
export interface EnsembleStep {
  model_name: string;
  /** -1: whatever version serves the model's unversioned requests. */
  model_version: number;
  /** Step input → ensemble tensor. */
  input_map: Record<string, string>;
  /** Step output → ensemble tensor. */
  output_map: Record<string, string>;
}

export interface EnsembleScheduling {
  step: EnsembleStep[];
}

function readMap(r: FieldReader, v: unknown, path: string): Record<string, string> {
  const o = r.object(v, path);
  const keys = Object.keys(o);
  if (keys.length > L.tensors) r.error(`${path}: at most ${L.tensors} entries, got ${keys.length}`);
  const out: Record<string, string> = {};
  for (const k of keys) out[r.string(k, `${path} key`, 256)] = r.string(o[k], join(path, k), 256);
  return out;
}

/** Reads `ensemble_scheduling`. */
export function readEnsembleScheduling(r: FieldReader, v: unknown, path: string): EnsembleScheduling {
  const o = r.object(v, path, ['step']);
  const steps = r.array(o.step ?? [], join(path, 'step'), L.ensembleSteps);
  return {
    step: steps.map((item, i) => {
      const at = join(join(path, 'step'), i);
      const s = r.object(item, at, ['model_name', 'model_version', 'input_map', 'output_map']);
      const version = s.model_version === undefined ? -1 : r.int(s.model_version, join(at, 'model_version'), -1, L.versionNumber);
      if (version === 0) r.fail(join(at, 'model_version'), '-1 (the serving version) or a version number', s.model_version);
      return {
        model_name: r.string(s.model_name, join(at, 'model_name'), 256),
        model_version: version,
        input_map: readMap(r, s.input_map ?? {}, join(at, 'input_map')),
        output_map: readMap(r, s.output_map ?? {}, join(at, 'output_map')),
      };
    }),
  };
}

/** One stage of a cascade: a model, and (all but the last) when its answer is confident enough. */
export interface CascadeStage {
  model: string;
  /** Version of the model; absent: the one serving unversioned requests. */
  version?: string;
  /** The answer stands when every row's max of `output` is at least `min`; else the next stage answers. */
  confidence?: { output: string; min: number };
}

/** tensorwire's cascades (`platform: "tensorwire_cascade"`). */
export interface CascadeConfig {
  stages: CascadeStage[];
}

/** Reads `cascade`. */
export function readCascade(r: FieldReader, v: unknown, path: string): CascadeConfig {
  const o = r.object(v, path, ['stages']);
  const stages = r.array(o.stages, join(path, 'stages'), L.cascadeStages);
  if (stages.length < 2) r.fail(join(path, 'stages'), 'a list of at least 2 stages', o.stages);
  return {
    stages: stages.map((item, i) => {
      const at = join(join(path, 'stages'), i);
      const s = r.object(item, at, ['model', 'version', 'confidence']);
      const stage: CascadeStage = { model: r.string(s.model, join(at, 'model'), 256) };
      if (s.version !== undefined) stage.version = String(r.int(typeof s.version === 'number' ? String(s.version) : s.version, join(at, 'version'), 1, L.versionNumber));
      if (s.confidence !== undefined) {
        const c = r.object(s.confidence, join(at, 'confidence'), ['output', 'min']);
        const min = c.min;
        if (typeof min !== 'number' || !Number.isFinite(min)) r.fail(join(at, 'confidence.min'), 'a finite number', min);
        stage.confidence = { output: r.string(c.output, join(at, 'confidence.output'), 256), min };
      }
      if (i < stages.length - 1 && stage.confidence === undefined) r.error(`${at}: every stage but the last needs confidence {output, min} (when to escalate)`);
      return stage;
    }),
  };
}

/** Checks that platform and ensemble_scheduling (or cascade) agree and that the step graph is complete. */
export function checkEnsemble(r: FieldReader, c: ModelConfig): void {
  if ((c.platform === 'tensorwire_cascade') !== (c.cascade !== undefined)) r.error('platform "tensorwire_cascade" and cascade go together');
  if (c.platform === 'tensorwire_cascade') {
    if (!c.input?.length || !c.output?.length) r.error('a cascade lists its input and output tensors (with data_type and dims), as its stages take and answer them');
  }
  if (c.platform !== 'ensemble') {
    if (c.ensemble_scheduling !== undefined) r.error('ensemble_scheduling is set but platform is not "ensemble"');
    return;
  }
  const steps = c.ensemble_scheduling?.step ?? [];
  if (steps.length === 0) r.error('an ensemble needs ensemble_scheduling with at least one step');
  if (!c.input?.length || !c.output?.length) r.error('an ensemble lists its input and output tensors (with data_type and dims)');
  for (const [kind, list] of [['input', c.input], ['output', c.output]] as const) {
    list!.forEach((t, i) => {
      if (t.data_type === undefined || t.dims === undefined) r.error(`${kind}[${i}] ("${t.name}"): an ensemble's tensors need data_type and dims`);
    });
  }
  const available = new Set(c.input!.map((t) => t.name));
  steps.forEach((step, i) => {
    const at = `ensemble_scheduling.step[${i}] (model "${step.model_name}")`;
    for (const [stepInput, tensor] of Object.entries(step.input_map)) {
      if (!available.has(tensor)) r.error(`${at}: input_map ${stepInput} reads "${tensor}", which is neither an ensemble input nor an output of an earlier step`);
    }
    for (const tensor of Object.values(step.output_map)) {
      if (available.has(tensor)) r.error(`${at}: output_map writes "${tensor}", which is already an ensemble input or an earlier step's output`);
      available.add(tensor);
    }
  });
  for (const t of c.output!) if (!available.has(t.name)) r.error(`output "${t.name}": no step's output_map produces it`);
}
