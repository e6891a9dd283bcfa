/**
 * Outputs whose size depends on input values (ConstantOfShape, Expand) are bounded by the
 * load option maxOutputBytes: a 16-byte request cannot make the engine copy a huge tensor
 * (issue 13, finding 4). The check runs on the output shapes right after the run.
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ERROR_CATALOGUE } from '../lib/errors';
import { engineInfo, loadModel, type LoadedModel } from '../lib/engine';
import { initializer, node, writeModel } from './fixtures/onnx-builder';
import { rejection } from './helpers/expect-error';
import { bytesOf, runBatch, tempDir } from './helpers/engine-run';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

/** "shape" INT64 [2] -> ConstantOfShape (zeros) -> "y" FP32 [rows, cols]. */
function constantOfShapeModel(): string {
  return writeModel(join(tmp.dir, 'zeros.onnx'), {
    inputs: [{ name: 'shape', type: 'INT64', dims: [2] }],
    outputs: [{ name: 'y', type: 'FP32', dims: ['rows', 'cols'] }],
    nodes: [node('ConstantOfShape', ['shape'], ['y'])],
  });
}

/** "shape" INT64 [2] -> Expand a constant [1] of 7s -> "y" FP32 [rows, cols]. */
function expandModel(): string {
  return writeModel(join(tmp.dir, 'expand.onnx'), {
    inputs: [{ name: 'shape', type: 'INT64', dims: [2] }],
    outputs: [{ name: 'y', type: 'FP32', dims: ['rows', 'cols'] }],
    initializers: [initializer('seven', 'FP32', [1], new Float32Array([7]))],
    nodes: [node('Expand', ['seven', 'shape'], ['y'])],
  });
}

const shapeInput = (rows: number, cols: number) => bytesOf(new BigInt64Array([BigInt(rows), BigInt(cols)]));

async function withModel(path: string, options: Parameters<typeof loadModel>[1], fn: (m: LoadedModel) => Promise<void>): Promise<void> {
  const model = await loadModel(path, options);
  try {
    await fn(model);
  } finally {
    await model.unload();
  }
}

describe('maxOutputBytes', () => {
  it('OUTPUT_TOO_LARGE maps to 413', () => {
    expect(ERROR_CATALOGUE.OUTPUT_TOO_LARGE.status).toBe(413);
  });

  it('the default (64 MiB) refuses a 5000x5000 FP32 output from a 16-byte ConstantOfShape request', { timeout: 30_000 }, async () => {
    await withModel(constantOfShapeModel(), {}, async (model) => {
      const e = await rejection(runBatch(model, [shapeInput(5000, 5000)], [[2]]));
      expect(e.code).toBe('OUTPUT_TOO_LARGE');
      expect(e.status).toBe(413);
      expect(e.message).toContain("output 'y'");
      expect(e.message).toContain('[5000x5000]');
      expect(e.message).toContain('100000000 bytes');
      expect(e.message).toContain(String(64 * 1024 * 1024));
      // Nothing was staged: the slots hold their load-time size, and the model serves on.
      expect(engineInfo().alignedBytes).toBeLessThan(1024 * 1024);
      const ok = await runBatch(model, [shapeInput(3, 2)], [[2]]);
      expect(ok[0].shape).toEqual([3, 2]);
      expect(ok[0].bytes.byteLength).toBe(24);
    });
  });

  it('a lower maxOutputBytes bounds Expand; just under the limit passes with the right values', async () => {
    await withModel(expandModel(), { maxOutputBytes: 4000 }, async (model) => {
      const e = await rejection(runBatch(model, [shapeInput(100, 11)], [[2]]));
      expect(e.code).toBe('OUTPUT_TOO_LARGE');
      expect(e.message).toContain('4400 bytes');
      const ok = await runBatch(model, [shapeInput(100, 10)], [[2]]);
      expect(ok[0].shape).toEqual([100, 10]);
      expect(Array.from(new Float32Array(ok[0].bytes.buffer)).every((v) => v === 7)).toBe(true);
    });
  });

  it('maxOutputBytes must be a positive integer', async () => {
    expect((await rejection(loadModel(expandModel(), { maxOutputBytes: 0 }))).code).toBe('INVALID_INPUT');
    expect((await rejection(loadModel(expandModel(), { maxOutputBytes: 1.5 }))).code).toBe('INVALID_INPUT');
  });
});
