/**
 * A closed-loop load through the front door, in-process (no sockets): what the routing and
 * cache benchmarks measure is the stages and the core, not HTTP. The front door carries the
 * same stages server.ts registers (routing, then the response cache).
 */
import { ResponseCache } from '../lib/cache/response-cache';
import { cacheStage } from '../lib/cache/cache-stage';
import { createInferenceService, type TensorwireService } from '../lib/core/service';
import { FrontDoor } from '../lib/frontdoor/front-door';
import { createRequestContext } from '../lib/frontdoor/request-context';
import type { InferRequest } from '../lib/protocol/types';
import { RoutingTable } from '../lib/routing/routing-table';
import { routingStage } from '../lib/routing/routing-stage';

/** A service over `repo` and a front door with the routing and cache stages. */
export async function serveInProcess(repo: string, cacheBytes = 256 * 1024 * 1024): Promise<{ service: TensorwireService; door: FrontDoor; cache: ResponseCache }> {
  const service = await createInferenceService({ repository: repo, modelControl: 'none', log: () => undefined });
  await service.initialLoad;
  const door = new FrontDoor({ service });
  door.use(routingStage(new RoutingTable(service, { log: () => undefined })));
  const cache = new ResponseCache(cacheBytes);
  door.use(cacheStage(cache, service));
  return { service, door, cache };
}

/** What one run measured. */
export interface LoadResult {
  requests: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** Process CPU time (every thread: JS and ONNX Runtime's) per answered request, µs. */
  cpuUsPerRequest?: number;
}

/** `concurrency` callers, each sending its next request when the previous one answered, for `seconds`. */
export async function closedLoop(door: FrontDoor, model: string, nextRequest: () => InferRequest, seconds: number, concurrency: number): Promise<LoadResult> {
  const latencies: number[] = [];
  const context = createRequestContext('http', '127.0.0.1', {});
  const end = performance.now() + seconds * 1000;
  const start = performance.now();
  const cpu = process.cpuUsage();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      // One signal per caller: its requests run one at a time, so listeners never pile up.
      const signal = new AbortController().signal;
      while (performance.now() < end) {
        const t = performance.now();
        await door.infer({ model, version: undefined, request: nextRequest(), context, signal });
        latencies.push(performance.now() - t);
      }
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  const used = process.cpuUsage(cpu);
  latencies.sort((a, b) => a - b);
  const at = (q: number): number => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
  return { requests: latencies.length, rps: latencies.length / elapsed, p50Ms: at(0.5), p99Ms: at(0.99), cpuUsPerRequest: (used.user + used.system) / Math.max(1, latencies.length) };
}

/** One MLP request (batch 1) of `dim` floats filled from `seed`. */
export function mlpRequest(dim: number, seed: number): InferRequest {
  const x = new Float32Array(dim);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < dim; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    x[i] = s / 2 ** 32 - 0.5;
  }
  return { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, dim], data: new Uint8Array(x.buffer) }], binaryDataOutput: true, parameters: {} };
}
