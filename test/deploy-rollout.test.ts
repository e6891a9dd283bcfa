/**
 * The rolling update of deploy/k8s, replayed with real parts (bench/rollout.ts, shortened):
 * two replicas behind Debian's HAProxy under continuous load, each replaced by a new one
 * (start, ready, into the load balancer, old one out, preStop wait, SIGTERM, drain). No request
 * may fail or get a wrong answer, and each old replica must exit 0 after draining. Without
 * the preStop wait requests do fail (the server answers 503 from SIGTERM on), which is why the
 * Deployment has one. Needs haproxy (.ci/run installs it); skipped with a notice without it.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { haproxyBinary } from '../bench/haproxy';
import type { RolloutResult } from '../bench/rollout-run';
import { ROOT, ensureBuilt } from './helpers/built-package';
import { tempDir } from './helpers/engine-run';

const run = promisify(execFile);
const haproxy = haproxyBinary();
if (!haproxy.path) console.warn(`test/deploy-rollout.test.ts skipped: ${haproxy.missing}`);

/** dist/bench is compiled by the same tsc run as dist/lib; rebuild when the rollout sources are newer. */
function ensureBenchBuilt(): void {
  ensureBuilt();
  const out = join(ROOT, 'dist', 'bench', 'rollout-run.js');
  const sources = ['rollout.ts', 'rollout-run.ts', 'haproxy.ts', 'serve-process.ts'].map((f) => statSync(join(ROOT, 'bench', f)).mtimeMs);
  const built = existsSync(out) ? statSync(out).mtimeMs : 0;
  if (built < Math.max(...sources)) execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.json'], { cwd: ROOT, stdio: 'pipe' });
}

async function rollout(extra: string[]): Promise<RolloutResult> {
  const { dir, cleanup } = tempDir('tw-rollout-test-');
  try {
    const json = join(dir, 'result.json');
    await run(process.execPath, [join(ROOT, 'dist', 'bench', 'rollout.js'), '--steady-ms', '1500', '--clients', '3', '--drain-timeout-ms', '5000', '--json', json, ...extra], { cwd: ROOT, timeout: 120_000 }).catch((e: { stdout?: string }) => {
      // Exit code 1 means failed requests; the result file says which, and the test asserts on it.
      if (!e.stdout?.includes('Rolling update')) throw e;
    });
    return JSON.parse(readFileSync(json, 'utf8')) as RolloutResult;
  } finally {
    cleanup();
  }
}

describe.skipIf(!haproxy.path)('rolling update behind HAProxy (bench/rollout)', () => {
  beforeAll(() => ensureBenchBuilt(), 180_000);

  it('replaces both replicas under load with no failed and no wrong request', async () => {
    const r = await rollout(['--pre-stop-ms', '1000']);
    expect(r.failures).toEqual([]);
    for (const p of r.phases) {
      expect(p.requests, p.phase).toBeGreaterThan(0);
      expect(p.failed, p.phase).toBe(0);
      expect(p.wrong, p.phase).toBe(0);
    }
    expect(r.exitCodes).toEqual([0, 0]);
  }, 150_000);

  it('without the preStop wait, requests sent between SIGTERM and the next health check fail', async () => {
    const r = await rollout(['--pre-stop-ms', '0', '--check-interval-ms', '1000']);
    const rolling = r.phases.find((p) => p.phase === 'rollout')!;
    expect(rolling.failed).toBeGreaterThan(0);
    expect(rolling.wrong).toBe(0);
    expect(r.failures.some((f) => f.includes('503'))).toBe(true);
  }, 150_000);
});
