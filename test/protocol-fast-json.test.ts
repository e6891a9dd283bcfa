/**
 * fast-json-request.ts against the general JSON path (JSON.parse + requestFromJson): on
 * thousands of random requests, and on random corruptions of them, the fast path must give
 * the identical InferRequest (fields, key order, bytes, buffer layout) or decline, and
 * decodeJsonRequest must give the general path's result or its exact error message.
 */
import { describe, expect, it } from 'vitest';
import type { Datatype } from '../lib/engine/types';
import { TensorwireError } from '../lib/errors';
import { decodeJsonRequestFast } from '../lib/protocol/fast-json-request';
import { decodeJsonRequest, decodeJsonRequestGeneral } from '../lib/protocol/json-codec';
import type { RequestDecodeOptions } from '../lib/protocol/request-object';
import type { InferRequest } from '../lib/protocol/types';
import { seededRandom } from './fixtures/random';

// ---- JSON text with control over number spelling, string escapes and whitespace ----------

type Node = { raw: string } | { str: string } | Node[] | { members: [string, Node][] };

interface Style {
  rand: () => number;
  /** Between tokens: '' (compact), ' ', or newlines and indentation. */
  space: () => string;
}

function writeString(s: string, style: Style): string {
  const r = style.rand();
  if (r < 0.6) return JSON.stringify(s);
  // Escapes JSON.parse must decode: \u for some characters, \/ for slashes.
  let out = '"';
  for (const ch of s) {
    const code = ch.codePointAt(0) as number;
    if (ch === '"' || ch === '\\') out += '\\' + ch;
    else if (code < 0x20 || (r < 0.8 && code > 0x7e) || style.rand() < 0.1) {
      for (const unit of ch.split('')) out += '\\u' + unit.charCodeAt(0).toString(16).padStart(4, '0');
    } else if (ch === '/' && r < 0.9) out += '\\/';
    else out += ch;
  }
  return out + '"';
}

function write(node: Node, style: Style): string {
  const s = style.space;
  if ('raw' in node) return node.raw;
  if ('str' in node) return writeString(node.str, style);
  if (Array.isArray(node)) return '[' + s() + node.map((n) => write(n, style)).join(s() + ',' + s()) + s() + ']';
  return '{' + s() + node.members.map(([k, v]) => writeString(k, style) + s() + ':' + s() + write(v, style)).join(s() + ',' + s()) + s() + '}';
}

function makeStyle(rand: () => number): Style {
  const kind = Math.floor(rand() * 4);
  const spaces = ['', ' ', '\n  ', '\t', '\r\n', ' \n '];
  return { rand, space: () => (kind === 0 ? '' : kind === 1 ? (rand() < 0.5 ? ' ' : '') : kind === 2 ? spaces[Math.floor(rand() * spaces.length)] : rand() < 0.1 ? ' ' : '') };
}

// ---- random requests --------------------------------------------------------------------

const DATATYPES: Datatype[] = ['BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP16', 'FP32', 'FP64', 'BF16'];
const RANGE: Record<string, [number, number]> = {
  UINT8: [0, 255], UINT16: [0, 65535], UINT32: [0, 4294967295], INT8: [-128, 127], INT16: [-32768, 32767], INT32: [-2147483648, 2147483647],
  INT64: [-(2 ** 53), 2 ** 53], UINT64: [0, 2 ** 53],
};
const NAMES = ['input', 'x', "it's", 'input__0', 'dense_input:0', 'é名', 'a"b', 'tab\tname', 'back\\slash', 'emoji 🙂', '/path/ok', '__proto__', 'data', 'inputs'];

function pick<T>(rand: () => number, items: readonly T[]): T {
  return items[Math.floor(rand() * items.length)];
}

function floatText(rand: () => number, datatype: Datatype): string {
  const f = new Float32Array(1);
  const r = rand();
  if (r < 0.02) return pick(rand, ['0', '-0', '-0.0', '1e-400', '1e400', '"NaN"', '"Infinity"', '"1.5"', 'true', 'null']);
  const magnitude = 10 ** Math.floor(rand() * (datatype === 'FP64' ? 40 : 14) - 7);
  f[0] = (rand() - 0.5) * magnitude;
  const x = datatype === 'FP64' ? (rand() - 0.5) * magnitude : f[0];
  const form = rand();
  if (form < 0.5) return String(x);
  if (form < 0.8) return x.toPrecision(17);
  if (form < 0.9) return x.toExponential(Math.floor(rand() * 17));
  return x.toFixed(Math.floor(rand() * 12));
}

function integerText(rand: () => number, datatype: Datatype): string {
  const [min, max] = RANGE[datatype];
  const r = rand();
  if (r < 0.03) return pick(rand, [String(max + 1), String(min - 1), '1.5', '"7"', 'true', '-0', '2e0', '1.0', '9223372036854775807', '18446744073709551615', '-9223372036854775808', '12345678901234567890']);
  const v = min + Math.floor(rand() * Math.min(max - min + 1, r < 0.5 ? 100 : Infinity));
  return String(v);
}

function valueText(rand: () => number, datatype: Datatype): string {
  if (datatype === 'BOOL') return rand() < 0.97 ? pick(rand, ['true', 'false', '0', '1']) : pick(rand, ['2', '"true"', 'null', '-0', '1.0']);
  if (datatype.startsWith('FP') || datatype === 'BF16') return floatText(rand, datatype);
  return integerText(rand, datatype);
}

/** The values nested by `shape` (row-major), or flat. */
function nest(values: Node[], shape: number[]): Node {
  if (shape.length <= 1) return values;
  const [, ...rest] = shape;
  const size = rest.reduce((a, b) => a * b, 1);
  const rows: Node[] = [];
  for (let i = 0; i < shape[0]; i++) rows.push(nest(values.slice(i * size, (i + 1) * size), rest));
  return rows;
}

function randomInput(rand: () => number): Node {
  const datatype = rand() < 0.4 ? 'FP32' : pick(rand, DATATYPES);
  const typical = rand() < 0.1;
  const shape = typical ? [1, 256] : Array.from({ length: Math.floor(rand() * 4) }, () => Math.floor(rand() * 5));
  let count = shape.reduce((a, b) => a * b, 1);
  if (rand() < 0.03) count += pick(rand, [-1, 1]);
  const values: Node[] = Array.from({ length: Math.max(count, 0) }, () => ({ raw: valueText(rand, datatype) }));
  const data = rand() < 0.4 && shape.length > 1 && count === shape.reduce((a, b) => a * b, 1) ? nest(values, shape) : values;
  const members: [string, Node][] = [
    ['name', rand() < 0.97 ? { str: pick(rand, NAMES) } : pick(rand, [{ str: '' }, { raw: '5' }, { raw: 'null' }])],
    ['datatype', rand() < 0.97 ? { str: datatype } : pick(rand, [{ str: 'FLOAT' }, { str: 'BYTES' }, { raw: '3' }])],
    ['shape', rand() < 0.97 ? shape.map((d) => ({ raw: String(d) })) : pick(rand, [[{ raw: '-1' }], { str: '1' }, [{ raw: '1.5' }]])],
    ['data', rand() < 0.98 ? data : pick(rand, [{ raw: 'null' }, { str: 'abc' }, { members: [] }])],
  ];
  if (rand() < 0.15) members.push(['parameters', pick(rand, [{ members: [] }, { members: [['content_type', { str: 'np' }]] }, { members: [['binary_data_size', { raw: '4' }]] }, { members: [['shared_memory_region', { str: 'r' }]] }, [] as Node[]])]);
  if (rand() < 0.1) members.push(['extra', { members: [['data', [{ raw: '1' }, { raw: '2' }]], ['n', { raw: 'null' }]] }]);
  if (rand() < 0.03) members.push(['data', values]); // a duplicate key: the last one counts
  if (rand() < 0.02) members.splice(3, 1); // no data at all
  shuffle(rand, members);
  return { members };
}

function shuffle<T>(rand: () => number, items: T[]): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [items[i], items[j]] = [items[j], items[i]];
  }
}

function randomParameters(rand: () => number): Node {
  const members: [string, Node][] = [];
  if (rand() < 0.4) members.push(['priority', { raw: pick(rand, ['1', '2', '0', '-1', '1.5']) }]);
  if (rand() < 0.4) members.push(['timeout', { raw: pick(rand, ['1000', '0', '"5"']) }]);
  if (rand() < 0.4) members.push(['binary_data_output', { raw: pick(rand, ['true', 'false', '1']) }]);
  if (rand() < 0.5) members.push(['sequence_id', { raw: pick(rand, ['7', '-0', '12345678901234567890', '1e300', '0.1']) }]);
  if (rand() < 0.3) members.push(['note', { str: pick(rand, NAMES) }]);
  if (rand() < 0.2) members.push(['nested', { members: [['a', [{ raw: 'true' }, { raw: 'null' }, { raw: '-1.5e-7' }, { str: 'x' }]], ['2', { members: [] }], ['1', { raw: 'false' }]] }]);
  if (rand() < 0.02) members.push(['triton_x', { raw: '1' }]);
  return { members };
}

function randomRequest(rand: () => number): { text: string; options: RequestDecodeOptions | undefined } {
  const members: [string, Node][] = [['inputs', Array.from({ length: 1 + Math.floor(rand() * 3) }, () => randomInput(rand))]];
  if (rand() < 0.3) members.push(['id', rand() < 0.9 ? { str: pick(rand, ['req-1', 'é', '42', '']) } : { raw: pick(rand, ['42', '1.5', 'null']) }]);
  if (rand() < 0.4) members.push(['parameters', randomParameters(rand)]);
  if (rand() < 0.3) members.push(['outputs', [{ members: [['name', { str: 'y' }]] }, { members: [['name', { str: 'z' }], ['parameters', { members: [['binary_data', { raw: pick(rand, ['true', 'false', '"yes"']) }]] }]] }]]);
  if (rand() < 0.1) members.push(['model_name', { str: 'mlp' }]);
  shuffle(rand, members);
  const options = pick(rand, [undefined, { defaultBinaryOutput: true }, { allowBinaryOutput: false }, { numericId: true }] as (RequestDecodeOptions | undefined)[]);
  return { text: write({ members }, makeStyle(rand)), options };
}

// ---- comparison ------------------------------------------------------------------------

function summary(r: InferRequest): unknown {
  return {
    ...r,
    parameterKeys: Object.keys(r.parameters),
    inputs: r.inputs.map((t) => ({ ...t, data: Buffer.from(t.data).toString('hex'), whole: t.data.byteOffset === 0 && t.data.buffer.byteLength === t.data.byteLength })),
  };
}

function outcome(decode: () => InferRequest): { request?: InferRequest; error?: string } {
  try {
    return { request: decode() };
  } catch (e) {
    expect(e).toBeInstanceOf(TensorwireError);
    return { error: `${(e as TensorwireError).code}: ${(e as Error).message}` };
  }
}

/** Checks both paths on one body; returns whether the fast path took it. */
function expectSame(body: Uint8Array, options: RequestDecodeOptions | undefined): boolean {
  const general = outcome(() => decodeJsonRequestGeneral(body, options));
  const fast = decodeJsonRequestFast(body, options);
  if (general.error !== undefined) {
    expect(fast, `the fast path accepted what the general path refuses (${general.error})`).toBeUndefined();
  } else if (fast !== undefined) {
    expect(summary(fast)).toStrictEqual(summary(general.request as InferRequest));
  }
  const wired = outcome(() => decodeJsonRequest(body, options));
  if (general.error !== undefined) expect(wired.error).toBe(general.error);
  else expect(summary(wired.request as InferRequest)).toStrictEqual(summary(general.request as InferRequest));
  return fast !== undefined;
}

// ---- tests -----------------------------------------------------------------------------

// Requests per random test; FAST_JSON_FUZZ=100000 runs a longer search. FAST_JSON_SEED varies it.
const ROUNDS = Number(process.env.FAST_JSON_FUZZ ?? 4000);
const SEED = Number(process.env.FAST_JSON_SEED ?? 0);

describe('fast JSON request path', () => {
  it('random requests: identical to the general path, or declined', () => {
    const rand = seededRandom(11 + SEED);
    let taken = 0;
    let valid = 0;
    for (let i = 0; i < ROUNDS; i++) {
      const { text, options } = randomRequest(rand);
      if (expectSame(Buffer.from(text), options)) taken++;
      if (outcome(() => decodeJsonRequestGeneral(text, options)).error === undefined) valid++;
    }
    // The generator makes mostly valid, plain requests: the fast path must take most of them.
    expect(valid).toBeGreaterThan(ROUNDS / 4);
    expect(taken).toBeGreaterThan(valid * 0.8);
  });

  it('random corruptions of requests: never accepted where the general path refuses, same error messages', () => {
    const rand = seededRandom(12 + SEED);
    const inserts = ['{', '}', '[', ']', ',', ':', '"', '\\', '-', '.', 'e', '0', '1', ' ', 't', 'n', '\u0001', '\u00e9', '\uFEFF'];
    for (let i = 0; i < ROUNDS; i++) {
      const { text, options } = randomRequest(rand);
      const bytes = Buffer.from(text);
      const at = Math.floor(rand() * bytes.length);
      let mutated: Buffer;
      const kind = rand();
      if (kind < 0.3) mutated = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1)]);
      else if (kind < 0.6) mutated = Buffer.concat([bytes.subarray(0, at), Buffer.from(pick(rand, inserts)), bytes.subarray(at)]);
      else if (kind < 0.8) mutated = Buffer.concat([bytes.subarray(0, at), Buffer.from(pick(rand, inserts)), bytes.subarray(at + 1)]);
      else if (kind < 0.9) mutated = bytes.subarray(0, at);
      else mutated = Buffer.concat([bytes, Buffer.from(pick(rand, [' x', '}', ' ', '\n', '\u0000', '{}']))]);
      expectSame(mutated, options);
    }
  });

  it('takes the typical request (256 float32 values, 17 digits) and writes their exact bits', () => {
    const rand = seededRandom(13);
    const values = new Float32Array(256).map(() => rand() * 2 - 1);
    const text = `{"inputs":[{"name":"input","datatype":"FP32","shape":[1,256],"data":[${Array.from(values).join(',')}]}]}`;
    const fast = decodeJsonRequestFast(Buffer.from(text));
    expect(fast).toBeDefined();
    const data = (fast as InferRequest).inputs[0].data;
    expect(Buffer.from(data).equals(Buffer.from(values.buffer))).toBe(true);
    expect(expectSame(Buffer.from(text), undefined)).toBe(true);
    // A Uint8Array that is not a Buffer, at an offset into a larger buffer, reads the same.
    const padded = new Uint8Array(text.length + 10);
    padded.set(Buffer.from(text), 7);
    expect(expectSame(padded.subarray(7, 7 + text.length), undefined)).toBe(true);
  });

  it('takes nested data, every datatype, parameters, outputs and escaped names', () => {
    const text = JSON.stringify({
      id: 'r\u00e9q',
      parameters: { priority: 2, timeout: 1500, binary_data_output: true, sequence_id: 7, note: 'kept', nested: { a: [1, null, 'x'] } },
      inputs: DATATYPES.map((datatype, i) => ({ name: `in\u00e9"${i}`, datatype, shape: [2, 2], data: datatype === 'BOOL' ? [[true, false], [0, 1]] : [[1, 2], [3, -0]], parameters: { content_type: 'x' } })),
      outputs: [{ name: 'y', parameters: { binary_data: false } }, { name: 'z' }],
    }).replace(/\u00e9/g, '\\u00e9');
    for (const options of [undefined, { defaultBinaryOutput: true }, { allowBinaryOutput: false }]) expect(expectSame(Buffer.from(text), options)).toBe(true);
    // Members requestFromJson does not read are checked as JSON and dropped, whatever their key.
    expect(expectSame(Buffer.from('{"__proto__":{"x":1},"inputs":[{"name":"a","datatype":"FP32","shape":[1],"data":[1],"__proto__":[]}]}'), undefined)).toBe(true);
  });

  it('decodes invalid UTF-8 in a name as the general path does (U+FFFD), and takes string bodies the general way', () => {
    const body = Buffer.concat([Buffer.from('{"inputs":[{"name":"a'), Buffer.from([0xff, 0xc3]), Buffer.from('b","datatype":"FP32","shape":[1],"data":[1]}]}')]);
    expect(expectSame(body, undefined)).toBe(true);
    expect((decodeJsonRequestFast(body) as InferRequest).inputs[0].name).toBe('a\ufffd\ufffdb');
    const text = '{"inputs":[{"name":"x","datatype":"FP32","shape":[2],"data":[0.5,1e-7]}]}';
    expect(summary(decodeJsonRequest(text))).toStrictEqual(summary(decodeJsonRequestGeneral(Buffer.from(text))));
  });

  it('declines what it does not do, and decodeJsonRequest still decodes it exactly', () => {
    const cases = [
      '{"inputs":[{"name":"a","datatype":"INT64","shape":[2],"data":[9223372036854775807,-9223372036854775808]}]}',
      '{"inputs":[{"name":"a","datatype":"FP32","shape":[3],"data":["NaN","Infinity","1.5"]}]}',
      '{"inputs":[{"name":"a","datatype":"INT32","shape":[1],"data":["7"]}]}',
      '{"inputs":[]}',
      '{"inputs":[{"name":"a","datatype":"FP32","shape":[1],"parameters":{"binary_data_size":4}}]}',
      '{"parameters":{"__proto__":{"x":1}},"inputs":[{"name":"a","datatype":"FP32","shape":[1],"data":[1]}]}',
      `{"inputs":[{"name":"a","datatype":"FP32","shape":[1],"data":[1]}],"parameters":${'{"a":'.repeat(80)}1${'}'.repeat(80)}}`,
    ];
    for (const text of cases) {
      expect(decodeJsonRequestFast(Buffer.from(text))).toBeUndefined();
      expectSame(Buffer.from(text), undefined);
    }
    const exact = decodeJsonRequest(Buffer.from(cases[0]));
    expect(Array.from(new BigInt64Array(exact.inputs[0].data.buffer))).toEqual([2n ** 63n - 1n, -(2n ** 63n)]);
  });

  it('gives the general path error messages for bad requests', () => {
    const x = '{"name":"x","datatype":"FP32","shape":[2],"data":[1,2]}';
    const cases: [string, string][] = [
      ['{"inputs":[{"name":"x","datatype":"FP32","shape":[3],"data":[1,2]}]}', "input 'x': expected 3 FP32 values for shape [3], got 2"],
      ['{"inputs":[{"name":"x","datatype":"INT8","shape":[1],"data":[200]}]}', "input 'x': value at index 0 (200) is out of range for INT8 [-128, 127]"],
      ['{"inputs":[{"name":"x","datatype":"INT32","shape":[1],"data":[1.5]}]}', "input 'x': value at index 0 is not an integer (got 1.5)"],
      ['{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[true]}]}', "input 'x': value at index 0 is not a number (got true)"],
      ['{"inputs":[{"name":"x","datatype":"BOOL","shape":[1],"data":[2]}]}', "input 'x': value at index 0 is not a boolean (got 2)"],
      [`{"inputs":[${x}],"id":5}`, "'id' must be a string, got 5"],
      [`{"inputs":[${x}],"outputs":{}}`, "'outputs' must be an array, got {}"],
      [`{"inputs":[${x}],"parameters":{"priority":-1}}`, "request parameter 'priority' must be a non-negative integer, got -1"],
      [`{"inputs":[${x.replace('"x"', '""')}]}`, `input 0: 'name' must be a non-empty string, got ""`],
      [`{"inputs":[${x}]} x`, ''],
      [`{"inputs":[${x.replace('[1,2]', '[1,2,]')}]}`, ''],
      [`{"inputs":[${x.replace('[1,2]', '[01,2]')}]}`, ''],
    ];
    for (const [text, message] of cases) {
      const body = Buffer.from(text);
      expect(decodeJsonRequestFast(body)).toBeUndefined();
      const error = outcome(() => decodeJsonRequest(body)).error as string;
      expect(error).toBe(outcome(() => decodeJsonRequestGeneral(body)).error);
      if (message !== '') expect(error).toBe(`INVALID_INPUT: ${message}`);
      else expect(error.startsWith('INVALID_INPUT: malformed JSON: ')).toBe(true);
    }
  });
});
