/**
 * Triton's classification extension: an output requested with `"parameters":
 * {"classification": k}` is answered, instead of its values, as the top k classes of each
 * batch row, a BYTES tensor of shape [rows, k] (or [k] for a model that does not batch)
 * whose elements read `"<value>:<index>"`, or `"<value>:<index>:<label>"` when the model
 * config gives the output a `label_filename`.
 *
 * Formatting matches Triton (src/classification.cc): the value as C++ `std::to_string`
 * writes it, i.e. printf `%f` (six decimals: "0.900000") for floating-point outputs and the
 * plain decimal for integer ones; the index counts within the row. Classes are ordered by
 * value, highest first; equal values by index (Triton's sort leaves their order open). NaN
 * ranks last and is written "nan" (printf's spelling), infinities "inf" / "-inf". FP16 and
 * BF16 outputs, which Triton refuses, are widened to their exact float values. BOOL and
 * BYTES outputs cannot be ranked: INVALID_INPUT.
 */
import type { Datatype, TensorSpec } from '../engine/types';
import type { InferRequest } from './types';
import { TensorwireError } from '../errors';
import { serializeBytesElements } from './bytes-tensor';
import { clip } from './request-limits';
import { decodeBfloat16Array, decodeFloat16Array } from './half';
import { elementCount } from './tensor-data';

/** The most classes one request may ask for per output (k); the output's class count bounds it further. */
export const MAX_CLASSIFICATION_COUNT = 4096;

/**
 * The most values one classified output may hold (rows x classes): ranking runs on the event
 * loop, about 10 ms per million values with a small k. Over it: PAYLOAD_TOO_LARGE.
 */
export const MAX_CLASSIFIED_VALUES = 1 << 20;

/** A tensor as classification reads and writes it. */
export interface ClassifiedTensor {
  name: string;
  datatype: Datatype;
  shape: number[];
  data: Uint8Array;
}

type Values = ArrayLike<number> | ArrayLike<bigint>;

function invalid(message: string): TensorwireError {
  return new TensorwireError('INVALID_INPUT', message);
}

/** Values of `bytes` as numbers (or bigints for 64-bit integers), copying only when unaligned. */
function valuesOf(name: string, datatype: Datatype, bytes: Uint8Array): { values: Values; float: boolean } {
  const aligned = (size: number) => (bytes.byteOffset % size === 0 ? bytes : new Uint8Array(bytes));
  const view = <T>(C: { new (b: ArrayBufferLike, o: number, n: number): T; BYTES_PER_ELEMENT: number }): T => {
    const b = aligned(C.BYTES_PER_ELEMENT);
    return new C(b.buffer, b.byteOffset, b.byteLength / C.BYTES_PER_ELEMENT);
  };
  switch (datatype) {
    case 'FP32': return { values: view(Float32Array), float: true };
    case 'FP64': return { values: view(Float64Array), float: true };
    case 'FP16': return { values: decodeFloat16Array(view(Uint16Array)), float: true };
    case 'BF16': return { values: decodeBfloat16Array(view(Uint16Array)), float: true };
    case 'INT8': return { values: view(Int8Array), float: false };
    case 'INT16': return { values: view(Int16Array), float: false };
    case 'INT32': return { values: view(Int32Array), float: false };
    case 'UINT8': return { values: bytes, float: false };
    case 'UINT16': return { values: view(Uint16Array), float: false };
    case 'UINT32': return { values: view(Uint32Array), float: false };
    case 'INT64': return { values: view(BigInt64Array), float: false };
    case 'UINT64': return { values: view(BigUint64Array), float: false };
    default: throw invalid(`output '${clip(name)}' is ${datatype}: classification ranks numeric outputs only`);
  }
}

/** printf("%f", v): six decimals, "nan", "inf", "-inf". */
export function formatClassValue(v: number): string {
  if (v !== v) return v < 0 ? '-nan' : 'nan';
  if (v === Infinity) return 'inf';
  if (v === -Infinity) return '-inf';
  // toFixed switches to exponent notation from 1e21 on; %f never does.
  if (Math.abs(v) >= 1e21) return BigInt(Math.trunc(v)).toString() + '.000000';
  const text = v.toFixed(6);
  // -0 and values that round to zero keep their sign in printf ("-0.000000").
  return (v < 0 || Object.is(v, -0)) && text[0] !== '-' ? '-' + text : text;
}

/**
 * Checks every `classification` of `request` before the model runs: the output can be ranked,
 * and k is at most its classes per row where the declared shape `outputs` fixes them (a
 * dynamic dimension is checked again on the actual output). `batched`: shapes start with the
 * batch dimension.
 */
export function checkClassificationRequest(request: InferRequest, outputs: readonly TensorSpec[], batched: boolean): void {
  if (request.outputs === undefined) return;
  for (const wanted of request.outputs) {
    const k = wanted.classification;
    if (k === undefined) continue;
    const spec = outputs.find((o) => o.name === wanted.name);
    if (spec === undefined) continue; // the validator names unknown outputs
    valuesOf(spec.name, spec.datatype, new Uint8Array(0));
    const perRow = batched ? spec.shape.slice(1) : spec.shape;
    if (perRow.every((d) => d >= 0) && k > elementCount(perRow)) {
      throw invalid(`output '${clip(spec.name)}': classification asks for ${k} classes but the output has ${elementCount(perRow)} per row`);
    }
  }
}

/**
 * The top `k` classes of each row of `output` as Triton's classification BYTES tensor.
 * `batched`: the first dimension is the batch (one ranking per row); otherwise the whole
 * output is one row. `labels`: the output's label file, one label per class index (classes
 * past its end get no label, as in Triton).
 */
export function classifyOutput(output: ClassifiedTensor, k: number, batched: boolean, labels: readonly string[] | undefined): ClassifiedTensor {
  const { values, float } = valuesOf(output.name, output.datatype, output.data);
  const rows = batched && output.shape.length > 0 ? output.shape[0]! : 1;
  const total = elementCount(output.shape);
  const classes = rows === 0 ? 0 : total / rows;
  if (k > classes) throw invalid(`output '${clip(output.name)}': classification asks for ${k} classes but the output has ${classes} per row`);
  if (total > MAX_CLASSIFIED_VALUES) {
    throw new TensorwireError('PAYLOAD_TOO_LARGE', `output '${clip(output.name)}' holds ${total} values; classification ranks at most ${MAX_CLASSIFIED_VALUES} per output`);
  }
  const elements: string[] = new Array(rows * k);
  const heap = new Int32Array(k);
  for (let r = 0; r < rows; r++) {
    const top = topK(values, r * classes, classes, k, heap);
    for (let j = 0; j < k; j++) {
      const c = top[j]!;
      const raw = values[r * classes + c]!;
      const text = float ? formatClassValue(raw as number) : String(raw);
      const label = labels !== undefined && c < labels.length ? ':' + labels[c] : '';
      elements[r * k + j] = `${text}:${c}${label}`;
    }
  }
  return { name: output.name, datatype: 'BYTES', shape: batched ? [rows, k] : [k], data: serializeBytesElements(elements) };
}

/**
 * Indices (within the row) of the k best values of values[base .. base + classes), best first:
 * a min-heap of the k best so far, so a row costs O(classes log k) and most values are
 * rejected by one comparison with the heap's worst.
 */
function topK(values: Values, base: number, classes: number, k: number, heap: Int32Array): number[] {
  // a ranks before b: higher value, then lower index; NaN after everything.
  const better = (a: number, b: number): boolean => {
    const va = Number(values[base + a]!), vb = Number(values[base + b]!);
    if (va !== va) return vb !== vb && a < b;
    if (vb !== vb) return true;
    return va > vb || (va === vb && a < b);
  };
  let size = 0;
  const siftDown = (i: number): void => {
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let worst = i;
      if (l < size && better(heap[worst]!, heap[l]!)) worst = l;
      if (r < size && better(heap[worst]!, heap[r]!)) worst = r;
      if (worst === i) return;
      const t = heap[i]!; heap[i] = heap[worst]!; heap[worst] = t;
      i = worst;
    }
  };
  for (let c = 0; c < classes; c++) {
    if (size < k) {
      let i = size++;
      heap[i] = c;
      while (i > 0) {
        const parent = (i - 1) >> 1;
        if (!better(heap[parent]!, heap[i]!)) break;
        const t = heap[i]!; heap[i] = heap[parent]!; heap[parent] = t;
        i = parent;
      }
    } else if (better(c, heap[0]!)) {
      heap[0] = c;
      siftDown(0);
    }
  }
  return Array.from(heap.subarray(0, size)).sort((a, b) => (better(a, b) ? -1 : 1));
}
