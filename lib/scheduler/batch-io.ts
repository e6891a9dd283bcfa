/**
 * Moving bytes between requests and a staging slot: gather every request's input rows into
 * the slot (one copy per request and input, no intermediate arrays) and scatter the batch's
 * output rows back into one buffer per request (copied, because slot views die on release).
 */
import { TensorwireError } from '../errors';
import { DATATYPE_SIZE, type BatchOutput, type TensorSpec } from '../engine/types';
import { BYTES_PREFIX, bytesElementOffsets } from '../protocol/bytes-tensor';
import type { InferRequest } from '../protocol/types';

/** The part of a staging slot the gather step writes to. */
export interface InputSlot {
  inputView(i: number, byteLength: number): Uint8Array;
}

/** One request of a batch, as the copy steps see it. */
export interface BatchMember {
  readonly request: InferRequest;
  /** Rows this request contributes (1 for a model that does not batch). */
  readonly batchSize: number;
  /** Index into request.inputs of model input i, or null when request.inputs is in model order. */
  readonly inputOrder: Int32Array | null;
  /** Model output indices to return, or null for all of them. */
  readonly outputIndices: Int32Array | null;
  /** False once nobody waits for the result (cancelled while its batch ran): its rows are skipped. */
  readonly wantsResult: boolean;
}

/**
 * Checks that `request` carries every model input (and nothing else), and returns the index of
 * each model input in request.inputs, or null when they are already in model order (the common
 * case, which allocates nothing). Throws INVALID_INPUT naming the missing or unknown tensor.
 */
export function resolveInputOrder(inputs: readonly TensorSpec[], request: InferRequest): Int32Array | null {
  const given = request.inputs;
  let inOrder = given.length === inputs.length;
  for (let i = 0; inOrder && i < inputs.length; i++) inOrder = given[i]!.name === inputs[i]!.name;
  if (inOrder) return null;
  const order = new Int32Array(inputs.length);
  for (let i = 0; i < inputs.length; i++) {
    const at = given.findIndex((t) => t.name === inputs[i]!.name);
    if (at < 0) {
      throw new TensorwireError('INVALID_INPUT', `input '${inputs[i]!.name}' is missing: the model expects ${inputs.map((t) => `'${t.name}'`).join(', ')}`);
    }
    order[i] = at;
  }
  for (const t of given) {
    if (!inputs.some((s) => s.name === t.name)) {
      throw new TensorwireError('INVALID_INPUT', `input '${t.name}' is not an input of the model (expected ${inputs.map((s) => `'${s.name}'`).join(', ')})`);
    }
  }
  // Every model input was found and every given one is known: more given means a name twice.
  if (given.length !== inputs.length) {
    const twice = given.find((t, k) => given.findIndex((u) => u.name === t.name) !== k)!;
    throw new TensorwireError('INVALID_INPUT', `input '${twice.name}' is given more than once`);
  }
  return order;
}

/**
 * Cheap guards the slot copy relies on (the request validator checks far more): each input's
 * byte count matches its shape and datatype (for BYTES, at least a length prefix per element:
 * the validator walked them, and the addon re-checks them against the slot), and, for a
 * batchable model, its first dimension is the request's batch size. Throws INVALID_INPUT
 * naming the tensor.
 */
export function checkInputBytes(request: InferRequest, batchable: boolean, batchSize: number): void {
  for (const t of request.inputs) {
    let elements = 1;
    for (const d of t.shape) elements *= d;
    if (t.datatype === 'BYTES') {
      if (t.data.byteLength < elements * BYTES_PREFIX) {
        throw new TensorwireError('INVALID_INPUT', `input '${t.name}': shape [${t.shape.join(',')}] of BYTES needs at least ${elements * BYTES_PREFIX} bytes, got ${t.data.byteLength}`);
      }
    } else {
      const expected = elements * (DATATYPE_SIZE[t.datatype] ?? NaN);
      if (t.data.byteLength !== expected) {
        throw new TensorwireError('INVALID_INPUT', `input '${t.name}': shape [${t.shape.join(',')}] of ${t.datatype} needs ${expected} bytes, got ${t.data.byteLength}`);
      }
    }
    if (batchable && t.shape[0] !== batchSize) {
      throw new TensorwireError('INVALID_INPUT', `input '${t.name}': first dimension ${t.shape[0]} differs from the request's batch size ${batchSize}`);
    }
  }
}

/**
 * Model output indices for the request's requested outputs (null = all); INVALID_INPUT for an
 * unknown name or a name asked for twice (each requested output is copied into the answer:
 * repeats would let one small request make the server copy an output any number of times).
 */
export function resolveOutputIndices(outputs: readonly TensorSpec[], request: InferRequest): Int32Array | null {
  const wanted = request.outputs;
  if (wanted === undefined) return null;
  const indices = new Int32Array(Math.min(wanted.length, outputs.length));
  const seen = new Uint8Array(outputs.length);
  for (let k = 0; k < wanted.length; k++) {
    const at = outputs.findIndex((o) => o.name === wanted[k]!.name);
    if (at < 0) {
      throw new TensorwireError('INVALID_INPUT', `output '${wanted[k]!.name}' is not an output of the model (expected ${outputs.map((o) => `'${o.name}'`).join(', ')})`);
    }
    if (seen[at] === 1) throw new TensorwireError('INVALID_INPUT', `output '${outputs[at]!.name}' is requested more than once`);
    seen[at] = 1;
    indices[k] = at;
  }
  return indices;
}

/**
 * Copies every member's inputs into the slot, rows of member k right after those of member
 * k-1, and returns the shape of each input: the first member's shape with the batch dimension
 * replaced by `batchSize` (or the shape as it is for a model that does not batch).
 */
export function gatherInputs(slot: InputSlot, inputCount: number, members: readonly BatchMember[], batchable: boolean, batchSize: number): number[][] {
  const shapes: number[][] = new Array(inputCount);
  for (let i = 0; i < inputCount; i++) {
    let total = 0;
    for (const m of members) total += m.request.inputs[m.inputOrder === null ? i : m.inputOrder[i]!]!.data.byteLength;
    const view = slot.inputView(i, total);
    let offset = 0;
    for (const m of members) {
      const data = m.request.inputs[m.inputOrder === null ? i : m.inputOrder[i]!]!.data;
      view.set(data, offset);
      offset += data.byteLength;
    }
    const first = members[0]!;
    const firstInput = first.request.inputs[first.inputOrder === null ? i : first.inputOrder[i]!]!;
    const shape = firstInput.shape.slice();
    if (batchable) shape[0] = batchSize;
    let elements = 1;
    for (const d of shape) elements *= d;
    // BYTES rows have no fixed size: concatenated serialized tensors are the batch's tensor, and the addon re-walks the prefixes.
    if (firstInput.datatype !== 'BYTES' && elements * DATATYPE_SIZE[firstInput.datatype] !== total) {
      // Members agree on bytes per row only when their compatKeys were computed right.
      throw new TensorwireError(
        'INTERNAL',
        `requests batched together have different shapes for input '${firstInput.name}': ${total} bytes for batch shape [${shape.join(',')}] (compatKey must separate them)`,
      );
    }
    shapes[i] = shape;
  }
  return shapes;
}

/**
 * Splits the batch's outputs by rows: member k gets its `batchSize` rows of each output it
 * asked for, copied into one buffer of its own. Returns one output list per member (null for
 * members that no longer want a result, whose rows are stepped over without copying).
 * BYTES rows differ in size: their byte ranges come from walking the length prefixes once.
 * Throws ENGINE_FAILURE when an output does not have one row per batch row.
 */
export function scatterOutputs(
  outputs: readonly BatchOutput[],
  members: readonly BatchMember[],
  batchable: boolean,
  batchSize: number,
): (BatchOutput[] | null)[] {
  const n = outputs.length;
  const rowBytes = new Array<number>(n);
  // For BYTES outputs of a batched model: the byte offset where each row starts (batchSize + 1 entries).
  const rowStarts = new Array<Float64Array | undefined>(n);
  for (let o = 0; o < n; o++) {
    const out = outputs[o]!;
    if (!batchable) {
      rowBytes[o] = out.data.byteLength;
      continue;
    }
    if (out.datatype === 'BYTES') {
      rowStarts[o] = bytesRowStarts(out, batchSize);
      continue;
    }
    if (out.shape[0] !== batchSize || out.data.byteLength % batchSize !== 0) {
      throw new TensorwireError(
        'ENGINE_FAILURE',
        `output '${out.name}' has shape [${out.shape.join(',')}] (${out.data.byteLength} bytes) for a batch of ${batchSize} rows: cannot split it by request`,
      );
    }
    rowBytes[o] = out.data.byteLength / batchSize;
  }

  const results: (BatchOutput[] | null)[] = new Array(members.length);
  let row = 0;
  for (let k = 0; k < members.length; k++) {
    const m = members[k]!;
    const rows = batchable ? m.batchSize : 1;
    const firstRow = row;
    row += rows;
    if (!m.wantsResult) {
      results[k] = null;
      continue;
    }
    const picked = m.outputIndices;
    const count = picked === null ? n : picked.length;
    let total = 0;
    for (let j = 0; j < count; j++) {
      const o = picked === null ? j : picked[j]!;
      const starts = rowStarts[o];
      total += starts === undefined ? rowBytes[o]! * rows : starts[firstRow + rows]! - starts[firstRow]!;
    }
    // One allocation per request; allocUnsafe skips zero-filling bytes we overwrite at once.
    const buffer = Buffer.allocUnsafe(total);
    const list: BatchOutput[] = new Array(count);
    let offset = 0;
    for (let j = 0; j < count; j++) {
      const o = picked === null ? j : picked[j]!;
      const out = outputs[o]!;
      const starts = rowStarts[o];
      const start = starts === undefined ? rowBytes[o]! * firstRow : starts[firstRow]!;
      const bytes = starts === undefined ? rowBytes[o]! * rows : starts[firstRow + rows]! - start;
      const data = new Uint8Array(buffer.buffer, buffer.byteOffset + offset, bytes);
      data.set(out.data.subarray(start, start + bytes));
      offset += bytes;
      const shape = out.shape.slice();
      if (batchable) shape[0] = rows;
      list[j] = { name: out.name, datatype: out.datatype, shape, data };
    }
    results[k] = list;
  }
  return results;
}

/** Where each row of a batched BYTES output starts, checked against its shape (ENGINE_FAILURE otherwise). */
function bytesRowStarts(out: BatchOutput, batchSize: number): Float64Array {
  let elements = 1;
  for (const d of out.shape) elements *= d;
  if (out.shape[0] !== batchSize) {
    throw new TensorwireError('ENGINE_FAILURE', `output '${out.name}' has shape [${out.shape.join(',')}] for a batch of ${batchSize} rows: cannot split it by request`);
  }
  const offsets = bytesElementOffsets(`output '${out.name}'`, out.data, elements, 'ENGINE_FAILURE');
  const perRow = batchSize === 0 ? 0 : elements / batchSize;
  const starts = new Float64Array(batchSize + 1);
  for (let r = 0; r <= batchSize; r++) starts[r] = offsets[r * perRow]!;
  return starts;
}
