/**
 * Engine errors name files by base name (or the caller's displayName), never by absolute path
 * (ONNX Runtime's build tree, the install directory, the model's directory), and the addon
 * writes nothing to stderr: failures come back to JS only (issue 13, finding 5).
 */
import { chmodSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadModel } from '../lib/engine';
import { writeCorruptModel } from './fixtures/models';
import { initializer, node, writeModel } from './fixtures/onnx-builder';
import { lastJsonLine, runEngineChild } from './helpers/engine-child';
import { rejection } from './helpers/expect-error';
import { bytesOf, runBatch, tempDir } from './helpers/engine-run';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

/** Loads (shapes are dynamic) but every run fails inside ORT: Reshape [N,4] into [3]. */
function failingRunModel(): string {
  return writeModel(join(tmp.dir, 'models', 'reshape', '1', 'model.onnx'), {
    inputs: [{ name: 'x', type: 'FP32', dims: [-1, 4] }],
    outputs: [{ name: 'y', type: 'FP32', dims: [-1, 4] }],
    initializers: [initializer('shape', 'INT64', [1], new BigInt64Array([3n]))],
    nodes: [node('Reshape', ['x', 'shape'], ['y'])],
  });
}

/** An absolute path: a slash-led run with at least two components. */
const ABSOLUTE_PATH = /(^|[\s'"(=:[,{<])\/[^\s'"/]+\//;

describe('engine error messages', () => {
  it('a corrupt model names the file by base name, or by displayName', async () => {
    const path = await writeCorruptModel(join(tmp.dir, 'models', 'broken', '1', 'model.onnx'));
    const plain = await rejection(loadModel(path));
    expect(plain.code).toBe('MODEL_LOAD_FAILED');
    expect(plain.message).toContain('model.onnx');
    expect(plain.message).not.toContain(tmp.dir);
    expect(plain.message).not.toMatch(ABSOLUTE_PATH);
    const named = await rejection(loadModel(path, { displayName: 'broken/1/model.onnx' }));
    expect(named.message).toContain('cannot load model broken/1/model.onnx');
    expect(named.message).not.toContain(tmp.dir);
  });

  it('a failing run carries ORT reason without its source paths', async () => {
    const model = await loadModel(failingRunModel(), { displayName: 'reshape/1/model.onnx' });
    try {
      const e = await rejection(runBatch(model, [bytesOf(new Float32Array(8))], [[2, 4]]));
      expect(e.code).toBe('ENGINE_FAILURE');
      expect(e.message).toContain('reshape/1/model.onnx');
      expect(e.message).toMatch(/reshape/i);
      expect(e.message).not.toContain('onnxruntime_src/');
      expect(e.message).not.toMatch(ABSOLUTE_PATH);
    } finally {
      await model.unload();
    }
  });

  it('the addon writes nothing to stderr or stdout on load and run failures', { timeout: 60_000 }, async () => {
    const corrupt = await writeCorruptModel(join(tmp.dir, 'quiet', 'bad.onnx'));
    const failing = failingRunModel();
    chmodSync(tmp.dir, 0o755);
    const outcome = await runEngineChild(`
      const { loadModel } = require('./lib/engine');
      (async () => {
        const codes = [];
        for (let i = 0; i < 3; i++) await loadModel(${JSON.stringify(corrupt)}).catch((e) => codes.push(e.code));
        const m = await loadModel(${JSON.stringify(failing)});
        for (let i = 0; i < 3; i++) {
          const slot = m.acquireSlot();
          slot.inputView(0, 32).fill(0);
          await slot.run([[2, 4]]).catch((e) => codes.push(e.code));
          slot.release();
        }
        await m.unload();
        process.stdout.write(JSON.stringify({ codes }) + '\\n');
      })();
    `);
    expect(outcome.code).toBe(0);
    expect(lastJsonLine<{ codes: string[] }>(outcome).codes).toEqual([...Array(3).fill('MODEL_LOAD_FAILED'), ...Array(3).fill('ENGINE_FAILURE')]);
    expect(outcome.stdout.trim().split('\n')).toHaveLength(1);
    expect(outcome.stderr).toBe('');
  });
});
