/**
 * Starts the gRPC front end: inference.GRPCInferenceService (KServe v2 / Triton) and
 * grpc.health.v1.Health on one port, over an InferGateway (the front door) and the core's
 * metadata API. Like the HTTP front end, it only decodes and encodes.
 *
 *   const grpc = await startGrpcServer(service, { port: 8001 });
 *   ...
 *   await grpc.drain(30_000);   // readiness false, new calls UNAVAILABLE, in-flight finish
 *   await grpc.close();         // tryShutdown, then forceShutdown after the grace period
 */
import * as grpc from '@grpc/grpc-js';
import type { InferenceService } from '../core/types';
import type { InferGateway } from '../frontdoor/types';
import { InFlightTracker } from '../frontdoor/inflight';
import type { GrpcContext, OpenStream } from './grpc-context';
import { healthService } from './health';
import { tolerantDefinition } from './malformed';
import { loadProtos } from './proto';
import { inferenceService } from './rpc-handlers';
import { withHandWrittenInferCodec } from './infer-wire';
import { FrontDoor } from '../frontdoor/front-door';
import { DEFAULT_GRPC_PORT } from './defaults';
import { TensorwireError } from '../errors';
import { grpcServerCredentials, type GrpcTlsFiles } from './tls';
import type { Gate } from '../frontdoor/authorize';
import type { SharedMemoryRegistry } from '../shm/region-registry';
import type { TraceControl } from '../server/trace-control';
import type { ServerLog } from '../server/server-log';

export { DEFAULT_GRPC_PORT } from './defaults';
/** The body limit's default, 64 MiB: the largest message either way. */
export const DEFAULT_GRPC_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
/** Requests in flight per ModelStreamInfer stream before it stops reading. */
export const DEFAULT_GRPC_STREAM_MAX_INFLIGHT = 256;
/** Concurrent calls (HTTP/2 streams) per connection: each may hold a message of up to the limit. */
export const DEFAULT_GRPC_MAX_CONCURRENT_STREAMS = 256;
/** Idle connections are pinged this often; one that does not answer within the timeout is closed. */
export const DEFAULT_GRPC_KEEPALIVE_TIME_MS = 60_000;
export const DEFAULT_GRPC_KEEPALIVE_TIMEOUT_MS = 20_000;
/** How long close() lets calls finish (tryShutdown) before cutting them (forceShutdown). */
export const DEFAULT_GRPC_CLOSE_GRACE_MS = 5_000;
/** Room above the tensor bytes for an answer's descriptions (names, shapes, ids). */
const SEND_HEADROOM_BYTES = 1024 * 1024;

/** Options of startGrpcServer. */
export interface GrpcServerOptions {
  /** Interface to bind. Default 127.0.0.1. */
  host?: string;
  /** Port; 0 picks a free one. Default 8001. */
  port?: number;
  /** What runs inference and control actions: the front door shared with HTTP and the stream. Default: a front door of its own over `service`. */
  gateway?: InferGateway;
  /** Largest message received (and answer sent). Default 64 MiB (the body limit). */
  maxMessageBytes?: number;
  /** Requests in flight per stream before it stops reading. Default 256. */
  streamMaxInflight?: number;
  /** HTTP/2 streams (calls) per connection. Default 256. */
  maxConcurrentStreams?: number;
  keepaliveTimeMs?: number;
  keepaliveTimeoutMs?: number;
  /**
   * The HTTP server's access check (RunningServer.gate): every RPC needs what the HTTP route
   * answering the same question needs. Default: none (every call let in, as HTTP without security).
   */
  gate?: Gate;
  /** The HTTP server's shared memory regions, trace settings and log (RunningServer's): the SystemSharedMemory*, TraceSetting and LogSettings RPCs act on them. Each absent: its RPCs answer UNIMPLEMENTED. */
  sharedMemory?: SharedMemoryRegistry;
  trace?: TraceControl;
  log?: ServerLog;
  /** Serve TLS with these files (the HTTPS server's, `--tls-cert/--tls-key[/--tls-ca]`); with a CA, client certificates are required. Default: plaintext. */
  tls?: GrpcTlsFiles;
}

/** A listening gRPC server. */
export interface RunningGrpcServer {
  readonly host: string;
  /** The port actually bound (useful with port 0). */
  readonly port: number;
  /** `host:port` as gRPC clients take it (brackets around IPv6). */
  readonly address: string;
  /** Whether it serves TLS. */
  readonly tls: boolean;
  /** Calls handed to the gateway and not settled. */
  readonly inflight: number;
  /** Open ModelStreamInfer streams. */
  readonly streams: number;
  /**
   * Reads the TLS files again and serves them to new connections (open ones keep theirs);
   * rejects, keeping the running certificate, when they are unusable. Rejects without TLS.
   */
  reloadTls(): Promise<void>;
  /** Readiness false and new calls UNAVAILABLE at once; resolves true once nothing is in flight (false if `timeoutMs` passed first). */
  drain(timeoutMs: number): Promise<boolean>;
  /** Stops accepting, ends open streams (UNAVAILABLE) and watches, lets calls finish for `graceMs`, then cuts the rest. */
  close(graceMs?: number): Promise<void>;
}

function positive(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || v <= 0) throw new RangeError(`${name} must be a positive integer, got ${v}`);
  return v;
}

/** Starts listening; resolves once bound, rejects with a message naming host and port when the port cannot be bound. */
export async function startGrpcServer(service: InferenceService, options: GrpcServerOptions = {}): Promise<RunningGrpcServer> {
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? DEFAULT_GRPC_PORT;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`gRPC port must be 0..65535, got ${port}`);
  const maxMessageBytes = positive('maxMessageBytes', options.maxMessageBytes, DEFAULT_GRPC_MAX_MESSAGE_BYTES);
  const ctx: GrpcContext = {
    service,
    gateway: options.gateway ?? new FrontDoor({ service }),
    inflight: new InFlightTracker(),
    maxMessageBytes,
    streamMaxInflight: positive('streamMaxInflight', options.streamMaxInflight, DEFAULT_GRPC_STREAM_MAX_INFLIGHT),
    streams: new Set<OpenStream>(),
    draining: false,
    gate: options.gate,
    readsSubjects: options.tls?.ca_file_name !== undefined && options.gate?.enabled === true,
    sharedMemory: options.sharedMemory,
    trace: options.trace,
    log: options.log,
  };
  const server = new grpc.Server({
    'grpc.max_receive_message_length': Math.min(maxMessageBytes, 0x7fffffff),
    'grpc.max_send_message_length': Math.min(maxMessageBytes + SEND_HEADROOM_BYTES, 0x7fffffff),
    'grpc.max_concurrent_streams': positive('maxConcurrentStreams', options.maxConcurrentStreams, DEFAULT_GRPC_MAX_CONCURRENT_STREAMS),
    'grpc.keepalive_time_ms': positive('keepaliveTimeMs', options.keepaliveTimeMs, DEFAULT_GRPC_KEEPALIVE_TIME_MS),
    'grpc.keepalive_timeout_ms': positive('keepaliveTimeoutMs', options.keepaliveTimeoutMs, DEFAULT_GRPC_KEEPALIVE_TIMEOUT_MS),
    // Channelz (per-call bookkeeping for a debugging service tensorwire does not serve) costs on every call.
    'grpc.enable_channelz': 0,
  });
  const protos = loadProtos();
  server.addService(tolerantDefinition(withHandWrittenInferCodec(protos.inference)), inferenceService(ctx));
  const health = healthService(ctx);
  server.addService(tolerantDefinition(protos.health), health.implementation);

  const { credentials, reload: reloadCertificate } = grpcServerCredentials(options.tls);
  const hostPort = `${host.includes(':') ? `[${host}]` : host}`;
  const boundPort = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${hostPort}:${port}`, credentials, (error, bound) => {
      if (error) reject(new Error(`cannot listen for gRPC on ${host}:${port} (${error.message.includes('EADDRINUSE') || /in use/i.test(error.message) ? 'address in use' : error.message})`));
      else resolve(bound);
    });
  });

  let closed: Promise<void> | undefined;
  return {
    host,
    port: boundPort,
    address: `${hostPort}:${boundPort}`,
    tls: options.tls !== undefined,
    reloadTls(): Promise<void> {
      if (reloadCertificate === undefined) return Promise.reject(new TensorwireError('INVALID_INPUT', 'this gRPC server does not serve TLS (--tls-cert, --tls-key)'));
      return reloadCertificate();
    },
    get inflight() {
      return ctx.inflight.size;
    },
    get streams() {
      return ctx.streams.size;
    },
    drain(timeoutMs: number): Promise<boolean> {
      ctx.draining = true;
      return ctx.inflight.idle(timeoutMs);
    },
    close(graceMs = DEFAULT_GRPC_CLOSE_GRACE_MS): Promise<void> {
      closed ??= new Promise<void>((resolve) => {
        ctx.draining = true;
        health.watches.endAll();
        for (const stream of [...ctx.streams]) stream.close();
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      return closed;
    },
  };
}
