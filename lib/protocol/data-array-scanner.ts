/**
 * The `data` arrays of a KServe JSON request, read from the body bytes into the shared
 * buffer of doubles of number-scanner.ts, and converted to tensor bytes once the datatype
 * is known. Everything here either reproduces exactly what JSON.parse followed by
 * tensor-data.ts's jsonToTensorBytes produces, or declines (returns -1 or undefined) so
 * that fast-json-request.ts leaves the request to that general path, which then reports
 * any error.
 */
import type { Datatype } from '../engine/types';
import { DATATYPE_SIZE } from '../engine/types';
import { float32ToBfloat16Bits, float32ToFloat16Bits } from './half';
import { MAX_JSON_DEPTH } from './json-depth';
import { numbers, readRun, skipWhitespace } from './number-scanner';

/** One `data` array read from the body: its values are numbers.values[first, first + count). */
export interface DataSpan {
  /** Index of the body byte after the array's ']'. */
  end: number;
  first: number;
  count: number;
  /** Some element was true/false (stored as 1/0): only BOOL accepts that. */
  booleans: boolean;
}

// A data array is the 4th level of a request ({"inputs":[{"data":[); nesting deeper than
// json-depth.ts allows in all is the general path's to refuse.
const MAX_NESTING = MAX_JSON_DEPTH - 4;

/**
 * Reads the array at b[start] (a '['), strictly as JSON, appending its numbers to the values.
 * Returns its span, or undefined to decline: anything but numbers, true and false, or arrays
 * nested the way jsonToTensorBytes does not flatten (it flattens only when the first element
 * is an array).
 */
export function readDataArray(b: Uint8Array, start: number): DataSpan | undefined {
  const first = numbers.count;
  numbers.booleans = false;
  let i = skipWhitespace(b, start + 1);
  if (b[i] === 0x5b) {
    i = readNested(b, start, 0);
    if (i < 0) return undefined;
  } else if (b[i] === 0x5d) {
    i++;
  } else {
    i = readRun(i);
    if (i < 0 || b[i] !== 0x5d) return undefined; // includes a nested array after a number
    i++;
  }
  return { end: i, first, count: numbers.count - first, booleans: numbers.booleans };
}

/** A nested array at b[i], flattened row-major into the values; the index after it, or -1. */
function readNested(b: Uint8Array, i: number, depth: number): number {
  if (depth > MAX_NESTING) return -1;
  i = skipWhitespace(b, i + 1);
  if (b[i] === 0x5d) return i + 1;
  for (;;) {
    i = b[i] === 0x5b ? readNested(b, i, depth + 1) : readRun(i);
    if (i < 0) return -1;
    i = skipWhitespace(b, i);
    const c = b[i];
    if (c === 0x2c) i = skipWhitespace(b, i + 1);
    else if (c === 0x5d) return i + 1;
    else return -1;
  }
}

const INT_RANGE: Partial<Record<Datatype, readonly [number, number]>> = {
  INT8: [-128, 127],
  INT16: [-32768, 32767],
  INT32: [-2147483648, 2147483647],
  UINT8: [0, 255],
  UINT16: [0, 65535],
  UINT32: [0, 4294967295],
};
const TWO_POW_32 = 4294967296;

// Tensors this small are written into a scratch buffer and copied: a typed-array view over a
// new small Uint8Array's buffer would make V8 move that array off its heap, which costs more
// than the rest of a small request's decoding.
const SMALL_TENSOR_BYTES = 64;
const SCRATCH = new ArrayBuffer(SMALL_TENSOR_BYTES);
const SCRATCH_BYTES = new Uint8Array(SCRATCH);
const SCRATCH_VIEWS = {
  FP32: new Float32Array(SCRATCH),
  FP64: new Float64Array(SCRATCH),
  U16: new Uint16Array(SCRATCH),
  INT8: new Int8Array(SCRATCH),
  INT16: new Int16Array(SCRATCH),
  INT32: new Int32Array(SCRATCH),
  U32: new Uint32Array(SCRATCH),
};

/**
 * The little-endian bytes of `datatype` for the values of `span`, exactly as
 * jsonToTensorBytes makes them from the same JSON; undefined when jsonToTensorBytes would
 * refuse one of them (or would need its exact re-read of integers beyond 2^53).
 */
export function spanToTensorBytes(datatype: Datatype, span: DataSpan): Uint8Array | undefined {
  if (datatype === 'BYTES') return undefined; // strings take the general path
  const count = span.count;
  const size = count * DATATYPE_SIZE[datatype];
  const bytes = new Uint8Array(size);
  if (datatype === 'BOOL' || datatype === 'UINT8') {
    return (datatype === 'BOOL' ? fillBools(bytes, span) : !span.booleans && fillIntegers(bytes, count, datatype, span.first)) ? bytes : undefined;
  }
  if (span.booleans) return undefined;
  const small = size <= SMALL_TENSOR_BYTES;
  if (!fillWords(datatype, span, small ? SCRATCH : bytes.buffer, small)) return undefined;
  if (small) for (let j = 0; j < size; j++) bytes[j] = SCRATCH_BYTES[j];
  return bytes;
}

function fillBools(bytes: Uint8Array, span: DataSpan): boolean {
  const values = numbers.values;
  const first = span.first;
  for (let i = 0; i < span.count; i++) {
    const v = values[first + i];
    if (v === 1) bytes[i] = 1;
    else if (v !== 0) return false;
  }
  return true;
}

/** Writes the values of `span` as `datatype` into `buffer` (the scratch views when `scratch`). */
function fillWords(datatype: Datatype, span: DataSpan, buffer: ArrayBufferLike, scratch: boolean): boolean {
  const count = span.count;
  const first = span.first;
  const values = numbers.values;
  switch (datatype) {
    case 'FP32': {
      // A plain loop: cheaper than TypedArray.set across element types, and the same rounding.
      const out = scratch ? SCRATCH_VIEWS.FP32 : new Float32Array(buffer);
      for (let i = 0; i < count; i++) out[i] = values[first + i];
      return true;
    }
    case 'FP64': {
      const out = scratch ? SCRATCH_VIEWS.FP64 : new Float64Array(buffer);
      for (let i = 0; i < count; i++) out[i] = values[first + i];
      return true;
    }
    case 'FP16':
    case 'BF16': {
      const out = scratch ? SCRATCH_VIEWS.U16 : new Uint16Array(buffer);
      const fp16 = datatype === 'FP16';
      for (let i = 0; i < count; i++) {
        const v = values[first + i];
        out[i] = fp16 ? float32ToFloat16Bits(v) : float32ToBfloat16Bits(v);
      }
      return true;
    }
    case 'INT8':
      return fillIntegers(scratch ? SCRATCH_VIEWS.INT8 : new Int8Array(buffer), count, datatype, first);
    case 'INT16':
      return fillIntegers(scratch ? SCRATCH_VIEWS.INT16 : new Int16Array(buffer), count, datatype, first);
    case 'INT32':
      return fillIntegers(scratch ? SCRATCH_VIEWS.INT32 : new Int32Array(buffer), count, datatype, first);
    case 'UINT16':
      return fillIntegers(scratch ? SCRATCH_VIEWS.U16 : new Uint16Array(buffer), count, datatype, first);
    case 'UINT32':
      return fillIntegers(scratch ? SCRATCH_VIEWS.U32 : new Uint32Array(buffer), count, datatype, first);
    case 'INT64':
    case 'UINT64':
      return fill64(scratch ? SCRATCH_VIEWS.U32 : new Uint32Array(buffer), count, datatype === 'UINT64', first);
    default:
      return false;
  }
}

function fillIntegers(out: Int8Array | Int16Array | Int32Array | Uint8Array | Uint16Array | Uint32Array, count: number, datatype: Datatype, first: number): boolean {
  const [min, max] = INT_RANGE[datatype] as readonly [number, number];
  const values = numbers.values;
  for (let i = 0; i < count; i++) {
    const v = values[first + i];
    if (!(v >= min && v <= max && Math.floor(v) === v)) return false;
    out[i] = v;
  }
  return true;
}

/** INT64/UINT64 within ±2^53 as two 32-bit words, as tensor-data.ts writes them; false beyond. */
function fill64(words: Uint32Array, count: number, unsigned: boolean, first: number): boolean {
  const values = numbers.values;
  for (let i = 0; i < count; i++) {
    const v = values[first + i];
    if (!Number.isSafeInteger(v) || (unsigned && v < 0)) return false;
    words[2 * i] = v >>> 0;
    words[2 * i + 1] = Math.floor(v / TWO_POW_32);
  }
  return true;
}
