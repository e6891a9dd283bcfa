/**
 * The composition root: one call that wires a tensorwire server together the way
 * `tensorwire serve` runs it (the core service over a model repository, the HTTP/WebSocket
 * front end, /metrics) and hands back one handle that shuts it all down in the right order.
 * The CLI and the tests' server harness start servers through here, so there is one wiring.
 *
 *   const tw = await createTensorwire({ repository: 'models', port: 0 });
 *   // ... tw.url serves KServe v2 ...
 *   await tw.close();
 */
import type { Registry } from 'prom-client';
import { createInferenceService, type TensorwireService } from './core/service';
import type { InferenceService } from './core/types';
import type { RunningGrpcServer } from './grpc/server';
import { startServer, type RunningServer } from './server/server';
import { checkOptions, modelDefaults, type TensorwireOptions } from './tensorwire-options';
import { createSecurity, type SecurityOptions, type SecuritySetup } from './auth/serve-flags';
import { ServerLog } from './server/server-log';

/** True when `security` is a built setup rather than the flags it is built from. */
function isSetup(security: SecurityOptions | SecuritySetup): security is SecuritySetup {
  return (security as SecuritySetup).access !== undefined;
}

/** A running tensorwire server. */
export interface Tensorwire {
  /** `http://host:port` of the REST API (`/v2/...`) and the stream (`ws://host:port/v2/stream`). */
  readonly url: string;
  /** Where /metrics is served (on `url` unless `metricsPort` was given). */
  readonly metricsUrl: string;
  /** The server core: models, inference, statistics, hot swap, independent of HTTP. */
  readonly service: TensorwireService;
  /** The Prometheus registry /metrics serves (`await tw.metrics.metrics()` gives the text). */
  readonly metrics: Registry;
  /** The listening front end (port, in-flight count, drain). */
  readonly server: RunningServer;
  /** The gRPC front end when `grpcPort` was given (its `address` is `host:port` for gRPC clients). */
  readonly grpc: RunningGrpcServer | undefined;
  /** Resolves when the models loaded at start have loaded (or failed); createTensorwire waits for it unless `waitForModels` is false. */
  readonly initialLoad: Promise<void>;
  /**
   * Graceful shutdown: readiness false and 503 for new work at once, in-flight requests given
   * `drainTimeoutMs` to finish, models freed, then the sockets closed. Resolves true when
   * nothing had to be cut off. Calling it again returns the same promise.
   */
  close(): Promise<boolean>;
}

/** Options of createTensorwire beyond the server's own. */
export interface CreateOptions {
  /** Resolve only once the models loaded at start are ready or failed (default true). The server answers (503 until ready) either way. */
  waitForModels?: boolean;
}

/** A service with the optional graceful-shutdown hook gracefulShutdown calls. */
export type ShutdownableService = InferenceService & { shutdown?: () => Promise<void> };

/**
 * Starts serving `options.repository` and resolves once listening (and, unless
 * `waitForModels` is false, once the models loaded at start have loaded). Every option is
 * checked first: a bad one rejects with TensorwireError INVALID_INPUT naming it.
 */
export async function createTensorwire(options: TensorwireOptions & CreateOptions): Promise<Tensorwire> {
  checkOptions(options);
  const defaults = modelDefaults(options);
  const host = options.host ?? '127.0.0.1';
  // Built before the core: a bad auth file or certificate fails before any model loads.
  const given = options.security;
  const security = given === undefined ? undefined : isSetup(given) ? given : createSecurity(given, host, process.env);
  const ownsSecurity = given !== undefined && !isSetup(given);
  // One log for the core's lines and the server's, so /v2/logging governs both.
  const serverLog = new ServerLog(options.log ?? ((line) => console.log(line)));
  const log = (line: string): void => serverLog.info(line);
  let service: TensorwireService;
  try {
    service = await createInferenceService({
    repository: options.repository,
    modelControl: options.modelControl ?? 'poll',
    loadModels: options.loadModels ?? [],
    ...(options.repositoryPollMs !== undefined ? { pollMs: options.repositoryPollMs } : {}),
    ...(options.versionDrainMs !== undefined ? { drainMs: options.versionDrainMs } : {}),
    log,
    ...(Object.keys(defaults).length > 0 ? { modelDefaults: defaults } : {}),
    ...(options.trtCacheDir !== undefined ? { trtCacheDir: options.trtCacheDir } : {}),
    });
  } catch (e) {
    if (ownsSecurity) security?.close();
    throw e;
  }
  const registry = service.registry;
  // tensorwire_auth_requests_total and tensorwire_audit_events_total in /metrics.
  security?.audit.registerWith(registry);
  let server: RunningServer;
  try {
    server = await startServer(service, {
      host,
      port: options.port ?? 8000,
      ...(options.maxBodyBytes !== undefined ? { maxBodyBytes: options.maxBodyBytes } : {}),
      ...(options.maxConnections !== undefined ? { maxConnections: options.maxConnections } : {}),
      ...(options.streamMaxInflight !== undefined ? { streamMaxInflight: options.streamMaxInflight } : {}),
      ...(options.streamFeed !== undefined ? { streamFeed: options.streamFeed } : {}),
      ...(options.metricsPort !== undefined ? { metricsPort: options.metricsPort } : {}),
      ...(options.cacheBytes !== undefined ? { cacheBytes: options.cacheBytes } : {}),
      ...(options.compression !== undefined ? { compression: options.compression } : {}),
      metricsHandler: async () => ({ contentType: registry.contentType, body: await registry.metrics() }),
      ...(security !== undefined ? { security } : {}),
      ...(options.traceDir !== undefined ? { traceDir: options.traceDir } : {}),
      ...(options.allowModelUpload !== undefined ? { allowModelUpload: options.allowModelUpload } : {}),
      log: serverLog,
    });
  } catch (e) {
    // Nothing listens: free what the core loaded before reporting the failure.
    await service.shutdown().catch(() => undefined);
    if (ownsSecurity) security?.close();
    throw e;
  }
  let grpc: RunningGrpcServer | undefined;
  if (options.grpcPort !== undefined && options.grpcPort !== 'off') {
    try {
      // Loaded only when asked for: @grpc/grpc-js and the protos cost start-up time otherwise.
      const { startGrpcServer } = await import('./grpc/server');
      grpc = await startGrpcServer(service, {
        // One front door for every transport: admission, stages, in-flight, feed, refusals.
        gateway: server.frontDoor,
        // ...and the HTTP server's access check, shared memory regions, trace settings and log.
        ...(server.gate !== undefined ? { gate: server.gate } : {}),
        sharedMemory: server.sharedMemory,
        trace: server.trace,
        log: server.log,
        host: options.host ?? '127.0.0.1',
        port: options.grpcPort,
        ...(options.maxBodyBytes !== undefined ? { maxMessageBytes: options.maxBodyBytes } : {}),
        ...(options.streamMaxInflight !== undefined ? { streamMaxInflight: options.streamMaxInflight } : {}),
        // gRPC serves TLS whenever HTTP does, with the same files.
        ...(security?.tls !== undefined ? { tls: security.tls.appOptions } : {}),
      });
      // One certificate for both: a reload of the HTTPS one (SIGHUP, file watch) reloads gRPC's.
      const started = grpc;
      if (started.tls) server.onTlsReload(() => started.reloadTls());
    } catch (e) {
      // A gRPC port that cannot be bound stops the start, as the HTTP port does.
      await server.close();
      await service.shutdown().catch(() => undefined);
      throw e;
    }
  }
  const tls = security?.tls !== undefined;
  const url = urlOf(server.host, server.port, tls);
  const drainTimeoutMs = options.drainTimeoutMs ?? 30_000;
  let closing: Promise<boolean> | undefined;
  const tw: Tensorwire = {
    url,
    metricsUrl: server.metricsPort === undefined ? `${url}/metrics` : `${urlOf(server.host, server.metricsPort, tls)}/metrics`,
    service,
    metrics: registry,
    server,
    grpc,
    initialLoad: service.initialLoad,
    close: () => (closing ??= gracefulShutdown(service, server, drainTimeoutMs, (line) => serverLog.warn(line), grpc)),
  };
  if (options.waitForModels ?? true) await service.initialLoad;
  return tw;
}

/** `http://host:port`, brackets around an IPv6 address. */
function urlOf(host: string, port: number, tls = false): string {
  return `${tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/**
 * The graceful part of a shutdown, without exiting: readiness false and 503 for new work at
 * once (server.drain), in-flight requests given `drainTimeoutMs`, then the core's shutdown,
 * then the listen socket and every connection closed. The gRPC front end, when given, drains
 * and closes beside the HTTP one. Resolves true when nothing had to be cut off.
 */
export async function gracefulShutdown(service: ShutdownableService, server: RunningServer, drainTimeoutMs: number, log: (line: string) => void = console.log, grpc?: RunningGrpcServer): Promise<boolean> {
  // Both front ends stop taking work at once and drain together.
  const [httpDrained, grpcDrained] = await Promise.all([server.drain(drainTimeoutMs), grpc?.drain(drainTimeoutMs) ?? true]);
  const drained = httpDrained && grpcDrained;
  if (!drained) log(`drain timeout: ${server.inflight + (grpc?.inflight ?? 0)} request(s) still in flight are cancelled`);
  try {
    await service.shutdown?.();
  } catch (e) {
    log(`core shutdown failed: ${(e as Error).message}`);
  }
  await Promise.all([server.close(), grpc?.close()]);
  return drained;
}
