#!/usr/bin/env node
/**
 * The `tensorwire` command:
 *
 *   tensorwire serve --repo DIR | FILE.onnx [--host H] [--port P]
 *                    [--model-control none|poll|explicit] [--load-model NAME]...
 *                    [--max-body-bytes N] [--repository-poll-ms N] [--drain-timeout-ms N]
 *                    [--metrics-port P] [--stream-max-inflight N] [--stream-feed on|off]
 *                    [--max-connections N]
 *   tensorwire bench ...            (lib/bench/cli.ts)
 *
 * On SIGTERM/SIGINT `serve` shuts down gracefully: readiness turns false and new requests get
 * 503 at once, in-flight requests are given `--drain-timeout-ms` to finish, the core is shut
 * down, then the server closes and the process exits 0. A second signal exits at once.
 */
import { parseArgs } from 'node:util';
import { createInferenceService, type ModelControl } from './core/service';
import type { InferenceService } from './core/types';
import { DEFAULT_MAX_BODY_BYTES, DEFAULT_STREAM_MAX_INFLIGHT, startServer, type RunningServer } from './server/server';
import { DEFAULT_MAX_CONNECTIONS } from './server/connection-limit';

/** What `tensorwire serve` was asked for. */
export interface ServeOptions {
  /** A repository directory (`<name>/<version>/model.onnx`) or a single `.onnx` file. */
  repository: string;
  modelControl: ModelControl;
  /** Models to load at start in `explicit` mode. */
  loadModels: string[];
  /** Repository poll interval in `poll` mode, milliseconds. */
  pollMs: number;
  host: string;
  port: number;
  maxBodyBytes: number;
  /** How long a graceful shutdown waits for in-flight requests. */
  drainTimeoutMs: number;
  /** Serve /metrics on this port instead of the main one. */
  metricsPort?: number;
  /** Requests in flight per WebSocket stream before 429 error frames. */
  streamMaxInflight: number;
  /** Whether stream clients may subscribe to the live prediction feed (`--stream-feed on|off`). */
  streamFeed: boolean;
  /** Open connections (HTTP and WebSocket) past which new ones are refused. */
  maxConnections: number;
}

/** A service with the optional graceful-shutdown hook the CLI calls. */
export type ShutdownableService = InferenceService & { shutdown?: () => Promise<void> };

const USAGE = `usage:
  tensorwire serve (--repo DIR | FILE.onnx) [--host 127.0.0.1] [--port 8000]
                   [--model-control none|poll|explicit] [--load-model NAME]...
                   [--max-body-bytes ${DEFAULT_MAX_BODY_BYTES}] [--repository-poll-ms 1000]
                   [--drain-timeout-ms 30000] [--metrics-port P (default: /metrics on --port)]
                   [--stream-max-inflight ${DEFAULT_STREAM_MAX_INFLIGHT}] [--stream-feed on|off (default on)]
                   [--max-connections ${DEFAULT_MAX_CONNECTIONS} (lowered to fit the open-file limit)]
  tensorwire bench ...`;

/** Entry point; returns the process exit code for commands that finish. */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === 'serve') return serve(rest);
  if (command === 'bench') {
    // lib/bench is another module's; loaded only for this command.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const bench = require('./bench/cli') as { main(argv: string[]): Promise<number | void> | number | void };
    return (await bench.main(rest)) ?? 0;
  }
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    console.log(USAGE);
    return command === undefined ? 1 : 0;
  }
  console.error(`unknown command '${command}'\n${USAGE}`);
  return 1;
}

/** Parses `serve` arguments; throws with a message naming the bad option. */
export function parseServeArgs(args: string[]): ServeOptions {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      repo: { type: 'string' },
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '8000' },
      'model-control': { type: 'string', default: 'poll' },
      'load-model': { type: 'string', multiple: true, default: [] },
      'max-body-bytes': { type: 'string', default: String(DEFAULT_MAX_BODY_BYTES) },
      'repository-poll-ms': { type: 'string', default: '1000' },
      'drain-timeout-ms': { type: 'string', default: '30000' },
      'metrics-port': { type: 'string' },
      'stream-max-inflight': { type: 'string', default: String(DEFAULT_STREAM_MAX_INFLIGHT) },
      'stream-feed': { type: 'string', default: 'on' },
      'max-connections': { type: 'string', default: String(DEFAULT_MAX_CONNECTIONS) },
    },
  });
  if (values.repo !== undefined && positionals.length > 0) throw new Error(`give either --repo DIR or a model file, not both (got --repo ${values.repo} and ${positionals.join(' ')})`);
  if (positionals.length > 1) throw new Error(`serve takes one model file, got ${positionals.length}: ${positionals.join(' ')}`);
  const repository = values.repo ?? positionals[0];
  if (repository === undefined) throw new Error('serve needs --repo DIR or a model file (FILE.onnx)');
  const modelControl = values['model-control'];
  if (modelControl !== 'none' && modelControl !== 'poll' && modelControl !== 'explicit') {
    throw new Error(`--model-control must be none, poll or explicit, got '${modelControl}'`);
  }
  const streamFeed = values['stream-feed'];
  // There is no authentication yet: `off` is how an operator keeps predictions private.
  if (streamFeed !== 'on' && streamFeed !== 'off') throw new Error(`--stream-feed must be on or off, got '${streamFeed}'`);
  return {
    repository,
    host: values.host,
    port: integerOption('--port', values.port, 0, 65535),
    modelControl,
    loadModels: values['load-model'],
    maxBodyBytes: integerOption('--max-body-bytes', values['max-body-bytes'], 1, Number.MAX_SAFE_INTEGER),
    pollMs: integerOption('--repository-poll-ms', values['repository-poll-ms'], 1, 86_400_000),
    drainTimeoutMs: integerOption('--drain-timeout-ms', values['drain-timeout-ms'], 0, 86_400_000),
    ...(values['metrics-port'] !== undefined ? { metricsPort: integerOption('--metrics-port', values['metrics-port'], 0, 65535) } : {}),
    streamMaxInflight: integerOption('--stream-max-inflight', values['stream-max-inflight'], 1, 1_000_000),
    streamFeed: streamFeed === 'on',
    maxConnections: integerOption('--max-connections', values['max-connections'], 1, 10_000_000),
  };
}

function integerOption(name: string, text: string, min: number, max: number): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new Error(`${name} must be an integer from ${min} to ${max}, got '${text}'`);
  return n;
}

async function serve(args: string[]): Promise<number> {
  let options: ServeOptions;
  try {
    options = parseServeArgs(args);
  } catch (e) {
    console.error(`${(e as Error).message}\n${USAGE}`);
    return 1;
  }
  const service = await createInferenceService({
    repository: options.repository,
    modelControl: options.modelControl,
    loadModels: options.loadModels,
    pollMs: options.pollMs,
  });
  const registry = service.registry;
  const server = await startServer(service, {
    host: options.host,
    port: options.port,
    maxBodyBytes: options.maxBodyBytes,
    streamMaxInflight: options.streamMaxInflight,
    streamFeed: options.streamFeed,
    maxConnections: options.maxConnections,
    ...(options.metricsPort !== undefined ? { metricsPort: options.metricsPort } : {}),
    metricsHandler: async () => ({ contentType: registry.contentType, body: await registry.metrics() }),
  });
  const url = `http://${options.host.includes(':') ? `[${options.host}]` : options.host}:${server.port}`;
  const metricsUrl = server.metricsPort === undefined ? `${url}/metrics` : `${url.replace(/:\d+$/, `:${server.metricsPort}`)}/metrics`;
  console.log(`tensorwire serving on ${url} (KServe v2 REST at ${url}/v2, stream at ${url.replace('http', 'ws')}/v2/stream, metrics at ${metricsUrl})`);
  if (server.maxConnections < options.maxConnections) {
    console.log(`  --max-connections ${options.maxConnections} lowered to ${server.maxConnections}: the open-file limit (ulimit -n) leaves no room for more`);
  }
  installShutdown(service, server, options.drainTimeoutMs);
  // Requests are answered (503 until ready) while the models load; list them once loaded.
  await service.initialLoad;
  const index = service.repositoryIndex();
  if (index.length === 0) console.log('  no models');
  for (const entry of index) console.log(`  model ${entry.name} version ${entry.version}: ${entry.state}${entry.reason ? ` (${entry.reason})` : ''}`);
  // Keep running: uWS holds the event loop open until the server closes.
  return new Promise<number>(() => undefined);
}

/**
 * The graceful part of a shutdown, without exiting: readiness false and 503 for new work at
 * once (server.drain), in-flight requests given `drainTimeoutMs`, then the core's shutdown,
 * then the listen socket and every connection closed. Resolves true when nothing had to be
 * cut off.
 */
export async function gracefulShutdown(service: ShutdownableService, server: RunningServer, drainTimeoutMs: number, log: (line: string) => void = console.log): Promise<boolean> {
  const drained = await server.drain(drainTimeoutMs);
  if (!drained) log(`drain timeout: ${server.inflight} request(s) still in flight are cancelled`);
  try {
    await service.shutdown?.();
  } catch (e) {
    log(`core shutdown failed: ${(e as Error).message}`);
  }
  await server.close();
  return drained;
}

function installShutdown(service: ShutdownableService, server: RunningServer, drainTimeoutMs: number): void {
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) {
      console.error(`${signal} again: exiting without waiting`);
      process.exit(1);
    }
    stopping = true;
    console.log(`${signal}: draining ${server.inflight} in-flight request(s) (up to ${drainTimeoutMs} ms)`);
    gracefulShutdown(service, server, drainTimeoutMs).then(
      () => process.exit(0),
      (e: unknown) => {
        console.error(`shutdown failed: ${(e as Error).message}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      console.error(e instanceof Error ? e.message : String(e));
      process.exit(1);
    },
  );
}
