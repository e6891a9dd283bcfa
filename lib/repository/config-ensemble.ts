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

/** Checks that platform and ensemble_scheduling agree and that the step graph is complete. */
export function checkEnsemble(r: FieldReader, c: ModelConfig): void {
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
