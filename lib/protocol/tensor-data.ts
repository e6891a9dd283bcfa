/**
 * JSON tensor data -> little-endian bytes, for request inputs given as a KServe v2 "data"
 * array (flat or nested, row-major). The reverse direction, bytes -> JSON, is in
 * tensor-json.ts.
 *
 * Accepted element values, per datatype:
 * - BOOL: true/false (and 0/1).
 * - integers: JS numbers that are integers within the datatype's range, or strings of
 *   decimal integers. INT64/UINT64 take the full 64-bit range through strings; a bare JSON
 *   number beyond 2^53 loses precision in JSON.parse, which json-codec.ts detects (through
 *   `JsonDecodeState`) and repairs by re-reading those numbers exactly from the text.
 * - BYTES: strings (UTF-8 on the wire), serialized with 4-byte length prefixes (bytes-tensor.ts).
 * - FP16/BF16/FP32/FP64: numbers, or strings of numbers, including "NaN", "Infinity" and
 *   "-Infinity" (JSON has no literal for them; tensor-json.ts writes them the same way).
 *   Triton refuses FP16/BF16 in JSON; tensorwire rounds them to nearest even (half.ts).
 *
 * The loops below are written per datatype family on purpose: one loop per typed-array
 * kind keeps V8's element stores monomorphic, which is what makes this the cheap part of
 * the request path.
 */
import { endianness } from 'node:os';
import type { Datatype } from '../engine/types';
import { DATATYPE_SIZE } from '../engine/types';
import { TensorwireError } from '../errors';
import { jsonToBytesTensor } from './bytes-tensor';
import { float32ToBfloat16Bits, float32ToFloat16Bits } from './half';

// Typed arrays use the host's byte order and the protocol is little-endian. Every platform
// Node and ONNX Runtime ship for is little-endian; refuse loudly rather than corrupt data.
if (endianness() !== 'LE') {
  throw new TensorwireError('INTERNAL', 'tensorwire needs a little-endian host: tensor data is exchanged in little-endian byte order');
}

/** Every datatype tensorwire carries, in KServe spelling. */
export const DATATYPES: readonly Datatype[] = Object.keys(DATATYPE_SIZE) as Datatype[];

/** True when `name` is a datatype tensorwire carries. */
export function isDatatype(name: unknown): name is Datatype {
  return typeof name === 'string' && Object.prototype.hasOwnProperty.call(DATATYPE_SIZE, name);
}

/** Number of elements of a tensor of `shape` (1 for a scalar shape []). */
export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (let i = 0; i < shape.length; i++) n *= shape[i];
  return n;
}

/** A shape as messages print it: `[2,4]`, `[-1,3,224,224]`. */
export function formatShape(shape: readonly number[]): string {
  return '[' + shape.join(',') + ']';
}

/** A received value, short enough for an error message. */
export function describeValue(value: unknown): string {
  let text: string;
  if (typeof value === 'bigint') text = value.toString();
  else if (value === undefined) text = 'undefined';
  else text = JSON.stringify(value) ?? String(value);
  return text.length > 40 ? text.slice(0, 37) + '...' : text;
}

/**
 * Shared with the caller across the inputs of one request: set when a JSON number beyond
 * 2^53 reached an INT64/UINT64 tensor, i.e. JSON.parse may have rounded it. The tensor then
 * holds placeholder values and the caller must decode again from an exact parse.
 */
export interface JsonDecodeState {
  lossyIntegers: boolean;
}

const INT_MIN: Partial<Record<Datatype, number>> = { INT8: -128, INT16: -32768, INT32: -2147483648, UINT8: 0, UINT16: 0, UINT32: 0 };
const INT_MAX: Partial<Record<Datatype, number>> = { INT8: 127, INT16: 32767, INT32: 2147483647, UINT8: 255, UINT16: 65535, UINT32: 4294967295 };
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;
const TWO_POW_32 = 4294967296;
const DECIMAL_INTEGER = /^-?\d+$/;
const DECIMAL_NUMBER = /^-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

function fail(label: string, detail: string): TensorwireError {
  return new TensorwireError('INVALID_INPUT', `${label}: ${detail}`);
}

/** Appends the leaves of a nested array to `out`, row-major (a plain function: no closure per call). */
function flattenInto(values: unknown[], out: unknown[]): void {
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (Array.isArray(v)) flattenInto(v, out);
    else out.push(v);
  }
}

/**
 * Converts the JSON `data` of tensor `label` (e.g. "input 'x'") to little-endian bytes of
 * `datatype` for `shape`. Throws INVALID_INPUT naming the tensor, the index and the value.
 * `state`, when given, collects precision loss of big integers (see JsonDecodeState); without
 * it such a number is taken as the double JSON.parse produced.
 */
export function jsonToTensorBytes(label: string, datatype: Datatype, shape: readonly number[], data: unknown, state?: JsonDecodeState): Uint8Array {
  if (!Array.isArray(data)) throw fail(label, `'data' must be an array, got ${describeValue(data)}`);
  let flat: unknown[] = data;
  if (data.length > 0 && Array.isArray(data[0])) {
    flat = [];
    flattenInto(data, flat);
  }
  const count = elementCount(shape);
  if (flat.length !== count) {
    throw fail(label, `expected ${count} ${datatype} values for shape ${formatShape(shape)}, got ${flat.length}`);
  }
  // BYTES: an array of strings, serialized as bytes-tensor.ts says.
  if (datatype === 'BYTES') return jsonToBytesTensor(label, flat);
  const bytes = new Uint8Array(count * DATATYPE_SIZE[datatype]);
  const buffer = bytes.buffer;
  switch (datatype) {
    case 'FP32':
      fillFloats(label, flat, new Float32Array(buffer));
      break;
    case 'FP64':
      fillFloats(label, flat, new Float64Array(buffer));
      break;
    case 'FP16':
    case 'BF16':
      fillHalves(label, datatype, flat, new Uint16Array(buffer));
      break;
    case 'INT8':
      fillSigned(label, datatype, flat, new Int8Array(buffer));
      break;
    case 'INT16':
      fillSigned(label, datatype, flat, new Int16Array(buffer));
      break;
    case 'INT32':
      fillSigned(label, datatype, flat, new Int32Array(buffer));
      break;
    case 'UINT8':
      fillUnsigned(label, datatype, flat, bytes);
      break;
    case 'UINT16':
      fillUnsigned(label, datatype, flat, new Uint16Array(buffer));
      break;
    case 'UINT32':
      fillUnsigned(label, datatype, flat, new Uint32Array(buffer));
      break;
    case 'INT64':
    case 'UINT64':
      fill64(label, datatype, flat, new Uint32Array(buffer), state);
      break;
    case 'BOOL':
      fillBools(label, flat, bytes);
      break;
    default:
      throw fail(label, `datatype ${String(datatype)} cannot be given as JSON data`);
  }
  return bytes;
}

function fillFloats(label: string, flat: unknown[], out: Float32Array | Float64Array): void {
  for (let i = 0; i < flat.length; i++) {
    const v = flat[i];
    out[i] = typeof v === 'number' ? v : floatFromOther(label, v, i);
  }
}

function fillHalves(label: string, datatype: 'FP16' | 'BF16', flat: unknown[], out: Uint16Array): void {
  const fp16 = datatype === 'FP16';
  for (let i = 0; i < flat.length; i++) {
    let v = flat[i];
    if (typeof v !== 'number') v = floatFromOther(label, v, i);
    out[i] = fp16 ? float32ToFloat16Bits(v as number) : float32ToBfloat16Bits(v as number);
  }
}

function fillSigned(label: string, datatype: Datatype, flat: unknown[], out: Int8Array | Int16Array | Int32Array): void {
  const min = INT_MIN[datatype] as number;
  const max = INT_MAX[datatype] as number;
  for (let i = 0; i < flat.length; i++) {
    const v = flat[i];
    // `(v | 0) === v` is the cheap integer test for everything that fits 32 bits.
    out[i] = typeof v === 'number' && (v | 0) === v && v >= min && v <= max ? v : intFromOther(label, datatype, v, i, min, max);
  }
}

function fillUnsigned(label: string, datatype: Datatype, flat: unknown[], out: Uint8Array | Uint16Array | Uint32Array): void {
  const max = INT_MAX[datatype] as number;
  for (let i = 0; i < flat.length; i++) {
    const v = flat[i];
    out[i] = typeof v === 'number' && v >= 0 && v <= max && Math.floor(v) === v ? v : intFromOther(label, datatype, v, i, 0, max);
  }
}

function fillBools(label: string, flat: unknown[], out: Uint8Array): void {
  for (let i = 0; i < flat.length; i++) {
    const v = flat[i];
    if (v === true || v === 1) out[i] = 1;
    else if (v !== false && v !== 0) throw fail(label, `value at index ${i} is not a boolean (got ${describeValue(v)})`);
  }
}

/** INT64/UINT64 as two 32-bit words per element: no BigInt on the common path. */
function fill64(label: string, datatype: 'INT64' | 'UINT64', flat: unknown[], words: Uint32Array, state: JsonDecodeState | undefined): void {
  const unsigned = datatype === 'UINT64';
  let big: BigInt64Array | BigUint64Array | undefined;
  for (let i = 0; i < flat.length; i++) {
    const v = flat[i];
    if (typeof v === 'number' && Number.isSafeInteger(v) && (v >= 0 || !unsigned)) {
      words[2 * i] = v >>> 0; // ToUint32 is exact modulo 2^32 for any safe integer
      words[2 * i + 1] = Math.floor(v / TWO_POW_32); // the high word, two's complement for negatives
      continue;
    }
    if (state !== undefined && typeof v === 'number' && Number.isInteger(v) && (v >= 0 || !unsigned)) {
      // Beyond 2^53: JSON.parse may have rounded it. Let the caller re-read the text exactly.
      state.lossyIntegers = true;
      continue;
    }
    const exact = bigIntFromOther(label, datatype, v, i);
    if (big === undefined) big = unsigned ? new BigUint64Array(words.buffer, words.byteOffset, words.length / 2) : new BigInt64Array(words.buffer, words.byteOffset, words.length / 2);
    big[i] = exact;
  }
}

function floatFromOther(label: string, v: unknown, i: number): number {
  if (typeof v === 'string') {
    if (v === 'NaN') return NaN;
    if (v === 'Infinity') return Infinity;
    if (v === '-Infinity') return -Infinity;
    if (DECIMAL_NUMBER.test(v)) return Number(v);
  }
  throw fail(label, `value at index ${i} is not a number (got ${describeValue(v)})`);
}

function intFromOther(label: string, datatype: Datatype, v: unknown, i: number, min: number, max: number): number {
  let n: number;
  if (typeof v === 'number') n = v;
  else if (typeof v === 'string' && DECIMAL_INTEGER.test(v)) n = Number(v);
  else if (typeof v === 'bigint') n = Number(v);
  else throw fail(label, `value at index ${i} is not a number (got ${describeValue(v)})`);
  if (!Number.isInteger(n)) throw fail(label, `value at index ${i} is not an integer (got ${describeValue(v)})`);
  if (n < min || n > max) throw fail(label, `value at index ${i} (${describeValue(v)}) is out of range for ${datatype} [${min}, ${max}]`);
  return n;
}

function bigIntFromOther(label: string, datatype: 'INT64' | 'UINT64', v: unknown, i: number): bigint {
  let n: bigint;
  if (typeof v === 'bigint') n = v;
  else if (typeof v === 'string' && DECIMAL_INTEGER.test(v)) n = BigInt(v);
  else if (typeof v === 'number' && Number.isInteger(v)) n = BigInt(v);
  else if (typeof v === 'number' || typeof v === 'string') throw fail(label, `value at index ${i} is not an integer (got ${describeValue(v)})`);
  else throw fail(label, `value at index ${i} is not a number (got ${describeValue(v)})`);
  const min = datatype === 'UINT64' ? 0n : INT64_MIN;
  const max = datatype === 'UINT64' ? UINT64_MAX : INT64_MAX;
  if (n < min || n > max) throw fail(label, `value at index ${i} (${describeValue(v)}) is out of range for ${datatype} [${min}, ${max}]`);
  return n;
}
