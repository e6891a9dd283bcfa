/**
 * Server-level routes: liveness, readiness, server metadata, Prometheus metrics, and the
 * 404 for everything else.
 */
import { TensorwireError } from '../errors';
import { echo, errorBody, JSON_TYPE } from './http-response';
import { shuttingDown, type RouteSpec } from './router';
import { serverMetadata } from './server-info';

/** Serialised once: GET /v2 never changes while the process runs. */
let metadataJson: string | undefined;

/** GET /v2/health/live, /v2/health/ready, /v2. */
export const healthRoutes: RouteSpec[] = [
  {
    method: 'get',
    pattern: '/v2/health/live',
    handler: (x, ctx) => {
      if (ctx.service.isLive()) x.send(200);
      else x.sendError(new TensorwireError('UNAVAILABLE', 'the server is not live'));
    },
  },
  {
    method: 'get',
    pattern: '/v2/health/ready',
    handler: (x, ctx) => {
      // Readiness turns false the moment a shutdown begins, before the core hears of it, so
      // load balancers stop sending while in-flight requests finish.
      if (ctx.frontDoor.isDraining) x.sendError(shuttingDown());
      else if (ctx.service.isReady()) x.send(200);
      else x.sendError(new TensorwireError('UNAVAILABLE', 'the server is not ready: not every model that should be loaded is ready'));
    },
  },
  {
    method: 'get',
    pattern: '/v2',
    handler: (x) => {
      metadataJson ??= JSON.stringify(serverMetadata());
      x.send(200, metadataJson, JSON_TYPE);
    },
  },
];

/** GET /metrics: on the main port, or alone on the metrics port (ServerOptions.metricsPort). */
export const metricsRoute: RouteSpec = {
  method: 'get',
  pattern: '/metrics',
  handler: async (x, ctx) => {
    if (ctx.metricsHandler === undefined) throw new TensorwireError('NOT_FOUND', 'metrics are not enabled on this server');
    const { contentType, body } = await ctx.metricsHandler();
    x.send(200, body, contentType);
  },
};

/** Answers every request no other route took. Registered last. */
export const notFoundRoute: RouteSpec = {
  method: 'any',
  pattern: '/*',
  copyUrl: true,
  handler: (x) => {
    x.send(404, errorBody(new TensorwireError('NOT_FOUND', `unknown endpoint: ${x.method.toUpperCase()} ${echo(x.url)}`)), JSON_TYPE);
  },
};
