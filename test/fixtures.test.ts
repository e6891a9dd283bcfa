/**
 * Proves the test fixtures and the bundled example model are what they claim: each model is
 * loaded by onnxruntime-node (ORT 1.29, CPU) and its outputs are checked against the JS
 * references other tests rely on.
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { onnx } from 'onnx-proto';
import { afterAll, describe, expect, it } from 'vitest';
import type { FixedSizeDatatype } from '../lib/engine/types';
import { buildModel, node } from './fixtures/onnx-builder';
import { fromBFloat16Bits, fromFloat16Bits, toBFloat16Bits, toFloat16Bits } from './fixtures/half';
import {
  ALL_DATATYPES, DATATYPE_MODEL_OPS, datatypeExpected, datatypeModels, datatypeNodes, datatypeSample,
  decodeValues, encodeValues,
} from './fixtures/datatypes';
import {
  dynamicSeqModel, dynamicSeqReference, fixedShapeModel, fixedShapeReference, largeModel, largeReference,
  largeWeight, mlpModel, mlpReference, mlpWeights, multiIoModel, multiIoReference, slowModel, slowReference,
  versionedModel, writeCorruptModel,
} from './fixtures/models';
import { uniformFloats } from './fixtures/random';
import { IRIS_CLASSES, isTestRow, loadIris } from '../examples/iris-data';

const dir = mkdtempSync(join(tmpdir(), 'tensorwire-fixtures-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// One thread: other suites share this box's two cores. (Two calls because create() has separate path and bytes overloads.)
const open = (pathOrBytes: string | Uint8Array) =>
  typeof pathOrBytes === 'string'
    ? ort.InferenceSession.create(pathOrBytes, { intraOpNumThreads: 1, interOpNumThreads: 1 })
    : ort.InferenceSession.create(pathOrBytes, { intraOpNumThreads: 1, interOpNumThreads: 1 });

const ORT_TYPE: Record<Exclude<FixedSizeDatatype, 'BF16'>, ort.Tensor.Type> = {
  BOOL: 'bool', UINT8: 'uint8', UINT16: 'uint16', UINT32: 'uint32', UINT64: 'uint64', INT8: 'int8',
  INT16: 'int16', INT32: 'int32', INT64: 'int64', FP16: 'float16', FP32: 'float32', FP64: 'float64',
};

/** An ORT tensor over little-endian `bytes` of a KServe datatype. */
function tensorFromBytes(type: Exclude<FixedSizeDatatype, 'BF16'>, bytes: Uint8Array, dims: number[]): ort.Tensor {
  const buf = bytes.slice().buffer;
  const views: Record<Exclude<FixedSizeDatatype, 'BF16'>, () => ort.Tensor['data']> = {
    BOOL: () => new Uint8Array(buf), UINT8: () => new Uint8Array(buf), INT8: () => new Int8Array(buf),
    UINT16: () => new Uint16Array(buf), INT16: () => new Int16Array(buf), FP16: () => new Uint16Array(buf),
    UINT32: () => new Uint32Array(buf), INT32: () => new Int32Array(buf), FP32: () => new Float32Array(buf),
    UINT64: () => new BigUint64Array(buf), INT64: () => new BigInt64Array(buf), FP64: () => new Float64Array(buf),
  };
  return new ort.Tensor(ORT_TYPE[type], views[type]() as never, dims);
}

function bytesOfTensor(t: ort.Tensor): Uint8Array {
  const d = t.data as ArrayBufferView;
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number): void {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
  expect(worst).toBeLessThanOrEqual(tol);
}

describe('half-precision helpers', () => {
  it('encode and decode the known FP16 and BF16 bit patterns', () => {
    const f16: [number, number][] = [[1, 0x3c00], [-2, 0xc000], [65504, 0x7bff], [2 ** -24, 0x0001], [2 ** -14, 0x0400], [1 / 3, 0x3555]];
    for (const [v, bits] of f16) expect(toFloat16Bits(v)).toBe(bits);
    expect(fromFloat16Bits(0x3555)).toBe(0.333251953125);
    expect(toFloat16Bits(1e6)).toBe(0x7c00);
    expect(toBFloat16Bits(1)).toBe(0x3f80);
    expect(toBFloat16Bits(1 / 3)).toBe(0x3eab);
    expect(fromBFloat16Bits(0x3eab)).toBe(0.333984375);
  });
});

describe('datatype models', () => {
  const paths = datatypeModels(dir);

  for (const type of ALL_DATATYPES.filter((t): t is Exclude<FixedSizeDatatype, 'BF16'> => t !== 'BF16')) {
    it(`${type}: ${DATATYPE_MODEL_OPS[type]}`, async () => {
      const session = await open((await paths)[type]);
      expect(session.inputMetadata[0]).toMatchObject({ name: 'x', type: ORT_TYPE[type], shape: ['N', 4] });
      const values = datatypeSample(type);
      const input = encodeValues(type, values);
      expect(decodeValues(type, input)).toEqual(values);
      const { y } = await session.run({ x: tensorFromBytes(type, input, [2, 4]) });
      expect(y.type).toBe(ORT_TYPE[type]);
      expect(y.dims).toEqual([2, 4]);
      const expected = datatypeExpected(type, values);
      expect(decodeValues(type, bytesOfTensor(y))).toEqual(expected);
      expect(bytesOfTensor(y)).toEqual(encodeValues(type, expected));
    });
  }

  it(`BF16: ${DATATYPE_MODEL_OPS.BF16}`, async () => {
    // onnxruntime-node cannot even open a model with BF16 inputs ("Unsupported data type: 16"),
    // so check the file's graph structurally, then run the same nodes between FP32 casts,
    // unoptimized so every BF16 kernel really runs, to check what they compute.
    const model = onnx.ModelProto.decode(readFileSync((await paths).BF16));
    const F = onnx.TensorProto.DataType;
    const graph = model.graph!;
    const io = [...(graph.input ?? []), ...(graph.output ?? [])].map((v) => [v.name, v.type?.tensorType?.elemType]);
    expect(io).toEqual([['x', F.BFLOAT16], ['y', F.BFLOAT16]]);
    expect((graph.node ?? []).map((n) => n.opType)).toEqual(datatypeNodes('BF16').map((n) => n.opType));
    const wrapped = await ort.InferenceSession.create(
      buildModel({
        inputs: [{ name: 'x_in', type: 'FP32', dims: [-1, 4] }],
        outputs: [{ name: 'y_out', type: 'FP32', dims: [-1, 4] }],
        nodes: [node('Cast', ['x_in'], ['x'], { to: F.BFLOAT16 }), ...datatypeNodes('BF16'), node('Cast', ['y'], ['y_out'], { to: F.FLOAT })],
      }),
      { graphOptimizationLevel: 'disabled', intraOpNumThreads: 1 },
    );
    const values = datatypeSample('BF16') as number[];
    const { y_out } = await wrapped.run({ x_in: new ort.Tensor('float32', Float32Array.from(values), [2, 4]) });
    expect(Array.from(y_out.data as Float32Array)).toEqual(datatypeExpected('BF16', values));
    expect(decodeValues('BF16', encodeValues('BF16', values))).toEqual(values);
    // An FP32 input that is not a BF16 value is rounded (to nearest) by the first Cast.
    const third = await wrapped.run({ x_in: new ort.Tensor('float32', Float32Array.from([1 / 3, 0, 0, 0]), [1, 4]) });
    expect((third.y_out.data as Float32Array)[0]).toBe(0.333984375 * 2);
  });
});

describe('mlpModel', () => {
  it('computes the 256 -> 1024 -> 16 MLP of mlpReference', async () => {
    const path = await mlpModel(dir);
    expect(statSync(path).size).toBeGreaterThan((256 * 1024 + 1024 * 16) * 4);
    const session = await open(path);
    expect(session.inputMetadata[0]).toMatchObject({ name: 'input', type: 'float32', shape: ['N', 256] });
    expect(session.outputMetadata[0]).toMatchObject({ name: 'output', type: 'float32', shape: ['N', 16] });
    const input = uniformFloats(99, 3 * 256, 1);
    const { output } = await session.run({ input: new ort.Tensor('float32', input, [3, 256]) });
    expect(output.dims).toEqual([3, 16]);
    const expected = mlpReference(mlpWeights(), input);
    expect(Math.max(...expected.map(Math.abs))).toBeGreaterThan(0.01); // not a trivially zero output
    expectClose(output.data as Float32Array, expected, 1e-5);
  });

  it('honours custom sizes and seed', async () => {
    const opts = { inputDim: 8, hidden: 32, outputDim: 5, seed: 3, file: 'small/mlp.onnx' };
    const path = await mlpModel(dir, opts);
    expect(path).toBe(join(dir, 'small/mlp.onnx'));
    const input = uniformFloats(5, 4 * 8, 2);
    const { output } = await (await open(path)).run({ input: new ort.Tensor('float32', input, [4, 8]) });
    expect(output.dims).toEqual([4, 5]);
    expectClose(output.data as Float32Array, mlpReference(mlpWeights(opts), input), 1e-5);
  });
});

describe('shape and multi-io models', () => {
  it('multiIoModel: sum = float(a) + b, scaled = a * 2', async () => {
    const session = await open(await multiIoModel(dir));
    expect(session.inputNames).toEqual(['a', 'b']);
    expect(session.outputNames).toEqual(['sum', 'scaled']);
    const a = [1, -2, 3, 2 ** 40, 0, -7];
    const b = [0.5, 0.25, -1, 1, 2, 3];
    const r = await session.run({
      a: new ort.Tensor('int64', BigInt64Array.from(a, BigInt), [2, 3]),
      b: new ort.Tensor('float32', Float32Array.from(b), [2, 3]),
    });
    const expected = multiIoReference(a, b);
    expect(r.sum.type).toBe('float32');
    expect(Array.from(r.sum.data as Float32Array)).toEqual(Array.from(expected.sum));
    expect(r.scaled.type).toBe('int64');
    expect(Array.from(r.scaled.data as BigInt64Array, Number)).toEqual(expected.scaled);
  });

  it('fixedShapeModel: [1,3,4,4] -> channel means [1,3], fixed shapes', async () => {
    const session = await open(await fixedShapeModel(dir));
    expect(session.inputMetadata[0]).toMatchObject({ name: 'image', shape: [1, 3, 4, 4] });
    expect(session.outputMetadata[0]).toMatchObject({ name: 'pooled', shape: [1, 3] });
    const image = Float32Array.from({ length: 48 }, (_, i) => i * 0.5 - 3);
    const { pooled } = await session.run({ image: new ort.Tensor('float32', image, [1, 3, 4, 4]) });
    expect(pooled.dims).toEqual([1, 3]);
    expectClose(pooled.data as Float32Array, fixedShapeReference(image), 1e-6);
    expect(Array.from(fixedShapeReference(image))).toEqual([0.75, 8.75, 16.75]);
  });

  it('dynamicSeqModel: any batch and sequence length -> row sums [N,1]', async () => {
    const session = await open(await dynamicSeqModel(dir));
    expect(session.inputMetadata[0]).toMatchObject({ name: 'tokens', shape: ['N', 'T'] });
    for (const [batch, seq] of [[2, 3], [5, 17]]) {
      const tokens = uniformFloats(batch * seq, batch * seq, 10);
      const { total } = await session.run({ tokens: new ort.Tensor('float32', tokens, [batch, seq]) });
      expect(total.dims).toEqual([batch, 1]);
      expectClose(total.data as Float32Array, dynamicSeqReference(tokens, seq), 1e-4);
    }
  });
});

describe('serving-behaviour models', () => {
  it('slowModel: a chain of MatMuls whose result is exact', async () => {
    const opts = { layers: 40 };
    const session = await open(await slowModel(dir, opts));
    const x = uniformFloats(21, 4 * 512, 1);
    const { y } = await session.run({ x: new ort.Tensor('float32', x, [4, 512]) });
    expect(y.dims).toEqual([4, 512]);
    const expected = slowReference(x, opts);
    expect(expected).not.toEqual(x);
    expect(Array.from(y.data as Float32Array)).toEqual(Array.from(expected));
  });

  it('versionedModel: y = x + version', async () => {
    for (const version of [1, 3]) {
      const path = await versionedModel(join(dir, 'versioned', String(version)), version);
      expect(path).toBe(join(dir, 'versioned', String(version), 'model.onnx'));
      const { y } = await (await open(path)).run({ x: new ort.Tensor('float32', Float32Array.from([0, 1, -1, 0.5]), [1, 4]) });
      expect(Array.from(y.data as Float32Array)).toEqual([version, 1 + version, -1 + version, 0.5 + version]);
    }
  });

  it('largeModel: ~100 MB of weights, computes x W', async () => {
    const path = await largeModel(dir);
    expect(statSync(path).size).toBeGreaterThan(100_000_000);
    expect(statSync(path).size).toBeLessThan(100_001_000);
    const session = await open(path);
    const x = new Float32Array(2 * 5000);
    x[7] = 1; x[4999] = -2; x[5000 + 123] = 0.5;
    const { y } = await session.run({ x: new ort.Tensor('float32', x, [2, 5000]) });
    expectClose(y.data as Float32Array, largeReference(largeWeight(), x), 1e-5);
    rmSync(path);
  });

  it('writeCorruptModel: both kinds fail to load', async () => {
    for (const kind of ['garbage', 'truncated'] as const) {
      const path = await writeCorruptModel(join(dir, 'corrupt', `${kind}.onnx`), kind);
      expect(statSync(path).size).toBeGreaterThan(100);
      await expect(open(path)).rejects.toThrow();
    }
  });
});

describe('bundled iris example', () => {
  const modelPath = join(__dirname, '../examples/models/iris/1/model.onnx');
  const data = loadIris(join(__dirname, '../examples/data/iris.csv'));

  it('is the real Iris data set', () => {
    expect(data).toHaveLength(150);
    expect(IRIS_CLASSES.map((_, k) => data.filter((s) => s.label === k).length)).toEqual([50, 50, 50]);
    expect(data[0]).toEqual({ features: [5.1, 3.5, 1.4, 0.2], label: 0 });
  });

  it('classifies the held-out rows with accuracy >= 0.9 and well-formed outputs', async () => {
    const session = await open(modelPath);
    expect(session.inputMetadata[0]).toMatchObject({ name: 'features', type: 'float32', shape: ['N', 4] });
    expect(session.outputNames).toEqual(['probabilities', 'label']);
    const test = data.filter((_, i) => isTestRow(i));
    expect(test).toHaveLength(30);
    const features = Float32Array.from(test.flatMap((s) => s.features));
    const r = await session.run({ features: new ort.Tensor('float32', features, [test.length, 4]) });
    expect(r.probabilities.dims).toEqual([30, 3]);
    expect(r.label.dims).toEqual([30, 1]);
    const probs = r.probabilities.data as Float32Array;
    const labels = Array.from(r.label.data as BigInt64Array, Number);
    labels.forEach((label, n) => {
      const row = Array.from(probs.subarray(n * 3, n * 3 + 3));
      expect(row.reduce((a, b) => a + b)).toBeCloseTo(1, 5);
      expect(label).toBe(row.indexOf(Math.max(...row)));
    });
    const accuracy = labels.filter((label, n) => label === test[n].label).length / test.length;
    expect(accuracy).toBeGreaterThanOrEqual(0.9);
  });

  it('names its classes in metadata and ships a tensorwire config', () => {
    const model = onnx.ModelProto.decode(readFileSync(modelPath));
    const meta = Object.fromEntries(model.metadataProps.map((p) => [p.key, p.value]));
    expect(meta.labels).toBe('setosa,versicolor,virginica');
    expect(Number(model.opsetImport[0].version)).toBe(17);
    const config = JSON.parse(readFileSync(join(__dirname, '../examples/models/iris/config.json'), 'utf8'));
    expect(config).toEqual({ max_batch_size: 64, dynamic_batching: { max_queue_delay_microseconds: 500 } });
  });
});
