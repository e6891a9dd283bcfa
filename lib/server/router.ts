/**
 * Glue between uWS route registration and route handlers: builds the `HttpExchange`
 * synchronously, turns anything a handler throws into an error response, and tracks
 * asynchronous handlers as in flight for graceful shutdown.
 */
import type { TemplatedApp } from 'uWebSockets.js';
import type { InferenceService } from '../core/types';
import { TensorwireError } from '../errors';
import { HttpExchange } from './http-response';
import type { InFlightTracker } from '../frontdoor/inflight';
import type { PredictionFeed } from './prediction-feed';
import type { FrontDoor } from '../frontdoor/front-door';
import { createRequestContext } from '../frontdoor/request-context';
import type { RequestContext } from '../frontdoor/types';

/** What every route can see. */
export interface ServerContext {
  readonly service: InferenceService;
  /** Largest request body (and WebSocket message) accepted, bytes. */
  readonly maxBodyBytes: number;
  /** Requests handed to the core and not settled yet (HTTP and stream). */
  readonly inflight: InFlightTracker;
  /** The live prediction feed: every successful inference is published to it. */
  readonly feed: PredictionFeed;
  /** Admission, stages, in-flight calls and the feed, shared by every transport. */
  readonly frontDoor: FrontDoor;
  /** GET /metrics, when the server was given one. */
  readonly metricsHandler?: () => Promise<{ contentType: string; body: string | Uint8Array }>;
}

/**
 * A route handler. It must either answer synchronously or return a promise; it may throw
 * (or reject) with a TensorwireError to answer with that error.
 */
export type RouteHandler = (exchange: HttpExchange, context: ServerContext) => void | Promise<void>;

/** One route: method, uWS pattern (`:name` parameters), the request headers it reads. */
export interface RouteSpec {
  method: 'get' | 'post' | 'any';
  pattern: string;
  headers?: readonly string[];
  /** The handler reads `exchange.method` and `exchange.url`. */
  copyUrl?: boolean;
  /**
   * A control route (repository, live batching): the handler runs through the front door's
   * `control` (admission while draining, and authorization once configured). `action` names
   * it for audit; actions ending in `.read`/`.index`/`.status` change nothing.
   */
  control?: { action: string };
  handler: RouteHandler;
}

const NO_HEADERS: readonly string[] = [];

/** Registers `spec` on `app`. */
export function addRoute(app: TemplatedApp, context: ServerContext, spec: RouteSpec): void {
  const paramCount = spec.pattern.split('/').filter((part) => part.startsWith(':')).length;
  const headers = spec.headers ?? NO_HEADERS;
  const handler = spec.handler;
  const copyUrl = spec.copyUrl === true;
  const control = spec.control;
  const inflight = context.inflight;
  app[spec.method](spec.pattern, (res, req) => {
    const exchange = new HttpExchange(res, req, paramCount, headers, copyUrl);
    if (exchange.framingError !== undefined) {
      exchange.sendErrorAndClose(new TensorwireError('INVALID_INPUT', exchange.framingError));
      return;
    }
    // In flight until the handler settled and the response's last byte left (a slow reader
    // keeps a large response in flight), so a graceful shutdown waits for both.
    inflight.enter();
    let waitingFor = 2;
    const settled = (): void => {
      if (--waitingFor === 0) inflight.leave();
    };
    exchange.whenFlushed(settled);
    let pending: void | Promise<void>;
    try {
      pending = control === undefined
        ? handler(exchange, context)
        : context.frontDoor.control({ action: control.action, target: paramCount > 0 ? exchange.params[0] : undefined, context: httpContext(exchange) }, () => handler(exchange, context));
    } catch (e) {
      exchange.sendError(e);
      settled();
      return;
    }
    if (pending === undefined) {
      if (!exchange.isDone) exchange.sendError(new TensorwireError('INTERNAL', `route ${spec.pattern} returned without answering`));
      settled();
      return;
    }
    pending.then(
      () => {
        if (!exchange.isDone) exchange.sendError(new TensorwireError('INTERNAL', `route ${spec.pattern} finished without answering`));
        settled();
      },
      (e: unknown) => {
        exchange.sendError(e);
        settled();
      },
    );
  });
}

/** The front door's context of an HTTP request (client id: the transport doesn't know it before decoding). */
export function httpContext(exchange: HttpExchange, clientId?: string): RequestContext {
  return createRequestContext('http', () => exchange.remoteAddress, exchange.headers, clientId);
}

/** Parses a JSON request body, with an error that says what was being parsed. */
export function parseJsonBody(body: Buffer, what: string): unknown {
  if (body.length === 0) return undefined;
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (e) {
    throw new TensorwireError('INVALID_INPUT', `${what}: the body is not valid JSON (${(e as Error).message})`);
  }
}

export { shuttingDown } from '../frontdoor/front-door';
