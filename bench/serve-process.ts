/**
 * Child processes for the serving benchmarks: a tensorwire server (`tensorwire serve`), the
 * onnxruntime-node peer (bench/peers/ort-node-http.ts), and the load generator (`tensorwire
 * bench`), each in its own process so none of them shares an event loop with another.
 * Paths are those of the compiled tree (dist/), where these benchmarks run from.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/** dist/lib/cli.js, the `tensorwire` command. */
export const CLI = resolve(__dirname, '../lib/cli.js');
/** dist/bench/peers/ort-node-http.js. */
export const PEER = resolve(__dirname, 'peers/ort-node-http.js');

/** A server child: its base URL, its output so far, and how to stop it. */
export interface ServerProcess {
  url: string;
  port: number;
  child: ChildProcess;
  /** Everything it printed (stdout and stderr). */
  output(): string;
  /** SIGTERM, then waits for the exit (SIGKILL after `graceMs`). */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Starts `node [nodeFlags] script args` and resolves once a line of its stdout matches
 * `ready` (whose first group is the port). Rejects if it exits first or within `timeoutMs`.
 */
function startChild(script: string, args: string[], ready: RegExp, nodeFlags: string[] = [], timeoutMs = 60_000): Promise<ServerProcess> {
  if (!existsSync(script)) throw new Error(`${script} does not exist: run \`npx tsc -p tsconfig.json\` first`);
  const child = spawn(process.execPath, [...nodeFlags, script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const stop = (graceMs = 10_000): Promise<void> =>
    new Promise<void>((done) => {
      if (child.exitCode !== null || child.signalCode !== null) return done();
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      child.once('exit', () => {
        clearTimeout(timer);
        done();
      });
      child.kill('SIGTERM');
    });
  return new Promise<ServerProcess>((resolvePort, reject) => {
    const timer = setTimeout(() => {
      void stop(1000);
      reject(new Error(`${script} did not start within ${timeoutMs} ms:\n${out}`));
    }, timeoutMs);
    const onData = (chunk: Buffer): void => {
      out += chunk.toString();
      const m = ready.exec(out);
      if (m) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
        const port = Number(m[1]);
        resolvePort({ url: `http://127.0.0.1:${port}`, port, child, output: () => out, stop });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${script} exited (${code ?? signal}) before it was ready:\n${out}`));
    });
  });
}

/**
 * CPU seconds (user + system, all threads) process `pid` has used so far, from /proc; undefined
 * where /proc is not available. CPU per request is what a server costs whatever else runs on
 * the box, so it is steadier than req/s on a shared machine.
 */
export function cpuSeconds(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 14 and 15 of proc(5) (utime, stime), counted from after the command name.
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}

/** USER_HZ: 100 on every Linux Node supports. */
const CLOCK_TICKS = 100;

/** Polls GET url until it answers 200. */
export async function waitReady(url: string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = await fetch(url).then((r) => r.status, () => 0);
    if (status === 200) return;
    if (Date.now() > deadline) throw new Error(`${url} not ready after ${timeoutMs} ms (last status ${status})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** `tensorwire serve` on a free port; resolves once /v2/health/ready is 200. */
export async function startTensorwire(serveArgs: string[], nodeFlags: string[] = []): Promise<ServerProcess> {
  // No gRPC unless asked for: several servers run side by side and 8001 is gRPC's default.
  const grpc = serveArgs.includes('--grpc-port') ? [] : ['--grpc-port', 'off'];
  const server = await startChild(CLI, ['serve', '--port', '0', ...grpc, ...serveArgs], /serving on http:\/\/[^:]+:(\d+)/, nodeFlags);
  try {
    await waitReady(`${server.url}/v2/health/ready`);
  } catch (e) {
    await server.stop();
    throw new Error(`${(e as Error).message}\n${server.output()}`, { cause: e });
  }
  return server;
}

/** The gRPC address (`127.0.0.1:PORT`) a `tensorwire serve` child printed at startup, once printed. */
export async function grpcAddressOf(server: ServerProcess, timeoutMs = 30_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = /gRPC \(.*\) on (\S+:\d+)/.exec(server.output());
    if (m) return m[1]!;
    if (Date.now() > deadline) throw new Error(`the server printed no gRPC address:\n${server.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The onnxruntime-node + node:http peer serving `modelPath` as `name`. */
export function startPeer(modelPath: string, name: string): Promise<ServerProcess> {
  return startChild(PEER, ['--model', modelPath, '--name', name, '--port', '0'], /listening (\d+)/);
}

/** What one `tensorwire bench` level measured. */
export interface LoadResult {
  rps: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  requests: number;
  /** Successful requests of the whole run, warm-up and drain included (what the server did). */
  totalOk: number;
  errors: number;
  errorKinds: Record<string, number>;
}

/** Options of one load run. */
export interface LoadOptions {
  url: string;
  model: string;
  protocol: 'http-json' | 'http-binary' | 'ws' | 'grpc' | 'grpc-stream';
  /** grpc, grpc-stream: the gRPC server as host:port. */
  grpcAddress?: string;
  concurrency: number;
  durationS: number;
  warmupS?: number;
  /** Load-generating worker threads (default: the bench's own default). */
  workers?: number;
  batch?: number;
  /** ws, grpc, grpc-stream: requests in flight per socket or channel. */
  pipeline?: number;
}

/** Runs `tensorwire bench` in its own process against `o.url` and returns its one level. */
export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const dir = mkdtempSync(join(tmpdir(), 'tw-load-'));
  const out = join(dir, 'result.json');
  const args = [
    CLI, 'bench', '--url', o.url, '--model', o.model, '--protocol', o.protocol,
    '--concurrency', String(o.concurrency), '--duration', `${o.durationS}s`, '--warmup', `${o.warmupS ?? 1}s`,
    '--no-server-metrics', '--no-progress', '--json', out,
  ];
  if (o.workers !== undefined) args.push('--workers', String(o.workers));
  if (o.batch !== undefined) args.push('--batch', String(o.batch));
  if (o.pipeline !== undefined) args.push('--pipeline', String(o.pipeline));
  if (o.grpcAddress !== undefined) args.push('--grpc-url', o.grpcAddress);
  try {
    const { code, output } = await new Promise<{ code: number | null; output: string }>((done) => {
      const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let text = '';
      child.stdout.on('data', (c: Buffer) => (text += c.toString()));
      child.stderr.on('data', (c: Buffer) => (text += c.toString()));
      child.once('exit', (c) => done({ code: c, output: text }));
    });
    if (code !== 0 || !existsSync(out)) throw new Error(`tensorwire bench failed (exit ${code}):\n${output}`);
    const report = JSON.parse(readFileSync(out, 'utf8')) as {
      levels: { throughput: number; requests: number; errors: number; errorKinds: Record<string, number>; latencyMs: { p50: number; p90: number; p99: number; max: number }; totals: { ok: number } }[];
    };
    const level = report.levels[0]!;
    return {
      rps: level.throughput,
      p50: level.latencyMs.p50,
      p90: level.latencyMs.p90,
      p99: level.latencyMs.p99,
      max: level.latencyMs.max,
      requests: level.requests,
      totalOk: level.totals.ok,
      errors: level.errors,
      errorKinds: level.errorKinds,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
