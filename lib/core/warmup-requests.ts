/** Warm-up requests: the configured samples, or one generated from the model's inputs. */
import { TensorwireError, toTensorwireError } from '../errors';
import type { TensorSpec } from '../engine/types';
import type { InferRequest } from '../protocol/types';
import { warmupSampleData, type WarmupSample } from '../repository/warmup';
import type { Servable } from './servable';

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

/**
 * Runs the configured warm-up samples through `servable`, or one generated from its metadata
 * when the config has none. `modelDir` is where sample files are read from. Throws
 * MODEL_LOAD_FAILED naming the sample that failed.
 */
export async function warmUp(servable: Servable, modelDir: string): Promise<void> {
  if (servable.runsWarmup === false) return;
  const effective = servable.effective;
  const samples = effective.warmup.length > 0 ? effective.warmup : generatedWarmup(effective.inputs, effective.maxBatchSize);
  for (const sample of samples) {
    const data = await warmupSampleData(sample, modelDir);
    for (let i = 0; i < sample.count; i++) {
      try {
        await servable.infer(warmupRequest(sample, data));
      } catch (e) {
        const err = toTensorwireError(e);
        throw new TensorwireError('MODEL_LOAD_FAILED', `warm-up "${sample.name}" failed: ${err.message}`);
      }
    }
  }
}
