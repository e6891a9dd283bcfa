/**
 * What each route and stream operation needs, as data: the front door (or a transport)
 * looks a request up here once and hands the Need to AccessControl.authorize. A test keeps
 * this table and the routes lib/server registers in agreement, so a new route without an
 * entry fails the build instead of shipping open.
 *
 * `model` in a need means the `:model` parameter of the route (the model the request names),
 * never a looked-up model: the answer is the same whether it exists or not.
 */
import type { Need } from './scopes';

/** A need, with `infer-model` standing for "infer on the route's :model". */
export type RouteNeed = 'open' | 'authenticated' | 'infer-model' | 'monitor' | 'manage';

/** One HTTP route (method and uWS pattern, as lib/server registers it) and what it needs. */
export interface RouteScope {
  readonly method: 'get' | 'post' | 'any';
  readonly pattern: string;
  readonly need: RouteNeed;
  /** Whether the route changes server state (then browser-checks' JSON content type rule applies). */
  readonly changesState: boolean;
}

function perModel(method: 'get' | 'post', suffix: string, need: RouteNeed, changesState = false): RouteScope[] {
  return [
    { method, pattern: `/v2/models/:model${suffix}`, need, changesState },
    { method, pattern: `/v2/models/:model/versions/:version${suffix}`, need, changesState },
  ];
}

/** The status, register and unregister routes of one shared memory extension. */
function sharedMemoryScopes(kind: 'systemsharedmemory' | 'cudasharedmemory'): RouteScope[] {
  return [
    { method: 'get', pattern: `/v2/${kind}/status`, need: 'monitor', changesState: false },
    { method: 'get', pattern: `/v2/${kind}/region/:name/status`, need: 'monitor', changesState: false },
    { method: 'post', pattern: `/v2/${kind}/region/:name/register`, need: 'manage', changesState: true },
    { method: 'post', pattern: `/v2/${kind}/region/:name/unregister`, need: 'manage', changesState: true },
    { method: 'post', pattern: `/v2/${kind}/unregister`, need: 'manage', changesState: true },
  ];
}

/** Every HTTP route of the main port (and /metrics of the metrics port). */
export const HTTP_ROUTE_SCOPES: readonly RouteScope[] = Object.freeze([
  // Probes must work for load balancers and orchestrators that hold no credentials.
  { method: 'get', pattern: '/v2/health/live', need: 'open', changesState: false },
  { method: 'get', pattern: '/v2/health/ready', need: 'open', changesState: false },
  { method: 'get', pattern: '/v2', need: 'authenticated', changesState: false },
  { method: 'get', pattern: '/metrics', need: 'monitor', changesState: false },
  { method: 'get', pattern: '/v2/models/stats', need: 'monitor', changesState: false },
  ...perModel('get', '', 'infer-model'),
  ...perModel('get', '/ready', 'infer-model'),
  ...perModel('get', '/config', 'infer-model'),
  ...perModel('get', '/stats', 'monitor'),
  // Inference changes no server state: it is not a control route (and binary bodies are not JSON).
  ...perModel('post', '/infer', 'infer-model'),
  { method: 'get', pattern: '/v2/models/:model/batching', need: 'monitor', changesState: false },
  { method: 'post', pattern: '/v2/models/:model/batching', need: 'manage', changesState: true },
  { method: 'get', pattern: '/v2/models/:model/routing', need: 'monitor', changesState: false },
  { method: 'post', pattern: '/v2/models/:model/routing', need: 'manage', changesState: true },
  // A bandit's reward for a request: whoever may infer on the model may say how the answer did.
  { method: 'post', pattern: '/v2/models/:model/feedback', need: 'infer-model', changesState: true },
  { method: 'post', pattern: '/v2/models/:model/labels/:label/infer', need: 'infer-model', changesState: false },
  // Triton's trace and logging extensions: reading them is monitoring, changing them management.
  { method: 'get', pattern: '/v2/trace/setting', need: 'monitor', changesState: false },
  { method: 'post', pattern: '/v2/trace/setting', need: 'manage', changesState: true },
  { method: 'get', pattern: '/v2/models/:model/trace/setting', need: 'monitor', changesState: false },
  { method: 'post', pattern: '/v2/models/:model/trace/setting', need: 'manage', changesState: true },
  { method: 'get', pattern: '/v2/logging', need: 'monitor', changesState: false },
  { method: 'post', pattern: '/v2/logging', need: 'manage', changesState: true },
  // A POST only because KServe says so: it reads the index.
  { method: 'post', pattern: '/v2/repository/index', need: 'monitor', changesState: false },
  { method: 'post', pattern: '/v2/repository/models/:model/load', need: 'manage', changesState: true },
  { method: 'post', pattern: '/v2/repository/models/:model/unload', need: 'manage', changesState: true },
  // Shared memory (Triton's extension): registering maps memory of the host into the server,
  // so it is management; status reveals only region names, keys and sizes.
  ...sharedMemoryScopes('systemsharedmemory'),
  ...sharedMemoryScopes('cudasharedmemory'),
  // The WebSocket stream's upgrade: each frame is then authorized by STREAM_OP_SCOPES.
  { method: 'get', pattern: '/v2/stream', need: 'authenticated', changesState: false },
  // Unknown endpoints: a 401 to the anonymous, so probing does not map the server.
  { method: 'any', pattern: '/*', need: 'authenticated', changesState: false },
] satisfies RouteScope[]);

type HttpRoute = readonly ['get' | 'post', string];

/**
 * Each RPC of inference.GRPCInferenceService and the HTTP route that answers the same
 * question: the RPC needs what that route needs (HTTP_ROUTE_SCOPES stays the one table of
 * needs). TraceSetting and LogSettings read with no settings and change with some: `read`
 * and `change` are the GET and the POST. grpc.health.v1 is open, as HTTP's health routes.
 */
export const GRPC_RPC_ROUTES = Object.freeze({
  ServerLive: ['get', '/v2/health/live'],
  ServerReady: ['get', '/v2/health/ready'],
  ServerMetadata: ['get', '/v2'],
  ModelReady: ['get', '/v2/models/:model/ready'],
  ModelMetadata: ['get', '/v2/models/:model'],
  ModelConfig: ['get', '/v2/models/:model/config'],
  ModelStatistics: ['get', '/v2/models/stats'],
  ModelInfer: ['post', '/v2/models/:model/infer'],
  ModelStreamInfer: ['post', '/v2/models/:model/infer'],
  RepositoryIndex: ['post', '/v2/repository/index'],
  RepositoryModelLoad: ['post', '/v2/repository/models/:model/load'],
  RepositoryModelUnload: ['post', '/v2/repository/models/:model/unload'],
  SystemSharedMemoryStatus: ['get', '/v2/systemsharedmemory/status'],
  SystemSharedMemoryRegister: ['post', '/v2/systemsharedmemory/region/:name/register'],
  SystemSharedMemoryUnregister: ['post', '/v2/systemsharedmemory/unregister'],
  CudaSharedMemoryStatus: ['get', '/v2/cudasharedmemory/status'],
  CudaSharedMemoryRegister: ['post', '/v2/cudasharedmemory/region/:name/register'],
  CudaSharedMemoryUnregister: ['post', '/v2/cudasharedmemory/unregister'],
  TraceSetting: { read: ['get', '/v2/trace/setting'], change: ['post', '/v2/trace/setting'] },
  LogSettings: { read: ['get', '/v2/logging'], change: ['post', '/v2/logging'] },
} as const satisfies Record<string, HttpRoute | { read: HttpRoute; change: HttpRoute }>);

/** An RPC of GRPCInferenceService. */
export type GrpcRpc = keyof typeof GRPC_RPC_ROUTES;

/** The HTTP route answering what `rpc` answers (for TraceSetting/LogSettings, the read or the change). */
export function grpcRouteOf(rpc: GrpcRpc, changes: boolean): RouteScope {
  const entry: HttpRoute | { read: HttpRoute; change: HttpRoute } = GRPC_RPC_ROUTES[rpc];
  const [method, pattern] = 'read' in entry ? (changes ? entry.change : entry.read) : entry;
  const route = routeScopeOf(method, pattern);
  if (route === undefined) throw new Error(`gRPC ${rpc}: no HTTP route ${method.toUpperCase()} ${pattern} in HTTP_ROUTE_SCOPES`);
  return route;
}

/** Stream operations (lib/protocol/stream-frame.ts) and what each needs. */
export const STREAM_OP_SCOPES = Object.freeze({
  /** An inference frame (text or binary) for `model_name`. */
  infer: 'infer-model',
  /** Subscribing to the live feed; with `include_inputs` it also needs feed:inputs. */
  subscribe: 'monitor',
  /** Leaving a subscription one holds is always allowed. */
  unsubscribe: 'open',
} as const satisfies Record<string, RouteNeed>);

const OPEN: Need = Object.freeze({ scope: 'open' });
const AUTHENTICATED: Need = Object.freeze({ scope: 'authenticated' });
const MONITOR: Need = Object.freeze({ scope: 'monitor' });
const MANAGE: Need = Object.freeze({ scope: 'manage' });
const FEED_INPUTS: Need = Object.freeze({ scope: 'feed:inputs' });

/** The Need of a route need, given the route's :model parameter (when it has one). */
export function needOf(need: RouteNeed, model: string | undefined): Need {
  switch (need) {
    case 'open':
      return OPEN;
    case 'authenticated':
      return AUTHENTICATED;
    case 'monitor':
      return MONITOR;
    case 'manage':
      return MANAGE;
    case 'infer-model':
      return { scope: 'infer', model: model ?? '' };
  }
}

/** The needs of a stream subscribe frame: monitor, plus feed:inputs when it asks for inputs. */
export function subscribeNeeds(includeInputs: boolean): readonly Need[] {
  return includeInputs ? [MONITOR, FEED_INPUTS] : [MONITOR];
}

/** Looks up the entry for a registered route (method and pattern exactly as registered). */
export function routeScopeOf(method: string, pattern: string): RouteScope | undefined {
  return HTTP_ROUTE_SCOPES.find((r) => r.method === method && r.pattern === pattern);
}
