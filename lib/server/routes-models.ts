/**
 * Per-model routes of the KServe v2 REST API as Triton serves them: metadata, readiness,
 * configuration, statistics and inference (JSON and the binary tensor data extension).
 * Every route exists with and without `/versions/{v}`.
 *
 * Inference only decodes, calls the core and encodes: validation against the model is the
 * core's job (`InferenceService.infer` throws INVALID_INPUT naming the tensor at fault).
 */
import { encodeResponse } from '../protocol/binary-codec';
import { decodeInferRequestOffLoop } from '../protocol/request-decode-pool';
import { TensorwireError } from '../errors';
import { noAvailableVersionMessage, versionNotReadyMessage } from '../core/triton-messages';
import type { HttpExchange } from './http-response';
import { httpContext, shuttingDown, type RouteHandler, type RouteSpec } from './router';
import type { InferRequest } from '../protocol/types';

/**
 * Headers the infer route reads (copied synchronously from uWS's request); the front door's
 * stages see them too (x-tensorwire-route-key: the routing stage's sticky key, docs/routing.md).
 */
export const INFER_HEADERS = ['content-length', 'inference-header-content-length', 'content-encoding', 'x-tensorwire-route-key'] as const;

/** The model name and optional version of a route matched with or without /versions/{v}. */
function target(x: HttpExchange): [string, string | undefined] {
  return [x.params[0]!, x.params[1]];
}

const metadata: RouteHandler = (x, ctx) => {
  const [name, version] = target(x);
  x.sendJson(200, ctx.service.modelMetadata(name, version));
};

const ready: RouteHandler = (x, ctx) => {
  const [name, version] = target(x);
  const readiness = ctx.service.modelReadiness(name, version);
  if (readiness.ready) {
    x.send(200);
    return;
  }
  // The same words as an infer on that model or version would get (Triton's).
  const message = version === undefined ? noAvailableVersionMessage(name, readiness.reason) : versionNotReadyMessage(name, version, readiness.reason);
  x.sendError(new TensorwireError('UNAVAILABLE', message));
};

const config: RouteHandler = (x, ctx) => {
  const [name, version] = target(x);
  x.sendJson(200, ctx.service.modelConfig(name, version));
};

const stats: RouteHandler = (x, ctx) => {
  // Triton's shape: {"model_stats": [...]}, every model when no name is given.
  x.sendJson(200, { model_stats: ctx.service.statistics(x.params[0], x.params[1]) });
};

/**
 * POST .../infer. The body is read (with the size limit) and decoded: JSON, or the binary
 * extension when Inference-Header-Content-Length is present. The response uses the binary
 * extension (application/octet-stream + Inference-Header-Content-Length) as soon as one
 * output is to be sent as binary data, JSON otherwise.
 */
const infer: RouteHandler = (x, ctx) => inferAt(x, ctx, target(x));

/**
 * The infer route's work for a model and version already known (a version label resolves to
 * one before this runs: routes-routing.ts).
 */
export async function inferAt(x: HttpExchange, ctx: Parameters<RouteHandler>[1], [name, version]: [string, string | undefined]): Promise<void> {
  const frontDoor = ctx.frontDoor;
  // Refused before the body is read: a draining server does not buffer new bodies.
  if (frontDoor.isDraining) throw shuttingDown();
  // readBody must be called before the first await: uWS delivers data only to a handler
  // attached synchronously.
  const body = await x.readBody(ctx.maxBodyBytes);
  let request: InferRequest;
  try {
    const headerLength = x.headers['inference-header-content-length'];
    // Large bodies are decoded in a worker thread: a 45 MB JSON body held the loop for ~1 s.
    request = await decodeInferRequestOffLoop(body, headerLength === '' ? undefined : headerLength);
  } catch (e) {
    frontDoor.refused(name, e, httpContext(x), version);
    throw e;
  }
  const response = await frontDoor.infer({ model: name, version, request, context: httpContext(x, request.id), signal: x.signal });
  if (!x.isDone) {
    // (Not done unless the client left while the model ran.)
    const encoded = encodeResponse(response);
    if (encoded.headerLength === undefined) x.send(200, encoded.body, encoded.contentType);
    else x.send(200, encoded.body, encoded.contentType, ['Inference-Header-Content-Length', String(encoded.headerLength)]);
  }
}

/** Registers `handler` for `/v2/models/:model{suffix}` and `/v2/models/:model/versions/:version{suffix}`. */
function both(method: 'get' | 'post', suffix: string, handler: RouteHandler, headers?: readonly string[]): RouteSpec[] {
  return [
    { method, pattern: `/v2/models/:model${suffix}`, handler, ...(headers ? { headers } : {}) },
    { method, pattern: `/v2/models/:model/versions/:version${suffix}`, handler, ...(headers ? { headers } : {}) },
  ];
}

/** All per-model routes. uWS matches static segments before parameters, so /v2/models/stats is not a model named "stats". */
export const modelRoutes: RouteSpec[] = [
  { method: 'get', pattern: '/v2/models/stats', handler: stats },
  ...both('get', '', metadata),
  ...both('get', '/ready', ready),
  ...both('get', '/config', config),
  ...both('get', '/stats', stats),
  ...both('post', '/infer', infer, INFER_HEADERS),
];
