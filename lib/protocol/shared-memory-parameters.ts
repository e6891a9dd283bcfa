/**
 * The shared memory parameters of a request input or requested output (Triton's shared
 * memory extension): `shared_memory_region` (a registered region's name),
 * `shared_memory_byte_size` (both required) and `shared_memory_offset` (default 0). Reading
 * them is the protocol's job; the region itself is resolved later, on the JS thread, by
 * lib/shm/shared-memory-stage.ts (decoding may run in a worker that holds no regions).
 */
import { TensorwireError } from '../errors';
import { checkLength, clip, MAX_NAME_CHARS } from './request-limits';
import { describeValue } from './tensor-data';
import type { SharedMemoryRef } from './types';

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/**
 * The shared memory reference in `parameters` of the tensor `label` names, or undefined when
 * it has none. Throws INVALID_INPUT naming the tensor and the parameter at fault.
 */
export function readSharedMemoryRef(label: string, parameters: Record<string, unknown>): SharedMemoryRef | undefined {
  const region = parameters.shared_memory_region;
  const byteSize = parameters.shared_memory_byte_size;
  const offset = parameters.shared_memory_offset;
  if (region === undefined && byteSize === undefined && offset === undefined) return undefined;
  if (region === undefined || byteSize === undefined) {
    throw new TensorwireError('INVALID_INPUT', `${label}: parameters shared_memory_region and shared_memory_byte_size must be given together`);
  }
  if (typeof region !== 'string' || region.length === 0) {
    throw new TensorwireError('INVALID_INPUT', `${label}: parameters.shared_memory_region must be a non-empty string, got ${describeValue(region)}`);
  }
  checkLength(`${label}: parameters.shared_memory_region`, region, MAX_NAME_CHARS);
  if (!isCount(byteSize)) throw new TensorwireError('INVALID_INPUT', `${label}: parameters.shared_memory_byte_size must be a non-negative integer, got ${describeValue(byteSize)}`);
  if (offset !== undefined && !isCount(offset)) {
    throw new TensorwireError('INVALID_INPUT', `${label}: parameters.shared_memory_offset must be a non-negative integer, got ${describeValue(offset)}`);
  }
  if (parameters.binary_data_size !== undefined) throw new TensorwireError('INVALID_INPUT', `${label}: has both shared memory parameters and binary_data_size`);
  return { region, offset: offset ?? 0, byteSize };
}

/** The message for a shared memory tensor whose size does not match its shape. */
export function sharedMemorySizeMismatch(label: string, ref: SharedMemoryRef, datatype: string, shapeText: string, expected: number): string {
  return `${label}: shared_memory_byte_size ${ref.byteSize} does not match ${datatype} shape ${shapeText} (expected ${expected} bytes) in region '${clip(ref.region)}'`;
}
