/**
 * Staging memory does not ratchet up to the largest request: a buffer a big batch grew is
 * freed when its slot is released, and memory() counts what the version really holds
 * (issue 13, finding 3).
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { engineInfo, loadModel } from '../lib/engine';
import { initializer, node, writeModel } from './fixtures/onnx-builder';
import { tempDir } from './helpers/engine-run';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

/** "x" FP32 [N, D] -> x * 2 -> "y" FP32 [N, D]: any row width, so one request can be any size. */
function anyWidthModel(): string {
  return writeModel(join(tmp.dir, 'double.onnx'), {
    inputs: [{ name: 'x', type: 'FP32', dims: [-1, 'D'] }],
    outputs: [{ name: 'y', type: 'FP32', dims: [-1, 'D'] }],
    initializers: [initializer('two', 'FP32', [1], new Float32Array([2]))],
    nodes: [node('Mul', ['x', 'two'], ['y'])],
  });
}

const MiB = 1024 * 1024;

describe('staging buffers after a large request', () => {
  it('8 requests of 1-8 MB leave staging at its load-time size once their slots are released', { timeout: 60_000 }, async () => {
    const model = await loadModel(anyWidthModel(), { maxBatchSize: 8 });
    try {
      const loadTime = model.memory().host;
      const stagedAtLoad = engineInfo().alignedBytes;
      let peakHeld = 0;
      for (let k = 0; k < 8; k++) {
        const width = (1 + k) * 256 * 1024; // floats: 1 MB .. 8 MB per request
        const slot = model.acquireSlot()!;
        const view = slot.inputView(0, width * 4);
        new Float32Array(view.buffer, 0, width).fill(k + 1);
        const r = await slot.run([[1, width]]);
        const y = new Float32Array(r.outputs[0].data.buffer, r.outputs[0].data.byteOffset, 4);
        expect(Array.from(y)).toEqual([2 * (k + 1), 2 * (k + 1), 2 * (k + 1), 2 * (k + 1)]);
        // While held, the grown buffers are counted: memory() reports what the version holds.
        peakHeld = Math.max(peakHeld, model.memory().host);
        expect(model.memory().host).toBeGreaterThanOrEqual(loadTime + 2 * width * 4);
        slot.release();
        expect(engineInfo().alignedBytes).toBe(stagedAtLoad);
      }
      expect(peakHeld).toBeGreaterThan(loadTime + 8 * MiB);
      expect(model.memory().host).toBe(loadTime);
    } finally {
      await model.unload();
    }
    expect(engineInfo().alignedBytes).toBe(0);
  });
});
