/** Scopes, their grants, and the route table agreeing with the routes lib/server registers. */
import { describe, expect, it } from 'vitest';
import { grants, parseScopes } from '../lib/auth/scopes';
import { HTTP_ROUTE_SCOPES, needOf, routeScopeOf, STREAM_OP_SCOPES, subscribeNeeds } from '../lib/auth/route-scopes';
import { healthRoutes, metricsRoute, notFoundRoute } from '../lib/server/routes-health';
import { modelRoutes } from '../lib/server/routes-models';
import { repositoryRoutes } from '../lib/server/routes-repository';
import { traceRoutes } from '../lib/server/routes-trace';
import { loggingRoutes } from '../lib/server/routes-logging';
import type { TraceControl } from '../lib/server/trace-control';
import type { ServerLog } from '../lib/server/server-log';
import { batchingRoutes } from '../lib/server/routes-batching';
import { routingRoutes } from '../lib/server/routes-routing';
import type { RoutingTable } from '../lib/routing/routing-table';
import { sharedMemoryRoutes } from '../lib/server/routes-shared-memory';
import type { SharedMemoryRegistry } from '../lib/shm/region-registry';

describe('scopes', () => {
  it('grants infer for every model, infer:<glob> for matching names only', () => {
    const all = parseScopes(['infer'], 't');
    const some = parseScopes(['infer:resnet*', 'infer:bert-v?'], 't');
    expect(grants(all, { scope: 'infer', model: 'anything' })).toBe(true);
    expect(grants(some, { scope: 'infer', model: 'resnet50' })).toBe(true);
    expect(grants(some, { scope: 'infer', model: 'bert-v2' })).toBe(true);
    expect(grants(some, { scope: 'infer', model: 'bert-v10' })).toBe(false);
    expect(grants(some, { scope: 'infer', model: 'my-resnet' })).toBe(false);
    expect(grants(some, { scope: 'monitor' })).toBe(false);
  });

  it('treats glob text literally apart from * and ?', () => {
    const dotted = parseScopes(['infer:a.b'], 't');
    expect(grants(dotted, { scope: 'infer', model: 'a.b' })).toBe(true);
    expect(grants(dotted, { scope: 'infer', model: 'axb' })).toBe(false);
  });

  it('keeps monitor, manage and feed:inputs apart', () => {
    const monitor = parseScopes(['monitor'], 't');
    expect(grants(monitor, { scope: 'monitor' })).toBe(true);
    expect(grants(monitor, { scope: 'manage' })).toBe(false);
    expect(grants(monitor, { scope: 'feed:inputs' })).toBe(false);
    expect(grants(monitor, { scope: 'infer', model: 'm' })).toBe(false);
    expect(grants(parseScopes(['manage'], 't'), { scope: 'monitor' })).toBe(false);
  });

  it('refuses unknown scopes, naming them', () => {
    expect(() => parseScopes(['mange'], "key 'ci'")).toThrow("key 'ci': unknown scope 'mange'");
    expect(() => parseScopes(['infer:'], 't')).toThrow(/unknown scope 'infer:'/);
    expect(() => parseScopes(['infer:a/b'], 't')).toThrow(/unknown scope/);
    expect(() => parseScopes([3], 't')).toThrow(/a scope must be a non-empty string/);
    expect(() => parseScopes(new Array(65).fill('infer'), 't')).toThrow('at most 64 scopes, got 65');
  });
});

describe('route scopes', () => {
  // (Route specs only: no table is consulted while listing them.)
  const registered = [...healthRoutes, ...modelRoutes, ...repositoryRoutes, ...batchingRoutes, ...routingRoutes({} as RoutingTable), ...sharedMemoryRoutes({} as SharedMemoryRegistry), ...traceRoutes({} as TraceControl), ...loggingRoutes({} as ServerLog), metricsRoute, notFoundRoute];

  it('has an entry for every route lib/server registers, and none for routes that do not exist', () => {
    for (const r of registered) expect(routeScopeOf(r.method, r.pattern), `${r.method} ${r.pattern}`).toBeDefined();
    const known = new Set([...registered.map((r) => `${r.method} ${r.pattern}`), 'get /v2/stream']);
    expect(HTTP_ROUTE_SCOPES.map((r) => `${r.method} ${r.pattern}`).filter((k) => !known.has(k))).toEqual([]);
  });

  it('puts shared memory registration under manage (it maps host memory) and its status under monitor', () => {
    for (const kind of ['systemsharedmemory', 'cudasharedmemory']) {
      expect(routeScopeOf('post', `/v2/${kind}/region/:name/register`)).toMatchObject({ need: 'manage', changesState: true });
      expect(routeScopeOf('post', `/v2/${kind}/region/:name/unregister`)).toMatchObject({ need: 'manage', changesState: true });
      expect(routeScopeOf('post', `/v2/${kind}/unregister`)).toMatchObject({ need: 'manage', changesState: true });
      expect(routeScopeOf('get', `/v2/${kind}/status`)).toMatchObject({ need: 'monitor', changesState: false });
      expect(routeScopeOf('get', `/v2/${kind}/region/:name/status`)).toMatchObject({ need: 'monitor', changesState: false });
    }
  });

  it('leaves only the health probes open', () => {
    expect(HTTP_ROUTE_SCOPES.filter((r) => r.need === 'open').map((r) => r.pattern)).toEqual(['/v2/health/live', '/v2/health/ready']);
  });

  it('maps management to manage and reads to monitor or infer', () => {
    expect(routeScopeOf('post', '/v2/repository/models/:model/load')).toMatchObject({ need: 'manage', changesState: true });
    expect(routeScopeOf('post', '/v2/repository/models/:model/unload')).toMatchObject({ need: 'manage', changesState: true });
    expect(routeScopeOf('post', '/v2/models/:model/batching')).toMatchObject({ need: 'manage', changesState: true });
    expect(routeScopeOf('get', '/v2/models/:model/batching')!.need).toBe('monitor');
    expect(routeScopeOf('post', '/v2/repository/index')!.need).toBe('monitor');
    for (const pattern of ['/v2/trace/setting', '/v2/models/:model/trace/setting', '/v2/logging']) {
      expect(routeScopeOf('post', pattern)).toMatchObject({ need: 'manage', changesState: true });
      expect(routeScopeOf('get', pattern)).toMatchObject({ need: 'monitor', changesState: false });
    }
    expect(routeScopeOf('get', '/metrics')!.need).toBe('monitor');
    expect(routeScopeOf('post', '/v2/models/:model/versions/:version/infer')!.need).toBe('infer-model');
    expect(routeScopeOf('get', '/v2/models/:model/config')!.need).toBe('infer-model');
    expect(needOf('infer-model', 'resnet')).toEqual({ scope: 'infer', model: 'resnet' });
  });

  it('maps stream operations', () => {
    expect(STREAM_OP_SCOPES).toEqual({ infer: 'infer-model', subscribe: 'monitor', unsubscribe: 'open' });
    expect(subscribeNeeds(true)).toEqual([{ scope: 'monitor' }, { scope: 'feed:inputs' }]);
    expect(subscribeNeeds(false)).toEqual([{ scope: 'monitor' }]);
  });
});
