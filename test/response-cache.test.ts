/**
 * The response cache on real models (y = x + version): hits byte-identical to misses and not
 * executions, keyed by inputs and requested outputs, never stale across a hot swap, bounded
 * by its byte budget, and off for models that do not enable it and for large requests.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { cacheStage } from '../lib/cache/cache-stage';
import { MAX_CACHEABLE_INPUT_BYTES } from '../lib/cache/request-key';
import { ResponseCache } from '../lib/cache/response-cache';
import { createInferenceService, type TensorwireService } from '../lib/core/service';
import type { ModelStatistics } from '../lib/core/types';
import { FrontDoor } from '../lib/frontdoor/front-door';
import { createRequestContext } from '../lib/frontdoor/request-context';
import type { InferRequest, InferResponse } from '../lib/protocol/types';
import { parseConfigPbtxt } from '../lib/repository';
import { StreamClient } from '../lib/client/stream-client';
import { startServer } from '../lib/server/server';
import { versionedModel } from './fixtures/models';
import { tempDir } from './helpers/engine-run';
import { float32, publishVersion, publishVersioned, rowsRequest, waitFor, writeConfig } from './helpers/hotswap';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

interface Setup {
  repo: string;
  service: TensorwireService;
  cache: ResponseCache;
  door: FrontDoor;
}

async function setup(config: Record<string, unknown>, budget = 1024 * 1024): Promise<Setup> {
  const { dir: repo, cleanup } = tempDir('tw-cache-');
  cleanups.push(cleanup);
  await publishVersioned(repo, 'm', 1);
  writeConfig(repo, 'm', config);
  const service = await createInferenceService({ repository: repo, modelControl: 'poll', pollMs: 50, drainMs: 1000, log: () => undefined });
  cleanups.push(() => service.shutdown());
  await service.initialLoad;
  const cache = new ResponseCache(budget);
  const door = new FrontDoor({ service });
  door.use(cacheStage(cache, service));
  return { repo, service, cache, door };
}

function infer(s: Setup, request: InferRequest, version?: string): Promise<InferResponse> {
  return s.door.infer({ model: 'm', version, request, context: createRequestContext('http', '127.0.0.1', {}), signal: new AbortController().signal });
}

const bytes = (r: InferResponse): Buffer => Buffer.from(r.outputs[0]!.data);

describe('response cache', () => {
  it('answers a repeated request from the cache, byte-identical, without executing', async () => {
    const s = await setup({ response_cache: { enable: true } });
    const miss = await infer(s, rowsRequest(3, 5));
    await infer(s, rowsRequest(3, 5)); // seen before: now stored (admission.ts)
    const hit = await infer(s, rowsRequest(3, 5));
    expect(bytes(hit).equals(bytes(miss))).toBe(true);
    expect(hit.outputs[0]!.shape).toEqual([3, 4]);
    expect(hit.modelVersion).toBe('1');
    expect(Array.from(float32(hit.outputs[0]!.data).slice(0, 4))).toEqual([6, 6, 6, 6]);
    const stats = s.service.statistics('m', '1')[0]!;
    expect(stats.inference_stats.cache_hit!.count).toBe(1);
    expect(stats.inference_stats.cache_miss!.count).toBe(2);
    expect(stats.inference_stats.success.count).toBe(3);
    expect(stats.inference_count).toBe(9);
    expect(stats.execution_count).toBe(2); // a hit is not an execution
    const text = await s.service.registry.metrics();
    expect(text).toMatch(/tensorwire_cache_lookups_total\{model="m",version="1",result="hit"\} 1/);
    expect(text).toMatch(/tensorwire_cache_entries 1/);
  });

  it('keys on the input bytes, shape and the requested outputs', async () => {
    const s = await setup({ response_cache: { enable: true } });
    // Each twice: the second is stored (admission.ts), and none hits another's entry.
    for (let i = 0; i < 2; i++) {
      await infer(s, rowsRequest(2, 1));
      await infer(s, rowsRequest(2, 2)); // other bytes
      await infer(s, rowsRequest(1, 1)); // other shape
      const asJson = { ...rowsRequest(2, 1), binaryDataOutput: false };
      const answer = await infer(s, asJson); // other binary flag: the answer is encoded differently
      expect(answer.outputs[0]!.binary).toBe(false);
      await infer(s, { ...rowsRequest(2, 1), outputs: [{ name: 'y', binary: true }] });
    }
    expect(s.service.statistics('m', '1')[0]!.inference_stats.cache_hit!.count).toBe(0);
    expect(s.cache.size).toBe(5);
  });

  it('never serves an answer of files that were swapped out', async () => {
    const s = await setup({ response_cache: { enable: true }, version_policy: { all: {} } });
    expect(float32((await infer(s, rowsRequest(1, 0))).outputs[0]!.data)[0]).toBe(1);
    expect(float32((await infer(s, rowsRequest(1, 0))).outputs[0]!.data)[0]).toBe(1); // stored
    expect(float32((await infer(s, rowsRequest(1, 0))).outputs[0]!.data)[0]).toBe(1); // a hit
    // New files for version 1 (y = x + 7): the same version number, a new load.
    await publishVersion(s.repo, 'm', 1, (dir) => versionedModel(dir, 7));
    await waitFor(async () => float32((await infer(s, rowsRequest(1, 100))).outputs[0]!.data)[0] === 107, 10_000, 'the swap');
    const after = await infer(s, rowsRequest(1, 0));
    expect(float32(after.outputs[0]!.data)[0]).toBe(7);
    // A new version takes unversioned traffic: its answers are its own.
    await publishVersioned(s.repo, 'm', 2);
    await waitFor(() => s.service.servingVersions('m').includes(2), 10_000, 'version 2');
    const v2 = await infer(s, rowsRequest(1, 0));
    expect(v2.modelVersion).toBe('2');
    expect(float32(v2.outputs[0]!.data)[0]).toBe(2);
  });

  it('is off for models that do not enable it, and for requests over the size bound', async () => {
    const off = await setup({});
    await infer(off, rowsRequest(1, 0));
    await infer(off, rowsRequest(1, 0));
    expect(off.cache.size).toBe(0);
    expect(off.service.statistics('m', '1')[0]!.execution_count).toBe(2);
    const on = await setup({ response_cache: { enable: true }, max_batch_size: 0 });
    const rows = Math.floor(MAX_CACHEABLE_INPUT_BYTES / 16) + 1;
    await infer(on, rowsRequest(rows, 0));
    await infer(on, rowsRequest(rows, 0));
    expect(on.cache.size).toBe(0);
    expect(on.service.statistics('m', '1')[0]!.inference_stats.cache_miss!.count).toBe(0);
  });

  it('the server registers the cache stage (stream requests hit it; /stats shows cache_hit)', async () => {
    const s = await setup({ response_cache: { enable: true } });
    const server = await startServer(s.service, { host: '127.0.0.1', port: 0, cacheBytes: 1024 * 1024 });
    const client = await StreamClient.connect(`http://127.0.0.1:${server.port}`);
    cleanups.push(async () => {
      await client.close();
      await server.close();
    });
    for (let i = 0; i < 4; i++) await client.infer('m', { x: { datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] } });
    const stats = (await (await fetch(`http://127.0.0.1:${server.port}/v2/models/m/stats`)).json()) as { model_stats: ModelStatistics[] };
    expect(stats.model_stats[0]!.inference_stats.cache_hit!.count).toBe(2);
    expect(stats.model_stats[0]!.inference_stats.cache_miss!.count).toBe(2);
    expect(stats.model_stats[0]!.execution_count).toBe(2);
  });

  it('stores an answer only once its input was seen before: never-repeated requests leave nothing behind', async () => {
    const s = await setup({ response_cache: { enable: true } });
    for (let i = 0; i < 50; i++) await infer(s, rowsRequest(1, 1000 + i));
    expect(s.cache.size).toBe(0);
    expect(s.cache.bytes).toBe(0);
    const first = await infer(s, rowsRequest(1, 7));
    const second = await infer(s, rowsRequest(1, 7));
    expect(s.cache.size).toBe(1);
    const third = await infer(s, rowsRequest(1, 7));
    expect(bytes(second).equals(bytes(first))).toBe(true);
    expect(bytes(third).equals(bytes(first))).toBe(true);
    const stats = s.service.statistics('m', '1')[0]!.inference_stats;
    expect(stats.cache_hit!.count).toBe(1);
    expect(stats.cache_miss!.count).toBe(52);
  });

  it('reads response_cache from config.pbtxt', () => {
    expect(parseConfigPbtxt('response_cache { enable: true }').response_cache).toEqual({ enable: true });
  });
});

describe('ResponseCache (LRU within a byte budget)', () => {
  const out = (n: number) => [{ name: 'y', datatype: 'UINT8' as const, shape: [n], data: new Uint8Array(n), binary: true }];
  it('evicts the least recently used entries to stay within the budget', () => {
    const cache = new ResponseCache(16 * 1024);
    for (let i = 0; i < 20; i++) expect(cache.put(`k${i}`, '1', out(1000))).toBe(true);
    expect(cache.bytes).toBeLessThanOrEqual(16 * 1024);
    expect(cache.get('k0')).toBeUndefined();
    expect(cache.get('k19')).toBeDefined();
    expect(cache.evictions).toBeGreaterThan(0);
    // Touching an entry keeps it: k10 survives the next insertions, k11 does not.
    const survivor = [...Array(20).keys()].map((i) => `k${i}`).find((k) => cache.get(k) !== undefined)!;
    cache.get(survivor);
    for (let i = 20; i < 30; i++) cache.put(`k${i}`, '1', out(1000));
    expect(cache.get(survivor)).toBeDefined();
    // An answer over an eighth of the budget is not stored.
    expect(cache.put('big', '1', out(4000))).toBe(false);
  });

  it('stores copies: changing the answer afterwards does not change the cache', () => {
    const cache = new ResponseCache();
    const o = out(4);
    cache.put('k', '1', o);
    o[0]!.data[0] = 9;
    expect(cache.get('k')!.outputs[0]!.data[0]).toBe(0);
  });
});
