/**
 * The addon keeps its state per Node environment: a worker_threads Worker that loads the
 * engine, runs a model and exits (without unloading) leaves the main thread's models serving
 * (issue 13, finding 6).
 */
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterAll, describe, expect, it } from 'vitest';
import { loadModel } from '../lib/engine';
import { mlpModel, mlpReference, mlpWeights } from './fixtures/models';
import { uniformFloats } from './fixtures/random';
import { bytesOf, floats, runBatch, tempDir } from './helpers/engine-run';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

const root = join(__dirname, '..');

/** Runs a Worker that loads `path`, runs one batch and exits without unloading; resolves with its output shape. */
function workerRun(path: string): Promise<number[]> {
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    require(workerData.root + '/test/helpers/ts-require.cjs');
    const { loadModel } = require(workerData.root + '/lib/engine');
    (async () => {
      const m = await loadModel(workerData.path, { instances: 2 });
      const slot = m.acquireSlot();
      slot.inputView(0, 4 * 256).fill(0);
      const r = await slot.run([[1, 256]]);
      parentPort.postMessage(r.outputs[0].shape);
      // exits with the model still loaded: its environment's teardown frees it
    })();
  `;
  return new Promise((resolve, reject) => {
    const worker = new Worker(code, { eval: true, workerData: { root, path } });
    let shape: number[] | undefined;
    worker.on('message', (m: number[]) => {
      shape = m;
      void worker.terminate();
    });
    worker.on('error', reject);
    worker.on('exit', () => (shape ? resolve(shape) : reject(new Error('worker exited without a result'))));
  });
}

describe('worker threads', () => {
  it("a Worker that loads, runs and exits leaves the main thread's model serving", { timeout: 60_000 }, async () => {
    const path = await mlpModel(tmp.dir);
    const w = mlpWeights();
    const model = await loadModel(path, { instances: 2 });
    try {
      const x = uniformFloats(3, 2 * 256, 1);
      const expected = mlpReference(w, x);
      const check = async () => {
        const y = floats((await runBatch(model, [bytesOf(x)], [[2, 256]]))[0].bytes);
        for (let j = 0; j < y.length; j++) expect(y[j]).toBeCloseTo(expected[j], 4);
      };
      await check();
      for (let k = 0; k < 2; k++) {
        expect(await workerRun(path)).toEqual([1, 16]);
        await check(); // still serving, with the same results
      }
      // A model loaded after a Worker came and went works too (the class is per environment).
      const later = await loadModel(path);
      expect((await runBatch(later, [bytesOf(x)], [[2, 256]]))[0].shape).toEqual([2, 16]);
      await later.unload();
    } finally {
      await model.unload();
    }
  });
});
