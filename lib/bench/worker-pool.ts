/**
 * The main thread's side of the load generator: a set of drivers, each running one share
 * of the load, either in a worker thread (the default: the generator must not be the
 * bottleneck, and the main thread stays free for progress and /metrics scrapes) or in
 * process (`--workers 0`, for debugging).
 *
 * Worker threads run lib/bench/worker.js, or its TypeScript source (lib/util/script-worker.ts).
 */
import type { Worker } from 'node:worker_threads';
import { LoadRunner, type LoadPlan, type RunTotals, type WindowStats } from './load-runner';
import { TensorwireError } from '../errors';
import { spawnScriptWorker } from '../util/script-worker';

/** Progress figures of one driver's current window. */
export interface DriverProgress {
  ok: number;
  errors: number;
  elapsedMs: number;
  p99Us: number;
}

/** A request from the main thread to a worker. */
export type WorkerRequest =
  | { seq: number; op: 'start'; plan: LoadPlan }
  | { seq: number; op: 'reset' }
  | { seq: number; op: 'snapshot' }
  | { seq: number; op: 'progress' }
  | { seq: number; op: 'stop'; drainMs: number };

/** A worker's answer to request `seq`. */
export interface WorkerReply {
  seq: number;
  result?: unknown;
  error?: string;
}

/** One share of the load. */
export interface LoadDriver {
  start(plan: LoadPlan): Promise<void>;
  resetWindow(): Promise<void>;
  snapshot(): Promise<WindowStats>;
  progress(): Promise<DriverProgress>;
  stop(drainMs: number): Promise<RunTotals>;
  close(): Promise<void>;
}

/** Runs the load on the calling thread. */
export class InProcessDriver implements LoadDriver {
  private runner: LoadRunner | undefined;
  async start(plan: LoadPlan): Promise<void> {
    this.runner = new LoadRunner(plan);
    this.runner.start();
  }
  async resetWindow(): Promise<void> {
    this.runner?.resetWindow();
  }
  async snapshot(): Promise<WindowStats> {
    return this.runner!.snapshot();
  }
  async progress(): Promise<DriverProgress> {
    return this.runner!.progress();
  }
  async stop(drainMs: number): Promise<RunTotals> {
    const t = await this.runner!.stop(drainMs);
    this.runner = undefined;
    return t;
  }
  async close(): Promise<void> {}
}

function spawnWorker(): Worker {
  return spawnScriptWorker(__dirname, 'worker', 'the load generator worker', 'build with tsc or pass --workers 0');
}

/** Runs the load in a worker thread. */
export class WorkerDriver implements LoadDriver {
  private readonly worker: Worker;
  private seq = 0;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private failure: Error | undefined;

  constructor() {
    this.worker = spawnWorker();
    this.worker.on('message', (reply: WorkerReply) => {
      const p = this.pending.get(reply.seq);
      if (!p) return;
      this.pending.delete(reply.seq);
      if (reply.error !== undefined) p.reject(new TensorwireError('INTERNAL', `load generator worker: ${reply.error}`));
      else p.resolve(reply.result);
    });
    const die = (e: Error) => {
      this.failure = e;
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
    };
    this.worker.on('error', (e) => die(new TensorwireError('INTERNAL', `load generator worker failed: ${e.message}`, { cause: e })));
    this.worker.on('exit', (code) => die(new TensorwireError('INTERNAL', `load generator worker exited (code ${code})`)));
  }

  private call<T>(msg: WorkerRequest extends infer R ? (R extends WorkerRequest ? Omit<R, 'seq'> : never) : never): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    const seq = ++this.seq;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(seq, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.postMessage({ ...msg, seq });
    });
  }

  start(plan: LoadPlan): Promise<void> {
    return this.call({ op: 'start', plan });
  }
  resetWindow(): Promise<void> {
    return this.call({ op: 'reset' });
  }
  snapshot(): Promise<WindowStats> {
    return this.call({ op: 'snapshot' });
  }
  progress(): Promise<DriverProgress> {
    return this.call({ op: 'progress' });
  }
  stop(drainMs: number): Promise<RunTotals> {
    return this.call({ op: 'stop', drainMs });
  }
  async close(): Promise<void> {
    this.worker.removeAllListeners('exit');
    await this.worker.terminate();
  }
}

/** `n` worker drivers, or one in-process driver when `n` is 0. */
export function createDrivers(n: number): LoadDriver[] {
  if (n === 0) return [new InProcessDriver()];
  return Array.from({ length: n }, () => new WorkerDriver());
}

