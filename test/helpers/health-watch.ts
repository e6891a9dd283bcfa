/**
 * Polls a server's liveness from a worker thread, so the latencies it records are the
 * server's and not the delays of a test process busy building hostile bodies.
 */
import { Worker } from 'node:worker_threads';

/** What the watcher saw: every probe's latency (ms) and the probes that got no 200. */
export interface HealthRecord {
  latencies: number[];
  failures: number;
}

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const latencies = [];
let failures = 0;
let stop = false;
parentPort.on('message', () => { stop = true; });
(async () => {
  while (!stop) {
    const t0 = performance.now();
    try {
      const res = await fetch(workerData.url, { signal: AbortSignal.timeout(5000) });
      await res.arrayBuffer();
      if (res.status !== 200) failures++;
    } catch { failures++; }
    latencies.push(performance.now() - t0);
    await new Promise((r) => setTimeout(r, workerData.everyMs));
  }
  parentPort.postMessage({ latencies, failures });
})();
`;

/** Starts polling `url` every `everyMs`; `stop()` resolves with the record. */
export function watchHealth(url: string, everyMs = 20): { stop(): Promise<HealthRecord> } {
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { url, everyMs } });
  const done = new Promise<HealthRecord>((resolve, reject) => {
    worker.once('message', (record: HealthRecord) => resolve(record));
    worker.once('error', reject);
  });
  return {
    async stop() {
      worker.postMessage('stop');
      const record = await done;
      await worker.terminate();
      return record;
    },
  };
}

/** The q-quantile (0..1) of `values`. */
export function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
}
