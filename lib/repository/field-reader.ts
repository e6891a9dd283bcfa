/**
 * Small typed readers for configuration objects: each check names the file, the field path,
 * what was expected and what came, so a bad production config says exactly what to fix
 * (`models/iris/config.json: dynamic_batching.max_queue_delay_microseconds must be a
 * non-negative integer, got "fast"`).
 */
import { TensorwireError } from '../errors';
import { previewValue, truncateForMessage } from '../util/message-text';
import { CONFIG_LIMITS } from './config-limits';

/**
 * Triton model-config fields tensorwire recognises but does not implement. Naming them lets
 * the error say "not supported" instead of "unknown" (which would suggest a typo).
 */
const TRITON_UNSUPPORTED = new Set([
  'sequence_batching', 'ensemble_scheduling', 'response_cache', 'model_transaction_policy',
  'model_repository_agents', 'model_operations', 'batch_input', 'batch_output',
  'cc_model_filenames', 'metric_tags', 'reshape', 'format',
  'allow_ragged_batch', 'is_shape_tensor', 'is_non_linear_format_io', 'optional',
  'rate_limiter', 'host_policy', 'passive', 'secondary_devices', 'profile',
  'preserve_ordering', 'cuda', 'eager_batching', 'gather_kernel_buffer_threshold', 'priority',
  'graph', 'runtime',
]);

/** Short, single-line rendering of a received value for messages (bounded cost, whatever its size). */
export function show(v: unknown): string {
  return previewValue(v);
}

/** Levenshtein distance, for "did you mean" hints on misspelt field names. */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return row[b.length];
}

/** The allowed name a misspelt (or camelCased) `key` most likely meant, if any is close. */
export function suggest(key: string, allowed: readonly string[]): string | undefined {
  // The edit distance costs key length × name length: a long key is no typo, and must not
  // hold the event loop (a 60 MB key took 13 s).
  if (key.length > CONFIG_LIMITS.hintKeyChars) return undefined;
  const flat = (s: string) => s.toLowerCase().replace(/_/g, '');
  const exact = allowed.find((a) => flat(a) === flat(key));
  if (exact) return exact;
  let best: string | undefined;
  let bestD = Infinity;
  for (const a of allowed) {
    const d = distance(key, a);
    if (d < bestD) [best, bestD] = [a, d];
  }
  if (bestD <= Math.max(2, Math.floor(key.length / 4))) return best;
  // A shortened or differently-suffixed name (intra_op_threads for intra_op_thread_count):
  // the longest shared prefix, when it covers most of the key.
  const shared = (a: string) => {
    let n = 0;
    while (n < a.length && n < key.length && a[n] === key[n]) n++;
    return n;
  };
  const byPrefix = [...allowed].sort((a, b) => shared(b) - shared(a))[0];
  return byPrefix !== undefined && shared(byPrefix) >= Math.max(4, Math.ceil(key.length * 0.7)) ? byPrefix : undefined;
}

/**
 * Throws INVALID_INPUT when `value` nests objects and arrays deeper than `max`. Iterative, so
 * a 100,000-level value is refused rather than overflowing the stack (as JSON.stringify and
 * any recursive walk of it would).
 */
export function checkNesting(value: unknown, where: string, max: number = CONFIG_LIMITS.nestingDepth): void {
  const stack: { v: unknown; depth: number }[] = [{ v: value, depth: 0 }];
  while (stack.length > 0) {
    const { v, depth } = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (depth >= max) throw new TensorwireError('INVALID_INPUT', `${where}: nested deeper than ${max} levels (the nesting limit of a config)`);
    for (const child of Array.isArray(v) ? v : Object.values(v)) if (typeof child === 'object' && child !== null) stack.push({ v: child, depth: depth + 1 });
  }
}

/** Joins a field path: `join('input[0]', 'dims')` is `input[0].dims`. */
export function join(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  return path ? `${path}.${key}` : key;
}

/** Reads typed values out of an untyped config object, failing with file + field in the message. */
export class FieldReader {
  /** @param where the file (or other origin) named at the start of every message. */
  constructor(readonly where: string) {}

  /** Throws INVALID_INPUT: `<where>: <path> must be <expected>, got <value>`. */
  fail(path: string, expected: string, got: unknown): never {
    throw new TensorwireError('INVALID_INPUT', `${this.where}: ${path || 'the config'} must be ${expected}, got ${show(got)}`);
  }

  /** Throws INVALID_INPUT with a free-form message prefixed by the file. */
  error(message: string): never {
    throw new TensorwireError('INVALID_INPUT', `${this.where}: ${message}`);
  }

  /** A plain object whose keys are all in `allowed`; unknown keys are rejected with a hint. */
  object(v: unknown, path: string, allowed?: readonly string[]): Record<string, unknown> {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(path, 'an object', v);
    const obj = v as Record<string, unknown>;
    if (allowed) {
      for (const key of Object.keys(obj)) {
        if (allowed.includes(key)) continue;
        const at = join(path, truncateForMessage(key));
        if (TRITON_UNSUPPORTED.has(key)) this.error(`${at} is a Triton setting tensorwire does not support; remove it`);
        const hint = suggest(key, allowed);
        this.error(`unknown field ${at}${hint ? ` (did you mean ${join(path, hint)}?)` : ''}; allowed here: ${allowed.join(', ')}`);
      }
    }
    return obj;
  }

  /**
   * An integer in [min, max]. Numeric strings are accepted because protobuf's JSON form (and
   * so Triton's exported configs) writes 64-bit integers as strings.
   */
  int(v: unknown, path: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
    const n = typeof v === 'string' && v.length <= 32 && /^-?\d+$/.test(v.trim()) ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < min || n > max) {
      let expected: string;
      if (min === 0 && max === Number.MAX_SAFE_INTEGER) expected = 'a non-negative integer';
      else if (min === 1 && max === Number.MAX_SAFE_INTEGER) expected = 'a positive integer';
      else if (max === Number.MAX_SAFE_INTEGER) expected = `an integer >= ${min}`;
      else expected = `an integer from ${min} to ${max}`;
      this.fail(path, expected, v);
    }
    return n;
  }

  /** A boolean; "true"/"false" strings are accepted (Triton's string-valued parameters use them). */
  bool(v: unknown, path: string): boolean {
    if (v === 'true') return true;
    if (v === 'false') return false;
    if (typeof v !== 'boolean') this.fail(path, 'true or false', v);
    return v;
  }

  /** A non-empty string of at most `max` characters. */
  string(v: unknown, path: string, max: number = CONFIG_LIMITS.stringChars): string {
    if (typeof v !== 'string' || v.length === 0) this.fail(path, 'a non-empty string', v);
    if (v.length > max) this.fail(path, `a string of at most ${max} characters`, v);
    return v;
  }

  /** One of `values`, compared exactly. */
  oneOf<T extends string>(v: unknown, path: string, values: readonly T[]): T {
    if (typeof v !== 'string' || !values.includes(v as T)) this.fail(path, `one of ${values.join(', ')}`, v);
    return v as T;
  }

  /** An array of at most `maxLength` elements (its elements are checked by the caller). */
  array(v: unknown, path: string, maxLength = Number.MAX_SAFE_INTEGER): unknown[] {
    if (!Array.isArray(v)) this.fail(path, 'an array', v);
    if (v.length > maxLength) this.error(`${path}: at most ${maxLength} entries, got ${v.length}`);
    return v;
  }

  /** An array of at most `maxLength` integers, each in [min, max]. */
  ints(v: unknown, path: string, min = 0, max = Number.MAX_SAFE_INTEGER, maxLength = Number.MAX_SAFE_INTEGER): number[] {
    return this.array(v, path, maxLength).map((x, i) => this.int(x, join(path, i), min, max));
  }
}

/** JSON text inside a config (a string parameter), parsed within the config's bounds (size, nesting). */
export function parseJsonText(r: FieldReader, text: unknown, path: string): unknown {
  const s = r.string(text, path, CONFIG_LIMITS.configBytes);
  let parsed: unknown;
  try {
    parsed = JSON.parse(s);
  } catch (e) {
    throw new TensorwireError('INVALID_INPUT', `${r.where}: ${path} is not valid JSON (${truncateForMessage((e as Error).message)})`);
  }
  checkNesting(parsed, `${r.where}: ${path}`);
  return parsed;
}
