/**
 * Rolling update under load, proven with real parts: two `tensorwire serve` replicas on
 * 127.0.0.1 behind Debian's HAProxy (health checks on /v2/health/ready), closed-loop clients
 * for the whole run, and both replicas replaced the way deploy/k8s's Deployment replaces pods
 * (bench/rollout-run.ts). Prints failed and wrong answers and latency before, during and after
 * the rollout. With --pre-stop-ms 0 it shows what happens without the preStop sleep.
 *
 *   npm run bench:rollout [-- --steady-ms 8000 --clients 4 --pre-stop-ms 1000 --drain-timeout-ms 10000 --json out.json]
 */
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { haproxyBinary } from './haproxy';
import { runRollout } from './rollout-run';
import { formatTable } from './table';

const { values: args } = parseArgs({
  options: {
    'steady-ms': { type: 'string', default: '8000' },
    clients: { type: 'string', default: '4' },
    'pre-stop-ms': { type: 'string', default: '1000' },
    'drain-timeout-ms': { type: 'string', default: '10000' },
    'check-interval-ms': { type: 'string', default: '200' },
    json: { type: 'string' },
  },
});

function bounded(name: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer in [${min}, ${max}], got '${value}'`);
  return n;
}

async function main(): Promise<void> {
  const bin = haproxyBinary();
  if (!bin.path) throw new Error(bin.missing);
  const o = {
    steadyMs: bounded('steady-ms', args['steady-ms'], 500, 60_000),
    clients: bounded('clients', args.clients, 1, 64),
    preStopMs: bounded('pre-stop-ms', args['pre-stop-ms'], 0, 30_000),
    drainTimeoutMs: bounded('drain-timeout-ms', args['drain-timeout-ms'], 100, 60_000),
    checkIntervalMs: bounded('check-interval-ms', args['check-interval-ms'], 50, 5000),
  };
  const result = await runRollout({ ...o, log: (l) => console.log(`  ${l}`) });
  console.log(
    `\nRolling update (bench/rollout): 2 replicas behind HAProxy, ${o.clients} clients, MLP 16-32-4, JSON batch 1, preStop ${o.preStopMs} ms, ` +
      `health check every ${o.checkIntervalMs} ms, node ${process.version}, ${cpus().length} cores, ${new Date().toISOString().slice(0, 10)}\n`,
  );
  console.log(
    formatTable(
      ['phase', 'requests', 'req/s', 'failed', 'wrong', 'p50 ms', 'p99 ms', 'max ms'],
      result.phases.map((p) => [p.phase === 'rollout' ? `rollout (${(result.rolloutMs / 1000).toFixed(1)} s)` : `steady ${p.phase}`, p.requests, p.reqPerSec, String(p.failed), String(p.wrong), p.p50Ms, p.p99Ms, p.maxMs]),
    ),
  );
  const steadyP99 = Math.max(result.phases[0]!.p99Ms, result.phases[2]!.p99Ms);
  console.log(`\np99 during the rollout / steady: ${(result.phases[1]!.p99Ms / steadyP99).toFixed(2)}x; replaced replicas exited with ${result.exitCodes.join(', ')}`);
  if (result.failures.length) console.log(`first failures:\n  ${result.failures.join('\n  ')}`);
  if (args.json) writeFileSync(args.json, JSON.stringify({ options: o, ...result }, null, 2));
  const bad = result.phases.reduce((n, p) => n + p.failed + p.wrong, 0);
  if (bad > 0 && o.preStopMs > 0) process.exitCode = 1;
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
