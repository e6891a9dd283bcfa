/**
 * What a gRPC call tells the front door besides its message: the peer's address, the
 * metadata the front door's stages read, the client's deadline, and a cancellation signal
 * that aborts when the client cancels, disconnects or its deadline passes.
 */
import type * as grpc from '@grpc/grpc-js';
import { createRequestContext } from '../frontdoor/request-context';
import type { RequestContext } from '../frontdoor/types';
import { RequestSignal } from '../server/request-signal';
import { peerSubject } from './peer-subject';

/** Metadata keys copied into the request context (credentials, trace and request ids); never anything else. */
export const CONTEXT_METADATA_KEYS = ['authorization', 'x-api-key', 'x-request-id', 'traceparent'] as const;

/** Longest metadata value copied (a client may send anything). */
const MAX_METADATA_VALUE = 8192;

/** The peer's IP without the port: "127.0.0.1", "::1". */
export function peerAddress(peer: string): string {
  // grpc-js writes "host:port", IPv6 hosts in brackets or bare ("::1:5000").
  const bracket = /^\[([^\]]+)\](?::\d+)?$/.exec(peer);
  if (bracket) return bracket[1]!;
  const colon = peer.lastIndexOf(':');
  if (colon < 0) return peer;
  return peer.slice(0, colon) || peer;
}

/** The selected metadata of a call, lower-case keys, string values. */
export function selectedMetadata(metadata: grpc.Metadata): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const key of CONTEXT_METADATA_KEYS) {
    const values = metadata.get(key);
    if (values.length > 0 && typeof values[0] === 'string') headers[key] = values[0].slice(0, MAX_METADATA_VALUE);
  }
  return headers;
}

/**
 * A request context for a call; `clientId` is the message's `id` (a stream carries one per
 * message). The address and the client certificate's subject (mTLS: the principal of the
 * auth file's `mtls` entry) are taken now, while the call is open; a stream takes both once,
 * at its start, and passes them (`peer`).
 */
export function callContext(
  call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>,
  headers: Record<string, string>,
  clientId: string | undefined,
  peer: CallPeer,
): RequestContext {
  const context = createRequestContext('grpc', peer.address, headers, clientId);
  if (peer.tlsSubject !== undefined) context.tlsSubject = peer.tlsSubject;
  return context;
}

/** Who is at the other end of a call. */
export interface CallPeer {
  readonly address: string;
  readonly tlsSubject: string | undefined;
}

/**
 * The call's peer, read now. The certificate subject only when `subjects` (TLS with an auth
 * file: reading it parses the peer's certificate, a cost no other server should pay per call).
 */
export function callPeer(call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>, subjects: boolean): CallPeer {
  return { address: peerAddress(call.getPeer()), tlsSubject: subjects ? peerSubject(call) : undefined };
}

/**
 * The microseconds left until the call's deadline (at least 1), or undefined when the client
 * set none. Becomes the request's `timeout`, so the scheduler drops a request whose client has
 * given up on it rather than run it.
 */
export function deadlineMicros(call: { getDeadline(): grpc.Deadline }): number | undefined {
  const deadline = call.getDeadline();
  const at = deadline instanceof Date ? deadline.getTime() : deadline;
  if (!Number.isFinite(at)) return undefined;
  return Math.max(1, Math.ceil((at - Date.now()) * 1000));
}

/**
 * A signal that aborts (CANCELLED) when the call is cancelled: client cancel, disconnect or
 * deadline. grpc-js also emits 'cancelled' when a call's stream closes after its answer was
 * sent, every call: `answered()` says the call is over, and then nothing is aborted (an
 * abort there built an error, with its stack, per call for nothing).
 */
export function cancellationSignal(call: { cancelled: boolean; once(event: 'cancelled', listener: () => void): unknown }, reason: () => unknown, answered: () => boolean = () => false): RequestSignal {
  const signal = new RequestSignal();
  if (call.cancelled) signal.abort(reason());
  else
    call.once('cancelled', () => {
      if (!answered()) signal.abort(reason());
    });
  return signal;
}
