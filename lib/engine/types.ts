/**
 * Types of the engine layer: what a loaded model looks like from TypeScript.
 * Everything above the engine (scheduler, repository, server) speaks these types only.
 */

/**
 * KServe v2 tensor datatypes the engine can carry. BYTES (ONNX `string`) has no fixed element
 * size: its data is the serialized form of lib/protocol/bytes-tensor.ts, and its byte length
 * says nothing about its element count (always take that from the shape).
 */
export type Datatype =
  | 'BYTES'
  | FixedSizeDatatype;

/** The datatypes whose elements all take the same number of bytes. */
export type FixedSizeDatatype =
  | 'BOOL'
  | 'UINT8'
  | 'UINT16'
  | 'UINT32'
  | 'UINT64'
  | 'INT8'
  | 'INT16'
  | 'INT32'
  | 'INT64'
  | 'FP16'
  | 'FP32'
  | 'FP64'
  | 'BF16';

/**
 * Bytes per element of each datatype; 0 for BYTES, which has none (check `isFixedSize` first,
 * or use tensorByteLength / bytes-tensor.ts).
 */
export const DATATYPE_SIZE: Readonly<Record<Datatype, number>> = {
  BOOL: 1,
  UINT8: 1,
  UINT16: 2,
  UINT32: 4,
  UINT64: 8,
  INT8: 1,
  INT16: 2,
  INT32: 4,
  INT64: 8,
  FP16: 2,
  FP32: 4,
  FP64: 8,
  BF16: 2,
  BYTES: 0,
};

/** True for datatypes with a fixed element size (all but BYTES). */
export function isFixedSize(datatype: Datatype): datatype is FixedSizeDatatype {
  return datatype !== 'BYTES';
}

/** One input or output of a model, as the model declares it. -1 marks a dynamic dimension. */
export interface TensorSpec {
  name: string;
  datatype: Datatype;
  /** Full model shape, batch dimension included when the model has one. */
  shape: number[];
}

/** What a model file declares, read by the engine after load. */
export interface ModelMetadata {
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  /** True when every input and output has a dynamic first dimension (the batch dimension). */
  batchable: boolean;
}

/** Execution provider selection and its options. Asking for one that is not available fails the load. */
export type ProviderOptions =
  | { kind: 'cpu' }
  | {
      kind: 'cuda';
      deviceId?: number;
      /** Arena limit in bytes (ORT gpu_mem_limit). */
      memoryLimitBytes?: number;
      cudnnConvAlgoSearch?: 'EXHAUSTIVE' | 'HEURISTIC' | 'DEFAULT';
      arenaExtendStrategy?: 'kNextPowerOfTwo' | 'kSameAsRequested';
    }
  | {
      kind: 'tensorrt';
      deviceId?: number;
      fp16?: boolean;
      engineCacheEnable?: boolean;
      engineCachePath?: string;
      maxWorkspaceSizeBytes?: number;
      /** "name:1x3x224x224,other:..." as ORT expects. */
      profileMinShapes?: string;
      profileOptShapes?: string;
      profileMaxShapes?: string;
    };

export type GraphOptimizationLevel = 'disabled' | 'basic' | 'extended' | 'all';

/** Options of one model version load. */
export interface LoadOptions {
  provider?: ProviderOptions;
  /** Model instances (sessions with their own executor thread). Default 1. */
  instances?: number;
  /** Staging slots per instance, at least 2 (double buffering). Default 2. */
  slotsPerInstance?: number;
  /** ORT intra-op threads per session. Default 1. */
  intraOpThreads?: number;
  interOpThreads?: number;
  /** Largest batch a slot holds; 0 for a model that is not batchable. Default 64 if batchable. */
  maxBatchSize?: number;
  graphOptimizationLevel?: GraphOptimizationLevel;
  /**
   * Most bytes the outputs of one batch may hold, checked from their shapes right after the
   * run and before any copy; over it the batch fails with OUTPUT_TOO_LARGE. Default 64 MiB.
   */
  maxOutputBytes?: number;
  /** How error messages name the model (e.g. its path relative to the repository). Default: the file's base name. */
  displayName?: string;
}

/** Per-batch timings measured on the executor thread, in microseconds. */
export interface BatchTiming {
  /** Binding inputs (and host to device copies on CUDA). */
  inputUs: number;
  /** ORT Run. */
  inferUs: number;
  /** Output copies back into the slot. */
  outputUs: number;
}

/** One output of a finished batch; `data` is a view into the slot, valid until the slot is released. */
export interface BatchOutput {
  name: string;
  datatype: Datatype;
  shape: number[];
  data: Uint8Array;
}

export interface BatchResult {
  outputs: BatchOutput[];
  timing: BatchTiming;
}

/** Bytes a model version holds, by device. */
export interface ModelMemory {
  host: number;
  gpu: number;
}
