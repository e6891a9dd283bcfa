/**
 * Command line of `tensorwire bench`: parsing into BenchOptions, with errors that name the
 * flag, what it expects and what it got.
 */
import { availableParallelism } from 'node:os';
import { TensorwireError } from '../errors';

/** Transports the generator speaks. */
export type BenchProtocol = 'http-json' | 'http-binary' | 'ws' | 'grpc' | 'grpc-stream';

/** Everything a bench run needs. */
export interface BenchOptions {
  url: string;
  model: string;
  version?: string;
  /** Closed loop (concurrency levels) or open loop (request rates). */
  mode: 'concurrency' | 'rate';
  /** Concurrency levels, or rates in requests/s. */
  levels: number[];
  distribution: 'constant' | 'poisson';
  protocol: BenchProtocol;
  /** ws, grpc, grpc-stream: requests in flight per WebSocket connection / gRPC channel (1 = one connection per request in flight, like HTTP). */
  pipeline: number;
  /** grpc, grpc-stream: the gRPC server as host:port. */
  grpcAddress: string;
  /** Length of one measurement window. */
  durationMs: number;
  /** Load before the first window, not measured. */
  warmupMs: number;
  /** Repeat windows until throughput and p99 agree within `stabilityPct`. */
  stabilize: boolean;
  maxWindows: number;
  stabilityPct: number;
  /** Size given to a dynamic batch dimension. */
  batch: number;
  /** Explicit shapes by input name (override the metadata's). */
  shapes: Record<string, number[]>;
  /** KServe JSON request whose inputs are sent instead of generated ones. */
  inputFile?: string;
  jsonOut?: string;
  csvOut?: string;
  plotOut?: string;
  /** Worker threads generating load (0 = on the main thread). */
  workers: number;
  /** Rate mode: most connections opened. */
  maxConnections: number;
  /** Per-request timeout. */
  timeoutMs: number;
  /** Where to scrape tensorwire's /metrics; null disables the server-side breakdown. */
  metricsUrl: string | null;
  /** Progress line on stderr; undefined = when stderr is a terminal. */
  progress?: boolean;
}

/** `tensorwire bench --help`. */
export const USAGE = `Usage: tensorwire bench --model NAME [options]

Load generator for any KServe v2 (Open Inference Protocol) server.

  --url URL                 server (default http://127.0.0.1:8000)
  --model NAME              model to load (required)   --version V   model version
  --concurrency 1,8,64      closed loop: requests kept in flight (default 1)
  --rate 1000[,2000]        open loop: requests per second instead of --concurrency
  --distribution D          constant | poisson arrivals for --rate (default constant)
  --protocol P              http-binary | http-json | ws | grpc | grpc-stream (default http-binary);
                            grpc: unary ModelInfer calls, grpc-stream: ModelStreamInfer, raw tensors
  --pipeline N              ws, grpc, grpc-stream: requests in flight per WebSocket connection or gRPC
                            channel, so --concurrency 64 --pipeline 16 is 4 sockets of 16 (default 1:
                            a connection per request in flight, like HTTP)
  --grpc-url HOST:PORT      gRPC server for grpc/grpc-stream (default: --url's host, port 8001)
  --duration 5s             measurement window (ms, s or m; default 5s)
  --warmup 1s               unmeasured load before the first window (default 1s)
  --stabilize               repeat windows until throughput and p99 agree within 10%
  --max-windows 5           most windows per level with --stabilize
  --stability-pct 10        tolerance for --stabilize
  --batch N                 size of a dynamic batch dimension (default 1)
  --shape name:1x3x224x224  explicit shape of an input (repeatable)
  --input-file FILE.json    send the inputs of this KServe JSON request
  --workers N               load-generating threads (default: half the cores, 1..4; 0 = main thread)
  --max-connections N       connections opened at most in --rate mode (default 256)
  --timeout 30s             per-request timeout
  --metrics-url URL         tensorwire /metrics for the server-side breakdown (default URL/metrics)
  --no-server-metrics       do not scrape /metrics
  --json FILE  --csv FILE  --plot FILE.svg   write results
  --progress / --no-progress  progress line on stderr (default: when it is a terminal)
`;

function usage(message: string): TensorwireError {
  return new TensorwireError('INVALID_INPUT', message);
}

/** Parses "5s", "500ms", "2m", "1.5" (seconds) into milliseconds. */
export function parseDuration(flag: string, text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (!m) throw usage(`${flag}: expected a duration like 500ms, 5s or 1m, got '${text}'`);
  const n = Number(m[1]);
  return m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000;
}

function parseCount(flag: string, text: string, min: number): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < min) throw usage(`${flag}: expected an integer >= ${min}, got '${text}'`);
  return n;
}

function parseList(flag: string, text: string, integer: boolean): number[] {
  const values = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (values.length === 0) throw usage(`${flag}: expected a comma-separated list, got '${text}'`);
  return values.map((s) => {
    const n = Number(s);
    if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isSafeInteger(n))) throw usage(`${flag}: expected positive ${integer ? 'integers' : 'numbers'}, got '${s}'`);
    return n;
  });
}

function parseShape(text: string): [string, number[]] {
  const at = text.lastIndexOf(':');
  if (at <= 0) throw usage(`--shape: expected name:dims such as input:1x3x224x224, got '${text}'`);
  const dims = text.slice(at + 1).split(/[x,]/).map(Number);
  if (!dims.every((d) => Number.isSafeInteger(d) && d >= 0)) throw usage(`--shape: dimensions of '${text.slice(0, at)}' must be non-negative integers, got '${text.slice(at + 1)}'`);
  return [text.slice(0, at), dims];
}

const VALUE_FLAGS = new Set([
  'url', 'model', 'version', 'concurrency', 'rate', 'distribution', 'protocol', 'duration', 'warmup', 'max-windows', 'stability-pct',
  'batch', 'shape', 'input-file', 'pipeline', 'json', 'csv', 'plot', 'workers', 'max-connections', 'timeout', 'metrics-url', 'grpc-url',
]);
const SWITCHES = new Set(['stabilize', 'no-server-metrics', 'progress', 'no-progress', 'help']);

/** Parses the arguments after `tensorwire bench`. Returns 'help' for --help/-h. Throws INVALID_INPUT on a bad command line. */
export function parseArgs(argv: readonly string[]): BenchOptions | 'help' {
  const values = new Map<string, string[]>();
  const switches = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '-h') return 'help';
    if (!arg.startsWith('--')) throw usage(`unexpected argument '${arg}' (flags start with --; see --help)`);
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    if (SWITCHES.has(name)) {
      if (eq >= 0) throw usage(`--${name} takes no value`);
      switches.add(name);
    } else if (VALUE_FLAGS.has(name)) {
      const value = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
      if (value === undefined) throw usage(`--${name} needs a value`);
      values.set(name, [...(values.get(name) ?? []), value]);
    } else {
      throw usage(`unknown flag --${name} (see --help)`);
    }
  }
  if (switches.has('help')) return 'help';
  const one = (name: string): string | undefined => {
    const v = values.get(name);
    if (v && v.length > 1 && name !== 'shape') throw usage(`--${name} given ${v.length} times`);
    return v?.[0];
  };

  const model = one('model');
  if (!model) throw usage('--model is required');
  const url = one('url') ?? 'http://127.0.0.1:8000';
  let parsedUrl: URL;
  try {
    parsedUrl = new URL(url);
  } catch {
    throw usage(`--url: expected a URL such as http://127.0.0.1:8000, got '${url}'`);
  }
  if (parsedUrl.protocol !== 'http:') throw usage(`--url: only http:// servers are supported, got '${url}'`);
  if (values.has('rate') && values.has('concurrency')) throw usage('--rate and --concurrency are exclusive: pick closed loop (--concurrency) or open loop (--rate)');

  const mode = values.has('rate') ? 'rate' : 'concurrency';
  const levels = mode === 'rate' ? parseList('--rate', one('rate')!, false) : parseList('--concurrency', one('concurrency') ?? '1', true);
  const distribution = one('distribution') ?? 'constant';
  if (distribution !== 'constant' && distribution !== 'poisson') throw usage(`--distribution: expected constant or poisson, got '${distribution}'`);
  if (values.has('distribution') && mode !== 'rate') throw usage('--distribution applies to --rate only');
  const protocol = one('protocol') ?? 'http-binary';
  if (protocol !== 'http-json' && protocol !== 'http-binary' && protocol !== 'ws' && protocol !== 'grpc' && protocol !== 'grpc-stream') {
    throw usage(`--protocol: expected http-binary, http-json, ws, grpc or grpc-stream, got '${protocol}'`);
  }
  const grpcAddress = one('grpc-url') ?? `${parsedUrl.hostname}:8001`;
  if (!/^(\[[0-9a-fA-F:.]+\]|[^:/\s]+):\d{1,5}$/.test(grpcAddress)) throw usage(`--grpc-url: expected HOST:PORT such as 127.0.0.1:8001, got '${grpcAddress}'`);
  if (values.has('grpc-url') && !protocol.startsWith('grpc')) throw usage('--grpc-url applies to --protocol grpc and grpc-stream only');

  const shapes: Record<string, number[]> = {};
  for (const s of values.get('shape') ?? []) {
    const [name, dims] = parseShape(s);
    shapes[name] = dims;
  }
  const noMetrics = switches.has('no-server-metrics');
  const metricsUrl = noMetrics ? null : (one('metrics-url') ?? new URL('/metrics', parsedUrl).href);
  const defaultWorkers = Math.max(1, Math.min(4, Math.floor(availableParallelism() / 2)));
  const options: BenchOptions = {
    url: parsedUrl.origin,
    model,
    mode,
    levels,
    distribution,
    protocol,
    pipeline: parseCount('--pipeline', one('pipeline') ?? '1', 1),
    grpcAddress,
    durationMs: parseDuration('--duration', one('duration') ?? '5s'),
    warmupMs: parseDuration('--warmup', one('warmup') ?? '1s'),
    stabilize: switches.has('stabilize'),
    maxWindows: parseCount('--max-windows', one('max-windows') ?? '5', 1),
    stabilityPct: Number(one('stability-pct') ?? '10'),
    batch: parseCount('--batch', one('batch') ?? '1', 1),
    shapes,
    workers: parseCount('--workers', one('workers') ?? String(defaultWorkers), 0),
    maxConnections: parseCount('--max-connections', one('max-connections') ?? '256', 1),
    timeoutMs: parseDuration('--timeout', one('timeout') ?? '30s'),
    metricsUrl,
  };
  if (values.has('pipeline') && protocol.startsWith('http')) throw usage(`--pipeline applies to --protocol ws, grpc and grpc-stream only (HTTP/1.1 connections carry one request at a time)`);
  if (options.durationMs <= 0) throw usage('--duration must be more than 0');
  if (!(options.stabilityPct > 0)) throw usage(`--stability-pct: expected a positive number, got '${one('stability-pct')}'`);
  const version = one('version');
  if (version !== undefined) options.version = version;
  const optional = { inputFile: 'input-file', jsonOut: 'json', csvOut: 'csv', plotOut: 'plot' } as const;
  for (const [key, flag] of Object.entries(optional) as [keyof typeof optional, string][]) {
    const v = one(flag);
    if (v !== undefined) options[key] = v;
  }
  if (switches.has('progress')) options.progress = true;
  if (switches.has('no-progress')) options.progress = false;
  return options;
}
