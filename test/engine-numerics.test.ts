/**
 * The engine runs real models through the real addon and returns the right numbers: every
 * datatype, multi-input/multi-output, fixed and dynamic shapes, batches assembled from
 * several callers into one slot.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, type LoadedModel } from '../lib/engine';
import { ALL_DATATYPES, datatypeExpected, datatypeModel, datatypeSample, decodeValues, encodeValues } from './fixtures/datatypes';
import { dynamicSeqModel, dynamicSeqReference, fixedShapeModel, fixedShapeReference, mlpModel, mlpReference, mlpWeights, multiIoModel, multiIoReference } from './fixtures/models';
import { uniformFloats } from './fixtures/random';
import { bytesOf, floats, runBatch, tempDir } from './helpers/engine-run';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

function expectClose(actual: Float32Array, expected: ArrayLike<number>, tol = 1e-4): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < actual.length; i++) expect(Math.abs(actual[i] - expected[i])).toBeLessThanOrEqual(tol * (1 + Math.abs(expected[i])));
}

describe('MLP 256->1024->16', () => {
  let model: LoadedModel;
  const weights = mlpWeights();
  beforeAll(async () => {
    model = await loadModel(await mlpModel(tmp.dir), { maxBatchSize: 32 });
  });
  afterAll(() => model.unload());

  it('reports metadata with the batch dimension dynamic', () => {
    expect(model.metadata).toEqual({
      inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 256] }],
      outputs: [{ name: 'output', datatype: 'FP32', shape: [-1, 16] }],
      batchable: true,
    });
    expect(model.maxBatchSize).toBe(32);
  });

  it.each([1, 7, 32])('computes batch %i like the JS reference', async (batch) => {
    const input = uniformFloats(100 + batch, batch * 256, 1);
    const [out] = await runBatch(model, [bytesOf(input)], [[batch, 256]]);
    expect(out.shape).toEqual([batch, 16]);
    expectClose(floats(out.bytes), mlpReference(weights, input));
  });

  it('grows a slot past max batch size instead of failing', async () => {
    const input = uniformFloats(5, 100 * 256, 1);
    const [out] = await runBatch(model, [bytesOf(input)], [[100, 256]]);
    expect(out.shape).toEqual([100, 16]);
    expectClose(floats(out.bytes), mlpReference(weights, input));
  });

  it('assembles rows from several callers into one slot and splits them back', async () => {
    const callers = [3, 1, 5].map((rows, k) => uniformFloats(200 + k, rows * 256, 1));
    const slot = model.acquireSlot()!;
    let offset = 0;
    const total = callers.reduce((n, c) => n + c.length, 0);
    const view = slot.inputView(0, total * 4);
    for (const c of callers) {
      view.set(bytesOf(c), offset);
      offset += c.byteLength;
    }
    const result = await slot.run([[9, 256]]);
    const all = floats(result.outputs[0].data);
    slot.release();
    let row = 0;
    for (const c of callers) {
      const rows = c.length / 256;
      expectClose(all.subarray(row * 16, (row + rows) * 16), mlpReference(weights, c));
      row += rows;
    }
  });
});

describe.each(ALL_DATATYPES)('datatype %s', (type) => {
  it('round-trips real computation through the engine', async () => {
    const model = await loadModel(await datatypeModel(tmp.dir, type, { file: `dt-${type}.onnx` }));
    try {
      expect(model.metadata.inputs[0].datatype).toBe(type);
      expect(model.metadata.outputs[0].datatype).toBe(type);
      const values = datatypeSample(type);
      const [out] = await runBatch(model, [encodeValues(type, values)], [[values.length / 4, 4]]);
      expect(decodeValues(type, out.bytes)).toEqual(datatypeExpected(type, values));
    } finally {
      await model.unload();
    }
  });
});

describe('multi-input, multi-output INT64/FP32', () => {
  it('computes both outputs', async () => {
    const model = await loadModel(await multiIoModel(tmp.dir));
    try {
      expect(model.metadata.inputs.map((t) => `${t.name}:${t.datatype}`)).toEqual(['a:INT64', 'b:FP32']);
      const a = BigInt64Array.from([1n, -2n, 3n, 40000000000n, 5n, 6n]);
      const b = Float32Array.from([0.5, 0.25, -1, 2, 3, 4]);
      const outs = await runBatch(model, [bytesOf(a), bytesOf(b)], [[2, 3], [2, 3]]);
      const ref = multiIoReference(Array.from(a, Number), b);
      const byName = Object.fromEntries(outs.map((o) => [o.name, o]));
      expectClose(floats(byName.sum.bytes), ref.sum);
      expect(Array.from(new BigInt64Array(byName.scaled.bytes.slice().buffer), Number)).toEqual(ref.scaled);
    } finally {
      await model.unload();
    }
  });
});

describe('shapes', () => {
  it('serves a fixed-shape model with its exact shape and maxBatchSize 0', async () => {
    const model = await loadModel(await fixedShapeModel(tmp.dir));
    try {
      expect(model.metadata.batchable).toBe(false);
      expect(model.maxBatchSize).toBe(0);
      expect(model.metadata.inputs[0].shape).toEqual([1, 3, 4, 4]);
      const image = uniformFloats(9, 48, 1);
      const [out] = await runBatch(model, [bytesOf(image)], [[1, 3, 4, 4]]);
      expect(out.shape).toEqual([1, 3]);
      expectClose(floats(out.bytes), fixedShapeReference(image));
    } finally {
      await model.unload();
    }
  });

  it('handles a second dynamic dimension, growing buffers as needed', async () => {
    const model = await loadModel(await dynamicSeqModel(tmp.dir), { maxBatchSize: 4 });
    try {
      for (const seq of [3, 50, 1000]) {
        const tokens = uniformFloats(seq, 4 * seq, 1);
        const [out] = await runBatch(model, [bytesOf(tokens)], [[4, seq]]);
        expect(out.shape).toEqual([4, 1]);
        expectClose(floats(out.bytes), dynamicSeqReference(tokens, seq), 1e-3);
      }
    } finally {
      await model.unload();
    }
  });
});
