/**
 * Typed arrays <-> KServe datatypes for the clients.
 *
 * | datatype | typed array in and out |
 * | --- | --- |
 * | FP32, FP64 | Float32Array, Float64Array |
 * | INT8/16/32, UINT8/16/32 | Int8Array ... Uint32Array |
 * | INT64, UINT64 | BigInt64Array, BigUint64Array |
 * | BOOL | Uint8Array of 0/1 |
 * | FP16, BF16 | Uint16Array of raw 16-bit words |
 * | BYTES | in: an array of strings (or Uint8Arrays); out: a Uint8Array of the serialized form (`bytesTensorStrings()` reads it) |
 *
 * FP16/BF16 choice: outputs come back as the raw 16-bit words (Uint16Array), because that is
 * lossless, allocation-free (a view of the response) and what an fp16 pipeline feeds on;
 * `toFloat32()` widens them exactly when numbers are wanted. As inputs, a Uint16Array is
 * sent as raw words and a Float32Array is converted, rounding to nearest even (numpy's,
 * PyTorch's and CUDA's rounding, via lib/protocol/half.ts). Plain number arrays are accepted
 * for any datatype and encoded with the protocol's JSON rules.
 */
import type { Datatype } from '../engine/types';
import { DATATYPE_SIZE } from '../engine/types';
import { TensorwireError } from '../errors';
import { decodeBfloat16Array, decodeFloat16Array, float32ToBfloat16Bits, float32ToFloat16Bits } from '../protocol/half';
import { bytesElements, bytesElementsAsText, checkBytesElements } from '../protocol/bytes-tensor';
import { elementCount, formatShape, isDatatype, jsonToTensorBytes } from '../protocol/tensor-data';

/** Every typed array a tensor can be carried in. */
export type TypedArray = Float32Array | Float64Array | Int8Array | Int16Array | Int32Array | BigInt64Array | Uint8Array | Uint16Array | Uint32Array | BigUint64Array;

/** An input tensor as a caller gives it. `datatype` may be left out when the array type says it. */
export interface TensorInput {
  datatype?: Datatype;
  shape: readonly number[];
  data: TypedArray | readonly number[] | readonly boolean[] | readonly (string | Uint8Array)[];
}

/** A tensor as the clients return it. */
export interface Tensor {
  datatype: Datatype;
  shape: number[];
  data: TypedArray;
}

/** A named tensor as it goes on the wire: raw little-endian bytes. */
export interface WireTensor {
  name: string;
  datatype: Datatype;
  shape: number[];
  data: Uint8Array;
}

type Ctor = { new (buffer: ArrayBufferLike, byteOffset: number, length: number): TypedArray; BYTES_PER_ELEMENT: number; name: string };

/** The typed array class of each datatype's output. */
const ARRAY_OF: Record<Datatype, Ctor> = {
  BYTES: Uint8Array, // the serialized form (lib/protocol/bytes-tensor.ts)
  BOOL: Uint8Array,
  UINT8: Uint8Array,
  UINT16: Uint16Array,
  UINT32: Uint32Array,
  UINT64: BigUint64Array,
  INT8: Int8Array,
  INT16: Int16Array,
  INT32: Int32Array,
  INT64: BigInt64Array,
  FP16: Uint16Array,
  FP32: Float32Array,
  FP64: Float64Array,
  BF16: Uint16Array,
};

/** The datatype a typed array implies when none is given. */
export function datatypeOf(data: TypedArray): Datatype {
  if (data instanceof Float32Array) return 'FP32';
  if (data instanceof Float64Array) return 'FP64';
  if (data instanceof Int8Array) return 'INT8';
  if (data instanceof Int16Array) return 'INT16';
  if (data instanceof Int32Array) return 'INT32';
  if (data instanceof BigInt64Array) return 'INT64';
  if (data instanceof Uint8Array) return 'UINT8';
  if (data instanceof Uint16Array) return 'UINT16';
  if (data instanceof Uint32Array) return 'UINT32';
  if (data instanceof BigUint64Array) return 'UINT64';
  throw new TensorwireError('INVALID_INPUT', `unsupported array type ${Object.prototype.toString.call(data)}`);
}

function bytesOf(data: TypedArray): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** Converts a caller's input to wire bytes, checking datatype, array type and element count. */
export function toWireTensor(name: string, input: TensorInput): WireTensor {
  const label = `input '${name}'`;
  if (input === null || typeof input !== 'object') throw new TensorwireError('INVALID_INPUT', `${label}: expected {datatype, shape, data}, got ${String(input)}`);
  const shape = Array.from(input.shape ?? [], Number);
  if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new TensorwireError('INVALID_INPUT', `${label}: shape must be non-negative integers, got ${formatShape(shape)}`);
  const data = input.data;
  if (Array.isArray(data)) {
    const datatype = input.datatype;
    if (!isDatatype(datatype)) throw new TensorwireError('INVALID_INPUT', `${label}: a plain array needs a datatype, got ${String(datatype)}`);
    return { name, datatype, shape, data: jsonToTensorBytes(label, datatype, shape, data) };
  }
  if (!ArrayBuffer.isView(data)) throw new TensorwireError('INVALID_INPUT', `${label}: data must be a typed array or an array of numbers`);
  const typed = data as TypedArray;
  const datatype = input.datatype ?? datatypeOf(typed);
  if (!isDatatype(datatype)) throw new TensorwireError('INVALID_INPUT', `${label}: unknown datatype ${String(datatype)}`);
  const count = elementCount(shape);
  if (typed.length !== count) throw new TensorwireError('INVALID_INPUT', `${label}: shape ${formatShape(shape)} needs ${count} elements, got ${typed.length}`);
  if ((datatype === 'FP16' || datatype === 'BF16') && typed instanceof Float32Array) {
    const words = new Uint16Array(count);
    const convert = datatype === 'FP16' ? float32ToFloat16Bits : float32ToBfloat16Bits;
    for (let i = 0; i < count; i++) words[i] = convert(typed[i]!);
    return { name, datatype, shape, data: bytesOf(words) };
  }
  const expected = ARRAY_OF[datatype];
  if (!(typed instanceof expected)) {
    const extra = datatype === 'FP16' || datatype === 'BF16' ? ' (or a Float32Array to convert)' : '';
    throw new TensorwireError('INVALID_INPUT', `${label}: datatype ${datatype} needs a ${expected.name}${extra}, got ${typed.constructor.name}`);
  }
  return { name, datatype, shape, data: bytesOf(typed) };
}

/** Normalises the two input forms (record by name, or array with `name`) to wire tensors. */
export function toWireTensors(inputs: Record<string, TensorInput> | ReadonlyArray<TensorInput & { name: string }>): WireTensor[] {
  if (Array.isArray(inputs)) return inputs.map((t: TensorInput & { name: string }) => toWireTensor(t.name, t));
  return Object.entries(inputs as Record<string, TensorInput>).map(([name, t]) => toWireTensor(name, t));
}

/**
 * A typed array over response bytes for `datatype`: a view when the bytes are aligned (the
 * usual case), an aligned copy otherwise. Checks the byte count against the shape.
 */
export function fromWireBytes(label: string, datatype: Datatype, shape: readonly number[], bytes: Uint8Array): TypedArray {
  if (datatype === 'BYTES') {
    checkBytesElements(label, bytes, elementCount(shape));
    return bytes;
  }
  const expected = elementCount(shape) * DATATYPE_SIZE[datatype];
  if (bytes.byteLength !== expected) {
    throw new TensorwireError('INVALID_INPUT', `${label}: ${datatype} shape ${formatShape(shape)} needs ${expected} bytes, the response has ${bytes.byteLength}`);
  }
  const C = ARRAY_OF[datatype];
  const size = C.BYTES_PER_ELEMENT;
  if (bytes.byteOffset % size === 0) return new C(bytes.buffer, bytes.byteOffset, bytes.byteLength / size);
  // A copy into a fresh buffer (not bytes.slice(): on a Buffer that is a view, not a copy).
  const copy = new Uint8Array(bytes);
  return new C(copy.buffer, 0, copy.byteLength / size);
}

/** The values of a tensor as float32 (FP16/BF16 widened exactly; other types converted by Float32Array). */
export function toFloat32(tensor: Tensor): Float32Array {
  if (tensor.datatype === 'FP16') return decodeFloat16Array(tensor.data as Uint16Array);
  if (tensor.datatype === 'BF16') return decodeBfloat16Array(tensor.data as Uint16Array);
  if (tensor.data instanceof Float32Array) return tensor.data;
  if (tensor.data instanceof BigInt64Array || tensor.data instanceof BigUint64Array) return Float32Array.from(tensor.data, Number);
  return Float32Array.from(tensor.data as ArrayLike<number>);
}

/** The elements of a BYTES tensor as strings (UTF-8; INVALID_INPUT naming the element otherwise). */
export function bytesTensorStrings(tensor: Tensor): string[] {
  return bytesElementsAsText(`${tensor.datatype} tensor`, tensor.data as Uint8Array, elementCount(tensor.shape));
}

/** The elements of a BYTES tensor as raw bytes (views into the response, no copies). */
export function bytesTensorElements(tensor: Tensor): Uint8Array[] {
  return bytesElements(`${tensor.datatype} tensor`, tensor.data as Uint8Array, elementCount(tensor.shape));
}
