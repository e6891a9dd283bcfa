/**
 * Trains the bundled iris classifier in plain JS and writes it as ONNX.
 *
 *   npx tsc -p examples && node dist/examples/train-iris.js     (from the repository root)
 *
 * A 4 -> 16 (ReLU) -> 3 MLP, trained full-batch with Adam on 120 rows of examples/data/iris.csv,
 * evaluated on the 30 held-out rows (see isTestRow). Deterministic: seeded init, no shuffling,
 * so re-running rewrites the same bytes. Feature standardization is part of the graph (Sub/Div
 * with the training mean and std), so the model takes raw measurements in cm.
 *
 * Model: "features" FP32 [-1,4] -> "probabilities" FP32 [-1,3] (softmax) and "label" INT64
 * [-1,1] (argmax); metadata_props "labels" = "setosa,versicolor,virginica".
 */
import { resolve } from 'node:path';
import { initializer, node, writeModel } from '../test/fixtures/onnx-builder';
import { uniformFloats } from '../test/fixtures/random';
import { IRIS_CLASSES, isTestRow, loadIris, type IrisSample } from './iris-data';

const HIDDEN = 16;
const EPOCHS = 1000;
const LEARNING_RATE = 0.01;
const L2 = 1e-2;

/** Parameters of the MLP; w1 is [4, HIDDEN] and w2 [HIDDEN, 3], row-major. */
interface Params {
  w1: Float64Array;
  b1: Float64Array;
  w2: Float64Array;
  b2: Float64Array;
}

type Row = readonly number[];

function standardizer(rows: Row[]): { mean: number[]; std: number[] } {
  const mean = [0, 1, 2, 3].map((j) => rows.reduce((s, r) => s + r[j], 0) / rows.length);
  const std = [0, 1, 2, 3].map((j) => Math.sqrt(rows.reduce((s, r) => s + (r[j] - mean[j]) ** 2, 0) / rows.length));
  return { mean, std };
}

/** Forward pass of one standardized row: hidden activations and softmax probabilities. */
function forward(p: Params, x: Row): { h: Float64Array; prob: Float64Array } {
  const h = new Float64Array(HIDDEN);
  for (let j = 0; j < HIDDEN; j++) {
    let a = p.b1[j];
    for (let i = 0; i < 4; i++) a += x[i] * p.w1[i * HIDDEN + j];
    h[j] = Math.max(0, a);
  }
  const logits = [0, 1, 2].map((k) => {
    let a = p.b2[k];
    for (let j = 0; j < HIDDEN; j++) a += h[j] * p.w2[j * 3 + k];
    return a;
  });
  const top = Math.max(...logits);
  const e = logits.map((l) => Math.exp(l - top));
  const total = e[0] + e[1] + e[2];
  return { h, prob: Float64Array.from(e, (v) => v / total) };
}

/** Gradient of mean cross-entropy (+ L2 on weights) over all rows. */
function gradient(p: Params, xs: Row[], ys: number[]): { grad: Params; loss: number } {
  const g: Params = {
    w1: new Float64Array(p.w1.length), b1: new Float64Array(HIDDEN),
    w2: new Float64Array(p.w2.length), b2: new Float64Array(3),
  };
  let loss = 0;
  xs.forEach((x, n) => {
    const { h, prob } = forward(p, x);
    loss -= Math.log(prob[ys[n]] + 1e-12);
    const dLogit = Array.from(prob, (v, k) => v - (k === ys[n] ? 1 : 0));
    for (let j = 0; j < HIDDEN; j++) {
      let dh = 0;
      for (let k = 0; k < 3; k++) {
        g.w2[j * 3 + k] += h[j] * dLogit[k];
        dh += p.w2[j * 3 + k] * dLogit[k];
      }
      if (h[j] <= 0) continue;
      g.b1[j] += dh;
      for (let i = 0; i < 4; i++) g.w1[i * HIDDEN + j] += x[i] * dh;
    }
    for (let k = 0; k < 3; k++) g.b2[k] += dLogit[k];
  });
  for (const key of ['w1', 'b1', 'w2', 'b2'] as const) {
    const reg = key.startsWith('w') ? L2 : 0;
    g[key].forEach((v, i) => (g[key][i] = v / xs.length + reg * p[key][i]));
  }
  return { grad: g, loss: loss / xs.length };
}

/** Full-batch Adam from a seeded Glorot-uniform start. */
function train(xs: Row[], ys: number[]): Params {
  const glorot = (seed: number, fanIn: number, fanOut: number) =>
    Float64Array.from(uniformFloats(seed, fanIn * fanOut, Math.sqrt(6 / (fanIn + fanOut))));
  const p: Params = { w1: glorot(42, 4, HIDDEN), b1: new Float64Array(HIDDEN), w2: glorot(43, HIDDEN, 3), b2: new Float64Array(3) };
  const keys = ['w1', 'b1', 'w2', 'b2'] as const;
  const m = keys.map((k) => new Float64Array(p[k].length));
  const v = keys.map((k) => new Float64Array(p[k].length));
  const [beta1, beta2] = [0.9, 0.999];
  for (let t = 1; t <= EPOCHS; t++) {
    const { grad, loss } = gradient(p, xs, ys);
    keys.forEach((key, n) => {
      for (let i = 0; i < p[key].length; i++) {
        m[n][i] = beta1 * m[n][i] + (1 - beta1) * grad[key][i];
        v[n][i] = beta2 * v[n][i] + (1 - beta2) * grad[key][i] ** 2;
        const mHat = m[n][i] / (1 - beta1 ** t);
        const vHat = v[n][i] / (1 - beta2 ** t);
        p[key][i] -= (LEARNING_RATE * mHat) / (Math.sqrt(vHat) + 1e-8);
      }
    });
    if (t % 500 === 0) console.log(`epoch ${t}: train loss ${loss.toFixed(4)}`);
  }
  return p;
}

function accuracy(p: Params, xs: Row[], ys: number[]): number {
  const right = xs.filter((x, n) => {
    const { prob } = forward(p, x);
    return prob.indexOf(Math.max(...prob)) === ys[n];
  }).length;
  return right / xs.length;
}

/** Writes the trained MLP with standardization, softmax and argmax in the graph. */
function exportModel(path: string, p: Params, mean: number[], std: number[], testAccuracy: number): void {
  const f32 = (a: ArrayLike<number>) => Float32Array.from(a);
  writeModel(path, {
    name: 'iris_mlp',
    docString: 'Iris classifier (4-16-3 MLP) trained by examples/train-iris.ts on examples/data/iris.csv',
    inputs: [{ name: 'features', type: 'FP32', dims: [-1, 4] }],
    outputs: [
      { name: 'probabilities', type: 'FP32', dims: [-1, 3] },
      { name: 'label', type: 'INT64', dims: [-1, 1] },
    ],
    initializers: [
      initializer('mean', 'FP32', [4], f32(mean)),
      initializer('std', 'FP32', [4], f32(std)),
      initializer('w1', 'FP32', [4, HIDDEN], f32(p.w1)),
      initializer('b1', 'FP32', [HIDDEN], f32(p.b1)),
      initializer('w2', 'FP32', [HIDDEN, 3], f32(p.w2)),
      initializer('b2', 'FP32', [3], f32(p.b2)),
    ],
    nodes: [
      node('Sub', ['features', 'mean'], ['centered']),
      node('Div', ['centered', 'std'], ['standardized']),
      node('MatMul', ['standardized', 'w1'], ['h_mm']),
      node('Add', ['h_mm', 'b1'], ['h_pre']),
      node('Relu', ['h_pre'], ['h']),
      node('MatMul', ['h', 'w2'], ['logits_mm']),
      node('Add', ['logits_mm', 'b2'], ['logits']),
      node('Softmax', ['logits'], ['probabilities'], { axis: 1 }),
      node('ArgMax', ['logits'], ['label'], { axis: 1, keepdims: 1 }),
    ],
    metadata: {
      labels: IRIS_CLASSES.join(','),
      features: 'sepal_length_cm,sepal_width_cm,petal_length_cm,petal_width_cm',
      test_accuracy: testAccuracy.toFixed(4),
    },
  });
}

function main(): void {
  const csv = resolve(process.argv[2] ?? 'examples/data/iris.csv');
  const out = resolve(process.argv[3] ?? 'examples/models/iris/1/model.onnx');
  const data = loadIris(csv);
  const split = (test: boolean) => data.filter((_, i) => isTestRow(i) === test);
  const [trainSet, testSet] = [split(false), split(true)];
  const { mean, std } = standardizer(trainSet.map((s) => s.features));
  const scale = (s: IrisSample) => s.features.map((v, j) => (v - mean[j]) / std[j]);

  const params = train(trainSet.map(scale), trainSet.map((s) => s.label));
  const trainAcc = accuracy(params, trainSet.map(scale), trainSet.map((s) => s.label));
  const testAcc = accuracy(params, testSet.map(scale), testSet.map((s) => s.label));
  console.log(`train accuracy ${trainAcc.toFixed(4)} (${trainSet.length} rows)`);
  console.log(`test accuracy  ${testAcc.toFixed(4)} (${testSet.length} held-out rows)`);
  exportModel(out, params, mean, std, testAcc);
  console.log(`wrote ${out}`);
}

main();
