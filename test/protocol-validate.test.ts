import { describe, expect, it } from 'vitest';
import type { Datatype, ModelMetadata } from '../lib/engine/types';
import type { InferInputTensor, InferRequest } from '../lib/protocol/types';
import { validateRequest } from '../lib/protocol/validate';
import { DATATYPE_SIZE } from '../lib/engine/types';
import { invalidInputMessage } from './helpers/expect-error';

/** A batchable image model with a dynamic non-batch dim on its second input. */
const batchable: ModelMetadata = {
  inputs: [
    { name: 'x', datatype: 'FP32', shape: [-1, 4] },
    { name: 'tokens', datatype: 'INT64', shape: [-1, -1] },
  ],
  outputs: [
    { name: 'y', datatype: 'FP32', shape: [-1, 2] },
    { name: 'z', datatype: 'FP32', shape: [-1, 1] },
  ],
  batchable: true,
};
/** A batchable model whose non-batch dims are all fixed. */
const fixed: ModelMetadata = {
  inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 4] }],
  outputs: [{ name: 'y', datatype: 'FP32', shape: [-1, 2] }],
  batchable: true,
};
/** A model served with its exact shapes. */
const exact: ModelMetadata = {
  inputs: [
    { name: 'image', datatype: 'UINT8', shape: [1, 3, -1, -1] },
    { name: 'k', datatype: 'INT32', shape: [] },
  ],
  outputs: [{ name: 'boxes', datatype: 'FP32', shape: [-1, 4] }],
  batchable: false,
};

function tensor(name: string, datatype: Datatype, shape: number[], extraBytes = 0): InferInputTensor {
  const count = shape.reduce((a, b) => a * b, 1);
  return { name, datatype, shape, data: new Uint8Array(count * DATATYPE_SIZE[datatype] + extraBytes) };
}
function request(inputs: InferInputTensor[], outputs?: string[]): InferRequest {
  const r: InferRequest = { inputs, binaryDataOutput: false, parameters: {} };
  if (outputs) r.outputs = outputs.map((name) => ({ name, binary: false }));
  return r;
}
const message = invalidInputMessage;

describe('validateRequest: valid requests', () => {
  it('batchable: batch from the first dim, inputs in model order, key from the non-batch dims', () => {
    const tokens = tensor('tokens', 'INT64', [3, 7]);
    const x = tensor('x', 'FP32', [3, 4]);
    const result = validateRequest(request([tokens, x], ['z']), batchable, 64);
    expect(result.batchSize).toBe(3);
    expect(result.inputs).toEqual([x, tokens]);
    expect(result.compatKey).toBe('4;7');
    // Same non-batch shapes, different batch: same key. Different sequence length: different key.
    expect(validateRequest(request([tensor('x', 'FP32', [5, 4]), tensor('tokens', 'INT64', [5, 7])]), batchable, 64).compatKey).toBe('4;7');
    expect(validateRequest(request([tensor('x', 'FP32', [1, 4]), tensor('tokens', 'INT64', [1, 9])]), batchable, 64).compatKey).toBe('4;9');
  });

  it('batchable with only fixed non-batch dims: constant empty key', () => {
    const result = validateRequest(request([tensor('x', 'FP32', [64, 4])]), fixed, 64);
    expect(result).toEqual({ batchSize: 64, compatKey: '', inputs: [expect.objectContaining({ name: 'x' })] });
  });

  it('not batchable: batch size 1, dynamic dims any size, key from the full shapes', () => {
    const result = validateRequest(request([tensor('k', 'INT32', []), tensor('image', 'UINT8', [1, 3, 20, 30])], ['boxes']), exact, 0);
    expect(result.batchSize).toBe(1);
    expect(result.compatKey).toBe('1,3,20,30;');
    expect(result.inputs.map((i) => i.name)).toEqual(['image', 'k']);
  });
});

describe('validateRequest: every error names the tensor, the expectation and what came', () => {
  const x = tensor('x', 'FP32', [2, 4]);
  const tokens = tensor('tokens', 'INT64', [2, 5]);

  it('names', () => {
    expect(message(() => validateRequest(request([x, tokens, tensor('w', 'FP32', [2])]), batchable, 64))).toBe("unknown input 'w'; the model's inputs are 'x', 'tokens'");
    expect(message(() => validateRequest(request([x]), batchable, 64))).toBe("missing input 'tokens'; the model's inputs are 'x', 'tokens'");
    expect(message(() => validateRequest(request([x, tokens, x]), batchable, 64))).toBe("input 'x' is given more than once");
    expect(message(() => validateRequest(request([x, tokens], ['y', 'q']), batchable, 64))).toBe("unknown output 'q'; the model's outputs are 'y', 'z'");
    expect(message(() => validateRequest(request([x, tokens], ['y', 'y']), batchable, 64))).toBe("output 'y' is requested more than once");
  });

  it('datatypes and shapes', () => {
    expect(message(() => validateRequest(request([tensor('x', 'INT64', [2, 4]), tokens]), batchable, 64))).toBe("input 'x': expected datatype FP32, got INT64");
    expect(message(() => validateRequest(request([tensor('x', 'FP32', [2, 4, 1]), tokens]), batchable, 64))).toBe(
      "input 'x': expected shape [-1,4] (rank 2), got [2,4,1] (rank 3)",
    );
    expect(message(() => validateRequest(request([tensor('x', 'FP32', [2, 5]), tokens]), batchable, 64))).toBe("input 'x': expected shape [-1,4], got [2,5]");
    expect(message(() => validateRequest(request([tensor('image', 'UINT8', [2, 3, 8, 8]), tensor('k', 'INT32', [])]), exact, 0))).toBe(
      "input 'image': expected shape [1,3,-1,-1], got [2,3,8,8]",
    );
    expect(message(() => validateRequest(request([tensor('x', 'FP32', [2, 4], 4), tokens]), batchable, 64))).toBe(
      "input 'x': expected 32 bytes of data for FP32 shape [2,4], got 36",
    );
  });

  it('batch sizes', () => {
    expect(message(() => validateRequest(request([x, tensor('tokens', 'INT64', [3, 5])]), batchable, 64))).toBe(
      "input 'tokens': batch size 3 does not match input 'x' batch size 2",
    );
    expect(message(() => validateRequest(request([tensor('x', 'FP32', [0, 4])]), fixed, 64))).toBe("input 'x': batch size is 0; the first dimension must be at least 1");
    expect(message(() => validateRequest(request([tensor('x', 'FP32', [300, 4])]), fixed, 64))).toBe('batch size 300 exceeds max_batch_size 64');
    expect(validateRequest(request([tensor('x', 'FP32', [64, 4])]), fixed, 64).batchSize).toBe(64);
  });
});
