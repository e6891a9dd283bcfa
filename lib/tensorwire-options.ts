/**
 * The options of a tensorwire server, one table for both ways of starting one: the
 * programmatic `createTensorwire({...})` (lib/tensorwire.ts) and `tensorwire serve --flags`
 * (lib/cli.ts). Every option is its flag in camelCase (`--repository-poll-ms` is
 * `repositoryPollMs`), and every number has the same bound on both paths, so a value the CLI
 * refuses is refused by the API with the same words.
 */
import type { CompressionOptions } from './server/http-compression';
import type { ModelControl } from './core/service';
import type { ProviderOptions } from './engine/types';
import { TensorwireError } from './errors';
import type { SecurityOptions, SecuritySetup } from './auth/serve-flags';

/** Execution providers a model can default to. */
export type ProviderKind = ProviderOptions['kind'];
const PROVIDER_KINDS: readonly ProviderKind[] = ['cpu', 'cuda', 'tensorrt'];

/** Options of createTensorwire; each is a `tensorwire serve` flag in camelCase. */
export interface TensorwireOptions {
  /** A repository directory (`<name>/<version>/model.onnx`) or a single `.onnx` file. */
  repository: string;
  /** Interface to bind. Default 127.0.0.1. */
  host?: string;
  /** Port; 0 picks a free one (see `Tensorwire.url`). Default 8000. */
  port?: number;
  /** none: load at start only; poll: also hot-swap on repository changes; explicit: load on request. Default poll. */
  modelControl?: ModelControl;
  /** Models to load at start in `explicit` mode (`--load-model`, repeated). */
  loadModels?: string[];
  /** Repository poll interval in `poll` mode, milliseconds. Default 1000. */
  repositoryPollMs?: number;
  /** Largest request body and WebSocket message, bytes. Default 64 MiB. */
  maxBodyBytes?: number;
  /** HTTP gzip/deflate bodies and answers (lib/server/http-compression.ts, docs/protocol.md "Compression"). Default on. */
  compression?: CompressionOptions;
  /** How long `close()` waits for in-flight requests before cancelling them. Default 30000 ms. */
  drainTimeoutMs?: number;
  /** Serve /metrics on this port instead of the main one (0 picks a free one). */
  metricsPort?: number;
  /** Requests in flight per WebSocket stream before 429 error frames, and per gRPC ModelStreamInfer stream before it stops reading. Default 256. */
  streamMaxInflight?: number;
  /**
   * Port of the gRPC front end (KServe v2 / Triton GRPCInferenceService, docs/grpc.md) on
   * `host`; 0 picks a free one. Default: no gRPC server ('off'); `tensorwire serve` defaults
   * to 8001, as Triton.
   */
  grpcPort?: number | 'off';
  /** Whether stream clients may subscribe to the live prediction feed. Default: the server's. */
  streamFeed?: boolean;
  /** Provider of a model whose config names none. Default cpu. */
  defaultProvider?: ProviderKind | ProviderOptions;
  /** Instances (sessions, each with its own executor thread) of a model whose config names no count. Default 1. */
  defaultInstances?: number;
  /** max_batch_size of a batchable model whose config names none (0: do not batch). Default 64. */
  defaultMaxBatchSize?: number;
  /** Directory TensorRT engine caches stay inside (`--trt-cache-dir`). Default `<repository>/.tensorwire-trt-cache`. */
  trtCacheDir?: string;
  /**
   * Largest output of one batch, bytes, checked from the output shapes before anything is
   * copied (413 OUTPUT_TOO_LARGE naming the output). A model's `parameters.max_output_bytes`
   * overrides it. Default: the body limit (`maxBodyBytes`, 64 MiB).
   */
  maxOutputBytes?: number;
  /**
   * Open connections (HTTP and WebSocket together) past which new ones are refused at once.
   * Default 10,000, lowered to what the open-file limit allows.
   */
  maxConnections?: number;
  /**
   * Byte budget of the response cache, shared by every model whose config has
   * `response_cache { enable: true }` (least recently used answers go first). 0 turns the
   * cache off. Default 256 MiB.
   */
  cacheBytes?: number;
  /** How long a retired version drains after a hot swap or unload, milliseconds. Default 30000. */
  versionDrainMs?: number;
  /**
   * Access control, browser checks, CORS and TLS: the security flags parsed (SecurityOptions;
   * the files they name are read at start) or a setup built with `createSecurity`. Absent:
   * nothing is checked. `tensorwire serve` always passes one, so its defaults (management
   * only from loopback, the loopback Host allow-list) hold without flags.
   */
  security?: SecurityOptions | SecuritySetup;
  /**
   * Directory trace files are written in (`--trace-dir`, must exist). Without it trace files
   * cannot be named over the trace extension (docs/protocol.md "Trace").
   */
  traceDir?: string;
  /** Whether repository loads may carry model files (`file:` parameters, `--allow-model-upload`). Default false. */
  allowModelUpload?: boolean;
  /** State-change lines (model loaded, failed, swapped); default console.log. */
  log?: (line: string) => void;
}

/**
 * Inclusive bounds of the numeric options. Each bounds something the value sizes: sockets
 * (ports), buffered bytes (bodies), timers (poll, drain), per-socket queues (stream), native
 * threads and staging memory (instances × batch size).
 */
/** Default output limit: the default body limit. */
const DEFAULT_OUTPUT_BYTES = 64 * 1024 * 1024;

export const OPTION_BOUNDS = {
  port: [0, 65535],
  metricsPort: [0, 65535],
  maxBodyBytes: [1, Number.MAX_SAFE_INTEGER],
  repositoryPollMs: [1, 86_400_000],
  drainTimeoutMs: [0, 86_400_000],
  versionDrainMs: [0, 86_400_000],
  streamMaxInflight: [1, 1_000_000],
  /** The addon refuses more than 64 instances of a model (native/model_options.cpp). */
  defaultInstances: [1, 64],
  /**
   * Staging slots hold instances × slots × max batch × sample bytes up front; 4096 is the
   * bound a model config's own max_batch_size gets (well inside the addon's 2^20).
   */
  defaultMaxBatchSize: [0, 4096],
  /** Open connections, HTTP and WebSocket together (lowered further to fit the open-file limit). */
  maxConnections: [1, 10_000_000],
  /** Largest output of one batch (the addon's ceiling is 16 GiB). */
  maxOutputBytes: [1, 16 * 1024 ** 3],
  /** The response cache's budget (memory it may hold), 0 (off) to 1 TiB. */
  cacheBytes: [0, 2 ** 40],
} as const satisfies Record<string, readonly [number, number]>;

export type NumericOption = keyof typeof OPTION_BOUNDS;

/** The `tensorwire serve` flag of an option: `repositoryPollMs` -> `--repository-poll-ms`. */
export function flagOf(option: string): string {
  return `--${option.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** Shows a rejected value briefly: a client or config may hand us anything. */
function shown(value: unknown): string {
  const text = typeof value === 'string' ? `'${value}'` : typeof value === 'object' && value !== null ? JSON.stringify(value) ?? String(value) : String(value);
  return text.length > 64 ? `${text.slice(0, 61)}...` : text;
}

/**
 * `value` as an integer within the option's bounds; else an INVALID_INPUT naming `label` and
 * showing `given` (the CLI passes the flag's text, converted, and the text itself).
 */
export function boundedInteger(option: NumericOption, value: unknown, label: string = option, given: unknown = value): number {
  const [min, max] = OPTION_BOUNDS[option];
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new TensorwireError('INVALID_INPUT', `${label} must be an integer from ${min} to ${max}, got ${shown(given)}`);
  }
  return value;
}

/** A flag's text as a number for boundedInteger (NaN when blank, so it is refused). */
export function flagNumber(text: string): number {
  return text.trim() === '' ? Number.NaN : Number(text);
}

/** A provider kind or options as ProviderOptions; else an INVALID_INPUT naming `label`. */
export function providerOption(value: unknown, label = 'defaultProvider'): ProviderOptions {
  const kind = typeof value === 'object' && value !== null ? (value as { kind?: unknown }).kind : value;
  if (typeof kind !== 'string' || !(PROVIDER_KINDS as readonly string[]).includes(kind)) {
    throw new TensorwireError('INVALID_INPUT', `${label} must be one of ${PROVIDER_KINDS.join(', ')}, got ${shown(value)}`);
  }
  return typeof value === 'object' ? { ...(value as ProviderOptions) } : ({ kind } as ProviderOptions);
}

/** The model defaults of `options`, checked, in the form the repository completes configs with. */
export interface ModelDefaults {
  defaultProvider?: ProviderOptions;
  defaultInstances?: number;
  defaultMaxBatchSize?: number;
  defaultMaxOutputBytes?: number;
}

/**
 * Checks every option a caller can set (types, bounds, the model-control mode) before anything
 * starts, so a bad value fails at once naming the option instead of deep inside a load.
 */
export function checkOptions(options: TensorwireOptions): void {
  if (typeof options !== 'object' || options === null) throw new TensorwireError('INVALID_INPUT', 'createTensorwire needs an options object with at least { repository }');
  if (typeof options.repository !== 'string' || options.repository === '') throw new TensorwireError('INVALID_INPUT', `repository must be a directory or .onnx file path, got ${shown(options.repository)}`);
  if (options.host !== undefined && (typeof options.host !== 'string' || options.host === '')) throw new TensorwireError('INVALID_INPUT', `host must be an interface name or address, got ${shown(options.host)}`);
  const control = options.modelControl;
  if (control !== undefined && control !== 'none' && control !== 'poll' && control !== 'explicit') {
    throw new TensorwireError('INVALID_INPUT', `modelControl must be none, poll or explicit, got ${shown(control)}`);
  }
  if (options.loadModels !== undefined && (!Array.isArray(options.loadModels) || options.loadModels.some((m) => typeof m !== 'string'))) {
    throw new TensorwireError('INVALID_INPUT', `loadModels must be an array of model names, got ${shown(options.loadModels)}`);
  }
  for (const option of Object.keys(OPTION_BOUNDS) as NumericOption[]) {
    if (options[option] !== undefined) boundedInteger(option, options[option]);
  }
  if (options.defaultProvider !== undefined) providerOption(options.defaultProvider);
  if (options.grpcPort !== undefined && options.grpcPort !== 'off') boundedInteger('port', options.grpcPort, 'grpcPort');
  if (options.traceDir !== undefined && (typeof options.traceDir !== 'string' || options.traceDir === '')) throw new TensorwireError('INVALID_INPUT', `traceDir must be a directory path, got ${shown(options.traceDir)}`);
  if (options.allowModelUpload !== undefined && typeof options.allowModelUpload !== 'boolean') throw new TensorwireError('INVALID_INPUT', `allowModelUpload must be true or false, got ${shown(options.allowModelUpload)}`);
  if (options.streamFeed !== undefined && typeof options.streamFeed !== 'boolean') throw new TensorwireError('INVALID_INPUT', `streamFeed must be true or false, got ${shown(options.streamFeed)}`);
}

/** The model defaults of checked options (only those given). */
export function modelDefaults(options: TensorwireOptions): ModelDefaults {
  return {
    ...(options.defaultProvider !== undefined ? { defaultProvider: providerOption(options.defaultProvider) } : {}),
    ...(options.defaultInstances !== undefined ? { defaultInstances: options.defaultInstances } : {}),
    ...(options.defaultMaxBatchSize !== undefined ? { defaultMaxBatchSize: options.defaultMaxBatchSize } : {}),
    // Outputs are bounded like bodies unless told otherwise: an answer is never bigger than a request may be.
    defaultMaxOutputBytes: Math.min(options.maxOutputBytes ?? options.maxBodyBytes ?? DEFAULT_OUTPUT_BYTES, OPTION_BOUNDS.maxOutputBytes[1]),
  };
}
