/**
 * A small, real InferenceService for the front-end tests (the server core is tested on its
 * own): it validates requests with the protocol's validator and really computes.
 *
 * - "add" (version "1", batchable, max batch 8): INPUT0, INPUT1 FP32 [-1, 4] ->
 *   OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1 (FP32 [-1, 4]).
 * - "gate" (version "1"): X INT32 [1] -> Y = X * 2, answered only when the test opens the
 *   gate for that value (`release(x)`), so tests control timing and order; it records every
 *   abort it sees.
 * - "big" (version "1"): N INT32 [1] -> Z UINT8 [N] filled with N % 251 (large outputs on demand).
 */
import type { ModelMetadata } from '../lib/engine/types';
import type { InferenceService, ModelMetadataResponse, ModelStatistics, Readiness, RepositoryIndexEntry, VersionState } from '../lib/core/types';
import { TensorwireError } from '../lib/errors';
import { unknownModelMessage, unknownVersionMessage } from '../lib/core/triton-messages';
import { validateRequest } from '../lib/protocol/validate';
import type { InferOutputTensor, InferRequest, InferResponse } from '../lib/protocol/types';

const MODELS: Record<string, { metadata: ModelMetadata; maxBatchSize: number }> = {
  add: {
    metadata: {
      inputs: [
        { name: 'INPUT0', datatype: 'FP32', shape: [-1, 4] },
        { name: 'INPUT1', datatype: 'FP32', shape: [-1, 4] },
      ],
      outputs: [
        { name: 'OUTPUT0', datatype: 'FP32', shape: [-1, 4] },
        { name: 'OUTPUT1', datatype: 'FP32', shape: [-1, 4] },
      ],
      batchable: true,
    },
    maxBatchSize: 8,
  },
  gate: {
    metadata: { inputs: [{ name: 'X', datatype: 'INT32', shape: [1] }], outputs: [{ name: 'Y', datatype: 'INT32', shape: [1] }], batchable: false },
    maxBatchSize: 0,
  },
  big: {
    metadata: { inputs: [{ name: 'N', datatype: 'INT32', shape: [1] }], outputs: [{ name: 'Z', datatype: 'UINT8', shape: [-1] }], batchable: false },
    maxBatchSize: 0,
  },
};

function int32(data: Uint8Array): Int32Array {
  const copy = new Uint8Array(data); // aligned copy
  return new Int32Array(copy.buffer, 0, copy.byteLength / 4);
}

function float32(data: Uint8Array): Float32Array {
  const copy = new Uint8Array(data);
  return new Float32Array(copy.buffer, 0, copy.byteLength / 4);
}

/** The test service; its fields let tests steer and observe it. */
export class FakeService implements InferenceService {
  live = true;
  ready = true;
  /** When set, the next infer calls throw it. */
  failWith: TensorwireError | undefined;
  /** Aborts seen, by model ("gate:<x>" for the gate model). */
  readonly aborts: string[] = [];
  /** Requests received by infer (after validation). */
  readonly received: InferRequest[] = [];
  readonly loaded = new Map<string, VersionState>([
    ['add', 'ready'],
    ['gate', 'ready'],
    ['big', 'ready'],
    ['broken', 'failed'],
  ]);
  readonly loadConfigs: (Record<string, unknown> | undefined)[] = [];
  private readonly gates = new Map<number, () => void>();
  private count = 0;
  shutdownCalls = 0;

  isLive(): boolean {
    return this.live;
  }
  isReady(): boolean {
    return this.ready;
  }

  private model(name: string, version?: string): { metadata: ModelMetadata; maxBatchSize: number } {
    const model = MODELS[name];
    if (model === undefined || this.loaded.get(name) !== 'ready') throw new TensorwireError('NOT_FOUND', unknownModelMessage(name));
    if (version !== undefined && version !== '1') throw new TensorwireError('NOT_FOUND', unknownVersionMessage(name, version));
    return model;
  }

  modelReadiness(name: string, version?: string): Readiness {
    if (name === 'broken') return { ready: false, reason: 'failed to load: bad file' };
    this.model(name, version);
    return { ready: true };
  }
  modelMetadata(name: string, version?: string): ModelMetadataResponse {
    const { metadata } = this.model(name, version);
    return { name, versions: ['1'], platform: 'onnxruntime_onnx', inputs: metadata.inputs, outputs: metadata.outputs };
  }
  servingMetadata(name: string, version?: string): { version: string; metadata: ModelMetadata; maxBatchSize: number } {
    return { version: '1', ...this.model(name, version) };
  }
  modelConfig(name: string, version?: string): Record<string, unknown> {
    const { maxBatchSize } = this.model(name, version);
    return { name, max_batch_size: maxBatchSize, backend: 'onnxruntime' };
  }

  /** Lets the pending gate request with X = x finish. */
  release(x: number): void {
    const open = this.gates.get(x);
    if (open === undefined) throw new Error(`no gate request waiting for ${x}`);
    this.gates.delete(x);
    open();
  }
  /** Values of X waiting at the gate. */
  waiting(): number[] {
    return [...this.gates.keys()];
  }

  async infer(name: string, version: string | undefined, request: InferRequest, signal?: AbortSignal): Promise<InferResponse> {
    const model = this.model(name, version);
    if (this.failWith) throw this.failWith;
    const valid = validateRequest(request, model.metadata, model.maxBatchSize);
    this.received.push(request);
    this.count++;
    let outputs: Omit<InferOutputTensor, 'binary'>[];
    if (name === 'add') {
      const a = float32(valid.inputs[0]!.data);
      const b = float32(valid.inputs[1]!.data);
      const sum = new Float32Array(a.length);
      const diff = new Float32Array(a.length);
      for (let i = 0; i < a.length; i++) {
        sum[i] = a[i]! + b[i]!;
        diff[i] = a[i]! - b[i]!;
      }
      const shape = valid.inputs[0]!.shape;
      outputs = [
        { name: 'OUTPUT0', datatype: 'FP32', shape, data: new Uint8Array(sum.buffer) },
        { name: 'OUTPUT1', datatype: 'FP32', shape, data: new Uint8Array(diff.buffer) },
      ];
    } else if (name === 'gate') {
      const x = int32(valid.inputs[0]!.data)[0]!;
      await new Promise<void>((resolve, reject) => {
        if (signal?.aborted) {
          this.aborts.push(`gate:${x}`);
          reject(new TensorwireError('CANCELLED', 'cancelled'));
          return;
        }
        this.gates.set(x, resolve);
        signal?.addEventListener('abort', () => {
          this.aborts.push(`gate:${x}`);
          this.gates.delete(x);
          reject(new TensorwireError('CANCELLED', 'cancelled'));
        });
      });
      outputs = [{ name: 'Y', datatype: 'INT32', shape: [1], data: new Uint8Array(Int32Array.of(x * 2).buffer) }];
    } else {
      const n = int32(valid.inputs[0]!.data)[0]!;
      outputs = [{ name: 'Z', datatype: 'UINT8', shape: [n], data: new Uint8Array(n).fill(n % 251) }];
    }
    const wanted = request.outputs;
    const result: InferOutputTensor[] =
      wanted === undefined
        ? outputs.map((o) => ({ ...o, binary: request.binaryDataOutput }))
        : wanted.map((w) => {
            const o = outputs.find((x) => x.name === w.name);
            if (o === undefined) throw new TensorwireError('INVALID_INPUT', `unknown output '${w.name}'`);
            return { ...o, binary: w.binary };
          });
    return { modelName: name, modelVersion: '1', ...(request.id !== undefined ? { id: request.id } : {}), outputs: result };
  }

  statistics(name?: string, version?: string): ModelStatistics[] {
    const names = name === undefined ? ['add', 'gate', 'big'] : [name];
    return names.map((n) => {
      this.model(n, version);
      const zero = { count: 0, ns: 0 };
      const success = { count: n === 'add' ? this.count : 0, ns: 1000 };
      return {
        name: n,
        version: '1',
        last_inference: 0,
        inference_count: success.count,
        execution_count: success.count,
        inference_stats: { success, fail: zero, queue: zero, compute_input: zero, compute_infer: zero, compute_output: zero, cache_hit: zero, cache_miss: zero },
        response_stats: {},
        batch_stats: [],
        memory_usage: [],
      };
    });
  }
  repositoryIndex(readyOnly?: boolean): RepositoryIndexEntry[] {
    const rows = [...this.loaded].map(([name, state]) => ({ name, version: '1', state, reason: state === 'failed' ? 'bad file' : '' }));
    return readyOnly ? rows.filter((r) => r.state === 'ready') : rows;
  }
  async loadModel(name: string, config?: Record<string, unknown>): Promise<void> {
    if (!this.loaded.has(name)) throw new TensorwireError('NOT_FOUND', `no model '${name}' in the repository`);
    this.loadConfigs.push(config);
    this.loaded.set(name, 'ready');
  }
  async unloadModel(name: string): Promise<void> {
    if (!this.loaded.has(name)) throw new TensorwireError('NOT_FOUND', `no model '${name}' in the repository`);
    this.loaded.set(name, 'unavailable');
  }
  async shutdown(): Promise<void> {
    this.shutdownCalls++;
    this.live = false;
  }
}

/** Float32 values as little-endian bytes. */
export function f32Bytes(values: number[]): Buffer {
  return Buffer.from(Float32Array.from(values).buffer);
}

/** Little-endian bytes as float32 values. */
export function f32Values(bytes: Uint8Array): number[] {
  const copy = new Uint8Array(bytes);
  return [...new Float32Array(copy.buffer, 0, copy.byteLength / 4)];
}

/** Waits until `condition()` holds (polling), or fails after `ms`. */
export async function until(condition: () => boolean, ms = 2000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
