/**
 * Renders a completed ModelConfig as Triton's model-config JSON (what
 * `GET /v2/models/{name}/config` returns): TYPE_* datatypes, string-valued `parameters`.
 * Integers are JSON numbers (Triton's protobuf printer writes 64-bit ones as strings;
 * tritonclient and validateConfig accept both).
 */
import type { ModelConfig, TensorConfig, WarmupConfig } from './config';
import { TRITON_DATATYPE } from './config';

function tensor(t: TensorConfig): Record<string, unknown> {
  const out: Record<string, unknown> = { name: t.name };
  if (t.data_type !== undefined) out.data_type = TRITON_DATATYPE[t.data_type];
  if (t.dims !== undefined) out.dims = [...t.dims];
  return out;
}

function warmup(w: WarmupConfig): Record<string, unknown> {
  const inputs: Record<string, unknown> = {};
  for (const [name, x] of Object.entries(w.inputs)) {
    const out: Record<string, unknown> = { ...x };
    if (x.data_type !== undefined) out.data_type = TRITON_DATATYPE[x.data_type];
    inputs[name] = out;
  }
  const out: Record<string, unknown> = { name: w.name, inputs };
  if (w.batch_size !== undefined) out.batch_size = w.batch_size;
  if (w.count !== undefined) out.count = w.count;
  return out;
}

/** Triton-style JSON of `config` (deep copy; the caller may serialise or mutate it). */
export function toTritonJson(config: ModelConfig): Record<string, unknown> {
  const out: Record<string, unknown> = JSON.parse(JSON.stringify(config)) as Record<string, unknown>;
  if (config.input) out.input = config.input.map(tensor);
  if (config.output) out.output = config.output.map(tensor);
  if (config.parameters) {
    out.parameters = Object.fromEntries(Object.entries(config.parameters).map(([k, v]) => [k, { string_value: String(v) }]));
  }
  if (config.model_warmup) out.model_warmup = config.model_warmup.map(warmup);
  return out;
}
