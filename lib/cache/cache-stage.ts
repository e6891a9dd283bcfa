/**
 * The front door's response cache stage (Triton's `response_cache { enable: true }`): for a
 * model whose config enables it, a request whose answer is cached is answered at once (no
 * queueing, no inference, not an execution); a miss runs as usual and its answer is stored.
 *
 * Staleness: the key holds the serving version's number and load generation (one per
 * loaded version object: a swap to new files, a reload or an unload and load again is a new
 * generation), so an old answer is never served; old entries simply age out of the LRU.
 * Errors are never cached. Register it after the routing stage, so the version is chosen.
 */
import type { Registry } from 'prom-client';
import { Gauge } from 'prom-client';
import type { ModelConfig } from '../repository/config';
import type { InferStage } from '../frontdoor/types';
import type { InferRequest, InferResponse } from '../protocol/types';
import { CounterFamily, HistogramFamily, type CounterCell, type HistogramCell } from '../metrics/families';
import { DURATION_BUCKETS_S } from '../metrics/registry';
import { Doorkeeper } from './admission';
import { requestKey } from './request-key';
import type { CachedAnswer, ResponseCache } from './response-cache';

/** What the stage needs of a serving version (lib/core's ModelVersion has it). */
export interface CacheableVersion {
  readonly version: number;
  readonly baseConfig: ModelConfig | undefined;
  readonly effective?: { readonly maxBatchSize: number } | undefined;
  readonly stats: { recordCacheHit(samples: number, us: number): void; recordCacheMiss(us: number): void };
}

/** What the stage needs of the core: the version that would serve a request (throws when none). */
export interface CacheCore {
  admit(name: string, version?: string): CacheableVersion;
  readonly registry?: Registry;
}

/** True when `service` can back the cache stage (TensorwireService can). */
export function isCacheCore(service: object): service is CacheCore {
  return typeof (service as Partial<CacheCore>).admit === 'function';
}

interface CacheCells {
  hit: CounterCell;
  miss: CounterCell;
  hitTime: HistogramCell;
  missTime: HistogramCell;
}

export interface CacheFamilies {
  lookups: CounterFamily;
  duration: HistogramFamily;
  /** The cache the gauges read (the latest stage's: one per server). */
  holder: { cache: ResponseCache };
}

const byRegistry = new WeakMap<Registry, CacheFamilies>();

/** The cache's families on `registry` (registered once per registry; the gauges read `cache`). */
export function cacheMetrics(registry: Registry, cache: ResponseCache): CacheFamilies {
  let f = byRegistry.get(registry);
  if (f === undefined) {
    const holder = { cache };
    f = {
      lookups: new CounterFamily('tensorwire_cache_lookups_total', 'Response cache lookups, by result (hit, miss).', ['model', 'version', 'result']).registerWith(registry),
      duration: new HistogramFamily('tensorwire_cache_duration_seconds', 'Time of a cache lookup (hit), or of a lookup and the insertion (miss; the inference not included).', ['model', 'version', 'result'], DURATION_BUCKETS_S).registerWith(registry),
      holder,
    };
    new Gauge({ name: 'tensorwire_cache_bytes', help: 'Bytes the response cache holds (budget: --cache-bytes).', registers: [registry], collect() { this.set(holder.cache.bytes); } });
    new Gauge({ name: 'tensorwire_cache_entries', help: 'Answers the response cache holds.', registers: [registry], collect() { this.set(holder.cache.size); } });
    new Gauge({ name: 'tensorwire_cache_evictions', help: 'Answers evicted from the response cache since start (least recently used first).', registers: [registry], collect() { this.set(holder.cache.evictions); } });
    byRegistry.set(registry, f);
  }
  f.holder.cache = cache;
  return f;
}

/** The stage over `cache`; register with `frontDoor.use(cacheStage(cache, service))`. */
export function cacheStage(cache: ResponseCache, core: CacheCore): InferStage {
  const generations = new WeakMap<CacheableVersion, number>();
  let nextGeneration = 1;
  const generationOf = (v: CacheableVersion): number => {
    let g = generations.get(v);
    if (g === undefined) generations.set(v, (g = nextGeneration++));
    return g;
  };
  // Registered on the first lookup: a server where no model enables the cache exposes no cache series.
  let families: CacheFamilies | undefined;
  // Per version object: no key string built per request.
  const cells = new WeakMap<CacheableVersion, CacheCells | null>();
  const cellsOf = (model: string, v: CacheableVersion): CacheCells | undefined => {
    let c = cells.get(v);
    if (c !== undefined) return c ?? undefined;
    if (core.registry === undefined) c = null;
    else {
      families ??= cacheMetrics(core.registry, cache);
      const version = String(v.version);
      c = {
        hit: families.lookups.child(model, version, 'hit'),
        miss: families.lookups.child(model, version, 'miss'),
        hitTime: families.duration.child(model, version, 'hit'),
        missTime: families.duration.child(model, version, 'miss'),
      };
    }
    cells.set(v, c);
    return c ?? undefined;
  };
  const doorkeeper = new Doorkeeper();
  const recordMiss = (model: string, v: CacheableVersion, us: number): void => {
    v.stats.recordCacheMiss(us);
    const c = cellsOf(model, v);
    if (c !== undefined) {
      c.miss.inc();
      c.missTime.observe(us * 1e-6);
    }
  };

  return (call, next) => {
    let v: CacheableVersion;
    try {
      v = core.admit(call.model, call.version);
    } catch {
      return next(call); // the core answers why (404, 503) with its own accounting
    }
    if (v.baseConfig?.response_cache?.enable !== true) return next(call);
    const start = performance.now();
    const key = requestKey(call.model, v.version, generationOf(v), call.request);
    if (key === undefined) return next(call);
    const version = String(v.version);
    const hit = cache.get(key);
    if (hit !== undefined) {
      const us = (performance.now() - start) * 1000;
      v.stats.recordCacheHit(samplesOf(v, call.request), us);
      const c = cellsOf(call.model, v);
      if (c !== undefined) {
        c.hit.inc();
        c.hitTime.observe(us * 1e-6);
      }
      return Promise.resolve(answer(call.model, hit, call.request));
    }
    // Only an answer whose key was seen before is stored (admission.ts): a first sighting is
    // recorded now and needs nothing after the inference (no callback, no copy).
    if (!doorkeeper.admit(key)) {
      recordMiss(call.model, v, (performance.now() - start) * 1000);
      return next(call);
    }
    const lookupUs = (performance.now() - start) * 1000;
    return next(call).then((response) => {
      const t = performance.now();
      // Only the answer of the version the key names is stored (a swap in between: not stored).
      if (response.modelVersion === version) cache.put(key, version, response.outputs);
      recordMiss(call.model, v, lookupUs + (performance.now() - t) * 1000);
      return response;
    });
  };
}

/** Samples of a request (its batch dimension when the model batches), for inference_count. */
function samplesOf(v: CacheableVersion, request: InferRequest): number {
  return (v.effective?.maxBatchSize ?? 0) > 0 ? (request.inputs[0]?.shape[0] ?? 1) : 1;
}

/** A response from a cached answer: the outputs' bytes are the cache's (read-only), the rest is new. */
function answer(model: string, hit: CachedAnswer, request: InferRequest): InferResponse {
  const response: InferResponse = { modelName: model, modelVersion: hit.modelVersion, outputs: hit.outputs.map((o) => ({ ...o, shape: [...o.shape] })) };
  if (request.id !== undefined) response.id = request.id;
  return response;
}
