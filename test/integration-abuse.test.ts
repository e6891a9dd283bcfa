/**
 * The abuse suite (issue 13): every class of hostile input in test/helpers/abuse-cases.ts is
 * thrown at a real `tensorwire serve` child process, over HTTP, the stream and the control
 * routes, `TW_ABUSE_ROUNDS` times (`npm run test:abuse` runs many rounds, several in
 * parallel). Throughout: the process lives, each request gets one well-formed answer with a
 * status the case allows, RSS stays under a bound, and a liveness probe from another thread
 * keeps answering fast. Afterwards a valid request is answered exactly as before.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mlpModel } from './fixtures/models';
import { node, writeModel, initializer } from './fixtures/onnx-builder';
import { ABUSE_CASES, type AbuseAnswer } from './helpers/abuse-cases';
import { cleanUpClis, spawnCli, type Cli } from './helpers/cli-process';
import { tempDir } from './helpers/engine-run';
import { quantile, watchHealth } from './helpers/health-watch';

const ROUNDS = Number(process.env.TW_ABUSE_ROUNDS ?? 1);
const PARALLEL = Number(process.env.TW_ABUSE_PARALLEL ?? 1);
/** The server's RSS must stay under this (the largest legal body is 64 MiB). */
const RSS_BOUND_BYTES = 1.5 * 1024 ** 3;

let cli: Cli;
let cleanup: () => void;

/** y = Expand(1x1 ones, shape): an output whose size is chosen by an input's values. */
function expandModel(dir: string): string {
  return writeModel(join(dir, 'model.onnx'), {
    inputs: [{ name: 'shape', type: 'INT64', dims: [2] }],
    outputs: [{ name: 'y', type: 'FP32', dims: ['H', 'W'] }],
    initializers: [initializer('one', 'FP32', [1, 1], Float32Array.of(1))],
    nodes: [node('Expand', ['one', 'shape'], ['y'])],
  });
}

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

beforeAll(async () => {
  const repo = tempDir('tw-abuse-');
  cleanup = repo.cleanup;
  const { mkdirSync } = await import('node:fs');
  mkdirSync(join(repo.dir, 'mlp', '1'), { recursive: true });
  await mlpModel(join(repo.dir, 'mlp', '1'), { file: 'model.onnx', inputDim: 8, hidden: 16, outputDim: 2 });
  mkdirSync(join(repo.dir, 'expand', '1'), { recursive: true });
  expandModel(join(repo.dir, 'expand', '1'));
  cli = await spawnCli(repo.dir, ['--model-control', 'explicit', '--load-model', 'mlp', '--load-model', 'expand', '--stream-feed', 'on']);
}, 60_000);

afterAll(() => {
  cleanUpClis();
  cleanup?.();
});

const VALID = { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 8], data: [1, 2, 3, 4, 5, 6, 7, 8] }] };

async function inferValid(base: string): Promise<unknown> {
  const res = await fetch(`${base}/v2/models/mlp/infer`, { method: 'POST', body: JSON.stringify(VALID), headers: { 'content-type': 'application/json' } });
  expect(res.status).toBe(200);
  return res.json();
}

/** A failure is one JSON body (HTTP) or frame (stream) with an `error` string and no stack trace. */
function expectWellFormed(name: string, answer: AbuseAnswer, allowed: readonly number[]): void {
  expect(allowed, `${name}: got ${answer.status} ${answer.body.slice(0, 300)}`).toContain(answer.status);
  if (answer.status === 200 || answer.body.startsWith('closed ')) return;
  const json = answer.body.startsWith('HTTP/') ? answer.body.slice(answer.body.indexOf('\r\n\r\n') + 4) : answer.body;
  const parsed = JSON.parse(json) as { error?: unknown };
  expect(typeof parsed.error, `${name}: ${json.slice(0, 300)}`).toBe('string');
  expect(parsed.error as string).not.toMatch(/\n\s+at /);
  // Echoed client text is truncated: no answer carries megabytes of the request back.
  expect(json.length, `${name}: answer of ${json.length} bytes`).toBeLessThan(4096);
}

describe('abuse: hostile requests against a live server', () => {
  it(`every case, ${ROUNDS} round(s) x ${PARALLEL} in parallel: one well-formed answer each, the process lives, RSS bounded, liveness fast`, async () => {
    const before = await inferValid(cli.base);
    const watch = watchHealth(`${cli.base}/v2/health/live`);
    let peakRss = 0;
    const rssTimer = setInterval(() => {
      peakRss = Math.max(peakRss, rssBytes(cli.child.pid!));
    }, 50);
    const failures: string[] = [];
    const timings: string[] = [];
    try {
      for (let round = 0; round < ROUNDS; round++) {
        await Promise.all(Array.from({ length: PARALLEL }, async () => {
          for (const c of ABUSE_CASES) {
            const t0 = performance.now();
            const answer = await c.send(cli.base).catch((e: unknown): AbuseAnswer => ({ status: 0, body: `client error: ${String((e as Error).cause ?? e)}` }));
            timings.push(`${(performance.now() - t0).toFixed(0).padStart(7)} ms  ${answer.status}  ${c.name}`);
            try {
              expectWellFormed(c.name, answer, c.expect);
            } catch (e) {
              failures.push(`${c.name}: ${(e as Error).message.split('\n')[0]}`);
            }
            expect(cli.child.exitCode, `the server died on: ${c.name}\n${cli.output.slice(-20).join('\n')}`).toBeNull();
          }
        }));
      }
    } finally {
      clearInterval(rssTimer);
    }
    const health = await watch.stop();
    if (process.env.TW_ABUSE_VERBOSE) console.log(timings.join('\n'));
    expect(failures, failures.join('\n')).toEqual([]);
    expect(health.failures).toBe(0);
    expect(peakRss).toBeLessThan(RSS_BOUND_BYTES);
    // 100 ms is the target; on 2 cores shared with the rest of the suite, allow rare outliers.
    expect(quantile(health.latencies, 0.99), `liveness p99 over ${health.latencies.length} probes`).toBeLessThan(100);
    expect(Math.max(...health.latencies)).toBeLessThan(1000);
    expect(await inferValid(cli.base)).toEqual(before);
  }, 600_000);
});
