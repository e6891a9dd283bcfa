/**
 * ModelStreamInfer: a bidirectional stream of ModelInferRequest in, ModelStreamInferResponse
 * out. Each request gets exactly one answer (or an `error_message` naming its `id`), in
 * whatever order the answers are ready: clients match them by `id`.
 *
 * Backpressure, not refusal: a request counts against the stream's limit
 * (`streamMaxInflight`) from the moment it is read until its answer has been flushed to the
 * HTTP/2 stream. At the limit the stream stops reading (the duplex is paused; grpc-js then
 * stops reading the HTTP/2 stream and flow control stops the client), and reading resumes as
 * answers leave. A client pipelining 10,000 requests is slowed, never refused; a client that
 * stops reading its answers stops the server from reading more of its requests, so memory per
 * stream stays bounded either way.
 *
 * The stream ends (status OK) once the client half-closed and every answer was flushed. A
 * cancel or disconnect aborts every request the stream still has queued or running. When the
 * server closes, an open stream reads nothing more and ends with UNAVAILABLE once every
 * answer it owes has been flushed (the graceful drain has let them finish by then).
 */
import type * as grpc from '@grpc/grpc-js';
import { toTensorwireError } from '../errors';
import type { RequestContext } from '../frontdoor/types';
import { RequestSignal } from '../server/request-signal';
import { callContext, callPeer, deadlineMicros, selectedMetadata, type CallPeer } from './call-context';
import { decodeFor, type GrpcContext, type OpenStream } from './grpc-context';
import { encodeInferResponse, type DecodedInfer } from './infer-codec';
import { applyDeadline, clientCancelled, runDecoded } from './model-infer';
import { shuttingDown, statusDetails, toServiceError } from './status';
import { answerWriter, type AnswerWriter } from './answer-writer';
import type { WireInferRequest, WireStreamResponse } from './wire-types';

type Duplex = grpc.ServerDuplexStream<WireInferRequest, WireStreamResponse>;

/** The ModelStreamInfer handler. */
export function modelStreamInfer(ctx: GrpcContext): grpc.handleBidiStreamingCall<WireInferRequest, WireStreamResponse> {
  return (call) => {
    if (ctx.draining) {
      call.emit('error', toServiceError(shuttingDown()));
      return;
    }
    new InferStream(call, ctx).start();
  };
}

class InferStream implements OpenStream {
  /** Requests read and not yet flushed (answered, and the answer written). */
  private pending = 0;
  private paused = false;
  /** The client half-closed: no more requests. */
  private halfClosed = false;
  /** The call is over (ended, cancelled or aborted): nothing more is written. */
  private finished = false;
  /** The server is closing: read nothing more, end with UNAVAILABLE once every answer left. */
  private closing = false;
  /** Signals of the requests handed to the gateway and not settled. */
  private readonly running = new Set<RequestSignal>();
  /** Metadata is per call: read once, shared by every request's context. */
  private readonly headers: Record<string, string>;
  /** The peer's address and certificate subject, taken once at the stream's start. */
  private readonly peer: CallPeer;
  /** Writes answers; those of one tick leave in one HTTP/2 write (answer-writer.ts). */
  private readonly writeAnswer: AnswerWriter<WireStreamResponse>;

  constructor(
    private readonly call: Duplex,
    private readonly ctx: GrpcContext,
  ) {
    this.headers = selectedMetadata(call.metadata);
    this.peer = callPeer(call, ctx.readsSubjects);
    this.writeAnswer = answerWriter(call);
  }

  start(): void {
    this.ctx.streams.add(this);
    this.call.on('data', (message: WireInferRequest) => this.onRequest(message));
    this.call.on('end', () => {
      this.halfClosed = true;
      this.maybeFinish();
    });
    this.call.on('cancelled', () => this.cancelAll());
    // grpc-js reports a failed write or a bad message as 'error' and ends the call itself.
    this.call.on('error', () => this.cancelAll());
  }

  private onRequest(message: WireInferRequest): void {
    if (this.finished) return;
    this.pending++;
    if (this.pending >= this.ctx.streamMaxInflight && !this.paused) {
      this.paused = true;
      this.call.pause();
    }
    const context = callContext(this.call, this.headers, message.id || undefined, this.peer);
    let decoded: DecodedInfer;
    try {
      if (this.ctx.draining) throw shuttingDown();
      decoded = decodeFor(this.ctx, message);
    } catch (e) {
      this.ctx.gateway.refused(message.model_name || undefined, e, context);
      this.answerError(message, e);
      return;
    }
    applyDeadline(decoded, deadlineMicros(this.call));
    this.run(decoded, context, message);
  }

  private run(decoded: DecodedInfer, context: RequestContext, message: WireInferRequest): void {
    const signal = new RequestSignal();
    this.running.add(signal);
    runDecoded(this.ctx, decoded, context, signal).then(
      (response) => {
        this.running.delete(signal);
        this.write({ error_message: '', infer_response: encodeInferResponse(response) });
      },
      (e: unknown) => {
        this.running.delete(signal);
        this.answerError(message, e);
      },
    );
  }

  /** A failed request's answer: the message, and the request's id, model and catalogue code so the client can match and branch on it. */
  private answerError(message: WireInferRequest, e: unknown): void {
    const error = toTensorwireError(e);
    this.write({
      error_message: statusDetails(error.message),
      infer_response: {
        model_name: message.model_name ?? '',
        model_version: message.model_version ?? '',
        id: message.id ?? '',
        parameters: { error_code: { string_param: error.code } },
        outputs: [],
        raw_output_contents: [],
      },
    });
  }

  private write(response: WireStreamResponse): void {
    if (this.finished) {
      this.settled();
      return;
    }
    this.writeAnswer(response, () => this.settled());
  }

  /** One request's answer left (or will never be written): make room, maybe resume reading, maybe end. */
  private settled(): void {
    this.pending--;
    if (this.paused && this.pending < this.ctx.streamMaxInflight && !this.finished && !this.closing) {
      this.paused = false;
      this.call.resume();
    }
    this.maybeFinish();
  }

  private maybeFinish(): void {
    if (this.finished || this.pending > 0) return;
    if (this.closing) {
      this.finished = true;
      this.ctx.streams.delete(this);
      this.call.emit('error', toServiceError(shuttingDown()));
    } else if (this.halfClosed) {
      this.finished = true;
      this.ctx.streams.delete(this);
      this.call.end();
    }
  }

  /** The client went away or the call failed: withdraw everything still queued or running. */
  private cancelAll(): void {
    if (this.finished && this.running.size === 0) return;
    this.finished = true;
    this.ctx.streams.delete(this);
    const running = [...this.running];
    this.running.clear();
    for (const signal of running) signal.abort(clientCancelled());
  }

  close(): void {
    if (this.finished) return;
    this.closing = true;
    this.paused = true;
    this.call.pause();
    this.maybeFinish();
  }
}
