/**
 * A rolling update of tensorwire behind HAProxy under load, done the way a Kubernetes
 * Deployment with maxSurge 1 / maxUnavailable 0 and a preStop sleep does it (deploy/k8s):
 * for each old replica, start a new one, wait until it is ready, add it to the load balancer,
 * take the old one out of the load balancer (the endpoints update), wait the preStop time,
 * SIGTERM it and let it drain. Closed-loop clients run throughout; every answer is checked
 * against the model computed in JS, so a lost request and a wrong answer are both counted.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mlpModel, mlpReference, mlpWeights } from '../test/fixtures/models';
import { seededRandom } from '../test/fixtures/random';
import { startHaproxy, type Haproxy } from './haproxy';
import { startTensorwire, type ServerProcess } from './serve-process';

export interface RolloutOptions {
  /** Load before and after the rollout, each, in ms. */
  steadyMs: number;
  /** Closed-loop clients (each one request at a time). */
  clients: number;
  /** The preStop sleep: time between leaving the load balancer and SIGTERM. 0 = SIGTERM at once. */
  preStopMs: number;
  /** The replicas' --drain-timeout-ms. */
  drainTimeoutMs: number;
  /** HAProxy's health check interval (the readiness probe's period). */
  checkIntervalMs: number;
  log?: (line: string) => void;
}

/** What one phase of the run measured. */
export interface PhaseStats {
  phase: 'before' | 'rollout' | 'after';
  requests: number;
  failed: number;
  wrong: number;
  reqPerSec: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface RolloutResult {
  phases: PhaseStats[];
  rolloutMs: number;
  /** Exit codes of the replaced replicas (0: drained and exited cleanly). */
  exitCodes: (number | null)[];
  /** The first few failures, as the client saw them. */
  failures: string[];
}

const MLP = { inputDim: 16, hidden: 32, outputDim: 4, seed: 11 };
const MODEL = 'mlp';

interface Sample {
  start: number;
  ms: number;
  failed: boolean;
  wrong: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitStatus(lb: Haproxy, slot: string, want: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = await lb.serverStatus(slot);
    if (status.startsWith(want)) return;
    if (Date.now() > deadline) throw new Error(`HAProxy slot ${slot} is ${status}, not ${want}, after ${timeoutMs} ms`);
    await sleep(20);
  }
}

function quantile(sorted: number[], q: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

function phaseStats(phase: PhaseStats['phase'], samples: Sample[], from: number, to: number): PhaseStats {
  const inPhase = samples.filter((s) => s.start >= from && s.start < to);
  const ms = inPhase.map((s) => s.ms).sort((a, b) => a - b);
  return {
    phase,
    requests: inPhase.length,
    failed: inPhase.filter((s) => s.failed).length,
    wrong: inPhase.filter((s) => s.wrong).length,
    reqPerSec: inPhase.length / ((to - from) / 1000),
    p50Ms: quantile(ms, 0.5),
    p99Ms: quantile(ms, 0.99),
    maxMs: ms.length ? ms[ms.length - 1]! : 0,
  };
}

/** One client: requests back to back until `running()` is false, each answer checked. */
async function client(url: string, id: number, running: () => boolean, samples: Sample[], failures: string[]): Promise<void> {
  const w = mlpWeights(MLP);
  const random = seededRandom(1000 + id);
  while (running()) {
    // Values with 3 decimals survive JSON exactly; the reference is computed from the same numbers.
    const input = Array.from({ length: MLP.inputDim }, () => Math.round((random() * 2 - 1) * 1000) / 1000);
    const start = performance.now();
    let failed = false;
    let wrong = false;
    try {
      const res = await fetch(`${url}/v2/models/${MODEL}/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, MLP.inputDim], data: input }] }),
      });
      const text = await res.text();
      if (res.status !== 200) {
        failed = true;
        if (failures.length < 10) failures.push(`HTTP ${res.status}: ${text.slice(0, 120)}`);
      } else {
        const got = (JSON.parse(text) as { outputs: { data: number[] }[] }).outputs[0]!.data;
        const expected = mlpReference(w, input);
        wrong = got.length !== expected.length || got.some((v, i) => Math.abs(v - expected[i]!) > 1e-4 * (1 + Math.abs(expected[i]!)));
        if (wrong && failures.length < 10) failures.push(`wrong answer: ${JSON.stringify(got)} for ${JSON.stringify(Array.from(expected))}`);
      }
    } catch (e) {
      failed = true;
      if (failures.length < 10) failures.push(`request error: ${(e as Error).message} ${((e as Error).cause as Error | undefined)?.message ?? ''}`);
    }
    samples.push({ start, ms: performance.now() - start, failed, wrong });
  }
}

/** Runs the whole scenario; every process it starts is stopped before it returns or throws. */
export async function runRollout(o: RolloutOptions): Promise<RolloutResult> {
  const log = o.log ?? (() => undefined);
  const repo = mkdtempSync(join(tmpdir(), 'tw-rollout-'));
  const replicas: ServerProcess[] = [];
  let lb: Haproxy | undefined;
  let running = true;
  let clients: Promise<void>[] = [];
  try {
    await mlpModel(join(repo, MODEL, '1'), { ...MLP, file: 'model.onnx' });
    const serveArgs = ['--repo', repo, '--model-control', 'none', '--drain-timeout-ms', String(o.drainTimeoutMs)];
    const start = async (): Promise<ServerProcess> => {
      const r = await startTensorwire(serveArgs);
      replicas.push(r);
      return r;
    };
    const [a, b] = await Promise.all([start(), start()]);
    lb = await startHaproxy({ slots: { r1: a!.port, r2: b!.port, r3: undefined, r4: undefined }, checkPath: '/v2/health/ready', checkIntervalMs: o.checkIntervalMs });
    await waitStatus(lb, 'r1', 'UP');
    await waitStatus(lb, 'r2', 'UP');
    log(`HAProxy ${lb.url} -> replicas :${a!.port} :${b!.port}`);

    const samples: Sample[] = [];
    const failures: string[] = [];
    const t0 = performance.now();
    clients = Array.from({ length: o.clients }, (_, i) => client(lb!.url, i, () => running, samples, failures));
    await sleep(o.steadyMs);

    const rolloutStart = performance.now();
    const exitCodes: (number | null)[] = [];
    for (const [old, oldSlot, newSlot] of [[a!, 'r1', 'r3'], [b!, 'r2', 'r4']] as const) {
      const fresh = await start();
      await lb.command(`set server tensorwire/${newSlot} addr 127.0.0.1 port ${fresh.port}`);
      await lb.command(`set server tensorwire/${newSlot} state ready`);
      await waitStatus(lb, newSlot, 'UP');
      log(`new replica :${fresh.port} ready and in the load balancer (${newSlot})`);
      if (o.preStopMs > 0) {
        await lb.command(`set server tensorwire/${oldSlot} state maint`);
        await sleep(o.preStopMs);
      }
      const exited = new Promise<number | null>((r) => old.child.once('exit', (code) => r(code)));
      await old.stop(o.drainTimeoutMs + 5000);
      exitCodes.push(await exited);
      log(`old replica :${old.port} drained and exited (${exitCodes[exitCodes.length - 1]})`);
    }
    const rolloutEnd = performance.now();
    await sleep(o.steadyMs);
    running = false;
    await Promise.all(clients);
    const tEnd = performance.now();
    return {
      phases: [phaseStats('before', samples, t0, rolloutStart), phaseStats('rollout', samples, rolloutStart, rolloutEnd), phaseStats('after', samples, rolloutEnd, tEnd)],
      rolloutMs: rolloutEnd - rolloutStart,
      exitCodes,
      failures,
    };
  } finally {
    running = false;
    await Promise.allSettled(clients);
    await Promise.allSettled(replicas.map((r) => r.stop(2000)));
    await lb?.stop();
    rmSync(repo, { recursive: true, force: true });
  }
}
