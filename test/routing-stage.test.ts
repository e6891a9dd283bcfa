/**
 * Traffic policies on real models whose answers name the version (y = x + version): the
 * split's ratio over thousands of requests, stickiness per key, shadows (compared, never
 * returned, free for the primary when they fail), fallback, the guard's automatic rollback,
 * and the live policy over HTTP (GET/POST /v2/models/{m}/routing). The ratio runs in-process
 * through the front door (the same stage every transport passes), so it stays fast.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createInferenceService, type TensorwireService } from '../lib/core/service';
import { FrontDoor } from '../lib/frontdoor/front-door';
import { createRequestContext } from '../lib/frontdoor/request-context';
import type { InferResponse } from '../lib/protocol/types';
import { RoutingTable } from '../lib/routing/routing-table';
import { routingStage } from '../lib/routing/routing-stage';
import { startServer, type RunningServer } from '../lib/server/server';
import { StreamClient } from '../lib/client/stream-client';
import { writeCorruptModel } from './fixtures/models';
import { tempDir } from './helpers/engine-run';
import { initializer, node, writeModel } from './fixtures/onnx-builder';
import { failsToRunModel, float32, publishVersion, publishVersioned, rowsRequest, slowVersionedModel, waitFor, writeConfig } from './helpers/hotswap';

/** Width of the MatMul versions (slowVersionedModel: y = x + version after `layers` identity MatMuls). */
const WIDE = 256;
/** Layers of a slow version: one row takes ~15 ms here, SLOW_ROWS rows a second or so. */
const SLOW = 4000;
const SLOW_ROWS = 64;

/**
 * A canary that serves (its warm-up, one row, passes) and fails every request of two rows:
 * y = Reshape(x, [1, 4]) + version.
 */
function oneRowModel(dir: string, version: number): string {
  return writeModel(`${dir}/model.onnx`, {
    name: `one_row_v${version}`,
    inputs: [{ name: 'x', type: 'FP32', dims: [-1, 4] }],
    outputs: [{ name: 'y', type: 'FP32', dims: [-1, 4] }],
    initializers: [initializer('shape', 'INT64', [2], new BigInt64Array([1n, 4n])), initializer('version', 'FP32', [], new Float32Array([version]))],
    nodes: [node('Reshape', ['x', 'shape'], ['r']), node('Add', ['r', 'version'], ['y'])],
  });
}

/** What the routing route answers (a view, or an error). */
interface RoutingAnswer {
  error?: string;
  policy?: unknown;
  live: { split: Record<string, number>; state: string; events: { kind: string }[] };
}

interface Setup {
  service: TensorwireService;
  table: RoutingTable;
  door: FrontDoor;
  log: string[];
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** A repository with model "m": versionedModel at `versions`, failsToRunModel at `failing`, config `config`. */
async function setup(versions: number[], config: Record<string, unknown>, failing: number[] = [], oneRow: number[] = [], matmul: Record<number, number> = {}, tableOptions: { shadowMaxInFlight?: number } = {}): Promise<Setup> {
  const { dir: repo, cleanup } = tempDir('tw-routing-');
  cleanups.push(cleanup);
  for (const v of versions) await publishVersioned(repo, 'm', v);
  for (const v of failing) await publishVersion(repo, 'm', v, (dir) => failsToRunModel(dir));
  for (const v of oneRow) await publishVersion(repo, 'm', v, (dir) => oneRowModel(dir, v));
  for (const [v, layers] of Object.entries(matmul)) await publishVersion(repo, 'm', Number(v), (dir) => slowVersionedModel(dir, Number(v), { width: WIDE, layers }));
  writeConfig(repo, 'm', config);
  const log: string[] = [];
  const service = await createInferenceService({ repository: repo, modelControl: 'none', drainMs: 1000, log: (l) => log.push(l) });
  cleanups.push(() => service.shutdown());
  await service.initialLoad;
  // Shadows are never shed for load here: the test process is busy, and the tests count every copy.
  const table = new RoutingTable(service, { log: (l) => log.push(l), shadowMaxLoopUtilization: 1, ...tableOptions });
  const door = new FrontDoor({ service });
  door.use(routingStage(table));
  return { service, table, door, log };
}

/** One call through the front door; `headers` as a transport would have copied them. */
function infer(s: Setup, options: { version?: string; headers?: Record<string, string>; parameters?: Record<string, unknown>; rows?: number; width?: number; timeoutUs?: number; id?: string } = {}): Promise<InferResponse> {
  const request = rowsRequest(options.rows ?? 1, 0, options.width);
  if (options.id !== undefined) request.id = options.id;
  if (options.parameters) request.parameters = options.parameters;
  if (options.timeoutUs !== undefined) request.timeoutUs = options.timeoutUs;
  return s.door.infer({ model: 'm', version: options.version, request, context: createRequestContext('http', '127.0.0.1', options.headers ?? {}), signal: new AbortController().signal });
}

/** Resolves after the shadow copies the last answer offered have started (their setImmediate ran). */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** The version a response's values show (y = x + version, x = 0). */
function versionOf(r: InferResponse): number {
  const y = float32(r.outputs[0]!.data)[0]!;
  expect(String(y)).toBe(r.modelVersion); // the answer says which version produced it
  return y;
}

async function metricValue(s: Setup, family: string, labels: Record<string, string>): Promise<number> {
  const text = await s.service.registry.metrics();
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${family}{`) && !line.startsWith(`${family} `)) continue;
    if (want.every((w) => line.includes(w))) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

describe('weighted split', () => {
  it('splits unversioned requests by weight within a statistical bound, and keeps named versions loaded', async () => {
    // The default version policy (latest 1) would load only version 3; the policy names 1 and 3.
    const s = await setup([1, 2, 3], { routing: { weights: { '1': 80, '3': 20 } } });
    expect(s.service.servingVersions('m')).toEqual([1, 3]);
    const n = 4000;
    const counts = new Map<number, number>();
    for (let i = 0; i < n; i += 200) {
      const answers = await Promise.all(Array.from({ length: 200 }, () => infer(s)));
      for (const a of answers) counts.set(versionOf(a), (counts.get(versionOf(a)) ?? 0) + 1);
    }
    expect([...counts.keys()].sort()).toEqual([1, 3]);
    // 5 standard deviations of a binomial(4000, 0.2): flaky once in millions of runs.
    const sd = Math.sqrt(0.2 * 0.8 / n);
    expect(Math.abs(counts.get(3)! / n - 0.2)).toBeLessThan(5 * sd);
    expect(await metricValue(s, 'tensorwire_routing_requests_total', { model: 'm', version: '3', via: 'split' })).toBe(counts.get(3));
    // A request naming a version gets that one.
    expect(versionOf(await infer(s, { version: '1' }))).toBe(1);
  });

  it('keeps one routing key on one version (header or request parameter)', async () => {
    const s = await setup([1, 2], { routing: { weights: { '1': 50, '2': 50 }, route_key: 'header:x-tensorwire-route-key' } });
    const byKey = new Map<string, Set<number>>();
    for (let k = 0; k < 100; k++) {
      const key = `user-${k}`;
      const seen = new Set<number>();
      for (let i = 0; i < 4; i++) {
        seen.add(versionOf(await infer(s, { headers: { 'x-tensorwire-route-key': key } })));
        seen.add(versionOf(await infer(s, { parameters: { route_key: key } })));
      }
      byKey.set(key, seen);
    }
    for (const [key, seen] of byKey) expect(seen.size, key).toBe(1);
    const versions = [...byKey.values()].map((v) => [...v][0]);
    expect(versions.filter((v) => v === 1).length).toBeGreaterThan(25);
    expect(versions.filter((v) => v === 2).length).toBeGreaterThan(25);
  });
});

describe('shadow', () => {
  it('compares the shadow with the primary and never returns it', async () => {
    // A budget no copy reaches here (a busy box can slow copies below one per request): every copy is sent.
    const s = await setup([1, 3], { routing: { weights: { '1': 100 }, shadow: { version: '3', percent: 100 } } }, [], [], {}, { shadowMaxInFlight: 64 });
    for (let i = 0; i < 20; i++) {
      expect(versionOf(await infer(s))).toBe(1);
      await nextTurn(); // as a client over a socket would: its next request comes with later I/O
    }
    await waitFor(async () => (await metricValue(s, 'tensorwire_shadow_requests_total', { version: '3', outcome: 'success' })) === 20, 5000, 'shadow copies');
    // y differs by exactly 2 everywhere (x+3 vs x+1): every diff lands in the bucket holding 2 and above 1.
    expect(await metricValue(s, 'tensorwire_shadow_max_abs_diff_bucket', { version: '3', output: 'y', le: '1' })).toBe(0);
    expect(await metricValue(s, 'tensorwire_shadow_max_abs_diff_bucket', { version: '3', output: 'y', le: '10' })).toBe(20);
    expect(await metricValue(s, 'tensorwire_shadow_argmax_rows_total', { version: '3', output: 'y', agree: 'true' })).toBe(20);
    const stats = s.service.statistics('m', '3')[0]!;
    expect(stats.inference_stats.success.count).toBe(20);
  });

  it('a failing shadow costs the primary nothing', async () => {
    const s = await setup([1], { routing: { weights: { '1': 100 }, shadow: { version: '4', percent: 100 } } }, [4], [], {}, { shadowMaxInFlight: 64 });
    for (let i = 0; i < 30; i++) {
      expect(versionOf(await infer(s))).toBe(1);
      await nextTurn();
    }
    await waitFor(async () => (await metricValue(s, 'tensorwire_shadow_requests_total', { version: '4', outcome: 'failure' })) === 30, 5000, 'failed shadow copies');
    expect(s.service.statistics('m', '1')[0]!.inference_stats.fail.count).toBe(0);
  });
  it('skips the copy while requests wait for the primary, and counts why', async () => {
    // A slow primary (one row: ~10 ms or more) and a fast shadow, both 256 wide.
    const s = await setup([], { max_batch_size: 0, routing: { weights: { '5': 100 }, shadow: { version: '6', percent: 100 } } }, [], [], { 5: 400, 6: 1 });
    const n = 8;
    // All at once: while one runs, the others wait in the primary's queue.
    const answers = await Promise.all(Array.from({ length: n }, () => infer(s, { width: WIDE })));
    for (const a of answers) expect(versionOf(a)).toBe(5);
    const sent = async () => (await metricValue(s, 'tensorwire_shadow_requests_total', { version: '6' })) ;
    const skipped = () => metricValue(s, 'tensorwire_shadow_skipped_total', { model: 'm', version: '6', reason: 'primary_queued' });
    await waitFor(async () => (await sent()) + (await skipped()) === n, 5000, 'every drawn copy sent or skipped');
    expect(await skipped()).toBeGreaterThanOrEqual(1);
    // The last answer left nothing queued behind it: its copy went.
    expect(await sent()).toBeGreaterThanOrEqual(1);
  });

  it('skips the copy while the shadow version has real requests waiting', async () => {
    // A fast primary and a slow shadow that also serves requests naming it.
    const s = await setup([], { max_batch_size: 0, routing: { weights: { '6': 100 }, shadow: { version: '5', percent: 100 } } }, [], [], { 5: SLOW, 6: 1 });
    // Four at once for version 5 (one row each, ~15 ms or more apiece): some wait in its queue.
    const named = Array.from({ length: 4 }, () => infer(s, { version: '5', width: WIDE }));
    await nextTurn();
    await nextTurn();
    expect(versionOf(await infer(s, { width: WIDE }))).toBe(6);
    await nextTurn();
    for (const a of await Promise.all(named)) expect(versionOf(a)).toBe(5);
    expect(await metricValue(s, 'tensorwire_shadow_skipped_total', { model: 'm', version: '5', reason: 'shadow_queued' })).toBe(1);
    expect(s.service.statistics('m', '5')[0]!.inference_stats.success.count).toBe(4); // no copy ran
  });

  it('keeps at most shadowMaxInFlight copies in flight and counts the rest as skipped', async () => {
    // A fast primary and a slow shadow: copies pile up unless the lane is bounded.
    const s = await setup([], { routing: { weights: { '6': 100 }, shadow: { version: '5', percent: 100 } } }, [], [], { 5: SLOW, 6: 1 }, { shadowMaxInFlight: 2 });
    const lane = s.table.lookup('m')!.shadow!;
    let most = 0;
    for (let i = 0; i < 12; i++) {
      expect(versionOf(await infer(s, { width: WIDE }))).toBe(6);
      await nextTurn();
      most = Math.max(most, lane.inFlight);
    }
    expect(most).toBe(2);
    const skipped = await metricValue(s, 'tensorwire_shadow_skipped_total', { model: 'm', version: '5', reason: 'in_flight_limit' });
    expect(skipped).toBeGreaterThanOrEqual(8);
    await waitFor(() => lane.inFlight === 0, 30_000, 'the slow copies to finish');
    expect(await metricValue(s, 'tensorwire_shadow_requests_total', { version: '5', outcome: 'success' })).toBe(12 - skipped);
  });
});

describe('fallback on a deadline miss', () => {
  it('abandons a chosen version still running at its share of the timeout and answers from the fallback', async () => {
    const s = await setup([], { routing: { weights: { '5': 100 }, fallback: '6' } }, [], [], { 5: SLOW, 6: 1 });
    // Without a timeout the slow version answers (slowly).
    expect(versionOf(await infer(s, { rows: SLOW_ROWS, width: WIDE }))).toBe(5);
    // With 200 ms version 5 gets 100 ms, far less than its run of 64 rows takes; the fallback answers in ~1 ms of its 100.
    const t = performance.now();
    const answer = await infer(s, { rows: SLOW_ROWS, width: WIDE, timeoutUs: 200_000 });
    expect(versionOf(answer)).toBe(6);
    expect(answer.modelVersion).toBe('6');
    expect(performance.now() - t).toBeLessThan(5000);
    expect(await metricValue(s, 'tensorwire_routing_fallbacks_total', { model: 'm', from: '5', to: '6' })).toBe(1);
    expect(await metricValue(s, 'tensorwire_routing_requests_total', { model: 'm', version: '6', via: 'fallback' })).toBe(1);
  });

  it('answers DEADLINE_EXCEEDED (504) when the fallback cannot answer in the time left', async () => {
    const s = await setup([], { routing: { weights: { '5': 100 }, fallback: '7' } }, [], [], { 5: SLOW, 7: SLOW });
    await expect(infer(s, { rows: SLOW_ROWS, width: WIDE, timeoutUs: 100_000 })).rejects.toMatchObject({ code: 'DEADLINE_EXCEEDED', message: expect.stringMatching(/version 7 did not answer within/) });
    expect(await metricValue(s, 'tensorwire_routing_fallbacks_total', { model: 'm', from: '5', to: '7' })).toBe(1);
  });
});

describe('fallback and guard', () => {
  it('retries once on the fallback when the chosen version fails; a named version gets its own error', async () => {
    const s = await setup([1], { routing: { weights: { '4': 100 }, fallback: '1' } }, [], [4]);
    expect(s.service.servingVersions('m')).toEqual([1, 4]);
    // One row: version 4 answers. Two rows: it fails and version 1 answers instead.
    expect(versionOf(await infer(s))).toBe(4);
    for (let i = 0; i < 10; i++) expect(versionOf(await infer(s, { rows: 2 }))).toBe(1);
    expect(await metricValue(s, 'tensorwire_routing_fallbacks_total', { model: 'm', from: '4', to: '1' })).toBe(10);
    await expect(infer(s, { version: '4', rows: 2 })).rejects.toMatchObject({ code: 'ENGINE_FAILURE' });
    // A version that does not serve falls back too (503 of the chosen one).
    const t = await setup([1], { routing: { weights: { '5': 100 }, fallback: '1' } }, [5]);
    expect(versionOf(await infer(t))).toBe(1);
  });

  it('rolls a failing canary back automatically (weight 0), logged, counted and visible', async () => {
    const s = await setup([1], { routing: { weights: { '1': 50, '4': 50 }, fallback: '1', guard: { version: '4', min_requests: 20, window_s: 60 } } }, [], [4]);
    let sent = 0;
    for (; sent < 500 && s.table.lookup('m')!.state === 'active'; sent++) expect(versionOf(await infer(s, { rows: 2 }))).toBe(1);
    // Judged only after min_requests of the canary: about 40 requests at a 50% split.
    expect(sent).toBeGreaterThanOrEqual(20);
    const view = s.table.read('m');
    expect(view.live.state).toBe('rolled_back');
    expect(view.live.split).toEqual({ '1': 50, '4': 0 });
    expect(view.live.events.at(-1)).toMatchObject({ kind: 'rolled_back', version: '4' });
    expect(view.live.events.at(-1)!.reason).toMatch(/error rate 100\.0% vs 0\.0%/);
    expect(view.live.window!['4']!.requests).toBe(20);
    expect(s.log.some((l) => /rolled back/.test(l))).toBe(true);
    expect(await metricValue(s, 'tensorwire_routing_rollbacks_total', { model: 'm', version: '4' })).toBe(1);
    // From now on nothing goes to version 4, so nothing falls back either.
    const before = await metricValue(s, 'tensorwire_routing_fallbacks_total', { model: 'm' });
    for (let i = 0; i < 50; i++) expect(versionOf(await infer(s, { rows: 2 }))).toBe(1);
    expect(await metricValue(s, 'tensorwire_routing_fallbacks_total', { model: 'm' })).toBe(before);
  });

  it('runs two live changes of one model one after the other, each checking its own versions', async () => {
    const s = await setup([1, 2, 3], { version_policy: { specific: { versions: [3] } } });
    const [first, second] = await Promise.allSettled([s.table.update('m', { weights: { '3': 100, '1': 0 } }), s.table.update('m', { weights: { '3': 100, '2': 0 } })]);
    expect(first.status).toBe('fulfilled');
    expect(second.status).toBe('fulfilled');
    expect(s.table.read('m').policy).toEqual({ weights: { '3': 100, '2': 0 } });
  });

  it('resolves labels to versions', async () => {
    const s = await setup([1, 2], { routing: { labels: { stable: '1', canary: '2' } } });
    expect(s.table.resolveLabel('m', 'canary')).toBe('2');
    expect(() => s.table.resolveLabel('m', 'nope')).toThrow(/no version label "nope"/);
    expect(s.service.servingVersions('m')).toEqual([1, 2]);
  });
});

describe('hot swap under a policy', () => {
  it('a new version directory joins the split at weight 0 and is raised live', async () => {
    const { dir: repo, cleanup } = tempDir('tw-routing-swap-');
    cleanups.push(cleanup);
    await publishVersioned(repo, 'm', 1);
    writeConfig(repo, 'm', { routing: { weights: { '1': 100, '2': 0 } } });
    const service = await createInferenceService({ repository: repo, modelControl: 'poll', pollMs: 50, drainMs: 1000, log: () => undefined });
    cleanups.push(() => service.shutdown());
    await service.initialLoad;
    const s: Setup = { service, table: new RoutingTable(service, { log: () => undefined }), door: new FrontDoor({ service }), log: [] };
    s.door.use(routingStage(s.table));
    await publishVersioned(repo, 'm', 2);
    await waitFor(() => service.servingVersions('m').join() === '1,2', 10_000, 'version 2 loaded for the policy');
    for (let i = 0; i < 50; i++) expect(versionOf(await infer(s))).toBe(1); // weight 0: no traffic yet
    await s.table.update('m', { weights: { '1': 50, '2': 50 } });
    const seen = new Set<number>();
    for (let i = 0; i < 100; i++) seen.add(versionOf(await infer(s)));
    expect([...seen].sort()).toEqual([1, 2]);
  });
});

describe('bandit', () => {
  it('learns from rewards posted by request id to send most traffic to the better version', async () => {
    const s = await setup([1, 2], { routing: { bandit: { versions: ['1', '2'], epsilon: 0.1 } } });
    expect(s.service.servingVersions('m')).toEqual([1, 2]);
    const late: number[] = [];
    for (let i = 0; i < 300; i++) {
      const answer = await infer(s, { id: `r${i}` });
      const v = versionOf(answer);
      if (i >= 100) late.push(v);
      // Version 2's answers are the good ones.
      expect(s.table.feedback('m', { id: `r${i}`, reward: v === 2 ? 1 : 0 })).toEqual({ id: `r${i}`, version: String(v), reward: v === 2 ? 1 : 0 });
    }
    // Exploitation picks version 2 and exploration (10%) half the time too: ~95% expected.
    expect(late.filter((v) => v === 2).length).toBeGreaterThan(150);
    const view = s.table.read('m').live.bandit!;
    expect(view.versions['2']!.mean_reward).toBe(1);
    expect(view.versions['1']!.mean_reward).toBe(0);
    expect(view.versions['1']!.answers + view.versions['2']!.answers).toBe(300);
    expect(view.remembered_ids).toBe(0); // each id took its reward
  });

  it('refuses unknown or spent ids (404), bad rewards and models without a bandit (400)', async () => {
    const s = await setup([1, 2], { routing: { bandit: { versions: ['1', '2'] } } });
    await infer(s, { id: 'a' });
    expect(() => s.table.feedback('m', { id: 'nope', reward: 1 })).toThrow(expect.objectContaining({ code: 'NOT_FOUND' }));
    expect(() => s.table.feedback('m', { id: 'a', reward: 1.5 })).toThrow(/reward must be a number from 0 to 1, got 1.5/);
    expect(() => s.table.feedback('m', { id: 'a', reward: 0.5, extra: 1 })).toThrow(/unknown field "extra"/);
    s.table.feedback('m', { id: 'a', reward: 0.5 });
    expect(() => s.table.feedback('m', { id: 'a', reward: 0.5 })).toThrow(/no recent request with id "a"/);
    const t = await setup([1], {});
    expect(() => t.table.feedback('m', { id: 'a', reward: 1 })).toThrow(/has no bandit/);
  });

  it('is validated with the policy: at least two distinct versions, epsilon 0..1, not with weights', async () => {
    const s = await setup([1, 2], {});
    await expect(s.table.update('m', { bandit: { versions: ['1'] } })).rejects.toThrow(/bandit\.versions must be a list of 2 to 16 versions/);
    await expect(s.table.update('m', { bandit: { versions: ['1', '1'] } })).rejects.toThrow(/listed twice/);
    await expect(s.table.update('m', { bandit: { versions: ['1', '2'], epsilon: 2 } })).rejects.toThrow(/epsilon must be a number from 0 to 1/);
    await expect(s.table.update('m', { weights: { '1': 100 }, bandit: { versions: ['1', '2'] } })).rejects.toThrow(/leave weights out/);
  });

  it('takes feedback over HTTP: 200 naming the version, 404 for an unknown id', async () => {
    const s = await setup([1, 2], { routing: { bandit: { versions: ['1', '2'], epsilon: 0 } } });
    const server: RunningServer = await startServer(s.service, { host: '127.0.0.1', port: 0 });
    cleanups.push(() => server.close());
    const url = `http://127.0.0.1:${server.port}/v2/models/m`;
    const inferred = (await (await fetch(`${url}/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id: 'req-1', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: [0, 0, 0, 0] }] }) })).json()) as { id: string; model_version: string };
    expect(inferred.id).toBe('req-1');
    const feedback = (body: unknown) => fetch(`${url}/feedback`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }).then(async (r) => ({ status: r.status, body: (await r.json()) as Record<string, unknown> }));
    expect(await feedback({ id: 'req-1', reward: 0.25 })).toEqual({ status: 200, body: { id: 'req-1', version: inferred.model_version, reward: 0.25 } });
    const unknown = await feedback({ id: 'req-2', reward: 1 });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toMatch(/no recent request with id "req-2"/);
    expect((await feedback({ id: 'req-1', reward: -1 })).status).toBe(400);
    const view = (await (await fetch(`${url}/routing`)).json()) as { live: { bandit: { versions: Record<string, { reward_sum: number }> } } };
    expect(view.live.bandit.versions[inferred.model_version]!.reward_sum).toBe(0.25);
  });
});

describe('GET/POST /v2/models/{m}/routing', () => {
  it('replaces the policy live, loading the versions it names; 400 naming a version that does not exist or failed', async () => {
    const { dir: repo, cleanup } = tempDir('tw-routing-http-');
    cleanups.push(cleanup);
    for (const v of [1, 2, 3]) await publishVersioned(repo, 'm', v);
    await publishVersion(repo, 'm', 5, (dir) => writeCorruptModel(`${dir}/model.onnx`));
    writeConfig(repo, 'm', { version_policy: { specific: { versions: [3] } } });
    const service = await createInferenceService({ repository: repo, modelControl: 'none', drainMs: 1000, log: () => undefined });
    await service.initialLoad;
    const server: RunningServer = await startServer(service, { host: '127.0.0.1', port: 0 });
    cleanups.push(async () => {
      await server.close();
      await service.shutdown();
    });
    const base = `http://127.0.0.1:${server.port}/v2/models/m/routing`;
    const post = (body: unknown) => fetch(base, { method: 'POST', body: JSON.stringify(body) }).then(async (r) => ({ status: r.status, body: (await r.json()) as RoutingAnswer }));

    const none = await (await fetch(base)).json();
    expect(none).toMatchObject({ policy: null, live: { state: 'active' } });

    const missing = await post({ weights: { '3': 90, '9': 10 } });
    expect(missing.status).toBe(400);
    expect(missing.body.error).toMatch(/version 9 does not exist/);
    const failed = await post({ weights: { '3': 90, '5': 10 } });
    expect(failed.status).toBe(400);
    expect(failed.body.error).toMatch(/version 5 does not serve/);
    const invalid = await post({ weights: { '3': 900 } });
    expect(invalid.status).toBe(400);
    expect(invalid.body.error).toMatch(/weights\.3 must be an integer from 0 to 100/);

    const ok = await post({ weights: { '3': 95, '2': 5 }, labels: { stable: '3' } });
    expect(ok.status).toBe(200);
    expect(ok.body.live.split).toEqual({ '2': 5, '3': 95 });
    // Version 2 was loaded for the policy although the version policy selects only 3.
    expect(service.servingVersions('m')).toEqual([2, 3]);
    const read = (await (await fetch(base)).json()) as RoutingAnswer;
    expect(read.policy).toEqual({ weights: { '3': 95, '2': 5 }, labels: { stable: '3' } });
    expect(read.live.events.at(-1)).toMatchObject({ kind: 'policy' });

    // An empty policy turns routing off; version 2 is let go again.
    expect((await post({})).status).toBe(200);
    await waitFor(() => service.servingVersions('m').join() === '3', 5000, 'version 2 retired');
    expect((await fetch(`http://127.0.0.1:${server.port}/v2/models/nope/routing`)).status).toBe(404);
  });

  it('the server registers the routing stage: a stream request follows the split', async () => {
    const { dir: repo, cleanup } = tempDir('tw-routing-stream-');
    cleanups.push(cleanup);
    for (const v of [1, 2]) await publishVersioned(repo, 'm', v);
    // Without the policy the latest version (2) would answer.
    writeConfig(repo, 'm', { routing: { weights: { '1': 100, '2': 0 } } });
    const service = await createInferenceService({ repository: repo, modelControl: 'none', drainMs: 1000, log: () => undefined });
    await service.initialLoad;
    const server = await startServer(service, { host: '127.0.0.1', port: 0 });
    const client = await StreamClient.connect(`http://127.0.0.1:${server.port}`);
    cleanups.push(async () => {
      await client.close();
      await server.close();
      await service.shutdown();
    });
    for (let i = 0; i < 5; i++) {
      const r = await client.infer('m', { x: { datatype: 'FP32', shape: [1, 4], data: [0, 0, 0, 0] } });
      expect(r.modelVersion).toBe('1');
      expect(Array.from(r.outputs['y']!.data as Float32Array)).toEqual([1, 1, 1, 1]);
    }
  });

  it('HTTP follows the split and the sticky key header, and serves /labels/{label}/infer', async () => {
    const { dir: repo, cleanup } = tempDir('tw-routing-http-');
    cleanups.push(cleanup);
    for (const v of [1, 2]) await publishVersioned(repo, 'm', v);
    writeConfig(repo, 'm', { routing: { weights: { '1': 50, '2': 50 }, route_key: 'header:x-tensorwire-route-key', labels: { stable: '1', canary: '2' } } });
    const service = await createInferenceService({ repository: repo, modelControl: 'none', drainMs: 1000, log: () => undefined });
    await service.initialLoad;
    const server = await startServer(service, { host: '127.0.0.1', port: 0 });
    cleanups.push(async () => {
      await server.close();
      await service.shutdown();
    });
    const base = `http://127.0.0.1:${server.port}`;
    const body = JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: [0, 0, 0, 0] }] });
    const post = async (path: string, headers: Record<string, string> = {}) => {
      const res = await fetch(`${base}${path}`, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } });
      return { status: res.status, json: (await res.json()) as { model_version?: string; outputs?: { data: number[] }[]; code?: string } };
    };
    for (const [label, version] of [['stable', '1'], ['canary', '2']] as const) {
      const r = await post(`/v2/models/m/labels/${label}/infer`);
      expect(r.status).toBe(200);
      expect(r.json.model_version).toBe(version);
      expect(r.json.outputs![0]!.data).toEqual([Number(version), Number(version), Number(version), Number(version)]);
    }
    expect((await post('/v2/models/m/labels/nope/infer')).json.code).toBe('NOT_FOUND');
    // One key, one version, every time; across keys both versions answer.
    const byKey = new Map<string, Set<string>>();
    for (let i = 0; i < 60; i++) {
      const key = `user-${i % 12}`;
      const r = await post('/v2/models/m/infer', { 'x-tensorwire-route-key': key });
      expect(r.status).toBe(200);
      byKey.set(key, (byKey.get(key) ?? new Set()).add(r.json.model_version!));
    }
    expect([...byKey.values()].every((versions) => versions.size === 1)).toBe(true);
    expect(new Set([...byKey.values()].flatMap((v) => [...v]))).toEqual(new Set(['1', '2']));
  });
});
