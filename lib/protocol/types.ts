/**
 * Decoded KServe v2 inference requests and responses, independent of the wire format
 * (JSON, binary tensor extension, WebSocket frames). Tensor data is always raw
 * little-endian bytes, so the scheduler can copy it straight into a staging slot.
 */
import type { Datatype } from '../engine/types';

/** A window of a registered system shared memory region (Triton's shared memory extension). */
export interface SharedMemoryRef {
  region: string;
  offset: number;
  byteSize: number;
}

/** One input tensor of a request. `data` may be a view into the request body (binary extension). */
export interface InferInputTensor {
  name: string;
  datatype: Datatype;
  shape: number[];
  /** Empty while `sharedMemory` is set and not resolved yet (lib/shm/shared-memory-stage.ts fills it). */
  data: Uint8Array;
  /** Where the data lives when the client sent it through shared memory. */
  sharedMemory?: SharedMemoryRef;
}

/** An output the client asked for, and whether it wants it as binary data. */
export interface RequestedOutput {
  name: string;
  binary: boolean;
  /** Where to write the output when the client asked for it in shared memory. */
  sharedMemory?: SharedMemoryRef;
  /** Classification extension: answer the top this-many classes per row as BYTES (classification.ts). */
  classification?: number;
}

/** A decoded inference request. */
export interface InferRequest {
  id?: string;
  inputs: InferInputTensor[];
  /** Requested outputs; undefined means all outputs of the model. */
  outputs?: RequestedOutput[];
  /** `binary_data_output` request parameter: outputs not listed default to binary. */
  binaryDataOutput: boolean;
  /** Schedule policy extension: priority level (1 is highest), 0/undefined = model default. */
  priority?: number;
  /** Schedule policy extension: timeout in microseconds. */
  timeoutUs?: number;
  /** Other request parameters, passed through. */
  parameters: Record<string, unknown>;
}

/** One output tensor of a response. */
export interface InferOutputTensor {
  name: string;
  datatype: Datatype;
  shape: number[];
  data: Uint8Array;
  /** Send as binary data (binary extension) rather than a JSON array. */
  binary: boolean;
  /** Written into shared memory (`byteSize` is what was written): the answer carries these parameters, no data. */
  sharedMemory?: SharedMemoryRef;
}

/** Per-request server-side timings, microseconds. */
export interface StageTimings {
  queueUs: number;
  computeInputUs: number;
  computeInferUs: number;
  computeOutputUs: number;
}

/** A decoded inference response. */
export interface InferResponse {
  modelName: string;
  modelVersion: string;
  id?: string;
  outputs: InferOutputTensor[];
  timings?: StageTimings;
}
