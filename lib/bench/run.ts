/**
 * One bench run: prepares the request, then for each level (concurrency or rate) starts
 * the load on every driver, warms up, measures one window (or, with --stabilize, windows
 * until throughput and p99 settle), stops and drains, and scrapes the server's /metrics
 * around the measured windows.
 */
import { streamUrl } from '../client/stream-client';
import type { BenchOptions } from './args';
import { LatencyHistogram } from './histogram';
import { fetchModelInfo, generateInputs, preflight, prepareRequest, readInputFile } from './inputs';
import { encodeGrpcRequest, preflightGrpc } from './grpc-connection';
import type { LoadPlan, RunTotals, WindowStats } from './load-runner';
import { breakdown, scrapeServer, type ServerBreakdown, type ServerSnapshot } from './server-metrics';
import { createDrivers, type LoadDriver } from './worker-pool';

/** Latency figures in milliseconds. */
export interface LatencySummary {
  min: number;
  mean: number;
  p50: number;
  p90: number;
  p95: number;
  p99: number;
  max: number;
}

/** Results of one level. */
export interface LevelResult {
  mode: 'concurrency' | 'rate';
  /** Concurrency, or target rate (req/s). */
  level: number;
  /** Windows measured, and whether they agreed (--stabilize only). */
  windows: number;
  stable?: boolean;
  /** Measured time the figures below cover, seconds. */
  durationS: number;
  /** Successful requests in the measured windows. */
  requests: number;
  /** Failed requests in the measured windows, and by kind. */
  errors: number;
  errorKinds: Record<string, number>;
  /** Successful requests per second. */
  throughput: number;
  /** Inferences (samples) per second. */
  inferPerSec: number;
  /** Requests sent per second (in rate mode: the rate achieved). */
  sendRate: number;
  latencyMs: LatencySummary;
  /** Rate mode: most requests that waited for a free connection. */
  maxBacklog: number;
  /** Whole level, warm-up and drain included: what the server should have seen. */
  totals: RunTotals;
  server?: ServerBreakdown;
}

/** Everything a run produced; what --json writes. */
export interface BenchReport {
  url: string;
  model: string;
  modelVersion?: string;
  protocol: BenchOptions['protocol'];
  /** ws: requests in flight per WebSocket connection. */
  pipeline?: number;
  mode: BenchOptions['mode'];
  samplesPerRequest: number;
  inputs: { name: string; datatype: string; shape: number[] }[];
  workers: number;
  startedAt: string;
  /** Requests sent before the load to check the inputs (the server saw them too). */
  preflightRequests: number;
  warnings: string[];
  levels: LevelResult[];
}

/** Where a run writes its progress line (stderr) and notes. */
export interface BenchIO {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown; isTTY?: boolean };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Splits `total` into `n` near-equal integer shares. */
function shares(total: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => Math.floor(total / n) + (i < total % n ? 1 : 0));
}

interface MergedWindow {
  elapsedMs: number;
  sent: number;
  ok: number;
  errors: Record<string, number>;
  latency: LatencyHistogram;
  maxBacklog: number;
}

function mergeWindows(parts: WindowStats[]): MergedWindow {
  const merged: MergedWindow = { elapsedMs: 0, sent: 0, ok: 0, errors: {}, latency: new LatencyHistogram(), maxBacklog: 0 };
  for (const p of parts) {
    merged.elapsedMs = Math.max(merged.elapsedMs, p.elapsedMs);
    merged.sent += p.sent;
    merged.ok += p.ok;
    merged.maxBacklog += p.maxBacklog;
    for (const [k, v] of Object.entries(p.errors)) merged.errors[k] = (merged.errors[k] ?? 0) + v;
    merged.latency.merge(p.latency);
  }
  return merged;
}

/** True when the last three windows' throughput and p99 are each within `pct`% of their mean. */
export function isStable(windows: { throughput: number; p99: number }[], pct: number): boolean {
  if (windows.length < 3) return false;
  const last = windows.slice(-3);
  const within = (values: number[]) => {
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    return values.every((v) => Math.abs(v - mean) <= (mean * pct) / 100);
  };
  return within(last.map((w) => w.throughput)) && within(last.map((w) => w.p99));
}

/** Runs the whole bench. Throws TensorwireError when the model cannot be reached or its request is refused. */
export async function runBench(o: BenchOptions, io: BenchIO): Promise<BenchReport> {
  const info = await fetchModelInfo(o.url, o.model, o.version);
  const { tensors, samples } = o.inputFile ? readInputFile(o.inputFile) : generateInputs(info, o.batch, o.shapes);
  const grpcProtocol = o.protocol === 'grpc' || o.protocol === 'grpc-stream';
  const req = grpcProtocol ? { tensors, samples, path: '', bytes: encodeGrpcRequest(o.model, o.version, tensors) } : prepareRequest(o, tensors, samples);
  const report: BenchReport = {
    url: o.url,
    model: o.model,
    protocol: o.protocol,
    ...(o.protocol === 'ws' || grpcProtocol ? { pipeline: o.pipeline } : {}),
    mode: o.mode,
    samplesPerRequest: samples,
    inputs: tensors.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape })),
    workers: o.workers,
    startedAt: new Date().toISOString(),
    preflightRequests: 1,
    warnings: [],
    levels: [],
  };
  if (o.version !== undefined) report.modelVersion = o.version;
  const warning = grpcProtocol ? await preflightGrpc(o.grpcAddress, req.bytes) : await preflight(o, o.protocol, req);
  if (warning) report.warnings.push(warning);

  const showProgress = o.progress ?? io.stderr.isTTY === true;
  const maxActive = o.workers === 0 ? 1 : o.mode === 'concurrency' ? Math.min(o.workers, Math.max(...o.levels)) : o.workers;
  const drivers = createDrivers(o.workers === 0 ? 0 : maxActive);
  const url = new URL(o.url);
  const base: Omit<LoadPlan, 'connections' | 'rate'> = {
    protocol: o.protocol === 'ws' || grpcProtocol ? (o.protocol as 'ws' | 'grpc' | 'grpc-stream') : 'http',
    grpcAddress: o.grpcAddress,
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'), // IPv6 literals come bracketed
    port: Number(url.port || 80),
    wsUrl: streamUrl(o.url),
    pipeline: o.pipeline,
    request: req.bytes,
    mode: o.mode,
    distribution: o.distribution,
    timeoutMs: o.timeoutMs,
  };
  try {
    for (const level of o.levels) {
      const active = o.mode === 'concurrency' ? drivers.slice(0, Math.min(drivers.length, level)) : drivers;
      const conns = o.mode === 'concurrency' ? shares(level, active.length) : shares(o.maxConnections, active.length).map((c) => Math.max(1, c));
      report.levels.push(await runLevel(o, level, active, (i) => ({ ...base, connections: conns[i]!, rate: level / active.length }), samples, showProgress ? io.stderr : undefined));
    }
  } finally {
    await Promise.all(drivers.map((d) => d.close()));
  }
  return report;
}

async function runLevel(o: BenchOptions, level: number, drivers: LoadDriver[], plan: (i: number) => LoadPlan, samples: number, progress: BenchIO['stderr'] | undefined): Promise<LevelResult> {
  const label = `${o.mode === 'concurrency' ? 'concurrency' : 'rate'} ${level}`;
  await Promise.all(drivers.map((d, i) => d.start(plan(i))));
  let ticker: NodeJS.Timeout | undefined;
  const windows: MergedWindow[] = [];
  const snaps: (ServerSnapshot | undefined)[] = [];
  let totals: RunTotals[] = [];
  try {
    if (o.warmupMs > 0) await sleep(o.warmupMs);
    await Promise.all(drivers.map((d) => d.resetWindow()));
    snaps.push(o.metricsUrl ? await scrapeServer(o.metricsUrl, o.model, o.version) : undefined);
    if (progress) {
      ticker = setInterval(() => {
        Promise.all(drivers.map((d) => d.progress()))
          .then((ps) => {
            const ok = ps.reduce((a, p) => a + p.ok, 0);
            const errors = ps.reduce((a, p) => a + p.errors, 0);
            const s = Math.max(...ps.map((p) => p.elapsedMs)) / 1000;
            const p99 = Math.max(...ps.map((p) => p.p99Us)) / 1000;
            progress.write(`\r${label}  window ${windows.length + 1}  ${s.toFixed(1)}s  ${ok} ok  ${(ok / Math.max(s, 1e-3)).toFixed(0)} req/s  p99 ${p99.toFixed(2)} ms  errors ${errors}   `);
          })
          .catch(() => {});
      }, 250);
    }
    for (;;) {
      await sleep(o.durationMs);
      windows.push(mergeWindows(await Promise.all(drivers.map((d) => d.snapshot()))));
      snaps.push(o.metricsUrl ? await scrapeServer(o.metricsUrl, o.model, o.version) : undefined);
      if (!o.stabilize || windows.length >= o.maxWindows) break;
      const figures = windows.map((w) => ({ throughput: w.ok / w.elapsedMs, p99: w.latency.quantile(0.99) }));
      if (isStable(figures, o.stabilityPct)) break;
    }
  } finally {
    if (ticker) clearInterval(ticker);
    if (progress) progress.write('\r' + ' '.repeat(100) + '\r');
    totals = await Promise.all(drivers.map((d) => d.stop(Math.min(o.timeoutMs, 5_000))));
  }

  // With --stabilize the result is the last three windows (the ones that agreed, or the
  // latest three when they never did); otherwise the single window.
  const used = o.stabilize ? windows.slice(-3) : windows;
  const first = windows.length - used.length;
  const merged = mergeWindows([]);
  let elapsedMs = 0;
  for (const w of used) {
    elapsedMs += w.elapsedMs;
    merged.sent += w.sent;
    merged.ok += w.ok;
    merged.maxBacklog = Math.max(merged.maxBacklog, w.maxBacklog);
    for (const [k, v] of Object.entries(w.errors)) merged.errors[k] = (merged.errors[k] ?? 0) + v;
    merged.latency.merge(w.latency);
  }
  const durationS = elapsedMs / 1000;
  const h = merged.latency;
  const ms = (us: number) => us / 1000;
  const sum = (k: keyof RunTotals) => totals.reduce((a, t) => a + ((t[k] as number | undefined) ?? 0), 0);
  const result: LevelResult = {
    mode: o.mode,
    level,
    windows: windows.length,
    durationS,
    requests: merged.ok,
    errors: Object.values(merged.errors).reduce((a, b) => a + b, 0),
    errorKinds: merged.errors,
    throughput: merged.ok / durationS,
    inferPerSec: (merged.ok * samples) / durationS,
    sendRate: merged.sent / durationS,
    latencyMs: { min: h.count ? ms(h.min) : 0, mean: ms(h.mean()), p50: ms(h.quantile(0.5)), p90: ms(h.quantile(0.9)), p95: ms(h.quantile(0.95)), p99: ms(h.quantile(0.99)), max: ms(h.max) },
    maxBacklog: merged.maxBacklog,
    totals: { sent: sum('sent'), ok: sum('ok'), failed: sum('failed'), abandoned: sum('abandoned'), connectErrors: sum('connectErrors') },
  };
  const lastConnectError = totals.find((t) => t.lastConnectError)?.lastConnectError;
  if (lastConnectError) result.totals.lastConnectError = lastConnectError;
  if (o.stabilize) result.stable = windows.length >= 3 && isStable(windows.map((w) => ({ throughput: w.ok / w.elapsedMs, p99: w.latency.quantile(0.99) })), o.stabilityPct);
  const server = breakdown(snaps[first], snaps[snaps.length - 1]);
  if (server) result.server = server;
  return result;
}
