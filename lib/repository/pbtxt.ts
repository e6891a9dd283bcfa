/**
 * Reads Triton `config.pbtxt` files: a parser for the subset of the protobuf text format
 * that model configs use (messages `{}` or `<>`, repeated fields written either as repeated
 * occurrences or `[a, b]` lists, enums, booleans, strings, numbers, `#` comments, map fields
 * as `{ key: .. value: .. }` entries). The parsed tree is shaped into the same object a
 * config.json holds, using a small schema of which fields are repeated or maps, and then
 * validated by validateConfig, so both formats give the same ModelConfig and the same errors.
 */
import { TensorwireError } from '../errors';
import { truncateForMessage } from '../util/message-text';
import { checkConfigSize, type ModelConfig, validateConfig } from './config';
import { CONFIG_LIMITS } from './config-limits';

type Scalar = string | number | boolean;

/** A parsed value: a scalar or a message (a list of fields in file order). */
type PValue = { kind: 'scalar'; value: Scalar; line: number; col: number } | { kind: 'message'; fields: PField[]; line: number; col: number };

/** One occurrence of a field; a `[a, b]` list gives one occurrence with several values. */
interface PField {
  name: string;
  values: PValue[];
  list: boolean;
  line: number;
  col: number;
}

interface Token {
  type: 'ident' | 'number' | 'string' | 'punct' | 'eof';
  text: string;
  value?: Scalar;
  line: number;
  col: number;
}

const ESCAPES: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', '"': '"', "'": "'", a: '\x07', b: '\b', f: '\f', v: '\v', '?': '?' };

// Sticky (`y`): matched at `lastIndex` in the text itself, without slicing it per token.
const NUMBER = /[-+]?(0[xX][0-9a-fA-F]+|(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)[fF]?/y;
const IDENT = /[A-Za-z_][A-Za-z0-9_.]{0,255}/y;

function matchAt(re: RegExp, text: string, at: number): RegExpExecArray | null {
  re.lastIndex = at;
  return re.exec(text);
}

/** Splits pbtxt text into tokens, tracking line and column for messages. */
function tokenize(text: string, where: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  let line = 1;
  let lineStart = 0;
  let depth = 0;
  const fail = (msg: string): never => {
    throw new TensorwireError('INVALID_INPUT', `${where}:${line}:${i - lineStart + 1}: ${msg}`);
  };
  while (i < text.length) {
    const c = text[i];
    if (c === '\n') {
      line++;
      i++;
      lineStart = i;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\r') {
      i++;
      continue;
    }
    if (c === '#') {
      while (i < text.length && text[i] !== '\n') i++;
      continue;
    }
    const col = i - lineStart + 1;
    if ('{}[]<>:,;'.includes(c)) {
      // Refused here already, before the rest of a hostile file is tokenized; the parser checks again.
      if (c === '{' || c === '<') depth++;
      else if (c === '}' || c === '>') depth--;
      if (depth > CONFIG_LIMITS.nestingDepth) fail(`messages nested deeper than ${CONFIG_LIMITS.nestingDepth} levels (the nesting limit of a config)`);
      tokens.push({ type: 'punct', text: c, line, col });
      i++;
      continue;
    }
    if (c === '"' || c === "'") {
      let s = '';
      i++;
      while (text[i] !== c) {
        if (i >= text.length || text[i] === '\n') fail('unterminated string');
        if (text[i] === '\\') {
          const e = text[i + 1];
          if (e === 'x' && /^[0-9a-fA-F]{2}$/.test(text.slice(i + 2, i + 4))) {
            s += String.fromCharCode(parseInt(text.slice(i + 2, i + 4), 16));
            i += 4;
          } else if (/[0-7]/.test(e ?? '')) {
            // Slice only the escape's own characters: slicing the rest of the text made every escape cost the file's length.
            const m = /^[0-7]{1,3}/.exec(text.slice(i + 1, i + 4))![0];
            s += String.fromCharCode(parseInt(m, 8));
            i += 1 + m.length;
          } else if (e !== undefined && e in ESCAPES) {
            s += ESCAPES[e];
            i += 2;
          } else fail(`unknown escape \\${e ?? ''} in string`);
        } else s += text[i++];
      }
      i++;
      const prev = tokens[tokens.length - 1];
      // Adjacent string literals concatenate, as in protobuf.
      if (prev?.type === 'string' && prev.line === line) prev.value = (prev.value as string) + s;
      else tokens.push({ type: 'string', text: s, value: s, line, col });
      continue;
    }
    const num = '+-.0123456789'.includes(c) ? matchAt(NUMBER, text, i) : null;
    if (num && (/[\d.]/.test(c) || /[\d.]/.test(text[i + 1] ?? ''))) {
      const t = num[0].replace(/[fF]$/, '');
      const n = Number(t);
      // Integers beyond 2^53 stay strings so validation reports them rather than rounding.
      const value = Number.isSafeInteger(n) || !Number.isInteger(n) ? n : t;
      tokens.push({ type: 'number', text: num[0], value, line, col });
      i += num[0].length;
      continue;
    }
    const ident = matchAt(IDENT, text, i);
    if (ident) {
      tokens.push({ type: 'ident', text: ident[0], line, col });
      i += ident[0].length;
      continue;
    }
    fail(`unexpected character ${JSON.stringify(c)}`);
  }
  tokens.push({ type: 'eof', text: 'end of file', line, col: i - lineStart + 1 });
  return tokens;
}

const TRUE = new Set(['true', 'True', 't']);
const FALSE = new Set(['false', 'False', 'f']);

/** Recursive-descent parser over the tokens. */
class Parser {
  private pos = 0;
  constructor(private readonly tokens: Token[], private readonly where: string) {}

  private peek(): Token {
    return this.tokens[this.pos];
  }
  private next(): Token {
    return this.tokens[this.pos++];
  }
  private fail(t: Token, msg: string): never {
    throw new TensorwireError('INVALID_INPUT', `${this.where}:${t.line}:${t.col}: ${msg}, got ${t.type === 'eof' ? 'end of file' : JSON.stringify(truncateForMessage(t.text))}`);
  }
  private isPunct(text: string): boolean {
    const t = this.peek();
    return t.type === 'punct' && t.text === text;
  }

  /** Fields until `close` (or end of file for the top level); `depth` counts enclosing messages. */
  parseFields(close: string | undefined, depth = 0): PField[] {
    const fields: PField[] = [];
    for (;;) {
      const t = this.peek();
      if (close === undefined ? t.type === 'eof' : t.type === 'punct' && t.text === close) return fields;
      if (t.type !== 'ident') this.fail(t, close === undefined ? 'expected a field name' : `expected a field name or "${close}"`);
      this.next();
      const hasColon = this.isPunct(':');
      if (hasColon) this.next();
      const field: PField = { name: t.text, values: [], list: false, line: t.line, col: t.col };
      if (this.isPunct('[')) {
        this.next();
        field.list = true;
        while (!this.isPunct(']')) {
          field.values.push(this.parseValue(true, depth));
          if (this.isPunct(',')) this.next();
          else if (!this.isPunct(']')) this.fail(this.peek(), `expected "," or "]" in the list of ${t.text}`);
        }
        this.next();
      } else {
        if (!hasColon && !this.isPunct('{') && !this.isPunct('<')) this.fail(this.peek(), `expected ":" or "{" after ${t.text}`);
        field.values.push(this.parseValue(hasColon, depth));
      }
      fields.push(field);
      if (this.isPunct(',') || this.isPunct(';')) this.next();
    }
  }

  private parseValue(scalarAllowed: boolean, depth: number): PValue {
    const t = this.next();
    if (t.type === 'punct' && (t.text === '{' || t.text === '<')) {
      // A recursive descent: bound the nesting before the stack is (100,000 levels overflowed it).
      if (depth + 1 > CONFIG_LIMITS.nestingDepth) {
        throw new TensorwireError('INVALID_INPUT', `${this.where}:${t.line}:${t.col}: messages nested deeper than ${CONFIG_LIMITS.nestingDepth} levels (the nesting limit of a config)`);
      }
      const close = t.text === '{' ? '}' : '>';
      const fields = this.parseFields(close, depth + 1);
      this.next();
      return { kind: 'message', fields, line: t.line, col: t.col };
    }
    if (!scalarAllowed) this.fail(t, 'expected "{"');
    if (t.type === 'string' || t.type === 'number') return { kind: 'scalar', value: t.value!, line: t.line, col: t.col };
    if (t.type === 'ident') {
      const value = TRUE.has(t.text) ? true : FALSE.has(t.text) ? false : t.text;
      return { kind: 'scalar', value, line: t.line, col: t.col };
    }
    return this.fail(t, 'expected a value');
  }
}

/** How a field is shaped into JSON: a single value, a repeated field, a message or a map. */
type Shape = 'one' | { repeated: Shape } | { message: Record<string, Shape> } | { map: Shape };

const one = 'one' as const;
const rep = (s: Shape): Shape => ({ repeated: s });
const msg = (m: Record<string, Shape>): Shape => ({ message: m });
const map = (s: Shape): Shape => ({ map: s });

const QUEUE_POLICY = msg({ max_queue_size: one, default_timeout_microseconds: one, allow_timeout_override: one, timeout_action: one });
const TENSOR = msg({ name: one, data_type: one, dims: rep(one) });
const ACCELERATOR = msg({ name: one, parameters: map(one) });

/** The fields of Triton's ModelConfig that tensorwire reads; others are shaped generically (and then rejected by validation). */
const MODEL_CONFIG = msg({
  name: one, platform: one, backend: one, default_model_filename: one, max_batch_size: one,
  input: rep(TENSOR),
  output: rep(TENSOR),
  dynamic_batching: msg({
    preferred_batch_size: rep(one), max_queue_delay_microseconds: one, priority_levels: one, default_priority_level: one,
    default_queue_policy: QUEUE_POLICY, priority_queue_policy: map(QUEUE_POLICY),
  }),
  instance_group: rep(msg({ name: one, kind: one, count: one, gpus: rep(one) })),
  optimization: msg({
    provider: msg({}),
    execution_accelerators: msg({ gpu_execution_accelerator: rep(ACCELERATOR), cpu_execution_accelerator: rep(ACCELERATOR) }),
    input_pinned_memory: msg({ enable: one }),
    output_pinned_memory: msg({ enable: one }),
    graph: msg({ level: one }),
  }),
  parameters: map(msg({ string_value: one })),
  response_cache: msg({ enable: one }),
  ensemble_scheduling: msg({ step: rep(msg({ model_name: one, model_version: one, input_map: map(one), output_map: map(one) })) }),
  version_policy: msg({ latest: msg({ num_versions: one }), all: msg({}), specific: msg({ versions: rep(one) }) }),
  model_warmup: rep(msg({
    name: one, batch_size: one, count: one,
    inputs: map(msg({ data_type: one, dims: rep(one), zero_data: one, random_data: one, input_data_file: one })),
  })),
});

/** Shapes parsed values into a JSON-like value following `shape`. */
class Shaper {
  constructor(private readonly where: string) {}

  private fail(at: { line: number; col: number }, msg: string): never {
    throw new TensorwireError('INVALID_INPUT', `${this.where}:${at.line}:${at.col}: ${msg}`);
  }

  value(v: PValue, shape: Shape | undefined, path: string): unknown {
    if (v.kind === 'scalar') {
      if (shape !== undefined && shape !== 'one' && !('repeated' in shape)) this.fail(v, `${path} must be a message ({ ... }), got ${JSON.stringify(typeof v.value === 'string' ? truncateForMessage(v.value) : v.value)}`);
      return v.value;
    }
    if (shape !== undefined && shape !== 'one' && 'map' in shape) return this.map([v], shape.map, path);
    return this.message(v.fields, shape !== undefined && typeof shape === 'object' && 'message' in shape ? shape.message : undefined, path);
  }

  message(fields: PField[], schema: Record<string, Shape> | undefined, path: string): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    const byName = new Map<string, PField[]>();
    for (const f of fields) {
      // push, not a copy per occurrence: a field repeated n times cost n² before.
      const list = byName.get(f.name);
      if (list) list.push(f);
      else byName.set(f.name, [f]);
    }
    for (const [name, occurrences] of byName) {
      const shape = schema?.[name];
      const at = path ? `${path}.${name}` : name;
      const values = occurrences.flatMap((f) => f.values);
      if (shape !== undefined && typeof shape === 'object' && 'repeated' in shape) {
        out[name] = values.map((v, i) => this.value(v, shape.repeated, `${at}[${i}]`));
      } else if (shape !== undefined && typeof shape === 'object' && 'map' in shape) {
        out[name] = this.map(values, shape.map, at);
      } else if (occurrences.length > 1 || occurrences[0].list) {
        if (shape !== undefined) this.fail(occurrences[occurrences.length - 1], occurrences.length > 1 ? `${at} is given more than once` : `${at} takes one value, not a list`);
        out[name] = values.map((v, i) => this.value(v, undefined, `${at}[${i}]`));
      } else {
        out[name] = this.value(values[0], shape, at);
      }
    }
    return out;
  }

  /** A protobuf map field: entries `{ key: K value: V }` become `{ K: V }`. */
  private map(entries: PValue[], valueShape: Shape, path: string): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const e of entries) {
      if (e.kind !== 'message') this.fail(e, `${path} entries must be { key: ... value: ... }`);
      const key = e.fields.find((f) => f.name === 'key');
      const value = e.fields.find((f) => f.name === 'value');
      const extra = e.fields.find((f) => f.name !== 'key' && f.name !== 'value');
      if (!key || key.values.length !== 1 || key.values[0].kind !== 'scalar') this.fail(e, `${path} entry needs a key: ...`);
      if (extra) this.fail(extra, `${path} entries hold only key and value, got ${extra.name}`);
      const k = String(key.values[0].value);
      if (k in out) this.fail(key, `${path} has the key ${JSON.stringify(truncateForMessage(k))} twice`);
      if (!value || value.values.length !== 1) this.fail(e, `${path}[${JSON.stringify(truncateForMessage(k))}] needs a value: ...`);
      out[k] = this.value(value.values[0], valueShape, `${path}.${truncateForMessage(k)}`);
    }
    return out;
  }
}

/**
 * Parses pbtxt text into the object a config.json would hold (not yet validated).
 * Syntax errors name `where:line:column`.
 */
export function pbtxtToObject(text: string, where = 'config.pbtxt'): Record<string, unknown> {
  checkConfigSize(text, where);
  const fields = new Parser(tokenize(text, where), where).parseFields(undefined);
  const schema = (MODEL_CONFIG as { message: Record<string, Shape> }).message;
  return new Shaper(where).message(fields, schema, '');
}

/** Parses and validates a Triton config.pbtxt into a ModelConfig; throws TensorwireError INVALID_INPUT naming `where`. */
export function parseConfigPbtxt(text: string, where = 'config.pbtxt'): ModelConfig {
  return validateConfig(pbtxtToObject(text, where), where);
}
