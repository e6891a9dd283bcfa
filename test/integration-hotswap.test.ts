/**
 * Zero-downtime model lifecycle over the real HTTP and WebSocket front end, real engine, real
 * files: 20 version swaps under continuous load (poll mode and explicit loads), a corrupt
 * version rejected while the old one serves and then repaired, explicit load/unload, and live
 * batching changes (including an instance-count swap under load).
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createInferenceService, type CreateServiceOptions, type TensorwireService } from '../lib/core/service';
import { startServer, type RunningServer } from '../lib/server/server';
import { writeCorruptModel } from './fixtures/models';
import { tempDir } from './helpers/engine-run';
import { publishVersion, publishVersioned, slowVersionedModel, waitFor, writeConfig } from './helpers/hotswap';
import { describeLoad, drainedAcrossSwitch, startLoad, type Load } from './helpers/hotswap-load';

interface Running {
  repo: string;
  base: string;
  service: TensorwireService;
  server: RunningServer;
  log: string[];
  /** When each version of model "m" became ready (performance.now()). */
  readyAt: Map<number, number>;
}

const running: Running[] = [];
const loads: Load[] = [];
const cleanups: (() => void)[] = [];
afterEach(async () => {
  for (const l of loads.splice(0)) await l.stop();
  for (const r of running.splice(0)) {
    await r.server.close();
    await r.service.shutdown();
  }
  while (cleanups.length > 0) cleanups.pop()!();
});

async function serve(prepare: (repo: string) => Promise<void>, options: Omit<CreateServiceOptions, 'repository'>): Promise<Running> {
  const { dir: repo, cleanup } = tempDir('tw-hotswap-');
  cleanups.push(cleanup);
  await prepare(repo);
  const log: string[] = [];
  const readyAt = new Map<number, number>();
  const record = (line: string): void => {
    log.push(line);
    const ready = /^model m version (\d+): ready$/.exec(line);
    if (ready) readyAt.set(Number(ready[1]), performance.now());
  };
  const service = await createInferenceService({ repository: repo, drainMs: 10_000, log: record, ...options });
  await service.initialLoad;
  const server = await startServer(service, { host: '127.0.0.1', port: 0 });
  const r = { repo, base: `http://127.0.0.1:${server.port}`, service, server, log, readyAt };
  running.push(r);
  return r;
}

/** A JSON call: status and parsed body (undefined when empty). */
async function call(base: string, method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${base}${path}`, { method, ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }) });
  const text = await res.text();
  return { status: res.status, body: text === '' ? undefined : JSON.parse(text) };
}

function expectClean(load: Load, minVersions: number): void {
  const summary = describeLoad(load);
  for (const c of load.clients) {
    expect(c.failures, summary).toEqual([]);
    expect(c.wrong, summary).toEqual([]);
    expect(c.regressions, summary).toEqual([]);
    expect(c.versions.length, summary).toBeGreaterThanOrEqual(minVersions);
  }
}

const KINDS = ['http-binary', 'http-binary', 'http-json', 'ws-binary', 'ws-text'] as const;
const SWAPS = 20;
/** Each version costs about 1 ms a batch, so requests are usually queued or running on the old version at a switch. */
const MODEL = { layers: 60, width: 32 };

describe('hot swap under load', () => {
  it(`poll mode: ${SWAPS} new versions published while five clients keep sending, with no failed, wrong or older answer`, async () => {
    const r = await serve((repo) => publishVersion(repo, 'm', 1, (d) => slowVersionedModel(d, 1, MODEL)), { modelControl: 'poll', pollMs: 20 });
    const load = await startLoad(r.base, 'm', [...KINDS], MODEL.width);
    loads.push(load);
    await waitFor(() => load.allSeen(1), 5000, 'every client to be answered');
    for (let v = 2; v <= SWAPS + 1; v++) {
      await publishVersion(r.repo, 'm', v, (d) => slowVersionedModel(d, v, MODEL));
      await waitFor(() => load.allSeen(v), 10_000, `every client to be answered by version ${v}\n${describeLoad(load)}`);
    }
    await load.stop();
    expectClean(load, 2);
    // Every version served, in order, and every client was answered by the last one.
    const seen = new Set(load.clients.flatMap((c) => c.versions));
    expect([...seen].sort((a, b) => a - b)).toEqual(Array.from({ length: SWAPS + 1 }, (_, i) => i + 1));
    for (const c of load.clients) expect(c.newest).toBe(SWAPS + 1);
    // The old versions were all drained and freed; their failures, if any, would be in the log.
    await waitFor(() => r.service.repositoryIndex().filter((x) => x.state === 'unavailable').length === SWAPS, 10_000, 'old versions to be freed');
    expect(r.service.repositoryIndex(true)).toEqual([{ name: 'm', version: String(SWAPS + 1), state: 'ready', reason: '' }]);
    expect(r.log.filter((l) => l.includes('failed'))).toEqual([]);
    // Answers from the old version still arrived after the new one was ready: requests in
    // flight at a switch were answered, by the version that had them, not failed.
    const drained = drainedAcrossSwitch(load, (v) => r.readyAt.get(v));
    console.log(`poll: ${drained.length} of ${SWAPS} switches had requests finishing on the old version`);
    expect(drained.length).toBeGreaterThan(0);
  });

  it(`explicit mode: ${SWAPS} loads of new versions through the repository API under load`, async () => {
    const r = await serve((repo) => publishVersion(repo, 'm', 1, (d) => slowVersionedModel(d, 1, MODEL)), { modelControl: 'explicit', loadModels: ['m'] });
    const load = await startLoad(r.base, 'm', [...KINDS], MODEL.width);
    loads.push(load);
    await waitFor(() => load.allSeen(1), 5000, 'every client to be answered');
    for (let v = 2; v <= SWAPS + 1; v++) {
      await publishVersion(r.repo, 'm', v, (d) => slowVersionedModel(d, v, MODEL));
      const res = await call(r.base, 'POST', '/v2/repository/models/m/load', {});
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      // The load answers once the new version serves: the next request of any client gets it.
      const after = load.clients.map((c) => c.requests);
      await waitFor(() => load.clients.every((c, i) => c.requests > after[i] + 1), 5000, 'every client to send again');
      expect(load.clients.every((c) => c.newest === v), describeLoad(load)).toBe(true);
    }
    await load.stop();
    expectClean(load, SWAPS + 1);
    const drained = drainedAcrossSwitch(load, (v) => r.readyAt.get(v));
    console.log(`explicit: ${drained.length} of ${SWAPS} switches had requests finishing on the old version`);
    expect(drained.length).toBeGreaterThan(0);
  });
});

describe('failed versions', () => {
  it('a corrupt version is rejected while the old one keeps serving; the failure shows in the index, readiness and log; the repair is picked up', async () => {
    const r = await serve((repo) => publishVersioned(repo, 'm', 1), { modelControl: 'poll', pollMs: 20 });
    const load = await startLoad(r.base, 'm', ['http-binary', 'http-json', 'ws-binary']);
    loads.push(load);
    await publishVersion(r.repo, 'm', 2, (d) => writeCorruptModel(join(d, 'model.onnx'), 'truncated'));
    await waitFor(() => r.service.repositoryIndex().some((x) => x.version === '2' && x.state === 'failed'), 5000, 'version 2 to fail');
    const index = await call(r.base, 'POST', '/v2/repository/index', {});
    expect(index.status).toBe(200);
    const row = index.body.find((x: { version: string }) => x.version === '2');
    expect(row).toMatchObject({ name: 'm', version: '2', state: 'UNAVAILABLE', reason: expect.stringMatching(/m\/2\/model\.onnx/) });
    expect(index.body.find((x: { version: string }) => x.version === '1')).toEqual({ name: 'm', version: '1', state: 'READY', reason: '' });
    const ready2 = await call(r.base, 'GET', '/v2/models/m/versions/2/ready');
    expect(ready2).toEqual({ status: 503, body: { error: `Request for unknown model: 'm' version 2 is not at ready state: failed: ${row.reason}`, code: 'UNAVAILABLE' } });
    expect((await call(r.base, 'GET', '/v2/models/m/ready')).status).toBe(200);
    expect((await call(r.base, 'GET', '/v2/health/ready')).status).toBe(200);
    expect(r.log).toContain(`model m version 2: failed (${row.reason})`);
    const before = load.clients.map((c) => c.requests);
    await waitFor(() => load.clients.every((c, i) => c.requests > before[i] + 5), 5000, 'more requests on version 1');
    expect(load.clients.every((c) => c.newest === 1)).toBe(true);

    await publishVersioned(r.repo, 'm', 2);
    await waitFor(() => load.allSeen(2), 5000, 'the repaired version 2 to serve');
    expect((await call(r.base, 'GET', '/v2/models/m/versions/2/ready')).status).toBe(200);
    await load.stop();
    expectClean(load, 2);
  });
});

describe('explicit load and unload over HTTP', () => {
  it('loads and unloads models, and a failed load answers an error while the old version serves', async () => {
    const r = await serve(
      async (repo) => {
        await publishVersioned(repo, 'a', 1);
        await publishVersioned(repo, 'b', 4);
      },
      { modelControl: 'explicit', loadModels: ['a'] },
    );
    const infer = (model: string) => call(r.base, 'POST', `/v2/models/${model}/infer`, { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: [0, 0, 0, 0] }] });
    expect((await infer('a')).body.outputs[0].data).toEqual([1, 1, 1, 1]);
    expect((await infer('b')).status).toBe(404);
    expect((await call(r.base, 'POST', '/v2/repository/index', {})).body).toEqual([
      { name: 'a', version: '1', state: 'READY', reason: '' },
      { name: 'b', version: '', state: 'UNAVAILABLE', reason: 'not loaded' },
    ]);

    expect((await call(r.base, 'POST', '/v2/repository/models/b/load', {})).status).toBe(200);
    expect((await infer('b')).body).toMatchObject({ model_version: '4', outputs: [{ data: [4, 4, 4, 4] }] });

    await publishVersion(r.repo, 'a', 2, (d) => writeCorruptModel(join(d, 'model.onnx')));
    const failed = await call(r.base, 'POST', '/v2/repository/models/a/load', {});
    expect(failed.status).toBe(400);
    expect(failed.body.error).toMatch(/^failed to load 'a': version 2: .*; version 1 keeps serving$/);
    expect((await infer('a')).body.outputs[0].data).toEqual([1, 1, 1, 1]);

    expect((await call(r.base, 'POST', '/v2/repository/models/a/unload', {})).status).toBe(200);
    const gone = await infer('a');
    expect(gone.status).toBe(503);
    expect(gone.body.error).toMatch(/'a' has no available versions: unloaded/);
    expect(await call(r.base, 'GET', '/v2/models/a/ready')).toEqual({ status: 503, body: { error: "Request for unknown model: 'a' has no available versions: unloaded", code: 'UNAVAILABLE' } });
    expect((await call(r.base, 'POST', '/v2/repository/index', {})).body).toEqual([
      { name: 'a', version: '1', state: 'UNAVAILABLE', reason: 'unloaded' },
      { name: 'b', version: '4', state: 'READY', reason: '' },
    ]);
    expect((await call(r.base, 'POST', '/v2/repository/models/..%2Fetc/load', {})).status).toBe(404);
  });
});

describe('live batching changes', () => {
  it('changes the batching of a serving model at once and its instance count by a swap, under load, with no failed request', async () => {
    const r = await serve(
      async (repo) => {
        writeConfig(repo, 'm', { max_batch_size: 16 });
        await publishVersion(repo, 'm', 1, (d) => slowVersionedModel(d, 1, MODEL));
      },
      { modelControl: 'poll', pollMs: 20 },
    );
    const load = await startLoad(r.base, 'm', [...KINDS], MODEL.width);
    loads.push(load);
    await waitFor(() => load.allSeen(1), 5000, 'every client to be answered');
    expect(await call(r.base, 'GET', '/v2/models/m/batching')).toEqual({
      status: 200,
      body: {
        name: 'm',
        versions: ['1'],
        max_batch_size: 16,
        max_queue_delay_microseconds: 100,
        preferred_batch_size: [],
        default_queue_policy: { max_queue_size: 0, default_timeout_microseconds: 0, allow_timeout_override: false, timeout_action: 'REJECT' },
        priority_levels: 0,
        default_priority_level: 0,
        instance_count: 1,
        live: false,
      },
    });

    const changed = await call(r.base, 'POST', '/v2/models/m/batching', {
      max_queue_delay_microseconds: 2000,
      preferred_batch_size: [4, 8],
      default_queue_policy: { max_queue_size: 512, allow_timeout_override: true },
      priority_levels: 2,
      default_priority_level: 2,
    });
    expect(changed.status, JSON.stringify(changed.body)).toBe(200);
    expect(changed.body).toMatchObject({ max_queue_delay_microseconds: 2000, preferred_batch_size: [4, 8], default_queue_policy: { max_queue_size: 512, allow_timeout_override: true }, priority_levels: 2, instance_count: 1, live: true });
    // The model config shows it, and no version was loaded for it.
    const config = await call(r.base, 'GET', '/v2/models/m/config');
    expect(config.body.dynamic_batching).toMatchObject({ max_queue_delay_microseconds: 2000, preferred_batch_size: [4, 8], priority_levels: 2, default_priority_level: 2 });
    expect(r.log.filter((l) => l.includes('loading'))).toEqual(['model m version 1: loading']);

    // Bad changes: 400 naming the field, nothing changes.
    const bad = await call(r.base, 'POST', '/v2/models/m/batching', { preferred_batch_size: [32] });
    expect(bad).toEqual({ status: 400, body: { error: expect.stringMatching(/preferred_batch_size 32 is larger than max_batch_size 16/), code: 'INVALID_INPUT' } });
    const unknown = await call(r.base, 'POST', '/v2/models/m/batching', { max_queue_delay_us: 1 });
    expect(unknown).toEqual({ status: 400, body: { error: expect.stringMatching(/unknown field "max_queue_delay_us"/), code: 'INVALID_INPUT' } });
    expect((await call(r.base, 'POST', '/v2/models/m/batching', { instance_count: 0 })).body.error).toMatch(/instance_group\[0\]\.count/);
    expect((await call(r.base, 'POST', '/v2/models/nope/batching', { instance_count: 2 })).status).toBe(404);

    // Instance count: a swap to two instances of the same files, under load.
    const swapped = await call(r.base, 'POST', '/v2/models/m/batching', { instance_count: 2 });
    expect(swapped.status, JSON.stringify(swapped.body)).toBe(200);
    expect(swapped.body).toMatchObject({ instance_count: 2, max_queue_delay_microseconds: 2000, preferred_batch_size: [4, 8], versions: ['1'] });
    expect((await call(r.base, 'GET', '/v2/models/m/config')).body.instance_group[0].count).toBe(2);
    const after = load.clients.map((c) => c.requests);
    await waitFor(() => load.clients.every((c, i) => c.requests > after[i] + 10), 5000, 'more requests on two instances');
    await load.stop();
    expectClean(load, 1);
    expect(r.log.filter((l) => /version 1: (loading|ready|draining|unavailable)/.test(l))).toEqual([
      'model m version 1: loading',
      'model m version 1: ready',
      'model m version 1: loading',
      'model m version 1: ready',
      'model m version 1: draining',
      'model m version 1: unavailable',
    ]);
  });
});
