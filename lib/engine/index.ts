/**
 * The engine: load ONNX models on a native loader thread and run batches on per-instance
 * executor threads through pinned (CUDA) or aligned (CPU) staging slots.
 */
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { TensorwireError, toTensorwireError } from '../errors';
import { LoadedModel } from './loaded-model';
import { nativeAddon, type GpuStats, type NativeEngineInfo, type NativeLimits } from './native-binding';
import { ortProviderOptions } from './provider-options';
import type { Datatype, LoadOptions, ModelMetadata, TensorSpec } from './types';

export * from './types';
export { LoadedModel } from './loaded-model';
export { StagingSlot } from './staging-slot';
export { ortProviderOptions } from './provider-options';

/** Default rows per batch for batchable models when the caller sets none. */
export const DEFAULT_MAX_BATCH_SIZE = 64;

/** The addon's bounds on load options (instances, slots, threads, batch, output bytes); one table with native/limits.hpp. */
export function engineLimits(): NativeLimits {
  return nativeAddon().limits();
}

function checkInteger(name: string, v: number | undefined, min: number, max: number): void {
  if (v !== undefined && (!Number.isInteger(v) || v < min || v > max)) {
    throw new TensorwireError('INVALID_INPUT', `load option ${name} must be an integer in [${min}, ${max}], got ${String(v)}`);
  }
}

/**
 * Loads a model version. The session is created on the native loader thread; the promise
 * rejects with MODEL_LOAD_FAILED (naming the file and ONNX Runtime's reason) or
 * PROVIDER_UNAVAILABLE (naming the missing library and the fix). Never falls back to the CPU.
 */
export async function loadModel(path: string, options: LoadOptions = {}): Promise<LoadedModel> {
  // The addon checks the same bounds (native/limits.hpp); this gives the message first.
  const limits = engineLimits();
  checkInteger('instances', options.instances, 1, limits.maxInstances);
  checkInteger('slotsPerInstance', options.slotsPerInstance, limits.minSlotsPerInstance, limits.maxSlotsPerInstance);
  checkInteger('intraOpThreads', options.intraOpThreads, 0, limits.maxIntraOpThreads);
  checkInteger('interOpThreads', options.interOpThreads, 0, limits.maxInterOpThreads);
  checkInteger('maxBatchSize', options.maxBatchSize, 0, limits.maxBatchSize);
  checkInteger('maxOutputBytes', options.maxOutputBytes, 1, limits.maxOutputBytesCeiling);
  const provider = options.provider ?? { kind: 'cpu' };
  const maxBatchSize = options.maxBatchSize ?? DEFAULT_MAX_BATCH_SIZE;
  let native;
  try {
    native = await nativeAddon().loadModel(path, {
      provider: provider.kind,
      deviceId: provider.kind === 'cpu' ? 0 : (provider.deviceId ?? 0),
      providerOptions: ortProviderOptions(provider),
      instances: options.instances ?? 1,
      slotsPerInstance: options.slotsPerInstance ?? 2,
      intraOpThreads: options.intraOpThreads ?? 1,
      interOpThreads: options.interOpThreads ?? 1,
      maxBatchSize: maxBatchSize || 1,
      graphOptimizationLevel: options.graphOptimizationLevel ?? 'all',
      maxOutputBytes: options.maxOutputBytes ?? limits.defaultMaxOutputBytes,
      displayName: options.displayName ?? basename(path),
    });
  } catch (e) {
    throw toTensorwireError(e);
  }
  const raw = native.metadata();
  const spec = (t: { name: string; datatype: string; shape: number[] }): TensorSpec => ({ name: t.name, datatype: t.datatype as Datatype, shape: t.shape });
  const metadata: ModelMetadata = { inputs: raw.inputs.map(spec), outputs: raw.outputs.map(spec), batchable: raw.batchable };
  const fileBytes = provider.kind === 'cpu' ? (await stat(path).catch(() => ({ size: 0 }))).size : 0;
  return new LoadedModel(native, path, metadata, maxBatchSize, hostWeightBytes(fileBytes, native.instanceCount, native.sharedWeightBytes));
}

/**
 * Host bytes of a CPU version's weights, estimated from the file's size (docs/memory.md): the
 * instances share one copy plus one pre-packed copy when the addon shared them, otherwise each
 * session holds its own. On a GPU (fileBytes 0) they are in the device figure the addon measures.
 */
export function hostWeightBytes(fileBytes: number, instances: number, sharedBytes: number): number {
  return sharedBytes > 0 ? fileBytes + sharedBytes : fileBytes * instances;
}

/** ONNX Runtime version, providers compiled into it, whether the CUDA helper was built, staging bytes. */
export function engineInfo(): NativeEngineInfo {
  return nativeAddon().engineInfo();
}

/** Free and total memory of a CUDA device; throws PROVIDER_UNAVAILABLE without a GPU. */
export function cudaMemoryInfo(deviceId = 0): { free: number; total: number } {
  try {
    return nativeAddon().cudaMemoryInfo(deviceId);
  } catch (e) {
    throw toTensorwireError(e);
  }
}

/** Utilization and memory of every visible GPU through NVML; empty without an NVIDIA driver. */
export function gpuStats(): GpuStats[] {
  return nativeAddon().gpuStats();
}

export type { GpuStats, NativeLimits };
