/**
 * What every gRPC handler sees: the core (metadata, readiness, repository), the gateway that
 * runs inference and control actions, and the transport's own state (in-flight count for the
 * graceful drain, open streams, limits).
 */
import type { InferenceService } from '../core/types';
import type { InferGateway } from '../frontdoor/types';
import type { InFlightTracker } from '../frontdoor/inflight';
import { TensorwireError } from '../errors';
import type { InferResponse } from '../protocol/types';
import { clip, decodeInferRequest, type DecodedInfer } from './infer-codec';
import type { WireInferRequest } from './wire-types';
import type { Gate } from '../frontdoor/authorize';
import type { SharedMemoryRegistry } from '../shm/region-registry';
import type { TraceControl } from '../server/trace-control';
import type { ServerLog } from '../server/server-log';

/** An open ModelStreamInfer call, for shutdown. */
export interface OpenStream {
  /** The server is closing: stop reading, end with UNAVAILABLE once every answer owed has left. */
  close(): void;
}

export interface GrpcContext {
  readonly service: InferenceService;
  readonly gateway: InferGateway;
  /** Calls handed to the gateway and not settled yet (unary and stream requests). */
  readonly inflight: InFlightTracker;
  /** Largest message, either way (the body limit). */
  readonly maxMessageBytes: number;
  /** Requests read from one stream and not yet answered before the stream stops reading. */
  readonly streamMaxInflight: number;
  readonly streams: Set<OpenStream>;
  /** True once a graceful shutdown began: readiness false, new work UNAVAILABLE. */
  draining: boolean;
  /** The HTTP server's access check; undefined: every call is let in (no security configured). */
  readonly gate: Gate | undefined;
  /** Whether calls' client certificate subjects are read (TLS and credentials configured: they may name `mtls` principals). */
  readonly readsSubjects: boolean;
  /** The HTTP server's system shared memory regions (the SystemSharedMemory* RPCs); undefined: UNIMPLEMENTED. */
  readonly sharedMemory: SharedMemoryRegistry | undefined;
  /** The HTTP server's trace settings (TraceSetting); undefined: UNIMPLEMENTED. */
  readonly trace: TraceControl | undefined;
  /** The HTTP server's log (LogSettings); undefined: UNIMPLEMENTED. */
  readonly log: ServerLog | undefined;
}

/**
 * Decodes a request for this server: one naming shared memory regions is refused when the
 * server has no regions (startGrpcServer without the HTTP server's registry), rather than
 * reaching the model with its tensors unresolved.
 */
export function decodeFor(ctx: GrpcContext, message: WireInferRequest): DecodedInfer {
  const decoded = decodeInferRequest(message);
  if (ctx.sharedMemory !== undefined) return decoded;
  const { inputs, outputs } = decoded.request;
  const named = inputs.find((t) => t.sharedMemory !== undefined) ?? outputs?.find((t) => t.sharedMemory !== undefined);
  if (named !== undefined) throw new TensorwireError('INVALID_INPUT', `'${clip(named.name)}' names a shared memory region, but this gRPC server was started without shared memory regions`);
  return decoded;
}

/** Refuses an answer whose tensors alone exceed the message limit (grpc-js would otherwise end the whole call, stream included, with a bare RESOURCE_EXHAUSTED). */
export function checkAnswerSize(response: InferResponse, maxMessageBytes: number): void {
  let bytes = 0;
  for (const o of response.outputs) bytes += o.data.byteLength;
  if (bytes > maxMessageBytes) {
    throw new TensorwireError('PAYLOAD_TOO_LARGE', `the outputs of model '${response.modelName}' hold ${bytes} bytes, over the ${maxMessageBytes}-byte message limit (--max-body-bytes); ask for fewer outputs or a smaller batch`);
  }
}
