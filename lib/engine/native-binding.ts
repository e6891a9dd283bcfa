/**
 * Loads the compiled addon and describes its raw interface. When it cannot be loaded, the
 * error says which file was tried and how to fix it (sharp's rule).
 */
import * as path from 'node:path';
import { TensorwireError } from '../errors';
import type { Datatype } from './types';

/** Raw tensor description returned by the addon. */
export interface NativeTensorInfo {
  name: string;
  datatype: Datatype | '';
  shape: number[];
}

/** Result of a finished batch as the addon reports it. */
export interface NativeRunResult {
  shapes: number[][];
  bytes: number[];
  /** [inputUs, inferUs, outputUs] */
  timing: [number, number, number];
}

/** The addon's model object (native/native_model.cpp). */
export interface NativeModel {
  readonly instanceCount: number;
  readonly slotsPerInstance: number;
  /** Bytes of weights the instances share (read once from the file); 0 when each session holds its own. */
  readonly sharedWeightBytes: number;
  metadata(): { inputs: NativeTensorInfo[]; outputs: NativeTensorInfo[]; batchable: boolean };
  inputBuffer(instance: number, slot: number, input: number, minBytes: number): ArrayBuffer;
  outputBuffer(instance: number, slot: number, output: number): ArrayBuffer;
  run(instance: number, slot: number, shapes: number[][]): Promise<NativeRunResult>;
  cancel(instance: number, slot: number): boolean;
  unload(): Promise<void>;
  memory(): { host: number; gpu: number };
  /** Frees buffers a large batch grew past their load-time size (slot must not be running). */
  trimSlot(instance: number, slot: number): void;
}

/** Options object the addon's loadModel reads (native/model_options.cpp). */
export interface NativeLoadOptions {
  provider: 'cpu' | 'cuda' | 'tensorrt';
  deviceId: number;
  providerOptions: Record<string, string>;
  instances: number;
  slotsPerInstance: number;
  intraOpThreads: number;
  interOpThreads: number;
  maxBatchSize: number;
  graphOptimizationLevel: string;
  /** Bound on one batch's output bytes (OUTPUT_TOO_LARGE past it). */
  maxOutputBytes: number;
  /** How messages name the model (never an absolute path). */
  displayName: string;
}

/** The addon's hard bounds on load options (native/limits.hpp), one table for every layer. */
export interface NativeLimits {
  maxInstances: number;
  minSlotsPerInstance: number;
  maxSlotsPerInstance: number;
  maxIntraOpThreads: number;
  maxInterOpThreads: number;
  maxBatchSize: number;
  maxDeviceId: number;
  defaultMaxOutputBytes: number;
  maxOutputBytesCeiling: number;
  /** Threads a load leaves free for Node and later loads. */
  threadHeadroom: number;
}

export interface NativeEngineInfo {
  ortVersion: string;
  ortLibraryDirectory: string;
  cudaBuilt: boolean;
  availableProviders: string[];
  pinnedBytes: number;
  alignedBytes: number;
}

export interface NativeAddon {
  loadModel(path: string, options: NativeLoadOptions): Promise<NativeModel>;
  engineInfo(): NativeEngineInfo;
  limits(): NativeLimits;
  cudaMemoryInfo(deviceId: number): { free: number; total: number };
  gpuStats(): GpuStats[];
}

/** One GPU as NVML reports it. */
export interface GpuStats {
  index: number;
  /** 0..1 over NVML's last sample period. */
  utilization: number;
  memoryUsed: number;
  memoryTotal: number;
}

let addon: NativeAddon | undefined;

/** The addon, loaded on first use. */
export function nativeAddon(): NativeAddon {
  if (addon) return addon;
  // Works from lib/engine (sources under vitest) and dist/lib/engine (compiled). A source build
  // (build/Release) wins over the prebuilt the package ships (scripts/prebuild.js).
  const roots = [path.join(__dirname, '..', '..'), path.join(__dirname, '..', '..', '..')];
  const prebuilt = path.join('prebuilds', `${process.platform}-${process.arch}`, 'tensorwire.node');
  const candidates = [...roots.map((r) => path.join(r, 'build', 'Release', 'tensorwire.node')), ...roots.map((r) => path.join(r, prebuilt))];
  const failures: string[] = [];
  for (const file of candidates) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- a .node addon at a path found at run time: only require loads it
      addon = require(file) as NativeAddon;
      return addon;
    } catch (e) {
      failures.push(`${file}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  throw new TensorwireError(
    'INTERNAL',
    `cannot load the tensorwire addon for ${process.platform}-${process.arch} (${failures.join('; ')}). ` +
      'Run `npm rebuild tensorwire` to see why the install could not use a prebuilt addon or build one, and what to install; in a checkout, `npm run build` (needs cmake and a C++17 compiler). docs/deploy.md, "Installing", has the details.',
  );
}
