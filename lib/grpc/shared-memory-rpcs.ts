/**
 * The shared memory RPCs: the gRPC form of lib/server/routes-shared-memory.ts over the same
 * registry (the HTTP server's), with the same answers and errors. System shared memory:
 * register / status / unregister; an empty `name` means every region (status, unregister).
 * CUDA shared memory is not served: its status lists no region, its unregister succeeds
 * (Triton's clients call both to clean up), its register is refused with HTTP's message.
 */
import { TensorwireError } from '../errors';
import { cudaUnsupported } from '../server/routes-shared-memory';
import type { SharedMemoryRegistry } from '../shm/region-registry';
import { truncateForMessage } from '../util/message-text';

/** A uint64 field (a decimal string with PROTO_LOADER_OPTIONS) as a number when exact; the registry refuses anything else by name. */
function count(value: string | number | undefined): unknown {
  if (value === undefined) return 0;
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : value;
}

export interface WireSharedMemoryRegister {
  name?: string;
  key?: string;
  offset?: string;
  byte_size?: string;
}

/** One name (or none: every region). */
export interface WireRegionRequest {
  name?: string;
}

/** SystemSharedMemoryStatusResponse: the regions by name. */
export function systemStatus(registry: SharedMemoryRegistry, request: WireRegionRequest): { regions: Record<string, object> } {
  const regions: Record<string, object> = {};
  for (const r of registry.status(request.name || undefined)) regions[r.name] = { name: r.name, key: r.key, offset: r.offset, byte_size: r.byte_size };
  return { regions };
}

export function systemRegister(registry: SharedMemoryRegistry, request: WireSharedMemoryRegister): object {
  const name = request.name ?? '';
  if (name === '') throw new TensorwireError('INVALID_INPUT', "register request for system shared memory: 'name' is required");
  if ((request.key ?? '') === '') throw new TensorwireError('INVALID_INPUT', `register request for system shared memory region '${truncateForMessage(name)}': "key" is missing`);
  registry.register(name, request.key, count(request.offset), count(request.byte_size));
  return {};
}

export function systemUnregister(registry: SharedMemoryRegistry, request: WireRegionRequest): object {
  registry.unregister(request.name || undefined);
  return {};
}

export function cudaStatus(request: WireRegionRequest): { regions: Record<string, object> } {
  if (request.name) throw new TensorwireError('NOT_FOUND', `Unable to find cuda shared memory region: '${truncateForMessage(request.name)}'`);
  return { regions: {} };
}

export function cudaRegister(): never {
  throw cudaUnsupported();
}
