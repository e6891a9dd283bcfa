/**
 * The front door: the one place every inference call and control action passes, whatever
 * transport brought it (HTTP, the WebSocket stream, gRPC). Transports decode their wire into
 * an `InferCall` or a `ControlCall`, call in here, and encode what comes back; everything in
 * between is written once, here:
 *
 *   admission    shutting down (503 + Retry-After); unknown model / version and not ready
 *                are the core's `admit`, reached before any work is queued
 *   stages       an ordered list (authorization, routing, cache, pre/post-processing) that
 *                may refuse, answer, rewrite the call or wrap what follows
 *   in flight    every call is counted until it settles, for graceful drains
 *   id echo      the response carries the request's id
 *   feed         successes are offered to the live prediction feed after the transport sent
 *                the answer (setImmediate runs after the promise continuations that send it)
 *   refusals     a request the transport could not decode is counted against its model
 *
 * Ownership: once `infer` is called, the front door owns the call until its promise settles;
 * the transport keeps only the job of encoding the outcome (or nothing, when its client left).
 */
import { TensorwireError, toTensorwireError } from '../errors';
import type { InferenceService } from '../core/types';
import type { InferResponse } from '../protocol/types';
import type { AuditLog } from '../auth/audit';
import { InFlightTracker } from './inflight';
import { truncateForMessage } from '../util/message-text';
import type { ControlCall, InferCall, InferGateway, InferStage, RequestContext, Transport } from './types';

/** Where successes go for the live prediction feed (lib/server/prediction-feed.ts fits). */
export interface PredictionSink {
  /** True when somebody subscribes to `model`: only then is a success worth offering. */
  wants(model: string): boolean;
  publish(model: string, request: InferCall['request'], response: InferResponse, requestId: string | number | undefined): void;
}

/**
 * Samples calls for request tracing (lib/server/trace-control.ts). Installed on the front door
 * only while tracing is on, so an untraced call pays one property check.
 */
export interface CallTracer {
  /** A trace for this call, or undefined when it is not sampled. */
  begin(call: InferCall): CallTrace | undefined;
}

/** One sampled call: told once how it ended. */
export interface CallTrace {
  end(response: InferResponse | undefined, error: unknown): void;
}

/** Where management actions are logged at verbose level 1 (lib/server/server-log.ts fits). */
export interface ControlLog {
  readonly verboseLevel: number;
  verbose(level: number, line: string): void;
}

/** Options of the front door. */
export interface FrontDoorOptions {
  service: InferenceService;
  feed?: PredictionSink;
  /** Where management actions are recorded (lib/auth/audit.ts), when access control is on. */
  audit?: AuditLog;
}

/** The error every call gets once a graceful shutdown began. */
export function shuttingDown(): TensorwireError {
  return new TensorwireError('UNAVAILABLE', 'the server is shutting down', { retryAfterSeconds: 1 });
}

/** Control actions that change the server's state (refused while draining; audited). */
const READ_ONLY_ACTION = /\.(read|index|status)$/;

export class FrontDoor implements InferGateway {
  private readonly service: InferenceService;
  /** Calls admitted and not settled yet, over every transport (a graceful drain waits for them). */
  readonly calls = new InFlightTracker();
  /** The same, per transport (cheap counters: one increment and one decrement a call). */
  private readonly byTransport: Record<Transport, number> = { http: 0, stream: 0, grpc: 0 };
  private readonly feed: PredictionSink | undefined;
  private readonly stages: InferStage[] = [];
  /** The stages folded into one function, rebuilt when a stage is added. */
  private pipeline: (call: InferCall) => Promise<InferResponse>;
  private draining = false;
  private readonly audit: AuditLog | undefined;
  /** Request tracing, set only while some trace setting is on (see CallTracer). */
  tracer: CallTracer | undefined = undefined;
  /** The server log: each management action and its result at verbose level 1. */
  log: ControlLog | undefined = undefined;

  constructor(options: FrontDoorOptions) {
    this.service = options.service;
    this.feed = options.feed;
    this.audit = options.audit;
    this.pipeline = this.core;
  }

  /** True once a graceful shutdown began. */
  get isDraining(): boolean {
    return this.draining;
  }

  /** Calls in flight that came in on `transport`. */
  inflightOf(transport: Transport): number {
    return this.byTransport[transport];
  }

  /** Begins a graceful shutdown: new calls and state-changing control actions get 503. */
  beginDrain(): void {
    this.draining = true;
  }

  /**
   * Appends a stage (stages run in the order they are added, each around those after it).
   * With none, a call goes straight to the core: the hot path pays for no pipeline.
   */
  use(stage: InferStage): void {
    this.stages.push(stage);
    let next: (call: InferCall) => Promise<InferResponse> = this.core;
    for (let i = this.stages.length - 1; i >= 0; i--) {
      const s = this.stages[i]!;
      const after = next;
      next = (call) => s(call, after);
    }
    this.pipeline = next;
  }

  /** Admission, in-flight accounting, stages, the core, id echo and the feed (see the file comment). */
  infer(call: InferCall): Promise<InferResponse> {
    if (this.draining) return Promise.reject(shuttingDown());
    const transport = call.context.transport;
    this.calls.enter();
    this.byTransport[transport]++;
    const trace = this.tracer?.begin(call);
    let pending: Promise<InferResponse>;
    try {
      pending = this.pipeline(call);
    } catch (e) {
      pending = Promise.reject(e);
    }
    return pending.then(
      (response) => {
        this.byTransport[transport]--;
        this.calls.leave();
        if (response.id === undefined && call.request.id !== undefined) response.id = call.request.id;
        if (trace !== undefined) trace.end(response, undefined);
        const feed = this.feed;
        if (feed !== undefined && feed.wants(call.model)) setImmediate(() => feed.publish(call.model, call.request, response, call.answerId ?? response.id));
        return response;
      },
      (e: unknown) => {
        this.byTransport[transport]--;
        this.calls.leave();
        const error = toTensorwireError(e);
        if (trace !== undefined) trace.end(undefined, error);
        throw error;
      },
    );
  }

  /** Counts a request the transport could not decode against its model (when it names a known one). */
  refused(model: string | undefined, error: unknown, _context: RequestContext, version?: string): void {
    if (model === undefined || this.service.recordRefused === undefined) return;
    try {
      this.service.recordRefused(model, version, toTensorwireError(error).code);
    } catch {
      // Counting must never turn a 400 into something else.
    }
  }

  /**
   * Runs a control action. Admission is synchronous (uWS delivers a body only to a reader
   * attached before the first await, so `run` must start in this same tick): a
   * state-changing action is refused while draining; reads are served.
   */
  control<T>(call: ControlCall, run: () => T | Promise<T>): Promise<T> {
    const changes = !READ_ONLY_ACTION.test(call.action);
    const audit = changes ? this.audit : undefined;
    if (this.draining && changes) {
      audit?.control(call, 'UNAVAILABLE');
      return Promise.reject(shuttingDown());
    }
    let pending: Promise<T>;
    try {
      pending = Promise.resolve(run());
    } catch (e) {
      pending = Promise.reject(e);
    }
    const log = this.log;
    if (log !== undefined && log.verboseLevel >= 1) {
      const what = `${call.action}${call.target !== undefined ? ` ${truncateForMessage(call.target)}` : ''} by ${call.context.principal.name}`;
      // A side branch: the caller still gets `pending` itself.
      pending.then(
        () => log.verbose(1, `control ${what}: ok`),
        (e: unknown) => log.verbose(1, `control ${what}: ${toTensorwireError(e).code}`),
      );
    }
    if (audit === undefined) return pending;
    return pending.then(
      (value) => {
        audit.control(call, 'ok');
        return value;
      },
      (e: unknown) => {
        audit.control(call, toTensorwireError(e).code);
        throw e;
      },
    );
  }

  /**
   * Records a management action refused before it ran (authentication, scope, browser
   * checks: the transport refused it before calling `control`). Reads are not recorded.
   */
  controlRefused(call: ControlCall, error: TensorwireError): void {
    if (this.audit !== undefined && !READ_ONLY_ACTION.test(call.action)) this.audit.control(call, error.code);
  }

  /** The last stage: the core (which admits: unknown model or version 404, not ready 503). */
  private readonly core = (call: InferCall): Promise<InferResponse> => this.service.infer(call.model, call.version, call.request, call.signal);
}
