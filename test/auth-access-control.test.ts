/** authenticate + authorize: API keys, JWTs, certificate subjects, the no-auth defaults, audit lines and counters. */
import { SignJWT } from 'jose';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { AccessControl, bearerToken, isAuthFailure, LOOPBACK_PRINCIPAL, REMOTE_ANONYMOUS, WWW_AUTHENTICATE, type AuthPrincipal } from '../lib/auth/access-control';
import { generateApiKey, hashApiKey } from '../lib/auth/api-key';
import { parseAuthFile, type AuthConfig } from '../lib/auth/auth-file';
import { AuditLog } from '../lib/auth/audit';
import { JwtVerifier } from '../lib/auth/jwt-verifier';
import { ANONYMOUS } from '../lib/frontdoor/request-context';
import type { ControlCall } from '../lib/frontdoor/types';
import { createRequestContext } from '../lib/frontdoor/request-context';

const SECRET = new TextEncoder().encode('a-test-secret-of-at-least-32-bytes!!');
const inferKey = generateApiKey();
const adminKey = generateApiKey();
const resnetKey = generateApiKey();

function config(keys: [string, string, string[]][]): AuthConfig {
  return parseAuthFile(JSON.stringify({
    keys: keys.map(([name, key, scopes]) => ({ name, sha256: hashApiKey(key), scopes, limits: { concurrent: 2 } })),
    mtls: [{ subject: 'CN=batch-job', name: 'batch', scopes: ['infer'] }],
    defaults: { limits: { requests_per_second: 50 } },
  }));
}
const KEYS: [string, string, string[]][] = [
  ['client', inferKey, ['infer']],
  ['admin', adminKey, ['manage', 'monitor']],
  ['resnet-only', resnetKey, ['infer:resnet*']],
];

function setup(): { access: AccessControl; lines: string[]; registry: Registry; setConfig: (c: AuthConfig) => void } {
  const lines: string[] = [];
  const registry = new Registry();
  let current = config(KEYS);
  const audit = new AuditLog({ write: (l) => lines.push(l), registry, now: () => Date.UTC(2026, 11, 4, 21, 0, 0) });
  const access = new AccessControl({ authConfig: () => current, jwt: new JwtVerifier({ secret: SECRET }), audit });
  return { access, lines, registry, setConfig: (c) => (current = c) };
}
const at = { address: '10.1.2.3' };

describe('authenticate', () => {
  it('identifies an API key synchronously, with its scopes and limits', () => {
    const { access } = setup();
    const p = access.authenticate(`Bearer ${inferKey}`, at) as AuthPrincipal;
    expect(p).toMatchObject({ name: 'client', via: 'api-key', scopes: ['infer'], limits: { requestsPerSecond: 50, concurrent: 2 }, limiterKey: 'api-key:client' });
    // Same object on the next request: the cache answers without hashing again (by the header text).
    expect(access.authenticate(`Bearer ${inferKey}`, at)).toBe(p);
    expect(access.authenticate(`bearer ${inferKey}`, at)).toEqual(p);
  });

  it('answers no credential with the anonymous principal, a bad one with a 401 failure', () => {
    const { access } = setup();
    expect(access.authenticate(undefined, at)).toBe(ANONYMOUS);
    const unknown = access.authenticate(`Bearer ${generateApiKey()}`, at);
    expect(isAuthFailure(unknown as never)).toBe(true);
    expect(unknown).toMatchObject({ error: { code: 'UNAUTHENTICATED', status: 401, message: 'unknown API key' } });
    expect(access.authenticate('Basic dXNlcjpwYXNz', at)).toMatchObject({ error: { message: "the Authorization header must be 'Bearer <API key or JWT>'" } });
    expect(access.authenticate('Bearer a b', at)).toMatchObject({ failed: true });
  });

  it('verifies a new JWT asynchronously, then answers it synchronously from the cache', async () => {
    const { access } = setup();
    const token = await new SignJWT({ sub: 'svc', scope: 'infer:bert' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(SECRET);
    const first = access.authenticate(`Bearer ${token}`, at);
    expect(first).toBeInstanceOf(Promise);
    const p = (await first) as AuthPrincipal;
    expect(p).toMatchObject({ name: 'svc', via: 'jwt', scopes: ['infer:bert'], limits: { requestsPerSecond: 50 }, limiterKey: 'jwt:svc' });
    expect(access.authenticate(`Bearer ${token}`, at)).toBe(p);
  });

  it('identifies a verified client-certificate subject listed in the file', () => {
    const { access } = setup();
    expect(access.authenticate(undefined, { address: '10.0.0.9', tlsSubject: 'CN=batch-job' })).toMatchObject({ name: 'batch', via: 'mtls' });
    expect(access.authenticate(undefined, { address: '10.0.0.9', tlsSubject: 'CN=stranger' })).toMatchObject({ failed: true, error: { code: 'UNAUTHENTICATED' } });
  });

  it('forgets a cached key when the file in force changes', () => {
    const { access, setConfig } = setup();
    expect(access.authenticate(`Bearer ${inferKey}`, at)).toMatchObject({ name: 'client' });
    setConfig(config(KEYS.filter(([name]) => name !== 'client')));
    expect(access.authenticate(`Bearer ${inferKey}`, at)).toMatchObject({ failed: true });
  });

  it('limits the new credentials one address may have checked, never a credential already verified', async () => {
    let t = 0;
    const lines: string[] = [];
    const file = config(KEYS);
    const access = new AccessControl({ authConfig: () => file, jwt: new JwtVerifier({ secret: SECRET }), audit: new AuditLog({ write: (l) => lines.push(l) }), newCredentialLimits: { requestsPerSecond: 1, burst: 2 }, now: () => t });
    const attacker = { address: '203.0.113.9' };
    expect(access.authenticate(`Bearer ${inferKey}`, attacker)).toMatchObject({ name: 'client' });
    const forged = await new SignJWT({ sub: 'x' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(new TextEncoder().encode('wrong-secret-wrong-secret-wrong-secret'));
    expect(await access.authenticate(`Bearer ${forged}`, attacker)).toMatchObject({ error: { code: 'UNAUTHENTICATED' } });
    // The third new credential within the burst is refused before any signature check.
    expect(access.authenticate(`Bearer ${forged}x`, attacker)).toMatchObject({ failed: true, error: { code: 'TOO_MANY_REQUESTS', status: 429, retryAfterSeconds: 1 } });
    expect(access.authenticate(`Bearer ${inferKey}`, attacker)).toMatchObject({ name: 'client' });
    expect(access.authenticate(`Bearer ${adminKey}`, { address: '10.0.0.1' })).toMatchObject({ name: 'admin' });
    expect(JSON.parse(lines.at(-1)!)).toMatchObject({ action: 'authenticate', address: '203.0.113.9', result: 'throttled' });
    t += 1000;
    expect(access.authenticate(`Bearer ${adminKey}`, attacker)).toMatchObject({ name: 'admin' });
  });

  it('parses Bearer headers strictly', () => {
    expect(bearerToken('Bearer abc')).toBe('abc');
    expect(bearerToken('BEARER  abc ')).toBe('abc');
    expect(bearerToken('Bearer ')).toBeUndefined();
    expect(bearerToken('Token abc')).toBeUndefined();
    expect(bearerToken('Bearer ' + 'x'.repeat(9000))).toBeUndefined();
  });
});

describe('authorize', () => {
  it('401 for no credential (with the Bearer challenge to send), open routes stay open', () => {
    const { access } = setup();
    expect(access.authorize(ANONYMOUS, { scope: 'open' })).toBeUndefined();
    expect(access.authorize(ANONYMOUS, { scope: 'infer', model: 'm' })).toMatchObject({ code: 'UNAUTHENTICATED', status: 401 });
    expect(access.authorize(ANONYMOUS, { scope: 'authenticated' })).toMatchObject({ code: 'UNAUTHENTICATED' });
    expect(WWW_AUTHENTICATE).toMatch(/^Bearer /);
  });

  it('403 naming the scope when the credential lacks it', () => {
    const { access } = setup();
    const client = access.authenticate(`Bearer ${inferKey}`, at) as AuthPrincipal;
    const admin = access.authenticate(`Bearer ${adminKey}`, at) as AuthPrincipal;
    expect(access.authorize(client, { scope: 'infer', model: 'anything' })).toBeUndefined();
    expect(access.authorize(client, { scope: 'manage' })).toMatchObject({ code: 'FORBIDDEN', status: 403, message: "'client' lacks the scope manage" });
    expect(access.authorize(admin, { scope: 'manage' })).toBeUndefined();
    expect(access.authorize(admin, { scope: 'feed:inputs' })).toMatchObject({ message: "'admin' lacks the scope feed:inputs" });
    expect(access.authorize(admin, { scope: 'authenticated' })).toBeUndefined();
  });

  it('answers the same for a model that exists and one that does not', () => {
    const { access } = setup();
    const resnet = access.authenticate(`Bearer ${resnetKey}`, at) as AuthPrincipal;
    expect(access.authorize(resnet, { scope: 'infer', model: 'resnet50' })).toBeUndefined();
    // Whether 'secret-model' is served or not, authorize never looks: the message depends only on the request.
    const denied = access.authorize(resnet, { scope: 'infer', model: 'secret-model' });
    expect(denied).toMatchObject({ code: 'FORBIDDEN', message: "'resnet-only' lacks the scope infer (or infer:secret-model) for model 'secret-model'" });
  });

  it('without credentials configured: loopback does everything, others all but management', () => {
    const access = new AccessControl();
    expect(access.enabled).toBe(false);
    for (const address of ['127.0.0.1', '::1', '::ffff:127.0.0.1', '0000:0000:0000:0000:0000:ffff:7f00:0001']) expect(access.authenticate(undefined, { address })).toBe(LOOPBACK_PRINCIPAL);
    const remote = access.authenticate(`Bearer whatever`, { address: '192.168.1.5' });
    expect(remote).toBe(REMOTE_ANONYMOUS);
    expect(access.authorize(LOOPBACK_PRINCIPAL, { scope: 'manage' })).toBeUndefined();
    expect(access.authorize(REMOTE_ANONYMOUS, { scope: 'infer', model: 'm' })).toBeUndefined();
    expect(access.authorize(REMOTE_ANONYMOUS, { scope: 'monitor' })).toBeUndefined();
    expect(access.authorize(REMOTE_ANONYMOUS, { scope: 'manage' })).toMatchObject({ code: 'FORBIDDEN', message: 'management routes answer only loopback clients on a server without --auth' });
  });
});

describe('audit', () => {
  it('writes one line per authentication failure, never the key, and counts outcomes', async () => {
    const { access, lines, registry } = setup();
    const leaked = generateApiKey();
    void access.authenticate(`Bearer ${leaked}`, { address: '10.9.9.9' });
    const client = access.authenticate(`Bearer ${inferKey}`, at) as AuthPrincipal;
    access.authorize(client, { scope: 'infer', model: 'm' });
    access.authorize(client, { scope: 'manage' });
    access.authorize(ANONYMOUS, { scope: 'monitor' });
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toContain(leaked);
    expect(JSON.parse(lines[0]!)).toEqual({ audit: true, time: '2026-12-04T21:00:00.000Z', principal: null, address: '10.9.9.9', action: 'authenticate', target: null, result: 'invalid_key', reason: 'unknown API key' });
    const text = await registry.metrics();
    expect(text).toContain('tensorwire_auth_requests_total{result="allowed"} 1');
    expect(text).toContain('tensorwire_auth_requests_total{result="forbidden"} 1');
    expect(text).toContain('tensorwire_auth_requests_total{result="unauthenticated"} 1');
    expect(text).toContain('tensorwire_auth_requests_total{result="invalid_credentials"} 1');
    expect(text).toContain('tensorwire_audit_events_total{action="authenticate",result="invalid_key"} 1');
  });

  it('writes management actions with principal, address, target and result', async () => {
    const lines: string[] = [];
    const registry = new Registry();
    const audit = new AuditLog({ write: (l) => lines.push(l), registry, now: () => 0 });
    const context = createRequestContext('http', '10.0.0.2', {});
    context.principal = { name: 'admin', scopes: ['manage'], via: 'api-key' };
    const call: ControlCall = { action: 'repository.load', target: 'resnet', context };
    audit.control(call, 'ok');
    audit.control({ ...call, action: 'repository.unload' }, 'FORBIDDEN');
    expect(lines.map((l) => JSON.parse(l))).toEqual([
      { audit: true, time: '1970-01-01T00:00:00.000Z', principal: 'admin', address: '10.0.0.2', action: 'repository.load', target: 'resnet', result: 'ok' },
      { audit: true, time: '1970-01-01T00:00:00.000Z', principal: 'admin', address: '10.0.0.2', action: 'repository.unload', target: 'resnet', result: 'FORBIDDEN' },
    ]);
    expect(await registry.metrics()).toContain('tensorwire_audit_events_total{action="repository.unload",result="FORBIDDEN"} 1');
  });

  it('caps failure lines per second (an attacker controls their rate) but counts them all', async () => {
    const lines: string[] = [];
    let t = 5_000;
    const registry = new Registry();
    const audit = new AuditLog({ write: (l) => lines.push(l), now: () => t, registry, maxFailureLinesPerSecond: 3 });
    for (let i = 0; i < 10; i++) audit.authenticationFailed('10.0.0.1', 'invalid_key', 'unknown API key');
    expect(lines).toHaveLength(3);
    t += 1000;
    audit.authenticationFailed('10.0.0.1', 'invalid_key', 'unknown API key');
    expect(lines).toHaveLength(5);
    expect(JSON.parse(lines[3]!)).toMatchObject({ action: 'authenticate.suppressed', result: '7' });
    expect(await registry.metrics()).toContain('tensorwire_audit_events_total{action="authenticate",result="invalid_key"} 11');
  });
});
