/** Warm-up requests: the configured samples, or one generated from the model's inputs. */
import type { TensorSpec } from '../engine/types';
import type { InferRequest } from '../protocol/types';
import type { WarmupSample } from '../repository/warmup';

/**
 * One sample of zeros at batch size 1, dynamic dimensions set to 1: enough for ONNX Runtime to
 * allocate and pick kernels before the first user request pays for it.
 */
export function generatedWarmup(inputs: readonly TensorSpec[], maxBatchSize: number): WarmupSample[] {
  return [
    {
      name: 'generated',
      batchSize: 1,
      count: 1,
      inputs: inputs.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape.map((d) => (d < 0 ? 1 : d)), source: { kind: 'zero' as const } })),
    },
  ].filter(() => inputs.length > 0 || maxBatchSize >= 0);
}

/** The inference request of a warm-up sample with its input bytes. */
export function warmupRequest(sample: WarmupSample, data: Uint8Array[]): InferRequest {
  return {
    id: `warmup-${sample.name}`,
    inputs: sample.inputs.map((input, i) => ({ name: input.name, datatype: input.datatype, shape: input.shape, data: data[i] })),
    binaryDataOutput: true,
    parameters: {},
  };
}
