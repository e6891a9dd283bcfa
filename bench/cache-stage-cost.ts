/**
 * What the response cache stage itself costs per request, on the JS thread, without any
 * inference: the stage over a stand-in core whose `next` answers at once with a 16-float
 * output (the small MLP's). Misses are never-seen inputs (each hashed, looked up, and stored
 * or not as the stage decides); hits repeat one of 64 inputs. CPU time per request is the
 * number to compare between builds (on a shared box, compare medians of several runs).
 *
 *   npx tsc -p tsconfig.json && node dist/bench/cache-stage-cost.js [-- --requests 200000 --runs 5]
 */
import { parseArgs } from 'node:util';
import { Registry } from 'prom-client';
import { cacheStage, type CacheableVersion } from '../lib/cache/cache-stage';
import { ResponseCache } from '../lib/cache/response-cache';
import { createRequestContext } from '../lib/frontdoor/request-context';
import type { InferCall } from '../lib/frontdoor/types';
import type { InferResponse } from '../lib/protocol/types';
import { mlpRequest } from './inprocess-load';
import { median } from './paired-rounds';
import { formatTable } from './table';

const { values: args } = parseArgs({ options: { requests: { type: 'string', default: '100000' }, runs: { type: 'string', default: '5' } } });
const REQUESTS = Number(args.requests);
const RUNS = Number(args.runs);

const version: CacheableVersion = {
  version: 1,
  baseConfig: { response_cache: { enable: true } } as CacheableVersion['baseConfig'],
  effective: { maxBatchSize: 8 },
  stats: { recordCacheHit: () => undefined, recordCacheMiss: () => undefined },
};
const output = new Uint8Array(64);
const answer: InferResponse = { modelName: 'm', modelVersion: '1', outputs: [{ name: 'output', datatype: 'FP32', shape: [1, 16], data: output, binary: true }] };
const next = (): Promise<InferResponse> => Promise.resolve({ ...answer, outputs: [{ ...answer.outputs[0]!, data: output.slice() }] });

async function run(kind: 'miss' | 'hit', seedBase: number): Promise<number> {
  const stage = cacheStage(new ResponseCache(), { admit: () => version, registry: new Registry() });
  const context = createRequestContext('http', '127.0.0.1', {});
  const signal = new AbortController().signal;
  // Requests built before timing: only the stage is measured.
  const requests = Array.from({ length: kind === 'hit' ? 64 : REQUESTS }, (_, i) => mlpRequest(256, seedBase + i));
  const call = (i: number): InferCall => ({ model: 'm', version: undefined, request: requests[i % requests.length]!, context, signal });
  if (kind === 'hit') for (let i = 0; i < 64; i++) for (let k = 0; k < 3; k++) await stage(call(i), next);
  const cpu = process.cpuUsage();
  for (let i = 0; i < REQUESTS; i++) await stage(call(i), next);
  const used = process.cpuUsage(cpu);
  return ((used.user + used.system) * 1000) / REQUESTS; // ns per request
}

async function main(): Promise<void> {
  const miss: number[] = [];
  const hit: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    miss.push(await run('miss', 1_000_000 * (r + 1)));
    hit.push(await run('hit', 1));
  }
  console.log(`cache stage alone, ${REQUESTS} requests a run, ${RUNS} runs; CPU ns per request (median, min)`);
  console.log(formatTable(['request', 'median ns', 'min ns'], [['miss (never seen)', median(miss), Math.min(...miss)], ['hit', median(hit), Math.min(...hit)]]));
}

void main();
