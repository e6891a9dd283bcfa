/**
 * ServedModel: the hot swap of one model's versions (double buffering), version policies,
 * failures that never take traffic, repairs, and live configuration; real engine, real files.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import type { ModelVersion } from '../lib/core/model-version';
import { OnnxServable } from '../lib/core/onnx-servable';
import { ServedModel } from '../lib/core/served-model';
import { isTensorwireError } from '../lib/errors';
import { createMetrics } from '../lib/metrics/registry';
import { scanModel } from '../lib/repository';
import { versionedModel, writeCorruptModel } from './fixtures/models';
import { tempDir } from './helpers/engine-run';
import { float32, publishVersion, publishVersioned, rowsRequest, slowVersionedModel, writeConfig } from './helpers/hotswap';

const models: ServedModel[] = [];
const cleanups: (() => void)[] = [];
afterEach(async () => {
  for (const m of models.splice(0)) {
    await m.unloadAll();
    await m.settled();
  }
  while (cleanups.length > 0) cleanups.pop()!();
});

/** A repository with model "m", and a ServedModel over it that records its log and state changes. */
function setup() {
  const { dir: repo, cleanup } = tempDir('tw-core-sm-');
  cleanups.push(cleanup);
  const registry = new Registry();
  const metrics = createMetrics(registry);
  const log: string[] = [];
  const onState: ((v: ModelVersion) => void)[] = [];
  const m = new ServedModel('m', { metrics, onState: (v) => onState.forEach((f) => f(v)) }, { drainMs: 5000, log: (l) => log.push(l) });
  models.push(m);
  const apply = async () => m.apply(await scanModel(join(repo, 'm'), 'm'));
  /** y[0] of an unversioned (or versioned) request with x = 0: the version the model adds. */
  const answer = async (version?: string, width = 4) => {
    const r = await m.resolve(version).infer(rowsRequest(1, 0, width));
    return float32(r.outputs[0].data)[0];
  };
  return { repo, m, registry, log, onState, apply, answer };
}

async function stateSeries(registry: Registry, version: string): Promise<Record<string, number>> {
  const metric = (await registry.getMetricsAsJSON()).find((x) => x.name === 'tensorwire_model_state');
  const out: Record<string, number> = {};
  for (const v of (metric?.values ?? []) as { labels: Record<string, string>; value: number }[]) {
    if (v.labels.version === version) out[v.labels.state] = v.value;
  }
  return out;
}

/** The batcher of a version served by the default (ONNX) servable. */
function runnerOf(v: ModelVersion) {
  expect(v.servable).toBeInstanceOf(OnnxServable);
  return (v.servable as OnnxServable).runner;
}

function code(e: unknown): string {
  return isTensorwireError(e) ? e.code : String(e);
}

describe('ServedModel hot swap', () => {
  it('loads a new version beside the old one, switches only once it is warm, and lets the old one drain', async () => {
    const { repo, m, onState, apply, answer } = setup();
    writeConfig(repo, 'm', { max_batch_size: 1 }); // one request per run: requests queue up on v1
    await publishVersion(repo, 'm', 1, (d) => slowVersionedModel(d, 1, { layers: 300, width: 256 }));
    expect(await apply()).toEqual({ loaded: [1], failed: [] });
    expect(await answer(undefined, 256)).toBe(1);

    const queued = Array.from({ length: 6 }, (_, i) => m.resolve(undefined).infer(rowsRequest(1, 100 * i, 256)).then((r) => float32(r.outputs[0].data)[0]));
    // While version 2 warms up, version 1 still takes every new request.
    const seenWhileWarming: { serving: number; readiness: unknown; index: unknown }[] = [];
    onState.push((v) => {
      if (v.version === 2 && v.state === 'warming') seenWhileWarming.push({ serving: m.resolve(undefined).version, readiness: m.readiness('2'), index: m.index() });
    });
    await publishVersion(repo, 'm', 2, (d) => slowVersionedModel(d, 2, { layers: 300, width: 256 }));
    const swap = apply();
    expect(m.resolve(undefined).version).toBe(1);
    expect(await swap).toEqual({ loaded: [2], failed: [] });
    expect(seenWhileWarming).toEqual([
      {
        serving: 1,
        readiness: { ready: false, reason: 'warming up' },
        index: [
          { name: 'm', version: '1', state: 'ready', reason: '' },
          { name: 'm', version: '2', state: 'warming', reason: 'warming up' },
        ],
      },
    ]);
    // The switch happened: new requests go to version 2; those queued on version 1 finish there.
    expect(await answer(undefined, 256)).toBe(2);
    expect(await Promise.all(queued)).toEqual([1, 101, 201, 301, 401, 501]);
    await m.settled();
    expect(m.index()).toEqual([
      { name: 'm', version: '1', state: 'unavailable', reason: 'unloaded' },
      { name: 'm', version: '2', state: 'ready', reason: '' },
    ]);
    expect(m.readiness('1')).toEqual({ ready: false, reason: 'unloaded' });
    expect(() => m.resolve('1')).toThrow(/^Request for unknown model: 'm' version 1 is not at ready state: unloaded$/);
    expect(() => m.resolve('9')).toThrow(/^Request for unknown model: 'm' version 9 is not found$/);
  });

  it('a version that fails never takes traffic, the old one keeps serving, and a repair is picked up', async () => {
    const { repo, m, registry, apply, answer } = setup();
    await publishVersioned(repo, 'm', 1);
    await apply();
    await publishVersion(repo, 'm', 2, (d) => writeCorruptModel(join(d, 'model.onnx')));
    const result = await apply();
    expect(result.loaded).toEqual([]);
    expect(result.failed).toEqual([{ version: 2, reason: expect.stringMatching(/m\/2\/model\.onnx/) }]);
    expect(await answer()).toBe(1);
    expect(m.readiness(undefined)).toEqual({ ready: true });
    expect(m.readiness('2')).toEqual({ ready: false, reason: `failed: ${result.failed[0].reason}` });
    expect(() => m.resolve('2')).toThrow(/version 2 is not at ready state: failed: /);
    expect(m.index()).toEqual([
      { name: 'm', version: '1', state: 'ready', reason: '' },
      { name: 'm', version: '2', state: 'failed', reason: result.failed[0].reason },
    ]);
    expect(await stateSeries(registry, '2')).toMatchObject({ failed: 1, ready: 0 });
    expect(await stateSeries(registry, '1')).toMatchObject({ ready: 1 });

    // The same broken files are not tried again on every scan.
    expect(await apply()).toEqual({ loaded: [], failed: [] });

    // Repaired files (a new fingerprint) are.
    await publishVersioned(repo, 'm', 2);
    expect(await apply()).toEqual({ loaded: [2], failed: [] });
    expect(await answer()).toBe(2);
    await m.settled();
    expect(m.index().map((r) => `${r.version}:${r.state}`)).toEqual(['1:unavailable', '2:ready']);
    expect(await stateSeries(registry, '2')).toMatchObject({ failed: 0, ready: 1 });
    expect(await stateSeries(registry, '1')).toEqual({}); // an unloaded version's series are removed
  });

  it('changed files under the serving version number reload beside it; the version keeps its metrics', async () => {
    const { repo, m, registry, apply, answer } = setup();
    await publishVersioned(repo, 'm', 1);
    await apply();
    await answer();
    // New files in version directory 1 (this model adds 5, so the answer tells which files serve).
    await publishVersion(repo, 'm', 1, (d) => versionedModel(d, 5));
    expect(await apply()).toEqual({ loaded: [1], failed: [] });
    expect(await answer()).toBe(5);
    await m.settled(); // the old version 1 has drained and been freed
    expect(m.index()).toEqual([{ name: 'm', version: '1', state: 'ready', reason: '' }]);
    expect(await stateSeries(registry, '1')).toMatchObject({ ready: 1, draining: 0, unavailable: 0 });
    await answer();
    // Both objects of version 1 count into its one series: one batch before the reload, two after.
    const executions = (await registry.getMetricsAsJSON()).find((x) => x.name === 'tensorwire_inference_exec_count_total');
    expect((executions?.values as { labels: Record<string, string>; value: number }[]).find((v) => v.labels.version === '1')?.value).toBe(3);

    // Broken files under the same number: the serving files stay, and the index says why.
    await publishVersion(repo, 'm', 1, (d) => writeCorruptModel(join(d, 'model.onnx'), 'truncated'));
    const result = await apply();
    expect(result.failed).toHaveLength(1);
    expect(await answer()).toBe(5);
    expect(m.readiness('1')).toEqual({ ready: true });
    expect(m.index()).toEqual([{ name: 'm', version: '1', state: 'ready', reason: `serving the previous files; the new ones failed: ${result.failed[0].reason}` }]);
    expect(await stateSeries(registry, '1')).toMatchObject({ ready: 1, failed: 0 });
  });

  it('follows the version policy: latest N, all, specific; unversioned requests go to the highest ready version', async () => {
    const { repo, m, apply, answer } = setup();
    for (const v of [1, 2, 3]) await publishVersioned(repo, 'm', v);
    writeConfig(repo, 'm', { version_policy: { latest: { num_versions: 2 } } });
    expect((await apply()).loaded.sort()).toEqual([2, 3]);
    expect(m.servingVersions()).toEqual([2, 3]);
    expect(await answer()).toBe(3);
    expect(await answer('2')).toBe(2);
    expect(() => m.resolve('1')).toThrow(/'m' version 1 is not found/);

    writeConfig(repo, 'm', { version_policy: { specific: { versions: [1, 3] } } });
    await apply();
    expect(m.servingVersions()).toEqual([1, 3]);
    expect(await answer('1')).toBe(1);
    await m.settled();
    expect(m.readiness('2')).toEqual({ ready: false, reason: 'unloaded' });

    writeConfig(repo, 'm', { version_policy: { all: {} } });
    await apply();
    expect(m.servingVersions()).toEqual([1, 2, 3]);

    // latest 1 by default: a new version replaces all of them.
    rmSync(join(repo, 'm', 'config.json'));
    await publishVersioned(repo, 'm', 4);
    await apply();
    expect(m.servingVersions()).toEqual([4]);
    expect(await answer()).toBe(4);
  });

  it('an invalid config keeps the serving version and says why nothing new loads', async () => {
    const { repo, apply, answer } = setup();
    await publishVersioned(repo, 'm', 1);
    await apply();
    writeConfig(repo, 'm', { max_batch_sizes: 8 });
    await publishVersioned(repo, 'm', 2);
    const result = await apply();
    expect(result.error).toMatch(/max_batch_sizes.*did you mean max_batch_size/);
    expect(await answer()).toBe(1);
    writeConfig(repo, 'm', { max_batch_size: 8 });
    expect((await apply()).loaded).toEqual([2]);
    expect(await answer()).toBe(2);
  });

  it('unloading stops every version; readiness and the index say it was unloaded', async () => {
    const { repo, m, apply } = setup();
    await publishVersioned(repo, 'm', 1);
    await apply();
    await m.unloadAll();
    expect(m.readiness(undefined)).toEqual({ ready: false, reason: 'unloaded' });
    expect(m.index()).toEqual([{ name: 'm', version: '1', state: 'unavailable', reason: 'unloaded' }]);
    expect(() => m.resolve(undefined)).toThrow(/^Request for unknown model: 'm' has no available versions: unloaded$/);
  });
});

describe('ServedModel live configuration', () => {
  it('applies batching at once, keeps it for new versions, and drops it when the config changes', async () => {
    const { repo, m, log, apply } = setup();
    await publishVersioned(repo, 'm', 1);
    await apply();
    const before = m.resolve(undefined);
    const settings = await m.configure({ max_queue_delay_microseconds: 3000, preferred_batch_size: [2, 4], default_queue_policy: { max_queue_size: 32 } });
    expect(settings).toMatchObject({
      name: 'm',
      versions: ['1'],
      max_batch_size: 64,
      max_queue_delay_microseconds: 3000,
      preferred_batch_size: [2, 4],
      default_queue_policy: { max_queue_size: 32, default_timeout_microseconds: 0, allow_timeout_override: false, timeout_action: 'REJECT' },
      instance_count: 1,
      live: true,
    });
    expect(m.resolve(undefined)).toBe(before); // no reload
    expect(runnerOf(before).config).toMatchObject({ maxQueueDelayUs: 3000, preferredBatchSizes: [2, 4], defaultQueuePolicy: { maxQueueSize: 32 } });
    expect(before.effective!.tritonConfig.dynamic_batching).toMatchObject({ max_queue_delay_microseconds: 3000, preferred_batch_size: [2, 4] });

    // A second change merges with the first; a bad one changes nothing and names the field.
    await m.configure({ default_queue_policy: { default_timeout_microseconds: 5_000_000 } });
    expect(m.settings().default_queue_policy).toMatchObject({ max_queue_size: 32, default_timeout_microseconds: 5_000_000 });
    await expect(m.configure({ preferred_batch_size: [100] })).rejects.toThrow(/preferred_batch_size 100 is larger than max_batch_size 64/);
    await expect(m.configure({ max_queue_delay_microseconds: -1 })).rejects.toThrow(/max_queue_delay_microseconds/);
    await expect(m.configure({ max_queue_delay: 5 })).rejects.toThrow(/unknown field "max_queue_delay"/);
    await expect(m.configure({ priority_levels: 2 })).rejects.toThrow(/default_priority_level is required when priority_levels is 2/);
    expect(m.settings()).toMatchObject({ max_queue_delay_microseconds: 3000, preferred_batch_size: [2, 4], priority_levels: 0 });

    // Priorities on (with a per-level policy), then off again.
    const prioritized = await m.configure({ priority_levels: 2, default_priority_level: 2, priority_queue_policy: { '1': { max_queue_size: 4 } } });
    expect(prioritized).toMatchObject({ priority_levels: 2, default_priority_level: 2, priority_queue_policy: { '1': { max_queue_size: 4, default_timeout_microseconds: 5_000_000 } } });
    expect(runnerOf(before).config).toMatchObject({ priorityLevels: 2, defaultPriorityLevel: 2, priorityQueuePolicy: { 1: { maxQueueSize: 4 } } });
    const r = await before.infer({ ...rowsRequest(1, 0), priority: 1 });
    expect(float32(r.outputs[0].data)[0]).toBe(1);
    const off = await m.configure({ priority_levels: 0 });
    expect(off).toMatchObject({ priority_levels: 0, default_priority_level: 0 });
    expect(off.priority_queue_policy).toBeUndefined();
    expect(runnerOf(before).config.priorityQueuePolicy).toBeUndefined();

    // A new version starts with the live settings.
    await publishVersioned(repo, 'm', 2);
    await apply();
    expect(m.settings()).toMatchObject({ versions: ['2'], max_queue_delay_microseconds: 3000, preferred_batch_size: [2, 4], live: true });
    expect(runnerOf(m.resolve(undefined)).config.maxQueueDelayUs).toBe(3000);

    // Editing the config file is the newer word: the live change is dropped.
    writeConfig(repo, 'm', { dynamic_batching: { max_queue_delay_microseconds: 700 } });
    await apply();
    expect(m.settings()).toMatchObject({ max_queue_delay_microseconds: 700, preferred_batch_size: [], live: false });
    expect(log).toContain('model m: its configuration changed; live batching changes are dropped in favour of it');
  });

  it('a new instance count reloads the same files beside the serving version (a swap), and a failed reload keeps the old instances', async () => {
    const { repo, m, apply, answer } = setup();
    await publishVersioned(repo, 'm', 1);
    await apply();
    const old = m.resolve(undefined);
    const settings = await m.configure({ instance_count: 2, max_queue_delay_microseconds: 50 });
    expect(settings).toMatchObject({ instance_count: 2, max_queue_delay_microseconds: 50, versions: ['1'] });
    const swapped = m.resolve(undefined);
    expect(swapped).not.toBe(old);
    expect(swapped.instanceCount).toBe(2);
    expect(runnerOf(swapped).config.maxQueueDelayUs).toBe(50);
    expect(await answer()).toBe(1);
    await m.settled();
    expect(old.state).toBe('unavailable');
    expect(m.index()).toEqual([{ name: 'm', version: '1', state: 'ready', reason: '' }]);

    // The same count again: nothing to reload.
    await m.configure({ instance_count: 2 });
    expect(m.resolve(undefined)).toBe(swapped);

    // Garbage under the serving files (not yet seen by a scan): the reload fails, nothing changes.
    writeFileSync(join(repo, 'm', '1', 'model.onnx'), 'not a model');
    await expect(m.configure({ instance_count: 3 })).rejects.toThrow(/reload with instance_count 3 failed .*the previous instances keep serving/);
    expect(m.resolve(undefined)).toBe(swapped);
    expect(m.settings().instance_count).toBe(2);
    expect(await answer()).toBe(1);
    expect(m.index()).toEqual([{ name: 'm', version: '1', state: 'ready', reason: '' }]);
  });

  it('refuses a change while nothing serves', async () => {
    const { repo, m, apply } = setup();
    await publishVersion(repo, 'm', 1, (d) => writeCorruptModel(join(d, 'model.onnx')));
    await apply();
    const e = await m.configure({ max_queue_delay_microseconds: 10 }).catch((x: unknown) => x);
    expect(code(e)).toBe('UNAVAILABLE');
    expect((e as Error).message).toMatch(/no ready version to change: version 1 failed: /);
  });
});
