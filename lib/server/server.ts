/**
 * Starts the uWebSockets.js app that serves an `InferenceService`: KServe v2 REST, the
 * WebSocket stream and /metrics. The front end knows only the core API (lib/core/types.ts).
 */
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import uWS from 'uWebSockets.js';
import type { InferenceService } from '../core/types';
import { InFlightTracker } from '../frontdoor/inflight';
import { TensorwireError } from '../errors';
import { addPreflightRoute, addRoute, type RouteSecurity, type RouteSpec, type ServerContext } from './router';
import type { SecuritySetup } from '../auth/serve-flags';
import { Gate } from '../frontdoor/authorize';
import { ANONYMOUS } from '../frontdoor/request-context';
import { tlsAppOptionsAsync, tlsFilesOf, tlsFlagsOf } from '../auth/tls-options';
import { TlsFileWatcher, type TlsFileWatcherOptions } from '../auth/tls-file-watcher';
import { isLoopbackHost } from '../auth/bind-policy';
import { healthRoutes, metricsRoute, notFoundRoute } from './routes-health';
import { modelRoutes } from './routes-models';
import { repositoryRoutesWith } from './routes-repository';
import { batchingRoutes } from './routes-batching';
import { routingRoutes } from './routes-routing';
import { sharedMemoryRoutes } from './routes-shared-memory';
import { SharedMemoryRegistry } from '../shm/region-registry';
import { sharedMemoryStage } from '../shm/shared-memory-stage';
import type { SharedMemoryLimits } from '../shm/limits';
import { traceRoutes } from './routes-trace';
import { loggingRoutes } from './routes-logging';
import { TraceControl } from './trace-control';
import { ServerLog } from './server-log';
import { ModelUploads } from './model-uploads';
import { isRoutingCore, RoutingTable } from '../routing/routing-table';
import { routingStage } from '../routing/routing-stage';
import { cacheStage, isCacheCore } from '../cache/cache-stage';
import { DEFAULT_CACHE_BYTES, ResponseCache } from '../cache/response-cache';
import { registerStream, type StreamRegistry } from './stream';
import { PredictionFeed } from './prediction-feed';
import { FrontDoor } from '../frontdoor/front-door';
import { HttpCompression, type CompressionOptions } from './http-compression';
import { ConnectionLimiter, DEFAULT_MAX_CONNECTIONS, effectiveMaxConnections, openDescriptors } from './connection-limit';

/** Options of `startServer`. */
export interface ServerOptions {
  /** Interface to bind. Default 127.0.0.1. */
  host?: string;
  /** Port; 0 picks a free one (see `RunningServer.port`). Default 8000. */
  port?: number;
  /** Largest request body and WebSocket message, bytes. Default 64 MiB. */
  maxBodyBytes?: number;
  /** Requests in flight per stream connection before 429 error frames. Default 256. */
  streamMaxInflight?: number;
  /** Bytes buffered in uWS per stream connection above which answers wait in its outbox. Default 1 MiB. */
  streamHighWaterBytes?: number;
  /**
   * Whether stream clients may subscribe to a model's live prediction feed. Default false:
   * there is no authentication yet, and subscribers cost serving (within the feed's budget,
   * prediction-feed.ts). False answers subscribe frames with 403.
   */
  streamFeed?: boolean;
  /** Serves GET /metrics when given (e.g. prom-client's registry). */
  metricsHandler?: () => Promise<{ contentType: string; body: string | Uint8Array }>;
  /**
   * The front door the transports call (admission, stages, in-flight, feed). Default: one
   * over `service` with this server's prediction feed. Give one to share it with other
   * transports or to add stages (authorization, routing, cache).
   */
  frontDoor?: FrontDoor;
  /** Bounds of the system shared memory extension (lib/shm/limits.ts). Default: 1024 regions, 64 GiB mapped. */
  sharedMemory?: SharedMemoryLimits;
  /** Byte budget of the response cache (models with `response_cache { enable: true }`); 0: off. Default 256 MiB. */
  cacheBytes?: number;
  /**
   * Serve /metrics on this port of the same host instead of the main port (0 picks a free
   * one), so scrapes can be firewalled apart from inference. Default: on the main port.
   */
  metricsPort?: number;
  /**
   * Open connections (HTTP and WebSocket together) past which new ones are refused at once.
   * Default 10,000; lowered to what the descriptor limit (RLIMIT_NOFILE) allows, see
   * `RunningServer.maxConnections` and lib/server/connection-limit.ts.
   */
  maxConnections?: number;
  /**
   * Access control, browser checks, CORS and TLS (lib/auth/serve-flags.ts `createSecurity`).
   * Absent: nothing is checked (an embedding application's own choice; `tensorwire serve`
   * always passes one, so its defaults apply without flags).
   */
  security?: SecuritySetup;
  /**
   * With TLS: reload the certificate when its files change (lib/auth/tls-file-watcher.ts).
   * Default on; false leaves reloads to `reloadTls` (SIGHUP).
   */
  tlsWatch?: TlsFileWatcherOptions | false;
  /**
   * Directory trace files are written in (`--trace-dir`, an existing directory). Without it
   * the trace extension still samples nothing and refuses `trace_file` (docs/protocol.md "Trace").
   */
  traceDir?: string;
  /** Whether repository loads may carry model files (`file:` parameters, `--allow-model-upload`). Default false. */
  allowModelUpload?: boolean;
  /** The server log GET/POST /v2/logging control (default: one writing to stdout). */
  log?: ServerLog;
  /**
   * HTTP content codings (lib/server/http-compression.ts): gzip/deflate request bodies are
   * decompressed within `maxBodyBytes`, answers of at least 1 KiB compressed for clients
   * that accept it. Default: on.
   */
  compression?: CompressionOptions;
}

/** A listening server. */
export interface RunningServer {
  /** The port actually bound (useful with port 0). */
  readonly port: number;
  /** The interface bound. */
  readonly host: string;
  /** The port /metrics is served on when `metricsPort` was given. */
  readonly metricsPort?: number;
  /** Requests (HTTP and stream) handed to the core and not settled yet, or still being written. */
  readonly inflight: number;
  /** The connection cap in force: `maxConnections`, or less when the descriptor limit is lower. */
  readonly maxConnections: number;
  /** The live prediction feed: connections with a subscription (`size`) and subscriptions in all. */
  readonly feed: { readonly size: number; readonly subscriptions: number };
  /** The front door every transport of this server calls (other transports, e.g. gRPC, share it). */
  readonly frontDoor: FrontDoor;
  /** This server's system shared memory regions (the gRPC service's shared memory RPCs can call it). */
  readonly sharedMemory: SharedMemoryRegistry;
  /** Request tracing (Triton's trace extension): settings and trace files. */
  readonly trace: TraceControl;
  /** The access check of every call (undefined without `security`): gRPC admits its calls through it too. */
  readonly gate: Gate | undefined;
  /** The server log GET/POST /v2/logging governs. */
  readonly log: ServerLog;
  /**
   * Begins a graceful shutdown: readiness turns false, new inference requests and stream
   * connections get 503, and the promise resolves true once every in-flight request settled
   * (false if `timeoutMs` passed first). The server keeps listening so probes see "not ready".
   */
  drain(timeoutMs: number): Promise<boolean>;
  /** Stops listening and closes every connection (in-flight requests are cancelled). */
  close(): Promise<void>;
  /**
   * Re-reads the TLS certificate and key files (--tls-cert, --tls-key, --tls-ca) and serves
   * new connections with them, without refusing any or closing open ones (those finish on
   * the old certificate). Rejects, leaving the old certificate in force, when the files are
   * not usable; rejects on a server without TLS.
   */
  reloadTls(): Promise<void>;
  /**
   * Runs `reload` after each successful certificate reload of this server (SIGHUP, file
   * watch, `reloadTls`): other transports serving the same files (gRPC) reload with it.
   */
  onTlsReload(reload: () => Promise<void>): void;
}

/** 64 MiB. */
export const DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024;
/** Requests in flight per stream connection. */
export const DEFAULT_STREAM_MAX_INFLIGHT = 256;

/** Starts listening; resolves once the port is bound, rejects if it cannot be. */
export function startServer(service: InferenceService, options: ServerOptions = {}): Promise<RunningServer> {
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? 8000;
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const streamMaxInflight = options.streamMaxInflight ?? DEFAULT_STREAM_MAX_INFLIGHT;
  if (!Number.isSafeInteger(maxBodyBytes) || maxBodyBytes <= 0) throw new RangeError(`maxBodyBytes must be a positive integer, got ${maxBodyBytes}`);
  if (!Number.isSafeInteger(streamMaxInflight) || streamMaxInflight <= 0) throw new RangeError(`streamMaxInflight must be a positive integer, got ${streamMaxInflight}`);
  if (options.streamHighWaterBytes !== undefined && !(Number.isSafeInteger(options.streamHighWaterBytes) && options.streamHighWaterBytes > 0)) {
    throw new RangeError(`streamHighWaterBytes must be a positive integer, got ${options.streamHighWaterBytes}`);
  }
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`port must be 0..65535, got ${port}`);
  const requestedMaxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  if (!Number.isSafeInteger(requestedMaxConnections) || requestedMaxConnections <= 0) throw new RangeError(`maxConnections must be a positive integer, got ${requestedMaxConnections}`);
  const metricsPort = options.metricsPort;
  if (metricsPort !== undefined && !(Number.isInteger(metricsPort) && metricsPort >= 0 && metricsPort <= 65535)) {
    throw new RangeError(`metricsPort must be 0..65535, got ${metricsPort}`);
  }

  if (options.traceDir !== undefined && !statSync(options.traceDir, { throwIfNoEntry: false })?.isDirectory()) {
    throw new RangeError(`traceDir must be an existing directory, got ${options.traceDir}`);
  }
  const feed = new PredictionFeed();
  const setup = options.security;
  const security: RouteSecurity | undefined = setup === undefined ? undefined : {
    gate: new Gate(setup, ANONYMOUS, isLoopbackHost(host)),
    hosts: setup.hosts,
    cors: setup.cors,
    allowedOrigins: setup.allowedOrigins,
    tls: setup.tls !== undefined,
  };
  const frontDoor = options.frontDoor ?? new FrontDoor({ service, feed, ...(setup ? { audit: setup.audit } : {}) });
  // Inference of transports that do not admit calls themselves (the stream, gRPC) is
  // authorized here; HTTP routes were admitted by the router and pass straight through.
  // Without credentials configured every caller may infer and no principal has limits: the
  // stage would only cost each call its objects, so it is left out.
  if (security !== undefined && security.gate.enabled) frontDoor.use(security.gate.inferStage());
  // Shared memory regions are this server's; tensors in them are resolved before routing and
  // the cache look at their bytes (a front door given by the caller is its to equip).
  const sharedMemory = new SharedMemoryRegistry(options.sharedMemory);
  if (options.frontDoor === undefined) frontDoor.use(sharedMemoryStage(sharedMemory));
  const context: ServerContext = {
    service,
    maxBodyBytes,
    inflight: new InFlightTracker(),
    feed,
    frontDoor,
    compression: new HttpCompression(options.compression),
    ...(options.metricsHandler && metricsPort === undefined ? { metricsHandler: options.metricsHandler } : {}),
    ...(security ? { security } : {}),
  };
  // Traffic policies (lib/routing): a stage on the front door built here, and their control routes.
  const routing = isRoutingCore(service) ? new RoutingTable(service) : undefined;
  if (routing !== undefined && options.frontDoor === undefined) context.frontDoor.use(routingStage(routing));
  // The response cache (lib/cache) after routing, so the version is chosen when the key is made.
  const cacheBytes = options.cacheBytes ?? DEFAULT_CACHE_BYTES;
  if (cacheBytes > 0 && isCacheCore(service) && options.frontDoor === undefined) context.frontDoor.use(cacheStage(new ResponseCache(cacheBytes), service));
  // Resolved once: a later chdir must not move where traces go.
  const serverLog = options.log ?? new ServerLog();
  const trace = new TraceControl(context.frontDoor, { ...(options.traceDir !== undefined ? { traceDir: resolve(options.traceDir) } : {}), warn: (line) => serverLog.warn(line) });
  context.frontDoor.log = serverLog;
  const uploads = new ModelUploads(options.allowModelUpload ?? false);
  const newApp = (): uWS.TemplatedApp => (setup?.tls !== undefined ? uWS.SSLApp(setup.tls.appOptions) : uWS.App());
  let metricsBoundPort: number | undefined;
  // With a metrics port, a scrape of the main port is told where to go instead.
  const mainMetricsRoute: RouteSpec = metricsPort === undefined ? metricsRoute : {
    ...metricsRoute,
    handler: () => {
      throw new TensorwireError('NOT_FOUND', `/metrics is served on port ${metricsBoundPort} (--metrics-port), not on this one`);
    },
  };
  /** Every stream registry made (a certificate reload makes a new app with its own). */
  const streamRegistries: StreamRegistry[] = [];
  /** Every app made, for close (apps replaced by a reload keep serving their open connections). */
  const apps: uWS.TemplatedApp[] = [];
  const buildMainApp = (): uWS.TemplatedApp => {
    const app = newApp();
    streamRegistries.push(registerStream(app, context, {
      maxInflight: streamMaxInflight,
      feed: options.streamFeed ?? false,
      ...(options.streamHighWaterBytes !== undefined ? { highWaterBytes: options.streamHighWaterBytes } : {}),
    }));
    for (const spec of [...healthRoutes, ...modelRoutes, ...repositoryRoutesWith(uploads), ...batchingRoutes, ...(routing ? routingRoutes(routing) : []), ...sharedMemoryRoutes(sharedMemory), ...traceRoutes(trace), ...loggingRoutes(serverLog), mainMetricsRoute]) addRoute(app, context, spec);
    addRoute(app, context, notFoundRoute);
    if (security !== undefined) addPreflightRoute(app, security);
    apps.push(app);
    return app;
  };
  // The metrics port answers /metrics and 404s, nothing else; the handler moves there
  // (its context shares the main one's in-flight tracker).
  const metricsContext: ServerContext = { ...context, ...(options.metricsHandler ? { metricsHandler: options.metricsHandler } : {}) };
  const buildMetricsApp = (): uWS.TemplatedApp => {
    const metricsApp = newApp();
    addRoute(metricsApp, metricsContext, metricsRoute);
    addRoute(metricsApp, metricsContext, notFoundRoute);
    if (security !== undefined) addPreflightRoute(metricsApp, security);
    apps.push(metricsApp);
    return metricsApp;
  };
  let app = buildMainApp();
  const metricsApp = metricsPort === undefined ? undefined : buildMetricsApp();
  const streams: StreamRegistry = {
    get size() {
      return streamRegistries.reduce((n, r) => n + r.size, 0);
    },
    closeAll() {
      for (const r of streamRegistries) r.closeAll();
    },
  };

  return (async (): Promise<RunningServer> => {
    let listenSocket: uWS.us_listen_socket | false = await listen(app, host, port);
    const boundMainPort = boundPort(listenSocket);
    if (port === 0) {
      // uSockets sets SO_REUSEADDR only when listening on a given port; without it the
      // connection limiter could not listen again while connections are open. Re-listen on
      // the port the kernel picked, before any connection exists.
      uWS.us_listen_socket_close(listenSocket);
      listenSocket = await listen(app, host, boundMainPort);
    }
    let metricsSocket: uWS.us_listen_socket | undefined;
    if (metricsApp !== undefined) {
      try {
        metricsSocket = await listen(metricsApp, host, metricsPort!);
        metricsBoundPort = boundPort(metricsSocket);
      } catch (e) {
        uWS.us_listen_socket_close(listenSocket);
        throw e;
      }
    }
    let closed: Promise<void> | undefined;
    const limiter = new ConnectionLimiter(effectiveMaxConnections(requestedMaxConnections), openDescriptors(), {
      pause() {
        if (listenSocket !== false) uWS.us_listen_socket_close(listenSocket);
        listenSocket = false;
      },
      async resume() {
        if (closed !== undefined) return false;
        try {
          const socket = await listen(app, host, boundMainPort);
          if (closed !== undefined) {
            uWS.us_listen_socket_close(socket); // closed while re-listening
            return false;
          }
          listenSocket = socket;
          return true;
        } catch {
          return false; // the port was taken meanwhile: the next sample tries again
        }
      },
    });
    /**
     * The new certificate serves new connections from a new app listening on the same port
     * (uSockets sets SO_REUSEPORT; an app's default TLS context cannot be replaced, and SNI
     * contexts would not reach clients that connect by IP address). Open connections stay
     * on the old app and certificate until they close. Closing the old listener resets what
     * sits in its accept queue unless net.ipv4.tcp_migrate_req=1, with which the kernel hands
     * those connections to the new listener (docs/security.md, "TLS").
     */
    const swapCertificate = async (): Promise<string> => {
      if (setup?.tls === undefined) throw new TensorwireError('INVALID_INPUT', 'this server does not serve TLS (--tls-cert, --tls-key)');
      // Checked first, off the JS thread: a bad new certificate leaves the running one in force.
      const checked = await tlsAppOptionsAsync(tlsFlagsOf(setup.tls.appOptions));
      if (closed !== undefined) return checked.summary;
      let next: uWS.TemplatedApp;
      try {
        next = buildMainApp();
      } catch (e) {
        // uWS read the files itself: they changed into something unusable since the check. Nothing was replaced.
        throw new TensorwireError('INVALID_INPUT', `the TLS files changed into unusable ones while being loaded (${(e as Error).message})`);
      }
      if (listenSocket === false) {
        app = next; // paused by the connection limiter: its resume listens with the new app
      } else {
        const nextSocket = await listen(next, host, boundMainPort);
        // Let the loop accept what already queued on the old listener before it closes.
        await new Promise((r) => setImmediate(r));
        if (listenSocket !== false) uWS.us_listen_socket_close(listenSocket);
        app = next;
        // Closed, or paused by the limiter, meanwhile: the new listener goes too.
        if (closed !== undefined || listenSocket === false) uWS.us_listen_socket_close(nextSocket);
        else listenSocket = nextSocket;
      }
      if (metricsSocket !== undefined && closed === undefined) {
        const nextMetrics = buildMetricsApp();
        const socket = await listen(nextMetrics, host, metricsBoundPort!);
        uWS.us_listen_socket_close(metricsSocket);
        metricsSocket = socket;
      }
      return checked.summary;
    };
    const tlsReloadListeners: (() => Promise<void>)[] = [];
    let tlsReloading: Promise<string> | undefined;
    /** One swap at a time: a reload asked for during one runs after it, with the files as they are then. */
    const reloadTls = (): Promise<string> => {
      const run = (tlsReloading ?? Promise.resolve(''))
        .catch(() => '')
        .then(swapCertificate)
        .then(async (summary) => {
          for (const reload of tlsReloadListeners) await reload();
          return summary;
        });
      tlsReloading = run;
      return run;
    };
    const tlsWatcher = setup?.tls === undefined || options.tlsWatch === false ? undefined : await TlsFileWatcher.open(tlsFilesOf(setup.tls.appOptions), reloadTls, options.tlsWatch ?? {});
    return {
      port: boundMainPort,
      maxConnections: limiter.max,
      host,
      ...(metricsBoundPort !== undefined ? { metricsPort: metricsBoundPort } : {}),
      get inflight() {
        // HTTP exchanges (inference included, until their last byte left) and stream calls.
        return context.inflight.size + context.frontDoor.inflightOf('stream');
      },
      feed: context.feed,
      frontDoor: context.frontDoor,
      sharedMemory,
      trace,
      gate: security?.gate,
      log: serverLog,
      onTlsReload(reload: () => Promise<void>): void {
        tlsReloadListeners.push(reload);
      },
      async reloadTls(): Promise<void> {
        await reloadTls();
      },
      async drain(timeoutMs: number): Promise<boolean> {
        context.frontDoor.beginDrain();
        const [exchanges, calls] = await Promise.all([context.inflight.idle(timeoutMs), context.frontDoor.calls.idle(timeoutMs)]);
        return exchanges && calls;
      },
      close(): Promise<void> {
        closed ??= (async () => {
          context.frontDoor.beginDrain();
          limiter.stop();
          tlsWatcher?.close();
          if (listenSocket !== false) uWS.us_listen_socket_close(listenSocket);
          listenSocket = false;
          if (metricsSocket !== undefined) uWS.us_listen_socket_close(metricsSocket);
          streams.closeAll();
          // app.close() (in the binary, not in the typings of 20.30) closes the remaining
          // HTTP connections, keep-alive ones included; pending responses see onAborted.
          for (const a of apps) (a as unknown as { close?: () => void }).close?.();
          sharedMemory.close();
          // Trace lines still buffered reach their files; uploaded model files are removed.
          await Promise.all([trace.close(), uploads.close()]);
        })();
        return closed;
      },
    };
  })();
}

/** Binds `app` to host:port; rejects when the port is taken or the address unavailable. */
function listen(app: uWS.TemplatedApp, host: string, port: number): Promise<uWS.us_listen_socket> {
  return new Promise((resolve, reject) => {
    app.listen(host, port, (listenSocket) => {
      if (listenSocket === false) reject(new Error(`cannot listen on ${host}:${port} (address in use or not available)`));
      else resolve(listenSocket);
    });
  });
}

function boundPort(listenSocket: uWS.us_listen_socket): number {
  return uWS.us_socket_local_port(listenSocket as unknown as uWS.us_socket);
}
