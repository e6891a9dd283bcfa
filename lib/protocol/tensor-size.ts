/**
 * Does a tensor's data hold exactly what its datatype and shape say? For fixed-size datatypes
 * that is a byte count; for BYTES (no fixed size) it is a walk over the length prefixes
 * (bytes-tensor.ts). Every layer that checks tensor data against a shape goes through here.
 */
import { DATATYPE_SIZE, isFixedSize, type Datatype } from '../engine/types';
import { TensorwireError, type ErrorCode } from '../errors';
import { bytesElementOffsets } from './bytes-tensor';
import { elementCount, formatShape } from './tensor-data';

/**
 * Throws `code` (INVALID_INPUT by default) naming `label` ("input 'x'") when `data` does not
 * hold exactly `shape` of `datatype`.
 */
export function checkTensorData(label: string, datatype: Datatype, shape: readonly number[], data: Uint8Array, code: ErrorCode = 'INVALID_INPUT'): void {
  const count = elementCount(shape);
  if (!isFixedSize(datatype)) {
    bytesElementOffsets(label, data, count, code);
    return;
  }
  const expected = count * DATATYPE_SIZE[datatype];
  if (data.byteLength !== expected) {
    throw new TensorwireError(code, `${label}: shape ${formatShape(shape)} of ${datatype} needs ${expected} bytes, got ${data.byteLength}`);
  }
}
