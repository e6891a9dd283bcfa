/**
 * How a shadow's answer compares with the primary's, per output: the largest absolute
 * difference of any element, and per row whether the argmax (over the last dimension)
 * agrees. Runs after both answered, off the request path; its cost is bounded by
 * MAX_COMPARE_BYTES per output (larger outputs are counted but not compared).
 */
import type { InferOutputTensor } from '../protocol/types';

/** Outputs larger than this are not compared element by element. */
export const MAX_COMPARE_BYTES = 4 * 1024 * 1024;

/** The comparison of one output. */
export interface OutputComparison {
  name: string;
  /** Infinity when the shapes or datatypes differ or the shadow lacks the output; undefined when too large to compare. */
  maxAbsDiff: number | undefined;
  /** Rows whose argmax agrees, and rows compared. */
  argmaxAgree: number;
  rows: number;
}

type Numeric = ArrayLike<number> | ArrayLike<bigint>;

/** The elements of a tensor as numbers (copied when the bytes are not aligned for the view). */
function elements(t: InferOutputTensor): Numeric | undefined {
  const bytes = t.data.byteOffset % 8 === 0 ? t.data : t.data.slice();
  const { buffer, byteOffset, byteLength } = bytes;
  switch (t.datatype) {
    case 'FP32': return new Float32Array(buffer, byteOffset, byteLength / 4);
    case 'FP64': return new Float64Array(buffer, byteOffset, byteLength / 8);
    case 'INT8': return new Int8Array(buffer, byteOffset, byteLength);
    case 'UINT8': case 'BOOL': return new Uint8Array(buffer, byteOffset, byteLength);
    case 'INT16': return new Int16Array(buffer, byteOffset, byteLength / 2);
    case 'UINT16': return new Uint16Array(buffer, byteOffset, byteLength / 2);
    case 'INT32': return new Int32Array(buffer, byteOffset, byteLength / 4);
    case 'UINT32': return new Uint32Array(buffer, byteOffset, byteLength / 4);
    case 'INT64': return new BigInt64Array(buffer, byteOffset, byteLength / 8);
    case 'UINT64': return new BigUint64Array(buffer, byteOffset, byteLength / 8);
    default: return undefined; // FP16/BF16: compared as equal bytes only
  }
}

/** A Buffer view of a tensor's bytes (no copy), for memcmp. */
function bytesOf(t: InferOutputTensor): Buffer {
  return Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Compares every output of the primary with the shadow's output of the same name. */
export function compareOutputs(primary: readonly InferOutputTensor[], shadow: readonly InferOutputTensor[]): OutputComparison[] {
  return primary.map((p) => {
    const s = shadow.find((o) => o.name === p.name);
    const rows = p.shape.length > 1 ? p.shape.slice(0, -1).reduce((n, d) => n * d, 1) : 1;
    if (!s || s.datatype !== p.datatype || !sameShape(s.shape, p.shape) || s.data.byteLength !== p.data.byteLength) return { name: p.name, maxAbsDiff: Infinity, argmaxAgree: 0, rows };
    if (p.data.byteLength > MAX_COMPARE_BYTES) return { name: p.name, maxAbsDiff: undefined, argmaxAgree: 0, rows: 0 };
    // The common case of a shadow of the same numerics: one memcmp instead of a pass per element.
    if (p.data.byteLength > 0 && bytesOf(p).equals(bytesOf(s))) return { name: p.name, maxAbsDiff: 0, argmaxAgree: rows, rows };
    const a = elements(p);
    const b = elements(s);
    if (a === undefined || b === undefined) {
      const equal = bytesOf(p).equals(bytesOf(s));
      return { name: p.name, maxAbsDiff: equal ? 0 : Infinity, argmaxAgree: equal ? rows : 0, rows };
    }
    const n = a.length;
    const width = rows > 0 ? Math.max(1, Math.floor(n / rows)) : n;
    let maxAbsDiff = 0;
    let agree = 0;
    for (let r = 0; r * width < n; r++) {
      let ia = r * width;
      let ib = ia;
      for (let i = r * width; i < Math.min(n, (r + 1) * width); i++) {
        const x = Number(a[i]!);
        const y = Number(b[i]!);
        const d = Math.abs(x - y);
        // NaN on one side only is a difference; NaN on both is agreement.
        if (d > maxAbsDiff || (Number.isNaN(d) && !(Number.isNaN(x) && Number.isNaN(y)))) maxAbsDiff = Number.isNaN(d) ? Infinity : d;
        if (x > Number(a[ia]!)) ia = i;
        if (y > Number(b[ib]!)) ib = i;
      }
      if (ia === ib) agree++;
    }
    return { name: p.name, maxAbsDiff, argmaxAgree: agree, rows: Math.ceil(n / width) };
  });
}
