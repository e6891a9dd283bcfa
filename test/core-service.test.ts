/**
 * The server core's model control modes (none, poll, explicit), the repository watcher's
 * settle rule as the service sees it, and the core's graceful shutdown; real engine, real files.
 */
import { appendFileSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadOnnxServable } from '../lib/core/onnx-servable';
import { createInferenceService, type CreateServiceOptions, type TensorwireService } from '../lib/core/service';
import { isTensorwireError } from '../lib/errors';
import { versionedModel, writeCorruptModel } from './fixtures/models';
import { tempDir } from './helpers/engine-run';
import { float32, publishVersion, publishVersioned, rowsRequest, sleep, slowVersionedModel, waitFor, writeConfig } from './helpers/hotswap';

const services: TensorwireService[] = [];
const cleanups: (() => void)[] = [];
afterEach(async () => {
  for (const s of services.splice(0)) await s.shutdown();
  while (cleanups.length > 0) cleanups.pop()!();
});

function repository(): string {
  const { dir, cleanup } = tempDir('tw-core-svc-');
  cleanups.push(cleanup);
  return dir;
}

async function start(options: CreateServiceOptions & { log?: (l: string) => void }): Promise<{ service: TensorwireService; log: string[] }> {
  const log: string[] = [];
  const service = await createInferenceService({ log: (l) => log.push(l), drainMs: 5000, ...options });
  services.push(service);
  await service.initialLoad;
  return { service, log };
}

/** The version that answers an unversioned request (the model adds its version to x = 0). */
async function answer(service: TensorwireService, model = 'm', width = 4): Promise<number> {
  const r = await service.infer(model, undefined, rowsRequest(1, 0, width));
  const y = float32(r.outputs[0].data)[0];
  expect(r.modelVersion).toBe(String(y));
  return y;
}

async function failure(p: Promise<unknown> | (() => unknown)): Promise<{ code: string; message: string }> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    return { code: isTensorwireError(e) ? e.code : 'not a TensorwireError', message: (e as Error).message };
  }
  throw new Error('expected a failure');
}

describe('model control none', () => {
  it('loads the repository at start and ignores later changes', async () => {
    const repo = repository();
    await publishVersioned(repo, 'm', 1);
    const { service } = await start({ repository: repo, modelControl: 'none', pollMs: 20 });
    expect(service.isReady()).toBe(true);
    await publishVersioned(repo, 'm', 2);
    await sleep(300);
    expect(await answer(service)).toBe(1);
    expect(service.repositoryIndex()).toEqual([{ name: 'm', version: '1', state: 'ready', reason: '' }]);
    expect((await failure(service.loadModel('m'))).message).toMatch(/not allowed unless the server runs with --model-control explicit/);
  });
});

describe('model control poll', () => {
  it('hot-swaps to a new version published into the repository', async () => {
    const repo = repository();
    await publishVersioned(repo, 'm', 1);
    const { service, log } = await start({ repository: repo, modelControl: 'poll', pollMs: 30 });
    expect(await answer(service)).toBe(1);
    await publishVersioned(repo, 'm', 2);
    await waitFor(async () => (await answer(service)) === 2, 5000, 'version 2 to serve');
    await waitFor(() => service.repositoryIndex().some((r) => r.version === '1' && r.state === 'unavailable'), 5000, 'version 1 to be freed');
    // Loaded beside the old one, switched, then the old one drained: in that order.
    const order = log.filter((l) => /version [12]: (ready|draining|unavailable)/.test(l));
    expect(order).toEqual(['model m version 1: ready', 'model m version 2: ready', 'model m version 1: draining', 'model m version 1: unavailable']);
  });

  it('does not load a version while its files are still changing, and loads it once they settle', async () => {
    const repo = repository();
    await publishVersioned(repo, 'm', 1);
    const { service, log } = await start({ repository: repo, modelControl: 'poll', pollMs: 40 });
    // A slow, non-atomic copy: the file grows every 15 ms for 600 ms (well past the settle time).
    const dir = join(repo, 'm', '2');
    mkdirSync(dir);
    const full = await modelBytes(2);
    const file = join(dir, 'model.onnx');
    let written = 0;
    const chunk = Math.ceil(full.length / 40);
    while (written < full.length) {
      appendFileSync(file, full.subarray(written, written + chunk));
      written += chunk;
      await sleep(15);
      expect(service.repositoryIndex().map((r) => r.version)).toEqual(['1']);
    }
    await waitFor(async () => (await answer(service)) === 2, 5000, 'version 2 to serve once its file stopped growing');
    expect(log.filter((l) => l.includes('version 2'))).toEqual(['model m version 2: loading', 'model m version 2: warming', 'model m version 2: ready']);
  });

  it('rejects a corrupt version while the old one keeps serving, reports why, and picks up the repair', async () => {
    const repo = repository();
    await publishVersioned(repo, 'm', 1);
    const { service, log } = await start({ repository: repo, modelControl: 'poll', pollMs: 30 });
    await publishVersion(repo, 'm', 2, (d) => writeCorruptModel(join(d, 'model.onnx'), 'truncated'));
    await waitFor(() => service.repositoryIndex().some((r) => r.version === '2' && r.state === 'failed'), 5000, 'version 2 to fail');
    const row = service.repositoryIndex().find((r) => r.version === '2')!;
    expect(row.reason).toMatch(/m\/2\/model\.onnx/);
    expect(service.modelReadiness('m', '2')).toEqual({ ready: false, reason: `failed: ${row.reason}` });
    expect(service.modelReadiness('m')).toEqual({ ready: true });
    expect(service.isReady()).toBe(true);
    expect(log).toContain(`model m version 2: failed (${row.reason})`);
    expect(await answer(service)).toBe(1);
    expect((await failure(() => service.infer('m', '2', rowsRequest(1, 0))))).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/version 2 is not at ready state: failed: /) });

    await publishVersioned(repo, 'm', 2);
    await waitFor(async () => (await answer(service)) === 2, 5000, 'the repaired version 2 to serve');
    expect(service.modelReadiness('m', '2')).toEqual({ ready: true });
  });

  it('keeps a failed version in the index with its reason after a newer one serves, until its directory goes away', async () => {
    const repo = repository();
    await publishVersioned(repo, 'm', 1);
    const { service } = await start({ repository: repo, modelControl: 'poll', pollMs: 30 });
    await publishVersion(repo, 'm', 2, (d) => writeCorruptModel(join(d, 'model.onnx')));
    await waitFor(() => service.repositoryIndex().some((r) => r.version === '2' && r.state === 'failed'), 5000, 'version 2 to fail');
    const reason = service.repositoryIndex().find((r) => r.version === '2')!.reason;
    expect(reason).toMatch(/m\/2\/model\.onnx/);

    // A newer good version serves (the default policy, latest 1, no longer wants 2): 2's failure stays listed.
    await publishVersioned(repo, 'm', 3);
    await waitFor(async () => (await answer(service)) === 3, 5000, 'version 3 to serve');
    await waitFor(() => service.repositoryIndex().some((r) => r.version === '1' && r.state === 'unavailable'), 5000, 'version 1 to be freed');
    expect(service.repositoryIndex()).toEqual([
      { name: 'm', version: '1', state: 'unavailable', reason: 'unloaded' },
      { name: 'm', version: '2', state: 'failed', reason },
      { name: 'm', version: '3', state: 'ready', reason: '' },
    ]);
    expect(service.modelReadiness('m', '2')).toEqual({ ready: false, reason: `failed: ${reason}` });
    expect((await failure(() => service.admit('m', '2'))).code).toBe('UNAVAILABLE');

    // Its directory goes away: so does its row (and the version is unknown from then on).
    rmSync(join(repo, 'm', '2'), { recursive: true });
    await waitFor(() => !service.repositoryIndex().some((r) => r.version === '2'), 5000, 'the row of version 2 to go');
    expect(service.repositoryIndex().map((r) => `${r.version}:${r.state}`)).toEqual(['1:unavailable', '3:ready']);
    expect((await failure(() => service.modelReadiness('m', '2'))).code).toBe('NOT_FOUND');
  });

  it('drops the failed row of a version it no longer wants once its files change (the failure no longer describes them)', async () => {
    const repo = repository();
    await publishVersioned(repo, 'm', 1);
    await publishVersion(repo, 'm', 2, (d) => writeCorruptModel(join(d, 'model.onnx')));
    writeConfig(repo, 'm', { version_policy: { specific: { versions: [1, 2] } } });
    const { service } = await start({ repository: repo, modelControl: 'poll', pollMs: 30 });
    expect(service.repositoryIndex().map((r) => `${r.version}:${r.state}`)).toEqual(['1:ready', '2:failed']);
    writeConfig(repo, 'm', { version_policy: { specific: { versions: [1] } } });
    await waitFor(() => service.modelConfig('m').version_policy !== undefined && JSON.stringify(service.modelConfig('m').version_policy).includes('[1]'), 5000, 'the new policy');
    expect(service.repositoryIndex().map((r) => `${r.version}:${r.state}`)).toEqual(['1:ready', '2:failed']);
    await publishVersioned(repo, 'm', 2); // repaired, but the policy does not want it
    await waitFor(() => !service.repositoryIndex().some((r) => r.version === '2'), 5000, 'the stale failure of version 2 to go');
    expect(await answer(service)).toBe(1);
  });

  it('applies a config change by reloading beside the serving version', async () => {
    const repo = repository();
    await publishVersioned(repo, 'm', 1);
    const { service } = await start({ repository: repo, modelControl: 'poll', pollMs: 30 });
    expect(service.modelConfig('m').max_batch_size).toBe(64);
    writeConfig(repo, 'm', { max_batch_size: 8, dynamic_batching: { max_queue_delay_microseconds: 250 } });
    await waitFor(() => service.modelConfig('m').max_batch_size === 8, 5000, 'the new config to serve');
    expect(service.batchingSettings('m')).toMatchObject({ max_batch_size: 8, max_queue_delay_microseconds: 250, live: false });
    expect(await answer(service)).toBe(1);
  });

  it('unloads a model whose directory is removed', async () => {
    const repo = repository();
    await publishVersioned(repo, 'm', 1);
    await publishVersioned(repo, 'k', 3);
    const { service } = await start({ repository: repo, modelControl: 'poll', pollMs: 30 });
    rmSync(join(repo, 'k'), { recursive: true });
    await waitFor(() => !service.modelReadiness('k').ready, 5000, 'model k to stop serving');
    // It drains first (the reason says so), then is freed.
    expect(service.modelReadiness('k').reason).toMatch(/^(version 3 (draining|unloading)|unloaded)$/);
    await waitFor(() => service.modelReadiness('k').reason === 'unloaded', 5000, 'model k to be freed');
    expect(service.isReady()).toBe(true); // k is no longer expected
  });
});

describe('model control explicit', () => {
  it('loads only the models named at start, then changes models only through load and unload', async () => {
    const repo = repository();
    await publishVersioned(repo, 'a', 1);
    await publishVersioned(repo, 'b', 5);
    const { service } = await start({ repository: repo, modelControl: 'explicit', loadModels: ['a'], pollMs: 20 });
    expect(await answer(service, 'a')).toBe(1);
    expect((await failure(() => service.modelReadiness('b'))).code).toBe('NOT_FOUND');
    expect(service.repositoryIndex().map((r) => r.name)).toEqual(['a']);

    await service.loadModel('b');
    expect(await answer(service, 'b')).toBe(5);

    // Nothing polls: a new version waits for a load.
    await publishVersioned(repo, 'a', 2);
    await sleep(200);
    expect(await answer(service, 'a')).toBe(1);
    await service.loadModel('a');
    expect(await answer(service, 'a')).toBe(2);

    // A failed load is an error, and the serving version stays; loading it again tries again.
    await publishVersion(repo, 'a', 3, (d) => writeCorruptModel(join(d, 'model.onnx')));
    for (let attempt = 0; attempt < 2; attempt++) {
      const f = await failure(service.loadModel('a'));
      expect(f.code).toBe('MODEL_LOAD_FAILED');
      expect(f.message).toMatch(/^failed to load 'a': version 3: .*model\.onnx.*; version 2 keeps serving$/);
      expect(await answer(service, 'a')).toBe(2);
    }

    await service.unloadModel('a');
    expect(service.modelReadiness('a')).toEqual({ ready: false, reason: 'unloaded' });
    expect((await failure(() => service.infer('a', undefined, rowsRequest(1, 0)))).code).toBe('UNAVAILABLE');
    expect(service.isReady()).toBe(true);

    expect((await failure(service.loadModel('nope'))).code).toBe('NOT_FOUND');
    // An explicit load can carry a config.
    await service.loadModel('b', { max_batch_size: 4 });
    expect(service.modelConfig('b').max_batch_size).toBe(4);
  });

  it('refuses to start when a model named at start does not exist', async () => {
    const repo = repository();
    await publishVersioned(repo, 'a', 1);
    const f = await failure(createInferenceService({ repository: repo, modelControl: 'explicit', loadModels: ['zzz'] }));
    expect(f).toMatchObject({ code: 'NOT_FOUND', message: expect.stringMatching(/--load-model zzz/) });
  });
});

describe('admission', () => {
  it('answers which version would serve without running inference, or why none would', async () => {
    const repo = repository();
    await publishVersioned(repo, 'm', 1);
    await publishVersion(repo, 'm', 2, (d) => writeCorruptModel(join(d, 'model.onnx')));
    writeConfig(repo, 'm', { version_policy: { all: {} } });
    const { service } = await start({ repository: repo, modelControl: 'none' });
    const admitted = service.admit('m');
    expect({ name: admitted.name, version: admitted.version }).toEqual({ name: 'm', version: 1 });
    expect(service.admit('m', '1')).toBe(admitted);
    expect(service.statistics('m')[0].inference_count).toBe(0); // nothing ran

    expect(await failure(() => service.admit('nope'))).toEqual({ code: 'NOT_FOUND', message: "Request for unknown model: 'nope' is not found" });
    expect((await failure(() => service.admit('m', '9'))).code).toBe('NOT_FOUND');
    expect((await failure(() => service.admit('m', 'x/../1'))).code).toBe('NOT_FOUND');
    const failed = await failure(() => service.admit('m', '2'));
    expect(failed).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/version 2 is not at ready state: failed: .*model\.onnx/) });

    // infer runs the same check, then the request.
    expect((await failure(service.infer('m', '2', rowsRequest(1, 0)))).code).toBe('UNAVAILABLE');
    expect(await answer(service)).toBe(1);
    expect(service.statistics('m')[0].inference_count).toBe(1);

    await service.shutdown();
    services.splice(services.indexOf(service), 1);
    expect(await failure(() => service.admit('m'))).toEqual({ code: 'UNAVAILABLE', message: 'server is shutting down' });
  });

  it('builds every version through the servable factory it was given', async () => {
    const repo = repository();
    await publishVersioned(repo, 'a', 1);
    await publishVersioned(repo, 'b', 4);
    const built: string[] = [];
    const { service } = await start({
      repository: repo,
      modelControl: 'none',
      servables: (spec) => {
        built.push(`${spec.name}:${spec.version}`);
        return loadOnnxServable(spec);
      },
    });
    expect(built.sort()).toEqual(['a:1', 'b:4']);
    expect(await answer(service, 'b')).toBe(4);
  });
});

describe('shutdown', () => {
  it('turns readiness false at once, refuses new requests, lets queued ones finish, then frees the models', async () => {
    const repo = repository();
    writeConfig(repo, 'm', { max_batch_size: 1 });
    await publishVersion(repo, 'm', 1, (d) => slowVersionedModel(d, 1, { layers: 300, width: 256 }));
    const { service } = await start({ repository: repo, modelControl: 'poll', pollMs: 30 });
    const queued = Array.from({ length: 6 }, (_, i) => service.infer('m', undefined, rowsRequest(1, i, 256)).then((r) => float32(r.outputs[0].data)[0]));
    const done = service.shutdown();
    expect(service.isReady()).toBe(false);
    expect(service.modelReadiness('m')).toEqual({ ready: false, reason: 'server is shutting down' });
    expect((await failure(service.infer('m', undefined, rowsRequest(1, 0, 256)))).code).toBe('UNAVAILABLE');
    expect(await Promise.all(queued)).toEqual([1, 2, 3, 4, 5, 6]);
    await done;
    expect(service.repositoryIndex()).toEqual([{ name: 'm', version: '1', state: 'unavailable', reason: 'unloaded' }]);
    services.splice(services.indexOf(service), 1);
  });
});

/** The bytes of versionedModel(version), for writing a file in pieces. */
async function modelBytes(version: number): Promise<Uint8Array> {
  const { dir, cleanup } = tempDir('tw-bytes-');
  try {
    return readFileSync(await versionedModel(dir, version));
  } finally {
    cleanup();
  }
}
