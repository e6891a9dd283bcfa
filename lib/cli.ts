#!/usr/bin/env node
/**
 * The `tensorwire` command:
 *
 *   tensorwire serve --repo DIR | FILE.onnx [--host H] [--port P]
 *                    [--model-control none|poll|explicit] [--load-model NAME]...
 *                    [--max-body-bytes N] [--repository-poll-ms N] [--drain-timeout-ms N]
 *                    [--metrics-port P] [--stream-max-inflight N] [--stream-feed on|off]
 *                    [--default-provider cpu|cuda|tensorrt] [--default-instances N]
 *                    [--default-max-batch-size N] [--max-output-bytes N] [--trt-cache-dir DIR]
 *                    [--max-connections N] [--grpc-port P|off] [--trace-dir DIR] [--allow-model-upload]
 *                    [--http-compression on|off]
 *                    [security flags: lib/auth/serve-flags.ts]
 *   tensorwire auth add-key ...     (lib/auth/cli.ts)
 *   tensorwire bench ...            (lib/bench/cli.ts)
 *
 * On SIGTERM/SIGINT `serve` shuts down gracefully: readiness turns false and new requests get
 * 503 at once, in-flight requests are given `--drain-timeout-ms` to finish, the core is shut
 * down, then the server closes and the process exits 0. A second signal exits at once.
 *
 * The wiring itself is createTensorwire's (lib/tensorwire.ts); this file only turns flags
 * into its options and signals into its close().
 */
import { parseArgs } from 'node:util';
import { createSecurity, parseSecurityFlags, SECURITY_FLAGS, SECURITY_USAGE, type SecurityOptions } from './auth/serve-flags';
import { DEFAULT_GRPC_PORT } from './grpc/defaults';
import { DEFAULT_MAX_BODY_BYTES, DEFAULT_STREAM_MAX_INFLIGHT } from './server/server';
import { DEFAULT_MAX_CONNECTIONS } from './server/connection-limit';
import { createTensorwire, type Tensorwire } from './tensorwire';
import { OPTION_BOUNDS, boundedInteger, flagNumber, flagOf, providerOption, type NumericOption, type TensorwireOptions } from './tensorwire-options';

export { gracefulShutdown, type ShutdownableService } from './tensorwire';

/** What `tensorwire serve` was asked for: createTensorwire's options, the CLI's defaults filled in. */
export type ServeOptions = TensorwireOptions & Required<Pick<TensorwireOptions, 'modelControl' | 'loadModels' | 'repositoryPollMs' | 'host' | 'port' | 'maxBodyBytes' | 'drainTimeoutMs' | 'streamMaxInflight' | 'streamFeed' | 'maxConnections' | 'grpcPort'>> & { security?: SecurityOptions };

const USAGE = `usage:
  tensorwire serve (--repo DIR | FILE.onnx) [--host 127.0.0.1] [--port 8000]
                   [--model-control none|poll|explicit] [--load-model NAME]...
                   [--max-body-bytes ${DEFAULT_MAX_BODY_BYTES}] [--repository-poll-ms 1000]
                   [--drain-timeout-ms 30000] [--metrics-port P (default: /metrics on --port)]
                   [--stream-max-inflight ${DEFAULT_STREAM_MAX_INFLIGHT}] [--stream-feed on|off (default off)]
                   [--http-compression on|off (gzip/deflate bodies and answers, default on)]
                   [--default-provider cpu|cuda|tensorrt (default cpu)]
                   [--default-instances 1 (1-${OPTION_BOUNDS.defaultInstances[1]})]
                   [--default-max-batch-size 64 (0-${OPTION_BOUNDS.defaultMaxBatchSize[1]})]
                   [--max-output-bytes N (default: --max-body-bytes)]
                   [--cache-bytes N (response cache budget, default 268435456; 0: off)]
                   [--trt-cache-dir DIR (default: <repo>/.tensorwire-trt-cache)]
                   [--max-connections ${DEFAULT_MAX_CONNECTIONS} (lowered to fit the open-file limit)]
                   [--grpc-port ${DEFAULT_GRPC_PORT}|off (KServe v2 / Triton gRPC on --host)]
                   [--trace-dir DIR (trace files of /v2/trace/setting go only here; default: none)]
                   [--allow-model-upload (repository loads may carry model files; default off)]
${SECURITY_USAGE}
  tensorwire auth add-key --file FILE --name NAME --scopes infer,monitor
  tensorwire bench ...`;

/** Entry point; returns the process exit code for commands that finish. */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === 'serve') return serve(rest);
  if (command === 'auth') return (await import('./auth/cli')).main(rest);
  if (command === 'bench') {
    // lib/bench is loaded only for this command (it brings worker threads and its own parsers).
    const bench = await import('./bench/cli');
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
      'stream-feed': { type: 'string', default: 'off' },
      'http-compression': { type: 'string', default: 'on' },
      'default-provider': { type: 'string' },
      'default-instances': { type: 'string' },
      'default-max-batch-size': { type: 'string' },
      'trt-cache-dir': { type: 'string' },
      'max-output-bytes': { type: 'string' },
      'cache-bytes': { type: 'string' },
      'max-connections': { type: 'string', default: String(DEFAULT_MAX_CONNECTIONS) },
      ...SECURITY_FLAGS,
      'grpc-port': { type: 'string', default: String(DEFAULT_GRPC_PORT) },
      'trace-dir': { type: 'string' },
      'allow-model-upload': { type: 'boolean', default: false },
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
  const httpCompression = values['http-compression'];
  if (httpCompression !== 'on' && httpCompression !== 'off') throw new Error(`--http-compression must be on or off, got '${httpCompression}'`);
  const text = (option: NumericOption): string | undefined => values[flagOf(option).slice(2) as keyof typeof values] as string | undefined;
  const integer = (option: NumericOption): number => boundedInteger(option, flagNumber(text(option) ?? ''), flagOf(option), text(option));
  const given = (option: NumericOption): boolean => text(option) !== undefined;
  const security = parseSecurityFlags(values);
  return {
    repository,
    host: values.host,
    port: integer('port'),
    modelControl,
    loadModels: values['load-model'],
    maxBodyBytes: integer('maxBodyBytes'),
    repositoryPollMs: integer('repositoryPollMs'),
    drainTimeoutMs: integer('drainTimeoutMs'),
    ...(given('metricsPort') ? { metricsPort: integer('metricsPort') } : {}),
    streamMaxInflight: integer('streamMaxInflight'),
    streamFeed: streamFeed === 'on',
    ...(httpCompression === 'off' ? { compression: { enabled: false } } : {}),
    ...(values['default-provider'] !== undefined ? { defaultProvider: providerOption(values['default-provider'], '--default-provider').kind } : {}),
    ...(given('defaultInstances') ? { defaultInstances: integer('defaultInstances') } : {}),
    ...(given('defaultMaxBatchSize') ? { defaultMaxBatchSize: integer('defaultMaxBatchSize') } : {}),
    ...(given('maxOutputBytes') ? { maxOutputBytes: integer('maxOutputBytes') } : {}),
    ...(given('cacheBytes') ? { cacheBytes: integer('cacheBytes') } : {}),
    ...(values['trt-cache-dir'] !== undefined ? { trtCacheDir: values['trt-cache-dir'] } : {}),
    ...(values['trace-dir'] !== undefined ? { traceDir: values['trace-dir'] } : {}),
    ...(values['allow-model-upload'] ? { allowModelUpload: true } : {}),
    maxConnections: integer('maxConnections'),
    ...(security ? { security } : {}),
    grpcPort: values['grpc-port'] === 'off' ? 'off' : boundedInteger('port', flagNumber(values['grpc-port']), '--grpc-port', values['grpc-port']),
  };
}

async function serve(args: string[]): Promise<number> {
  let options: ServeOptions;
  try {
    options = parseServeArgs(args);
  } catch (e) {
    console.error(`${(e as Error).message}\n${USAGE}`);
    return 1;
  }
  // Refuses an unauthenticated non-loopback bind and reads the auth/JWT/TLS files, before
  // anything listens. Enforcement is the front door's and the router's (they receive `security`).
  let security;
  try {
    security = createSecurity(options.security, options.host, process.env);
  } catch (e) {
    console.error((e as Error).message);
    return 1;
  }
  for (const warning of security.warnings) console.error(warning);
  // Listening comes first: requests are answered (503 until ready) while the models load.
  const tw = await createTensorwire({ ...options, security, waitForModels: false });
  console.log(`tensorwire serving on ${tw.url} (KServe v2 REST at ${tw.url}/v2, stream at ${tw.url.replace('http', 'ws')}/v2/stream, metrics at ${tw.metricsUrl})`);
  if (tw.server.maxConnections < options.maxConnections) {
    console.log(`  --max-connections ${options.maxConnections} lowered to ${tw.server.maxConnections}: the open-file limit (ulimit -n) leaves no room for more`);
  }
  if (tw.grpc) console.log(`gRPC (KServe v2 / Triton GRPCInferenceService, grpc.health.v1) on ${tw.grpc.address}`);
  installShutdown(tw, options.drainTimeoutMs);
  if (security.tls !== undefined) {
    // Certificate renewal (e.g. a certbot deploy hook): `kill -HUP <pid>` serves the new files.
    process.on('SIGHUP', () => {
      tw.server.reloadTls().then(
        () => console.log('SIGHUP: TLS certificate reloaded'),
        (e: unknown) => console.error(`SIGHUP: TLS certificate not reloaded, the old one stays in force: ${(e as Error).message}`),
      );
    });
  }
  await tw.initialLoad;
  const index = tw.service.repositoryIndex();
  if (index.length === 0) console.log('  no models');
  for (const entry of index) console.log(`  model ${entry.name} version ${entry.version}: ${entry.state}${entry.reason ? ` (${entry.reason})` : ''}`);
  // Keep running: uWS holds the event loop open until the server closes.
  return new Promise<number>(() => undefined);
}

function installShutdown(tw: Tensorwire, drainTimeoutMs: number): void {
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) {
      console.error(`${signal} again: exiting without waiting`);
      process.exit(1);
    }
    stopping = true;
    console.log(`${signal}: draining ${tw.server.inflight + (tw.grpc?.inflight ?? 0)} in-flight request(s) (up to ${drainTimeoutMs} ms)`);
    tw.close().then(
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
