/**
 * Triton's ensembles from Triton's layout (an empty version directory, config.pbtxt with
 * ensemble_scheduling): an ensemble of three real models checked value by value against
 * running the steps by hand, its metadata and config, errors naming the failing step, and
 * the graph checked at config time.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createInferenceService, type TensorwireService } from '../lib/core/service';
import type { InferRequest } from '../lib/protocol/types';
import { parseConfigPbtxt, validateConfig } from '../lib/repository';
import { initializer, node, writeModel } from './fixtures/onnx-builder';
import { tempDir } from './helpers/engine-run';
import { failsToRunModel, float32, publishVersion, publishVersioned, writeConfig } from './helpers/hotswap';
import { versionedModel } from './fixtures/models';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** "pre": x FP32 [-1,4] -> scaled = x * 2. */
function preModel(dir: string): string {
  return writeModel(join(dir, 'model.onnx'), {
    name: 'pre',
    inputs: [{ name: 'x', type: 'FP32', dims: [-1, 4] }],
    outputs: [{ name: 'scaled', type: 'FP32', dims: [-1, 4] }],
    initializers: [initializer('two', 'FP32', [], new Float32Array([2]))],
    nodes: [node('Mul', ['x', 'two'], ['scaled'])],
  });
}

/** "post": a, b FP32 [-1,4] -> diff = a - b, prod = a * b. */
function postModel(dir: string): string {
  return writeModel(join(dir, 'model.onnx'), {
    name: 'post',
    inputs: [{ name: 'a', type: 'FP32', dims: [-1, 4] }, { name: 'b', type: 'FP32', dims: [-1, 4] }],
    outputs: [{ name: 'diff', type: 'FP32', dims: [-1, 4] }, { name: 'prod', type: 'FP32', dims: [-1, 4] }],
    nodes: [node('Sub', ['a', 'b'], ['diff']), node('Mul', ['a', 'b'], ['prod'])],
  });
}

const PIPELINE_PBTXT = `
name: "pipeline"
platform: "ensemble"
max_batch_size: 8
input [ { name: "INPUT" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [
  { name: "OUTPUT" data_type: TYPE_FP32 dims: [ 4 ] },
  { name: "PRODUCT" data_type: TYPE_FP32 dims: [ 4 ] }
]
ensemble_scheduling {
  step [
    { model_name: "pre" model_version: -1 input_map { key: "x" value: "INPUT" } output_map { key: "scaled" value: "doubled" } },
    { model_name: "mid" model_version: 3 input_map { key: "x" value: "doubled" } output_map { key: "y" value: "shifted" } },
    { model_name: "post" model_version: -1
      input_map { key: "a" value: "shifted" } input_map { key: "b" value: "INPUT" }
      output_map { key: "diff" value: "OUTPUT" } output_map { key: "prod" value: "PRODUCT" } }
  ]
}
`;

async function serve(midFails = false): Promise<TensorwireService> {
  const { dir: repo, cleanup } = tempDir('tw-ensemble-');
  cleanups.push(cleanup);
  await publishVersion(repo, 'pre', 1, preModel);
  if (midFails) await publishVersion(repo, 'mid', 3, (dir) => failsToRunModel(dir));
  else await publishVersioned(repo, 'mid', 3); // y = x + 3
  writeConfig(repo, 'mid', { version_policy: { all: {} } });
  await publishVersion(repo, 'post', 1, postModel);
  mkdirSync(join(repo, 'pipeline', '1'), { recursive: true }); // Triton's layout: empty
  writeFileSync(join(repo, 'pipeline', 'config.pbtxt'), PIPELINE_PBTXT);
  const service = await createInferenceService({ repository: repo, modelControl: 'none', drainMs: 1000, log: () => undefined });
  cleanups.push(() => service.shutdown());
  await service.initialLoad;
  return service;
}

function request(name: string, values: number[][]): InferRequest {
  const x = new Float32Array(values.flat());
  return { inputs: [{ name, datatype: 'FP32', shape: [values.length, 4], data: new Uint8Array(x.buffer) }], binaryDataOutput: true, parameters: {} };
}

describe('ensembles', () => {
  it('runs three models as one, value by value equal to running the steps by hand', async () => {
    const service = await serve();
    const rows = [[1, -2, 3.5, 0], [10, 20, -30, 0.25]];
    const answer = await service.infer('pipeline', undefined, request('INPUT', rows));
    expect(answer.modelName).toBe('pipeline');
    expect(answer.outputs.map((o) => o.name)).toEqual(['OUTPUT', 'PRODUCT']);
    // The same steps, by hand.
    const pre = await service.infer('pre', undefined, request('x', rows));
    const mid = await service.infer('mid', '3', { ...request('x', []), inputs: [{ ...pre.outputs[0]!, name: 'x' }] });
    const post = await service.infer('post', undefined, { ...request('a', []), inputs: [{ ...mid.outputs[0]!, name: 'a' }, request('b', rows).inputs[0]!] });
    expect(Array.from(float32(answer.outputs[0]!.data))).toEqual(Array.from(float32(post.outputs.find((o) => o.name === 'diff')!.data)));
    expect(Array.from(float32(answer.outputs[1]!.data))).toEqual(Array.from(float32(post.outputs.find((o) => o.name === 'prod')!.data)));
    // And in JS: (2x + 3) - x, (2x + 3) * x.
    const flat = rows.flat();
    expect(Array.from(float32(answer.outputs[0]!.data))).toEqual(flat.map((x) => Math.fround(Math.fround(2 * x + 3) - x)));
    expect(Array.from(float32(answer.outputs[1]!.data))).toEqual(flat.map((x) => Math.fround(Math.fround(2 * x + 3) * x)));
    expect(answer.outputs[0]!.shape).toEqual([2, 4]);
    // Only the outputs asked for.
    const one = await service.infer('pipeline', undefined, { ...request('INPUT', rows), outputs: [{ name: 'PRODUCT', binary: true }] });
    expect(one.outputs.map((o) => o.name)).toEqual(['PRODUCT']);
    // Each step ran on its own model (their statistics count it).
    expect(service.statistics('mid', '3')[0]!.inference_stats.success.count).toBe(3);
  });

  it('looks like Triton: metadata, config; bad inputs are the ensemble\'s 400', async () => {
    const service = await serve();
    const meta = service.modelMetadata('pipeline');
    expect(meta.platform).toBe('ensemble');
    expect(meta.inputs).toEqual([{ name: 'INPUT', datatype: 'FP32', shape: [-1, 4] }]);
    const config = service.modelConfig('pipeline');
    expect(config.platform).toBe('ensemble');
    expect((config.ensemble_scheduling as { step: unknown[] }).step).toHaveLength(3);
    await expect(service.infer('pipeline', undefined, request('NOPE', [[1, 2, 3, 4]]))).rejects.toMatchObject({ code: 'INVALID_INPUT' });
  });

  it('names the failing step', async () => {
    const service = await serve(true);
    // The failing model never serves (its warm-up fails): the ensemble's step 1 answers 503 naming it.
    await expect(service.infer('pipeline', undefined, request('INPUT', [[1, 2, 3, 4]]))).rejects.toThrow(/ensemble "pipeline" step 1 \(model "mid"\)/);
  });

  it('checks the step graph at config time', () => {
    const base = { platform: 'ensemble', input: [{ name: 'I', data_type: 'FP32', dims: [4] }], output: [{ name: 'O', data_type: 'FP32', dims: [4] }] };
    const step = (input: string, output: string) => ({ model_name: 'm', input_map: { x: input }, output_map: { y: output } });
    expect(() => validateConfig({ ...base, ensemble_scheduling: { step: [step('nowhere', 'O')] } })).toThrow(/reads "nowhere", which is neither an ensemble input nor an output of an earlier step/);
    expect(() => validateConfig({ ...base, ensemble_scheduling: { step: [step('I', 'T')] } })).toThrow(/output "O": no step's output_map produces it/);
    expect(() => validateConfig({ ...base, ensemble_scheduling: { step: [step('I', 'O'), step('I', 'O')] } })).toThrow(/already an ensemble input or an earlier step's output/);
    expect(() => validateConfig({ ...base })).toThrow(/at least one step/);
    expect(() => validateConfig({ ensemble_scheduling: { step: [] } })).toThrow(/platform is not "ensemble"/);
    expect(() => validateConfig({ ...base, ensemble_scheduling: { step: Array.from({ length: 65 }, () => step('I', 'O')) } })).toThrow(/at most 64 entries/);
    expect(parseConfigPbtxt(PIPELINE_PBTXT).ensemble_scheduling!.step[2]!.input_map).toEqual({ a: 'shifted', b: 'INPUT' });
  });
});

describe('cascades', () => {
  async function serveCascade(): Promise<TensorwireService> {
    const { dir: repo, cleanup } = tempDir('tw-cascade-');
    cleanups.push(cleanup);
    await publishVersion(repo, 'small', 1, (dir) => versionedModelAt(dir, 1)); // y = x + 1
    await publishVersion(repo, 'large', 1, (dir) => versionedModelAt(dir, 5)); // y = x + 5
    mkdirSync(join(repo, 'cascade', '1'), { recursive: true });
    writeConfig(repo, 'cascade', {
      platform: 'tensorwire_cascade',
      max_batch_size: 8,
      input: [{ name: 'x', data_type: 'TYPE_FP32', dims: [4] }],
      output: [{ name: 'y', data_type: 'TYPE_FP32', dims: [4] }],
      cascade: { stages: [{ model: 'small', confidence: { output: 'y', min: 10 } }, { model: 'large' }] },
    });
    const service = await createInferenceService({ repository: repo, modelControl: 'none', drainMs: 1000, log: () => undefined });
    cleanups.push(() => service.shutdown());
    await service.initialLoad;
    return service;
  }

  it('answers with the first stage when it is confident, else escalates the whole request', async () => {
    const service = await serveCascade();
    const sure = await service.infer('cascade', undefined, request('x', [[20, 20, 20, 20]]));
    expect(Array.from(float32(sure.outputs[0]!.data))).toEqual([21, 21, 21, 21]); // small: max 21 >= 10
    const unsure = await service.infer('cascade', undefined, request('x', [[0, 1, 2, 3]]));
    expect(Array.from(float32(unsure.outputs[0]!.data))).toEqual([5, 6, 7, 8]); // small's max 4 < 10: large answered
    const mixed = await service.infer('cascade', undefined, request('x', [[20, 0, 0, 0], [0, 0, 0, 0]]));
    expect(Array.from(float32(mixed.outputs[0]!.data))).toEqual([25, 5, 5, 5, 5, 5, 5, 5]); // one row unsure: all from large
    expect(service.modelMetadata('cascade').platform).toBe('tensorwire_cascade');
    const text = await service.registry.metrics();
    expect(text).toMatch(/tensorwire_cascade_answers_total\{model="cascade",stage="0",stage_model="small"\} 1/);
    expect(text).toMatch(/tensorwire_cascade_answers_total\{model="cascade",stage="1",stage_model="large"\} 2/);
  });

  it('validates the cascade config', () => {
    const io = { input: [{ name: 'x', data_type: 'FP32', dims: [4] }], output: [{ name: 'y', data_type: 'FP32', dims: [4] }] };
    expect(() => validateConfig({ platform: 'tensorwire_cascade', ...io, cascade: { stages: [{ model: 'a' }] } })).toThrow(/at least 2 stages/);
    expect(() => validateConfig({ platform: 'tensorwire_cascade', ...io, cascade: { stages: [{ model: 'a' }, { model: 'b' }] } })).toThrow(/every stage but the last needs confidence/);
    expect(() => validateConfig({ platform: 'tensorwire_cascade', cascade: { stages: [{ model: 'a', confidence: { output: 'y', min: 0.9 } }, { model: 'b' }] } })).toThrow(/lists its input and output/);
    expect(() => validateConfig({ ...io, cascade: { stages: [{ model: 'a', confidence: { output: 'y', min: 0.9 } }, { model: 'b' }] } })).toThrow(/go together/);
  });
});

function versionedModelAt(dir: string, offset: number): Promise<string> {
  return versionedModel(dir, offset);
}

describe('composition cycles', () => {
  it('refuses ensembles whose steps form a cycle instead of recursing without end', async () => {
    const { dir: repo, cleanup } = tempDir('tw-ensemble-cycle-');
    cleanups.push(cleanup);
    for (const [name, other] of [['loop_a', 'loop_b'], ['loop_b', 'loop_a']]) {
      mkdirSync(join(repo, name!, '1'), { recursive: true });
      writeConfig(repo, name!, {
        platform: 'ensemble',
        max_batch_size: 8,
        input: [{ name: 'X', data_type: 'TYPE_FP32', dims: [4] }],
        output: [{ name: 'Y', data_type: 'TYPE_FP32', dims: [4] }],
        ensemble_scheduling: { step: [{ model_name: other, input_map: { X: 'X' }, output_map: { Y: 'Y' } }] },
      });
    }
    const service = await createInferenceService({ repository: repo, modelControl: 'none', drainMs: 1000, log: () => undefined });
    cleanups.push(() => service.shutdown());
    await service.initialLoad;
    await expect(service.infer('loop_a', undefined, request('X', [[1, 2, 3, 4]]))).rejects.toThrow(/nest deeper than 8 \(do their steps form a cycle\?\)/);
    // The server keeps serving.
    expect(service.isReady()).toBe(true);
  });
});
