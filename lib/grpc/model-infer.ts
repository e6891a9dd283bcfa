/**
 * ModelInfer (unary): decode, hand the call to the gateway, encode. The client's deadline
 * becomes the request's timeout (the smaller of it and a `timeout` parameter), and a cancel,
 * a disconnect or the deadline aborts the request's signal, which withdraws it from its
 * queue (or its batch) so it never runs for nobody.
 */
import type * as grpc from '@grpc/grpc-js';
import { TensorwireError } from '../errors';
import type { RequestContext } from '../frontdoor/types';
import type { InferResponse } from '../protocol/types';
import type { RequestSignal } from '../server/request-signal';
import { callContext, callPeer, cancellationSignal, deadlineMicros, selectedMetadata } from './call-context';
import { checkAnswerSize, decodeFor, type GrpcContext } from './grpc-context';
import { encodeInferResponse, type DecodedInfer } from './infer-codec';
import { shuttingDown, toServiceError } from './status';
import type { WireInferRequest, WireInferResponse } from './wire-types';

/** The reason a request's signal aborts with when its client cancels. */
export function clientCancelled(): TensorwireError {
  return new TensorwireError('CANCELLED', 'the client cancelled the call (or its deadline passed)');
}

/** Applies the call's deadline to a decoded request: the earlier of it and the request's own `timeout`. */
export function applyDeadline(decoded: DecodedInfer, deadlineUs: number | undefined): void {
  if (deadlineUs === undefined) return;
  const own = decoded.request.timeoutUs;
  decoded.request.timeoutUs = own === undefined || own === 0 ? deadlineUs : Math.min(own, deadlineUs);
}

/**
 * Runs one decoded request through the gateway, counted in flight until it settles. Resolves
 * with the answer, size-checked against the message limit.
 */
export async function runDecoded(ctx: GrpcContext, decoded: DecodedInfer, context: RequestContext, signal: RequestSignal): Promise<InferResponse> {
  ctx.inflight.enter();
  try {
    const response = await ctx.gateway.infer({ model: decoded.model, version: decoded.version, request: decoded.request, context, signal: signal.asAbortSignal() });
    checkAnswerSize(response, ctx.maxMessageBytes);
    return response;
  } finally {
    ctx.inflight.leave();
  }
}

/** The ModelInfer handler. */
export function modelInfer(ctx: GrpcContext): grpc.handleUnaryCall<WireInferRequest, WireInferResponse> {
  return (call, callback) => {
    const message = call.request;
    const context = callContext(call, selectedMetadata(call.metadata), message.id || undefined, callPeer(call, ctx.readsSubjects));
    let decoded: DecodedInfer;
    try {
      if (ctx.draining) throw shuttingDown();
      decoded = decodeFor(ctx, message);
    } catch (e) {
      ctx.gateway.refused(message.model_name || undefined, e, context);
      callback(toServiceError(e));
      return;
    }
    applyDeadline(decoded, deadlineMicros(call));
    let answered = false;
    const signal = cancellationSignal(call, clientCancelled, () => answered);
    runDecoded(ctx, decoded, context, signal).then(
      (response) => {
        answered = true;
        callback(null, encodeInferResponse(response));
      },
      (e: unknown) => {
        answered = true;
        callback(toServiceError(e));
      },
    );
  };
}
