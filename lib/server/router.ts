/**
 * Glue between uWS route registration and route handlers: builds the `HttpExchange`
 * synchronously, turns anything a handler throws into an error response, and tracks
 * asynchronous handlers as in flight for graceful shutdown.
 */
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import type { InferenceService } from '../core/types';
import { TensorwireError } from '../errors';
import { HttpExchange } from './http-response';
import type { InFlightTracker } from '../frontdoor/inflight';
import type { PredictionFeed } from './prediction-feed';
import type { FrontDoor } from '../frontdoor/front-door';
import { createRequestContext } from '../frontdoor/request-context';
import type { ControlCall, Principal, RequestContext } from '../frontdoor/types';
import { isRefusal, type Admission, type Gate } from '../frontdoor/authorize';
import type { HostAllowList } from '../auth/browser-checks';
import { checkJsonContentType } from '../auth/browser-checks';
import type { CorsPolicy } from '../auth/cors';
import { needOf, routeScopeOf, type RouteScope } from '../auth/route-scopes';
import type { HttpCompression } from './http-compression';

/** Access control and browser checks of a server that has them (lib/auth/serve-flags.ts builds the parts). */
export interface RouteSecurity {
  readonly gate: Gate;
  readonly hosts: HostAllowList;
  readonly cors: CorsPolicy | undefined;
  /** Origins besides the server's own whose pages may open the stream. */
  readonly allowedOrigins: readonly string[];
  /** Whether the server speaks TLS (the stream's own origin is https:// then). */
  readonly tls: boolean;
}

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
  /** Access control, Host allow-list, CORS: when absent nothing is checked (and nothing paid for). */
  readonly security?: RouteSecurity;
  /** Request body decompression and response compression; absent: codings are refused, nothing is compressed. */
  readonly compression?: HttpCompression;
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
  const copyUrl = spec.copyUrl === true;
  const security = context.security;
  if (security !== undefined) {
    addSecuredRoute(app, context, spec, security, paramCount);
    return;
  }
  const headers = withCodingHeaders(spec.headers ?? NO_HEADERS, spec.method !== 'get', context);
  const compression = context.compression;
  app[spec.method](spec.pattern, (res, req) => {
    const exchange = openExchange(res, req, paramCount, headers, copyUrl, compression);
    if (exchange === undefined) return;
    run(exchange, context, spec, paramCount, NOTHING);
  });
}

const NOTHING = (): void => undefined;

/**
 * The exchange of a request, or undefined when its framing is malformed (conflicting
 * Content-Length...): then it was already answered with a 400 and the connection closed.
 */
function openExchange(res: HttpResponse, req: HttpRequest, paramCount: number, headers: readonly string[], copyUrl: boolean, compression: HttpCompression | undefined): HttpExchange | undefined {
  const exchange = new HttpExchange(res, req, paramCount, headers, copyUrl);
  exchange.compression = compression;
  if (exchange.framingError === undefined) return exchange;
  exchange.sendErrorAndClose(new TensorwireError('INVALID_INPUT', exchange.framingError));
  return undefined;
}

/**
 * A route's header names plus those of content codings (http-response.ts): every route with
 * a body reads `Content-Encoding` (a compressed body must never be parsed as if it were
 * plain), and every route reads `Accept-Encoding` when the server compresses answers.
 */
function withCodingHeaders(names: readonly string[], hasBody: boolean, context: ServerContext): readonly string[] {
  const wanted = hasBody ? ['content-encoding'] : [];
  if (context.compression !== undefined && context.compression.enabled) wanted.push('accept-encoding');
  const missing = wanted.filter((name) => !names.includes(name));
  return missing.length === 0 ? names : [...names, ...missing];
}

/**
 * A route on a server with access control: the Host allow-list, CORS headers, then the
 * route's need (lib/auth/route-scopes.ts) authenticated, authorized and admitted by the
 * front door's gate, then the JSON-only rule of state-changing routes; the handler runs only
 * once all passed. A token verified asynchronously delays the handler, so the body read
 * starts at once (uWS drops data without a reader) and the handler gets that read.
 */
function addSecuredRoute(app: TemplatedApp, context: ServerContext, spec: RouteSpec, security: RouteSecurity, paramCount: number): void {
  const scope: RouteScope | undefined = routeScopeOf(spec.method, spec.pattern);
  // A route without an entry must not ship open (test/auth-scopes.test.ts checks the table too).
  if (scope === undefined) throw new Error(`route ${spec.method.toUpperCase()} ${spec.pattern} has no entry in HTTP_ROUTE_SCOPES`);
  // No credentials and a loopback bind: every caller is the loopback principal, so only the
  // Host allow-list (DNS rebinding) and the JSON rule remain to check, per request.
  const everyone = security.cors === undefined ? security.gate.everyone : undefined;
  const extra = everyone !== undefined ? ['host'] : ['authorization', 'host'];
  if (security.cors !== undefined) extra.push('origin');
  if (scope.changesState) extra.push('content-type');
  const hasBody = spec.method !== 'get';
  const headers = withCodingHeaders([...new Set([...(spec.headers ?? NO_HEADERS), ...extra])], hasBody, context);
  const compression = context.compression;
  const copyUrl = spec.copyUrl === true;
  const gate = security.gate;
  const cors = security.cors;
  const { need, changesState } = scope;
  const fixedNeed = need === 'infer-model' ? undefined : needOf(need, undefined);
  const inflight = context.inflight;
  app[spec.method](spec.pattern, (res, req) => {
    const exchange = openExchange(res, req, paramCount, headers, copyUrl, compression);
    if (exchange === undefined) return;
    if (cors !== undefined) {
      const list = cors.headers(exchange.headers['origin'], false);
      if (list !== undefined) exchange.extraHeaders = list.flat();
    }
    const h = exchange.headers;
    if (everyone !== undefined && need !== 'open') {
      const refused = security.hosts.check(h['host']) ?? (changesState ? checkJsonContentType(h['content-type']) : undefined);
      if (refused === undefined) {
        exchange.principal = everyone;
        run(exchange, context, spec, paramCount, NO_RELEASE);
        return;
      }
    }
    const refuse = (error: TensorwireError, principal?: Principal): void => {
      if (hasBody) exchange.discardBody();
      if (spec.control !== undefined) {
        exchange.principal = principal;
        context.frontDoor.controlRefused(controlCall(exchange, spec.control.action, paramCount), error);
      }
      exchange.sendError(error);
    };
    const badHost = security.hosts.check(h['host']);
    if (badHost !== undefined) {
      refuse(badHost);
      return;
    }
    const admission = gate.admit(h['authorization'], exchange, fixedNeed ?? needOf(need, exchange.params[0]));
    const proceed = (a: Admission): void => {
      if (isRefusal(a)) {
        refuse(a.refused, a.principal);
        return;
      }
      const wrongType = changesState ? checkJsonContentType(h['content-type']) : undefined;
      if (wrongType !== undefined) {
        a.release();
        refuse(wrongType, a.principal);
        return;
      }
      exchange.principal = a.principal;
      run(exchange, context, spec, paramCount, a.release);
    };
    if (!(admission instanceof Promise)) {
      proceed(admission);
      return;
    }
    // The handler runs after the token verified: read the body now, hand it over then.
    if (hasBody) exchange.prefetchBody(context.maxBodyBytes);
    inflight.enter();
    admission.then(
      (a) => {
        inflight.leave();
        if (exchange.isDone) {
          if (!isRefusal(a)) a.release();
          return;
        }
        proceed(a);
      },
      (e: unknown) => {
        inflight.leave();
        exchange.sendError(e);
      },
    );
  });
}

const NO_RELEASE = (): void => undefined;

/** Runs a route's handler (through the front door's `control` for control routes); `release` when it settled. */
function run(exchange: HttpExchange, context: ServerContext, spec: RouteSpec, paramCount: number, release: () => void): void {
  const inflight = context.inflight;
  const handler = spec.handler;
  const control = spec.control;
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
      : context.frontDoor.control(controlCall(exchange, control.action, paramCount), () => handler(exchange, context));
  } catch (e) {
    release();
    exchange.sendError(e);
    settled();
    return;
  }
  if (pending === undefined) {
    release();
    if (!exchange.isDone) exchange.sendError(new TensorwireError('INTERNAL', `route ${spec.pattern} returned without answering`));
    settled();
    return;
  }
  pending.then(
    () => {
      release();
      if (!exchange.isDone) exchange.sendError(new TensorwireError('INTERNAL', `route ${spec.pattern} finished without answering`));
      settled();
    },
    (e: unknown) => {
      release();
      exchange.sendError(e);
      settled();
    },
  );
}

function controlCall(exchange: HttpExchange, action: string, paramCount: number): ControlCall {
  return { action, target: paramCount > 0 ? exchange.params[0] : undefined, context: httpContext(exchange) };
}

/**
 * The CORS preflight (OPTIONS on any path), registered only when CORS is configured. It
 * carries no credentials (browsers never send them on a preflight), so it needs none; the
 * Host allow-list still applies. An origin not configured gets no CORS headers: the browser
 * then does not send the request.
 */
export function addPreflightRoute(app: TemplatedApp, security: RouteSecurity): void {
  const cors = security.cors;
  if (cors === undefined) return;
  app.options('/*', (res, req) => {
    const exchange = new HttpExchange(res, req, 0, PREFLIGHT_HEADERS);
    const badHost = security.hosts.check(exchange.headers['host']);
    if (badHost !== undefined) {
      exchange.sendError(badHost);
      return;
    }
    const list = cors.headers(exchange.headers['origin'], true);
    exchange.send(204, '', undefined, list === undefined ? undefined : list.flat());
  });
}

const PREFLIGHT_HEADERS = ['origin', 'host'] as const;

/** The front door's context of an HTTP request (client id: the transport doesn't know it before decoding). */
export function httpContext(exchange: HttpExchange, clientId?: string): RequestContext {
  const context = createRequestContext('http', () => exchange.remoteAddress, exchange.headers, clientId);
  const principal = exchange.principal;
  if (principal !== undefined) {
    // The router admitted this request already: the front door's access stage lets it pass.
    context.principal = principal;
    context.authorized = true;
  }
  return context;
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
