/**
 * createTensorwire, the composition root (lib/tensorwire.ts): the server-wide model defaults
 * reach every model a config leaves them out of (and never override a config), every option
 * is bounded with an error naming it (the `serve` flags with the same bounds), and close() is
 * the CLI's graceful shutdown. Real models, real addon, a real server on 127.0.0.1.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { parseServeArgs } from '../lib/cli';
import { engineInfo } from '../lib/engine';
import { createTensorwire, type Tensorwire } from '../lib/tensorwire';
import type { TensorwireOptions } from '../lib/tensorwire-options';
import { mlpModel } from './fixtures/models';
import { cleanUpClis, spawnCli } from './helpers/cli-process';
import { tempDir } from './helpers/engine-run';
import { rejection } from './helpers/expect-error';
import { slowVersionedModel } from './helpers/hotswap';
import { call, postJson, startHarness, waitFor, writeHarnessModel } from './helpers/server-harness';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** A repository: 'plain' (batchable, no config), 'own' (batchable, config max_batch_size 4 and 3 instances). */
async function repository(): Promise<string> {
  const { dir, cleanup } = tempDir('tw-api-');
  cleanups.push(cleanup);
  const small = { inputDim: 4, hidden: 8, outputDim: 2 };
  await writeHarnessModel(dir, { name: 'plain', versions: { 1: (d) => mlpModel(d, { ...small, file: 'model.onnx' }) } });
  await writeHarnessModel(dir, {
    name: 'own',
    versions: { 1: (d) => mlpModel(d, { ...small, file: 'model.onnx' }) },
    config: { max_batch_size: 4, instance_group: [{ count: 3, kind: 'KIND_CPU' }] },
  });
  return dir;
}

async function start(options: Partial<TensorwireOptions>): Promise<Tensorwire> {
  const tw = await createTensorwire({ repository: await repository(), port: 0, modelControl: 'none', log: () => undefined, ...options });
  cleanups.push(async () => void (await tw.close()));
  return tw;
}

interface ServedConfig {
  max_batch_size: number;
  instance_group: { count: number; kind: string }[];
  optimization: { provider: { kind: string } };
}

async function servedConfig(tw: Tensorwire, model: string): Promise<ServedConfig> {
  const r = await call(tw.url, `/v2/models/${model}/config`);
  expect(r.status).toBe(200);
  return r.json as ServedConfig;
}

describe('createTensorwire: server-wide model defaults', () => {
  it('fill in what a config leaves out, for every model; a model config keeps its own values', async () => {
    const tw = await start({ defaultInstances: 2, defaultMaxBatchSize: 8, defaultProvider: 'cpu' });
    const plain = await servedConfig(tw, 'plain');
    expect(plain.max_batch_size).toBe(8);
    expect(plain.instance_group[0]).toMatchObject({ count: 2, kind: 'KIND_CPU' });
    const own = await servedConfig(tw, 'own');
    expect(own.max_batch_size).toBe(4);
    expect(own.instance_group[0]!.count).toBe(3);
    // The default batch bound is enforced: 9 rows is one more than the default allows.
    const rows = (n: number) => ({ inputs: [{ name: 'input', datatype: 'FP32', shape: [n, 4], data: new Array(n * 4).fill(0.5) }] });
    expect((await postJson(tw.url, '/v2/models/plain/infer', rows(8))).status).toBe(200);
    const over = await postJson(tw.url, '/v2/models/plain/infer', rows(9));
    expect(over.status).toBe(400);
    expect(over.json.error).toMatch(/8/);
  });

  it('without defaults a model gets 64 and one instance (what the defaults replace)', async () => {
    const tw = await start({});
    const plain = await servedConfig(tw, 'plain');
    expect(plain.max_batch_size).toBe(64);
    expect(plain.instance_group[0]!.count).toBe(1);
  });

  it('defaultMaxBatchSize 0 serves batchable models unbatched', async () => {
    const tw = await start({ defaultMaxBatchSize: 0 });
    expect((await servedConfig(tw, 'plain')).max_batch_size).toBe(0);
    expect((await servedConfig(tw, 'own')).max_batch_size).toBe(4);
  });

  it('defaultProvider reaches the engine: cuda loads on a GPU build, and fails naming CUDA where there is none', async () => {
    const tw = await start({ defaultProvider: 'cuda' });
    const index = tw.service.repositoryIndex();
    const plain = index.find((e) => e.name === 'plain')!;
    const own = index.find((e) => e.name === 'own')!;
    expect(own.state).toBe('ready'); // its config says KIND_CPU
    if (engineInfo().availableProviders.includes('CUDAExecutionProvider')) {
      expect(plain.state).toBe('ready');
      expect((await servedConfig(tw, 'plain')).optimization.provider.kind).toBe('cuda');
    } else {
      expect(plain.state).toBe('failed');
      expect(plain.reason).toMatch(/CUDA/i);
    }
  });
});

describe('createTensorwire: options are checked before anything starts', () => {
  const bad: [Partial<TensorwireOptions>, string][] = [
    [{ defaultInstances: 65 }, 'defaultInstances must be an integer from 1 to 64, got 65'],
    [{ defaultInstances: 0 }, 'defaultInstances must be an integer from 1 to 64, got 0'],
    [{ defaultMaxBatchSize: 4097 }, 'defaultMaxBatchSize must be an integer from 0 to 4096, got 4097'],
    [{ defaultMaxBatchSize: 1.5 }, 'defaultMaxBatchSize must be an integer from 0 to 4096, got 1.5'],
    [{ defaultProvider: 'gpu' as never }, "defaultProvider must be one of cpu, cuda, tensorrt, got 'gpu'"],
    [{ port: 70000 }, 'port must be an integer from 0 to 65535, got 70000'],
    [{ streamMaxInflight: '8' as never }, "streamMaxInflight must be an integer from 1 to 1000000, got '8'"],
    [{ modelControl: 'auto' as never }, "modelControl must be none, poll or explicit, got 'auto'"],
    [{ repository: '' }, "repository must be a directory or .onnx file path, got ''"],
  ];
  for (const [options, message] of bad) {
    it(message, async () => {
      const e = await rejection(createTensorwire({ repository: 'examples/models', port: 0, ...options }));
      expect(e.code).toBe('INVALID_INPUT');
      expect(e.message).toBe(message);
    });
  }

  it('a long bad value is shown cut short', async () => {
    const e = await rejection(createTensorwire({ repository: 'examples/models', defaultProvider: 'x'.repeat(10_000) as never }));
    expect(e.message.length).toBeLessThan(140);
  });
});

describe('tensorwire serve: the --default-* flags', () => {
  it('read into the same options, with the same bounds named by flag', () => {
    expect(parseServeArgs(['--repo', 'r', '--default-provider', 'cuda', '--default-instances', '4', '--default-max-batch-size', '16'])).toMatchObject({
      defaultProvider: 'cuda',
      defaultInstances: 4,
      defaultMaxBatchSize: 16,
    });
    expect(parseServeArgs(['--repo', 'r'])).not.toHaveProperty('defaultInstances');
    expect(() => parseServeArgs(['--repo', 'r', '--default-instances', '65'])).toThrow("--default-instances must be an integer from 1 to 64, got '65'");
    expect(() => parseServeArgs(['--repo', 'r', '--default-max-batch-size=-1'])).toThrow("--default-max-batch-size must be an integer from 0 to 4096, got '-1'");
    expect(() => parseServeArgs(['--repo', 'r', '--default-provider', 'rocm'])).toThrow("--default-provider must be one of cpu, cuda, tensorrt, got 'rocm'");
  });

  it('reach the models of a running `tensorwire serve`', async () => {
    cleanups.push(cleanUpClis);
    const cli = await spawnCli(await repository(), ['--default-max-batch-size', '8', '--default-instances', '2']);
    const plain = (await call(cli.base, '/v2/models/plain/config')).json as ServedConfig;
    expect(plain.max_batch_size).toBe(8);
    expect(plain.instance_group[0]!.count).toBe(2);
    expect(((await call(cli.base, '/v2/models/own/config')).json as ServedConfig).max_batch_size).toBe(4);
  }, 60_000);
});

describe('createTensorwire: close()', () => {
  it('drains an in-flight request before closing, frees the models, and is idempotent', async () => {
    const { dir, cleanup } = tempDir('tw-api-close-');
    cleanups.push(cleanup);
    // One slow model (tens of ms a run) so the request is still running when close() starts.
    await writeHarnessModel(dir, { name: 'm', versions: { 1: async (d) => slowVersionedModel(d, 1, { layers: 600, width: 256 }) }, config: { max_batch_size: 1 } });
    const tw = await createTensorwire({ repository: dir, port: 0, modelControl: 'none', log: () => undefined, drainTimeoutMs: 20_000 });
    // Eight requests queue behind each other (one instance, one row a batch): over 100 ms of work.
    const x = (i: number) => ({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 256], data: new Array(256).fill(i) }] });
    const pending = Array.from({ length: 8 }, (_, i) => postJson(tw.url, '/v2/models/m/infer', x(i)));
    await waitFor(() => tw.server.inflight > 0, 'requests to be in flight');
    const first = tw.close();
    expect(tw.close()).toBe(first);
    // Every request already in flight is answered, not cancelled (y = x + version).
    const answers = await Promise.all(pending);
    expect(answers.map((a) => a.status)).toEqual(new Array(8).fill(200));
    expect(answers.map((a) => a.json.outputs[0].data[0])).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(await first).toBe(true);
    expect(tw.service.repositoryIndex().every((e) => e.state !== 'ready')).toBe(true);
    await expect(fetch(`${tw.url}/v2/health/live`)).rejects.toThrow();
  });

  it('the test harness starts through it and serves', async () => {
    const h = await startHarness({ models: [{ name: 'plain', versions: { 1: (d) => mlpModel(d, { inputDim: 4, hidden: 8, outputDim: 2, file: 'model.onnx' }) } }] });
    cleanups.push(() => h.close());
    const r = await postJson(h.base, '/v2/models/plain/infer', { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] }] });
    expect(r.status).toBe(200);
    expect(r.json.outputs[0].shape).toEqual([1, 2]);
    expect(h.log.some((l) => l.includes('model plain version 1: ready'))).toBe(true);
  });
});
