/**
 * The instances of one model version share its weights: 8 instances of a 49 MB model cost far
 * less than 8 copies, compute the same results, and memory() reports the estimate documented in
 * docs/memory.md. A load whose estimate exceeds the memory available fails before any session
 * exists (issue 13, finding 2).
 */
import { chmodSync, closeSync, openSync, ftruncateSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { hostWeightBytes, loadModel } from '../lib/engine';
import { largeModel, largeReference, largeWeight } from './fixtures/models';
import { uniformFloats } from './fixtures/random';
import { lastJsonLine, runEngineChild } from './helpers/engine-child';
import { rejection } from './helpers/expect-error';
import { bytesOf, floats, runBatch, tempDir } from './helpers/engine-run';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

const SIZE = 3500; // 3500 x 3500 FP32: 49 MB of weights
const MiB = 1024 * 1024;

/** RSS growth of a fresh process loading `instances` instances and running one batch on each. */
async function loadRssGrowth(path: string, instances: number): Promise<number> {
  const outcome = await runEngineChild(`
    const { loadModel } = require('./lib/engine');
    const rss = () => Number(require('fs').readFileSync('/proc/self/status', 'utf8').match(/VmRSS:\\s+(\\d+)/)[1]) * 1024;
    (async () => {
      const before = rss();
      const m = await loadModel(${JSON.stringify(path)}, { instances: ${instances}, maxBatchSize: 1 });
      const slots = [];
      for (let i = 0; i < ${instances}; i++) slots.push(m.acquireSlot());
      await Promise.all(slots.map((s) => { s.inputView(0, ${SIZE * 4}).fill(0); return s.run([[1, ${SIZE}]]); }));
      console.log(JSON.stringify({ growth: rss() - before }));
      slots.forEach((s) => s.release());
      await m.unload();
    })();
  `, { timeoutMs: 120_000 });
  expect(outcome.code).toBe(0);
  return lastJsonLine<{ growth: number }>(outcome).growth;
}

describe('shared weights', () => {
  it('8 instances take well under 8x the memory of one', { timeout: 180_000 }, async () => {
    const path = await largeModel(tmp.dir, { size: SIZE });
    const one = await loadRssGrowth(path, 1);
    const eight = await loadRssGrowth(path, 8);
    console.log(`RSS growth: 1 instance ${(one / MiB).toFixed(0)} MiB, 8 instances ${(eight / MiB).toFixed(0)} MiB`);
    expect(one).toBeGreaterThan(40 * MiB);
    expect(eight).toBeLessThan(3 * one); // unshared: ~8x
  });

  it('every instance computes the model with the shared weights; memory() counts them once', { timeout: 120_000 }, async () => {
    const path = await largeModel(tmp.dir, { size: SIZE, file: 'check.onnx' });
    const model = await loadModel(path, { instances: 3, maxBatchSize: 1 });
    try {
      const x = uniformFloats(5, SIZE, 1);
      const expected = largeReference(largeWeight({ size: SIZE }), x);
      for (let i = 0; i < 3; i++) {
        const y = floats((await runBatch(model, [bytesOf(x)], [[1, SIZE]]))[0].bytes);
        for (let j = 0; j < SIZE; j += 97) expect(y[j]).toBeCloseTo(expected[j], 3);
      }
      const file = statSync(path).size;
      expect(model.native.sharedWeightBytes).toBe(SIZE * SIZE * 4);
      expect(model.memory().host - model.native.memory().host).toBe(hostWeightBytes(file, 3, SIZE * SIZE * 4));
      expect(hostWeightBytes(file, 3, SIZE * SIZE * 4)).toBeLessThan(3 * file);
    } finally {
      await model.unload();
    }
  });

  it('a load whose memory estimate exceeds what is available fails before loading, naming the estimate', async () => {
    // A sparse 4 TiB "model": its size alone is over any machine's MemAvailable.
    const path = join(tmp.dir, 'huge.onnx');
    const fd = openSync(path, 'w');
    ftruncateSync(fd, 4 * 1024 ** 4);
    closeSync(fd);
    chmodSync(path, 0o644);
    const e = await rejection(loadModel(path, { instances: 2 }));
    expect(e.code).toBe('MODEL_LOAD_FAILED');
    expect(e.message).toMatch(/needs about \d+ MiB of host memory/);
    expect(e.message).toContain('huge.onnx');
    expect(e.message).not.toContain(tmp.dir);
  });
});
