/**
 * Access control against a real server (real core, engine, uWebSockets.js) with real API
 * keys (lib/auth/api-key.ts addKey, what `tensorwire auth add-key` runs) and real JWTs
 * signed here with jose: every route of HTTP_ROUTE_SCOPES × {no credentials, wrong scope,
 * right scope}, the stream (upgrade header, first-frame token, per-request scope, feed
 * scopes), browser checks (Host, Origin, text/plain), revocation by editing the file, the
 * rate limit, audit lines and counters, and the no-auth loopback defaults.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addKey, generateApiKey, hashApiKey } from '../lib/auth/api-key';
import { AuditLog } from '../lib/auth/audit';
import { HTTP_ROUTE_SCOPES, type RouteScope } from '../lib/auth/route-scopes';
import { createSecurity } from '../lib/auth/serve-flags';
import { mlpModel } from './fixtures/models';
import { frameCount, openStream, raw } from './helpers/auth-client';
import { metricValue, startHarness, type Harness } from './helpers/server-harness';
import { createRequestContext } from '../lib/frontdoor/request-context';
import { decodeJsonRequest } from '../lib/protocol/json-codec';

const MLP = { inputDim: 4, hidden: 8, outputDim: 2, file: 'model.onnx' };
const INFER_BODY = JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [0.1, 0.2, 0.3, 0.4] }] });
const SECRET = 'a shared secret of at least thirty-two bytes!!';

/** A POSIX shared memory object for the register route (shm_open's file on Linux). */
const SHM_KEY = `/tw-auth-test-${process.pid}`;
let dir = '';
let authFile = '';
let h: Harness;
const audit: string[] = [];
const keys: Record<'infer' | 'mlpOnly' | 'monitor' | 'manage' | 'feed' | 'limited', string> = {} as never;
const bearer = (key: string): Record<string, string> => ({ authorization: `Bearer ${key}` });

beforeAll(async () => {
  writeFileSync('/dev/shm' + SHM_KEY, new Uint8Array(64));
  dir = mkdtempSync(join(tmpdir(), 'tw-authwire-'));
  authFile = join(dir, 'auth.json');
  keys.infer = addKey(authFile, 'inferer', ['infer']);
  keys.mlpOnly = addKey(authFile, 'mlp-only', ['infer:mlp']);
  keys.monitor = addKey(authFile, 'watcher', ['monitor']);
  keys.manage = addKey(authFile, 'operator', ['manage']);
  keys.feed = addKey(authFile, 'feeder', ['monitor', 'feed:inputs', 'infer']);
  // A key with a rate limit: the file format's limits, written as an operator would.
  keys.limited = generateApiKey();
  const file = JSON.parse(readFileSync(authFile, 'utf8'));
  file.keys.push({ name: 'limited', sha256: hashApiKey(keys.limited), scopes: ['infer'], limits: { requests_per_second: 1, burst: 2 } });
  writeFileSync(authFile, JSON.stringify(file));
  const security = createSecurity({ authFile }, '127.0.0.1', { TENSORWIRE_JWT_SECRET: SECRET }, { audit: new AuditLog({ write: (line) => audit.push(line) }) });
  h = await startHarness({
    models: [
      { name: 'mlp', versions: { 1: (d) => mlpModel(d, MLP) }, config: { routing: { labels: { stable: '1' } } } },
      { name: 'spare', versions: { 1: (d) => mlpModel(d, MLP) } },
    ],
    modelControl: 'explicit',
    loadModels: ['mlp'],
    streamFeed: true,
    security,
  });
}, 60_000);

afterAll(async () => {
  await h?.close();
  rmSync(dir, { recursive: true, force: true });
  rmSync('/dev/shm' + SHM_KEY, { force: true });
});

/** A concrete request for a route of the table. */
function requestOf(route: RouteScope): { method: string; path: string; body?: string } {
  const path = route.pattern.replace(':model', route.pattern.includes('/repository/') ? 'spare' : 'mlp').replace(':version', '1').replace(':label', 'stable').replace(':name', 'region0');
  if (route.method === 'get') return { method: 'GET', path };
  if (path.endsWith('/register')) return { method: 'POST', path, body: JSON.stringify({ key: SHM_KEY, offset: 0, byte_size: 64 }) };
  if (path.endsWith('/infer')) return { method: 'POST', path, body: INFER_BODY };
  if (path.endsWith('/batching')) return { method: 'POST', path, body: '{"max_queue_delay_microseconds": 500}' };
  // The policy in force stays: the label route is tested too.
  if (path.endsWith('/routing')) return { method: 'POST', path, body: '{"labels": {"stable": "1"}}' };
  if (path.endsWith('/feedback')) return { method: 'POST', path, body: '{"id": "r1", "reward": 1}' };
  return { method: 'POST', path, body: '{}' };
}

/** A key that lacks what `route` needs (undefined when any credential suffices). */
function wrongKey(route: RouteScope): string | undefined {
  switch (route.need) {
    case 'infer-model':
    case 'manage':
      return keys.monitor;
    case 'monitor':
      return keys.infer;
    default:
      return undefined;
  }
}

function rightKey(route: RouteScope): string {
  return route.need === 'infer-model' ? keys.infer : route.need === 'manage' ? keys.manage : keys.monitor;
}

const routes = HTTP_ROUTE_SCOPES.filter((r) => r.pattern !== '/v2/stream' && r.pattern !== '/*');
// Load before unload and register before the region's status and unregister, so each answers 200 on what it names.
const rank = (r: RouteScope): number => (r.pattern.endsWith('/register') ? -1 : r.pattern.endsWith('/unload') || r.pattern.endsWith('/unregister') ? 1 : 0);
routes.sort((a, b) => rank(a) - rank(b));

/** What the right credential gets: 200, except from the CUDA shared memory routes that have nothing to serve. */
function rightStatus(route: RouteScope): number {
  if (route.pattern === '/v2/cudasharedmemory/region/:name/register') return 400;
  if (route.pattern === '/v2/cudasharedmemory/region/:name/status') return 404;
  return 200;
}

describe('every route × {no credentials, wrong scope, right scope}', () => {
  for (const route of routes) {
    it(`${route.method.toUpperCase()} ${route.pattern} (${route.need})`, async () => {
      const { method, path, body } = requestOf(route);
      const json: Record<string, string> = body === undefined ? {} : { 'content-type': 'application/json' };
      const anonymous = await raw(h.base, method, path, json, body);
      if (route.need === 'open') {
        expect(anonymous.status).toBe(200);
        return;
      }
      expect(anonymous.status, anonymous.text).toBe(401);
      expect(anonymous.headers['www-authenticate']).toBe('Bearer realm="tensorwire"');
      const wrong = wrongKey(route);
      if (wrong !== undefined) {
        const r = await raw(h.base, method, path, { ...json, ...bearer(wrong) }, body);
        expect(r.status, r.text).toBe(403);
        expect(r.json.error).toMatch(route.need === 'infer-model' ? /lacks the scope infer/ : new RegExp(`lacks the scope ${route.need}`));
      }
      const right = await raw(h.base, method, path, { ...json, ...bearer(rightKey(route)) }, body);
      if (path.endsWith('/feedback')) {
        // Authorized, so the handler answers: mlp's policy has no bandit (routing-stage.test.ts covers the 200).
        expect(right.status, right.text).toBe(400);
        expect(right.json.error).toMatch(/has no bandit/);
        return;
      }
      expect(right.status, `${right.status} ${right.text}`).toBe(rightStatus(route));

    });
  }

  it('answers unknown endpoints 401 to the anonymous, 404 to a credential', async () => {
    expect((await raw(h.base, 'GET', '/v2/nothing/here')).status).toBe(401);
    expect((await raw(h.base, 'GET', '/v2/nothing/here', bearer(keys.monitor))).status).toBe(404);
  });

  it('does not reveal whether a model exists', async () => {
    const known = await raw(h.base, 'GET', '/v2/models/mlp', bearer(keys.monitor));
    const unknown = await raw(h.base, 'GET', '/v2/models/no-such-model', bearer(keys.monitor));
    expect([known.status, unknown.status]).toEqual([403, 403]);
    expect(unknown.json.error).toBe(known.json.error!.replace("'mlp'", "'no-such-model'").replace('infer:mlp', 'infer:no-such-model'));
    expect((await raw(h.base, 'GET', '/v2/models/no-such-model')).status).toBe(401);
    // infer:mlp grants mlp only.
    expect((await raw(h.base, 'POST', '/v2/models/mlp/infer', bearer(keys.mlpOnly), INFER_BODY)).status).toBe(200);
    expect((await raw(h.base, 'GET', '/v2/models/spare', bearer(keys.mlpOnly))).status).toBe(403);
  });

  it('answers a bad key and a malformed header 401', async () => {
    const bad = await raw(h.base, 'GET', '/v2', bearer('tw_' + 'x'.repeat(43)));
    expect(bad.status).toBe(401);
    expect(bad.json.error).toBe('unknown API key');
    expect((await raw(h.base, 'GET', '/v2', { authorization: 'Basic dXNlcjpwYXNz' })).status).toBe(401);
  });
});

describe('JWT bearer tokens', () => {
  const key = new TextEncoder().encode(SECRET);
  const sign = (claims: Record<string, unknown>, expiresIn = '5m'): Promise<string> => new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setSubject('svc').setIssuedAt().setExpirationTime(expiresIn).sign(key);

  it('grants the scope claim, refuses expired and unsigned tokens; POST bodies survive the asynchronous check', async () => {
    const token = await sign({ scope: 'infer monitor' });
    // First sight of the token: verified asynchronously while the body is read.
    const first = await raw(h.base, 'POST', '/v2/models/mlp/infer', { ...bearer(token), 'content-type': 'application/json' }, INFER_BODY);
    expect(first.status, first.text).toBe(200);
    expect((first.json as { outputs: unknown[] }).outputs).toHaveLength(1);
    expect((await raw(h.base, 'GET', '/metrics', bearer(token))).status).toBe(200);
    expect((await raw(h.base, 'POST', '/v2/repository/models/spare/load', { ...bearer(token), 'content-type': 'application/json' }, '{}')).status).toBe(403);
    const expired = await sign({ scope: 'infer' }, '-1m');
    expect((await raw(h.base, 'GET', '/v2/models/mlp', bearer(expired))).status).toBe(401);
    const unsigned = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from('{"sub":"x","scope":"manage"}').toString('base64url')}.`;
    expect((await raw(h.base, 'GET', '/v2/models/mlp', bearer(unsigned))).status).toBe(401);
  });

  it('verifies a new token on the stream upgrade (asynchronously), and refuses a forged one', async () => {
    const s = await openStream(h.base, bearer(await sign({ scope: 'infer:mlp' })));
    expect(s.ws).toBeDefined();
    s.ws!.send(JSON.stringify({ id: 'j', model_name: 'mlp', inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] }));
    await frameCount(s.frames, 1);
    expect(s.frames[0]).toHaveProperty('outputs');
    s.ws!.close();
    const forged = await new SignJWT({ scope: 'infer' }).setProtectedHeader({ alg: 'HS256' }).setSubject('svc').setExpirationTime('5m').sign(new TextEncoder().encode('another secret of at least thirty-two bytes'));
    expect((await openStream(h.base, bearer(forged))).status).toBe(401);
  });

  it('refuses a state change whose token verifies but lacks the scope, without running it', async () => {
    const token = await sign({ scope: 'monitor' });
    const r = await raw(h.base, 'POST', '/v2/repository/models/spare/unload', { ...bearer(token), 'content-type': 'application/json' }, '{}');
    expect(r.status).toBe(403);
    expect(h.service.repositoryIndex().find((e) => e.name === 'spare')?.state).not.toBe('UNAVAILABLE');
  });
});

describe('browser checks', () => {
  it('refuses a cross-site text/plain POST to load (400, nothing loaded)', async () => {
    const r = await raw(h.base, 'POST', '/v2/repository/models/spare/load', { ...bearer(keys.manage), 'content-type': 'text/plain' }, '{}');
    expect(r.status).toBe(400);
    expect(r.json.error).toMatch(/accepts only Content-Type: application\/json/);
  });

  it('refuses a foreign Host on HTTP and on the stream upgrade', async () => {
    const r = await raw(h.base, 'GET', '/v2/models/mlp', { ...bearer(keys.infer), host: `evil.example:${h.port}` });
    expect(r.status).toBe(403);
    expect(r.json.error).toMatch(/Host 'evil.example:\d+' is not one this server answers to/);
    expect((await raw(h.base, 'GET', '/v2/health/live', { host: 'evil.example' })).status).toBe(403);
    expect((await raw(h.base, 'GET', '/v2/models/mlp', { ...bearer(keys.infer), host: `localhost:${h.port}` })).status).toBe(200);
    expect((await openStream(h.base, { ...bearer(keys.infer), host: 'evil.example' })).status).toBe(403);
  });

  it('refuses a foreign Origin on the stream upgrade, accepts its own', async () => {
    expect((await openStream(h.base, { ...bearer(keys.infer), origin: 'https://evil.example' })).status).toBe(403);
    const own = await openStream(h.base, { ...bearer(keys.infer), origin: h.base });
    expect(own.ws).toBeDefined();
    own.ws!.close();
  });

  it('sends no CORS headers when CORS is not configured', async () => {
    const r = await raw(h.base, 'GET', '/v2/models/mlp', { ...bearer(keys.infer), origin: 'https://app.example' });
    expect(r.headers['access-control-allow-origin']).toBeUndefined();
  });
});

describe('the stream', () => {
  const infer = (id: string, model = 'mlp') => ({ id, model_name: model, inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] });

  it('refuses a bad credential on the upgrade with 401', async () => {
    expect((await openStream(h.base, bearer('tw_' + 'y'.repeat(43)))).status).toBe(401);
  });

  it('answers requests 401 until a first-frame token, then by scope per model', async () => {
    const s = await openStream(h.base);
    s.ws!.send(JSON.stringify(infer('before')));
    await frameCount(s.frames, 1);
    expect(s.frames[0]).toMatchObject({ id: 'before', code: 'UNAUTHENTICATED' });
    s.ws!.send(JSON.stringify({ authorization: `Bearer ${keys.mlpOnly}` }));
    await frameCount(s.frames, 2);
    expect(s.frames[1]).toEqual({ authenticated: 'mlp-only' });
    s.ws!.send(JSON.stringify(infer('after')));
    s.ws!.send(JSON.stringify(infer('other', 'spare')));
    await frameCount(s.frames, 4);
    const byId = Object.fromEntries(s.frames.slice(2).map((f) => [f['id'], f]));
    expect(byId['after']).toHaveProperty('outputs');
    expect(byId['other']).toMatchObject({ code: 'FORBIDDEN' });
    s.ws!.close();
  });

  it('needs monitor for the feed and feed:inputs for its inputs', async () => {
    const inferer = await openStream(h.base, bearer(keys.infer));
    inferer.ws!.send(JSON.stringify({ id: 's', subscribe: 'mlp' }));
    await frameCount(inferer.frames, 1);
    expect(inferer.frames[0]).toMatchObject({ id: 's', code: 'FORBIDDEN' });
    expect(String(inferer.frames[0]!['error'])).toMatch(/monitor/);
    inferer.ws!.close();

    const watcher = await openStream(h.base, bearer(keys.monitor));
    watcher.ws!.send(JSON.stringify({ id: 'a', subscribe: 'mlp' }));
    watcher.ws!.send(JSON.stringify({ id: 'b', subscribe: 'mlp', include_inputs: true }));
    await frameCount(watcher.frames, 2);
    expect(watcher.frames[0]).toEqual({ id: 'a', subscribed: 'mlp' });
    expect(watcher.frames[1]).toMatchObject({ id: 'b', code: 'FORBIDDEN' });
    expect(String(watcher.frames[1]!['error'])).toMatch(/feed:inputs/);
    watcher.ws!.close();

    const feeder = await openStream(h.base, bearer(keys.feed));
    feeder.ws!.send(JSON.stringify({ id: 'c', subscribe: 'mlp', include_inputs: true }));
    await frameCount(feeder.frames, 1);
    expect(feeder.frames[0]).toEqual({ id: 'c', subscribed: 'mlp' });
    feeder.ws!.close();
  });
});

describe('other transports (gRPC) through the front door', () => {
  const call = (headers: Record<string, string>) => ({
    model: 'mlp',
    version: undefined,
    request: decodeJsonRequest(INFER_BODY),
    context: createRequestContext('grpc', '127.0.0.1', headers),
    signal: new AbortController().signal,
  });

  it('authorizes a call by its authorization metadata, with the same answers as HTTP', async () => {
    const ok = await h.server.frontDoor.infer(call(bearer(keys.mlpOnly)));
    expect(ok.outputs).toHaveLength(1);
    await expect(h.server.frontDoor.infer(call({}))).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    await expect(h.server.frontDoor.infer(call(bearer(keys.monitor)))).rejects.toMatchObject({ code: 'FORBIDDEN' });
    await expect(h.server.frontDoor.infer({ ...call(bearer(keys.mlpOnly)), model: 'spare' })).rejects.toMatchObject({ code: 'FORBIDDEN' });
  });
});

describe('revocation, limits, audit', () => {
  it('stops a key deleted from the auth file within a second, on HTTP and the open stream', async () => {
    const key = addKey(authFile, 'temporary', ['infer']);
    await waitUntil(async () => (await raw(h.base, 'GET', '/v2/models/mlp', bearer(key))).status === 200, 2000);
    const s = await openStream(h.base, bearer(key));
    const file = JSON.parse(readFileSync(authFile, 'utf8'));
    file.keys = file.keys.filter((k: { name: string }) => k.name !== 'temporary');
    writeFileSync(authFile, JSON.stringify(file));
    const start = Date.now();
    await waitUntil(async () => (await raw(h.base, 'GET', '/v2/models/mlp', bearer(key))).status === 401, 1000);
    expect(Date.now() - start).toBeLessThan(1000);
    s.ws!.send(JSON.stringify({ id: 1, model_name: 'mlp', inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] }));
    await frameCount(s.frames, 1);
    expect(s.frames[0]).toMatchObject({ id: 1, code: 'UNAUTHENTICATED' });
    s.ws!.close();
  });

  it('answers 429 with Retry-After past a key\'s rate limit', async () => {
    const statuses: number[] = [];
    let retryAfter: string | string[] | undefined;
    for (let i = 0; i < 4; i++) {
      const r = await raw(h.base, 'GET', '/v2/models/mlp', bearer(keys.limited));
      statuses.push(r.status);
      if (r.status === 429) retryAfter = r.headers['retry-after'];
    }
    expect(statuses.slice(0, 2)).toEqual([200, 200]);
    expect(statuses).toContain(429);
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
  });

  it('writes one audit line per management action and authentication failure, without credentials, and counts them in /metrics', async () => {
    audit.length = 0;
    await raw(h.base, 'POST', '/v2/repository/models/spare/load', { ...bearer(keys.manage), 'content-type': 'application/json' }, '{}');
    await raw(h.base, 'POST', '/v2/repository/models/spare/load', { ...bearer(keys.monitor), 'content-type': 'application/json' }, '{}');
    const badKey = 'tw_' + 'z'.repeat(43);
    await raw(h.base, 'GET', '/v2', bearer(badKey));
    const lines = audit.map((l) => JSON.parse(l));
    expect(lines).toEqual([
      expect.objectContaining({ audit: true, principal: 'operator', action: 'repository.load', target: 'spare', result: 'ok', address: '127.0.0.1' }),
      expect.objectContaining({ audit: true, principal: 'watcher', action: 'repository.load', target: 'spare', result: 'FORBIDDEN' }),
      expect.objectContaining({ audit: true, principal: null, action: 'authenticate', result: 'invalid_key' }),
    ]);
    expect(audit.join('\n')).not.toContain(badKey);
    expect(audit.join('\n')).not.toContain(keys.manage);
    const metrics = (await raw(h.base, 'GET', '/metrics', bearer(keys.monitor))).text;
    expect(metricValue(metrics, 'tensorwire_audit_events_total', { action: 'repository.load', result: 'ok' })).toBeGreaterThanOrEqual(1);
    expect(metricValue(metrics, 'tensorwire_auth_requests_total', { result: 'unauthenticated' })).toBeGreaterThan(0);
    expect(metricValue(metrics, 'tensorwire_auth_requests_total', { result: 'rate_limited' })).toBeGreaterThan(0);
  });
});

describe('without --auth (the defaults tensorwire serve applies)', () => {
  let open: Harness;
  beforeAll(async () => {
    open = await startHarness({ models: [{ name: 'mlp', versions: { 1: (d) => mlpModel(d, MLP) } }], modelControl: 'explicit', loadModels: ['mlp'], security: {} });
  }, 60_000);
  afterAll(async () => open?.close());

  it('serves loopback clients everything, the Host allow-list and the JSON rule still apply', async () => {
    expect((await raw(open.base, 'POST', '/v2/models/mlp/infer', {}, INFER_BODY)).status).toBe(200);
    expect((await raw(open.base, 'POST', '/v2/repository/models/mlp/load', { 'content-type': 'application/json' }, '{}')).status).toBe(200);
    expect((await raw(open.base, 'POST', '/v2/repository/models/mlp/load', { 'content-type': 'text/plain' }, '{}')).status).toBe(400);
    expect((await raw(open.base, 'GET', '/v2/models/mlp', { host: 'rebind.attacker.example' })).status).toBe(403);
  });
});

async function waitUntil(probe: () => Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!(await probe())) {
    if (Date.now() > end) throw new Error(`not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
