/**
 * Little-endian tensor bytes -> JSON, for response outputs sent as a KServe v2 "data"
 * array (flat, row-major, as Triton sends it).
 *
 * Formatting follows Triton's: integers are written exactly, INT64/UINT64 included (Triton
 * writes 64-bit integers with all their digits; a JS client's JSON.parse rounds those
 * beyond 2^53, a Python client does not); FP32 values are written as the shortest decimal
 * of the float widened to a double (0.1f -> 0.10000000149011612), exactly as Triton's
 * rapidjson does, so clients reading into float32 get the same bits. Where Triton fails
 * (NaN and infinities have no JSON literal; FP16/BF16 are refused), tensorwire writes the
 * strings "NaN", "Infinity", "-Infinity" (numpy and tensor-data.ts read them back) and
 * widens FP16/BF16 to their exact float values.
 */
import type { Datatype } from '../engine/types';
import { DATATYPE_SIZE } from '../engine/types';
import { TensorwireError } from '../errors';
import { bytesToJsonText, checkBytesElements } from './bytes-tensor';
import { decodeBfloat16Array, decodeFloat16Array } from './half';
import { elementCount, formatShape } from './tensor-data';

type TypedArrayConstructor<T> = { new (buffer: ArrayBufferLike, byteOffset: number, length: number): T; BYTES_PER_ELEMENT: number };

/** A typed view of `bytes`, or of an aligned copy when `bytes` does not start on an element boundary. */
function view<T>(Ctor: TypedArrayConstructor<T>, bytes: Uint8Array): T {
  const size = Ctor.BYTES_PER_ELEMENT;
  if (bytes.byteOffset % size === 0) return new Ctor(bytes.buffer, bytes.byteOffset, bytes.byteLength / size);
  // new Uint8Array(view) copies; Buffer#slice would not (it is subarray for Buffers).
  const copy = new Uint8Array(bytes);
  return new Ctor(copy.buffer, 0, copy.byteLength / size);
}

/** Checks that output `name`'s `bytes` hold exactly its `shape` of `datatype`; INTERNAL otherwise (a bug upstream). */
export function checkOutputBytes(name: string, datatype: Datatype, shape: readonly number[], bytes: Uint8Array): void {
  if (datatype === 'BYTES') {
    checkBytesElements(`output '${name}'`, bytes, elementCount(shape), 'INTERNAL');
    return;
  }
  const expected = elementCount(shape) * DATATYPE_SIZE[datatype];
  if (bytes.byteLength !== expected) {
    throw new TensorwireError('INTERNAL', `output '${name}': shape ${formatShape(shape)} of ${datatype} needs ${expected} bytes, got ${bytes.byteLength}`);
  }
}

/**
 * The elements of a tensor as the inside of a JSON array ("1,2,3", without brackets), so a
 * caller can build the response text without an intermediate array. BYTES elements are
 * written as JSON strings; `name` names the tensor when one is not valid UTF-8. `bytes` must hold a
 * whole number of elements (see checkOutputBytes).
 */
export function tensorBytesToJsonText(datatype: Datatype, bytes: Uint8Array, name = ''): string {
  switch (datatype) {
    case 'BYTES':
      return bytesToJsonText(`output '${name}'`, bytes);
    case 'FP32':
      return floatsText(view(Float32Array, bytes));
    case 'FP64':
      return floatsText(view(Float64Array, bytes));
    case 'FP16':
      return floatsText(decodeFloat16Array(view(Uint16Array, bytes)));
    case 'BF16':
      return floatsText(decodeBfloat16Array(view(Uint16Array, bytes)));
    case 'INT8':
      return integersText(new Int8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    case 'INT16':
      return integersText(view(Int16Array, bytes));
    case 'INT32':
      return integersText(view(Int32Array, bytes));
    case 'UINT8':
      return integersText(bytes);
    case 'UINT16':
      return integersText(view(Uint16Array, bytes));
    case 'UINT32':
      return integersText(view(Uint32Array, bytes));
    case 'INT64':
    case 'UINT64':
      return int64Text(view(Uint32Array, bytes), datatype === 'INT64');
    case 'BOOL':
      return boolsText(bytes);
    default:
      throw new TensorwireError('INTERNAL', `datatype ${String(datatype)} cannot be written as JSON`);
  }
}

// String concatenation in a plain loop measured faster than TypedArray.prototype.join here
// (~40 vs ~55 ns per float on Node 20) and lets NaN/Infinity be quoted in the same pass.
function floatsText(values: Float32Array | Float64Array): string {
  const n = values.length;
  if (n === 0) return '';
  let v = values[0];
  let s = v - v === 0 && v !== 0 ? '' + v : specialText(v);
  for (let i = 1; i < n; i++) {
    v = values[i];
    s += v - v === 0 && v !== 0 ? ',' + v : ',' + specialText(v);
  }
  return s;
}

/** Zeros (String(-0) is "0": keep the sign bit) and the values JSON has no literal for. */
function specialText(v: number): string {
  if (v === 0) return 1 / v < 0 ? '-0' : '0';
  return v !== v ? '"NaN"' : v > 0 ? '"Infinity"' : '"-Infinity"';
}

function integersText(values: Int8Array | Int16Array | Int32Array | Uint8Array | Uint16Array | Uint32Array): string {
  const n = values.length;
  if (n === 0) return '';
  let s = '' + values[0];
  for (let i = 1; i < n; i++) s += ',' + values[i];
  return s;
}

function int64Text(words: Uint32Array, signed: boolean): string {
  const n = words.length / 2;
  let s = '';
  for (let i = 0; i < n; i++) {
    const lo = words[2 * i];
    const hi = words[2 * i + 1];
    let text: string;
    if (hi === 0) text = '' + lo;
    else if (signed && hi === 0xffffffff && lo !== 0) text = '' + (lo - 4294967296); // small negatives
    else {
      // Wide values: exact through BigInt, only for the elements that need it.
      const wide = (BigInt(hi) << 32n) | BigInt(lo);
      text = (signed ? BigInt.asIntN(64, wide) : wide).toString();
    }
    s += i === 0 ? text : ',' + text;
  }
  return s;
}

function boolsText(bytes: Uint8Array): string {
  const n = bytes.length;
  if (n === 0) return '';
  let s = bytes[0] === 0 ? 'false' : 'true';
  for (let i = 1; i < n; i++) s += bytes[i] === 0 ? ',false' : ',true';
  return s;
}

/**
 * The elements of a tensor as JS values (flat, row-major): numbers, or booleans for BOOL.
 * INT64/UINT64 come back as numbers, as JSON.parse of Triton's JSON would give them (exact up
 * to 2^53); use a BigInt64Array over the bytes when every digit matters.
 */
export function tensorBytesToValues(datatype: Datatype, bytes: Uint8Array): number[] | boolean[] {
  switch (datatype) {
    case 'BOOL':
      return Array.from(bytes, (b) => b !== 0);
    case 'FP32':
      return Array.from(view(Float32Array, bytes));
    case 'FP64':
      return Array.from(view(Float64Array, bytes));
    case 'FP16':
      return Array.from(decodeFloat16Array(view(Uint16Array, bytes)));
    case 'BF16':
      return Array.from(decodeBfloat16Array(view(Uint16Array, bytes)));
    case 'INT8':
      return Array.from(new Int8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    case 'INT16':
      return Array.from(view(Int16Array, bytes));
    case 'INT32':
      return Array.from(view(Int32Array, bytes));
    case 'UINT8':
      return Array.from(bytes);
    case 'UINT16':
      return Array.from(view(Uint16Array, bytes));
    case 'UINT32':
      return Array.from(view(Uint32Array, bytes));
    case 'INT64':
      return Array.from(view(BigInt64Array, bytes), Number);
    case 'UINT64':
      return Array.from(view(BigUint64Array, bytes), Number);
    default:
      throw new TensorwireError('INTERNAL', `datatype ${String(datatype)} has no JS values`);
  }
}
