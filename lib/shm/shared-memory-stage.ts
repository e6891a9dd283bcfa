/**
 * The front door stage of the system shared memory extension: inputs that name a region get
 * their bytes as a view of the mapping (no copy until the scheduler fills its staging slot),
 * outputs asked for in a region are written there and answered with their parameters only,
 * as Triton does. It runs before the response cache and routing, so they see real bytes.
 *
 * Ownership: the stage holds a lease on every region the call names from before the call
 * goes on until its outcome is known, so an unregister in between never unmaps memory the
 * call still reads or writes (region-registry.ts).
 */
import { TensorwireError } from '../errors';
import type { InferStage, InferCall } from '../frontdoor/types';
import type { InferOutputTensor, InferResponse, RequestedOutput } from '../protocol/types';
import { truncateForMessage } from '../util/message-text';
import type { RegionLease, SharedMemoryRegistry } from './region-registry';

const NO_DATA = new Uint8Array(0);

/** True when some input or requested output of the call names a shared memory region. */
function usesSharedMemory(call: InferCall): boolean {
  const { inputs, outputs } = call.request;
  for (let i = 0; i < inputs.length; i++) if (inputs[i]!.sharedMemory !== undefined) return true;
  if (outputs !== undefined) for (let i = 0; i < outputs.length; i++) if (outputs[i]!.sharedMemory !== undefined) return true;
  return false;
}

/** The stage for `registry` (a server's). Calls without shared memory pass through untouched. */
export function sharedMemoryStage(registry: SharedMemoryRegistry): InferStage {
  return (call, next) => (usesSharedMemory(call) ? inferWithSharedMemory(registry, call, next) : next(call));
}

/** An output to write into a region, with the window it goes to. */
interface OutputTarget {
  request: RequestedOutput;
  window: Uint8Array;
}

async function inferWithSharedMemory(registry: SharedMemoryRegistry, call: InferCall, next: (call: InferCall) => Promise<InferResponse>): Promise<InferResponse> {
  const leases: RegionLease[] = [];
  try {
    for (const input of call.request.inputs) {
      const ref = input.sharedMemory;
      if (ref === undefined) continue;
      const label = `input '${truncateForMessage(input.name)}'`;
      const lease = registry.acquire(ref.region, label);
      leases.push(lease);
      input.data = lease.view(ref.offset, ref.byteSize, label);
    }
    const targets = new Map<string, OutputTarget>();
    for (const output of call.request.outputs ?? []) {
      const ref = output.sharedMemory;
      if (ref === undefined) continue;
      const label = `output '${truncateForMessage(output.name)}'`;
      const lease = registry.acquire(ref.region, label);
      leases.push(lease);
      // Bounds checked before the model runs: a bad window costs no inference.
      targets.set(output.name, { request: output, window: lease.view(ref.offset, ref.byteSize, label) });
    }
    const response = await next(call);
    if (targets.size === 0) return response;
    // A new response object: the one `next` returned may be held by the response cache.
    return { ...response, outputs: response.outputs.map((out) => writeOutput(out, targets.get(out.name))) };
  } finally {
    for (const lease of leases) lease.release();
  }
}

/** Copies `out` into its window (400 when it does not fit) and returns its data-less answer. */
function writeOutput(out: InferOutputTensor, target: OutputTarget | undefined): InferOutputTensor {
  if (target === undefined) return out;
  const ref = target.request.sharedMemory!;
  const bytes = out.data.byteLength;
  if (bytes > target.window.byteLength) {
    throw new TensorwireError(
      'INVALID_INPUT',
      `output '${truncateForMessage(out.name)}': shared_memory_byte_size ${ref.byteSize} is too small for the result (${bytes} bytes) in region '${truncateForMessage(ref.region)}'`,
    );
  }
  target.window.set(out.data);
  return { name: out.name, datatype: out.datatype, shape: out.shape, data: NO_DATA, binary: false, sharedMemory: { region: ref.region, offset: ref.offset, byteSize: bytes } };
}
