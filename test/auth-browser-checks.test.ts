/** Bind policy, loopback detection and the browser-facing checks (content type, Host, Origin, CORS). */
import { describe, expect, it } from 'vitest';
import { checkBindPolicy, isLoopbackAddress, isLoopbackHost } from '../lib/auth/bind-policy';
import { checkJsonContentType, checkWebSocketOrigin, HostAllowList, hostName, mediaType, parseListFlag, parseOrigins } from '../lib/auth/browser-checks';
import { CorsPolicy } from '../lib/auth/cors';

describe('isLoopbackAddress', () => {
  it.each(['127.0.0.1', '127.1.2.3', '::1', '[::1]', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1', '::ffff:7f00:1', '0000:0000:0000:0000:0000:ffff:7f00:0001', '0000:0000:0000:0000:0000:0000:0000:0001', '::1%lo'])('%s is loopback', (a) => {
    expect(isLoopbackAddress(a)).toBe(true);
  });
  it.each(['10.0.0.1', '128.0.0.1', '0.0.0.0', '::', '::2', '::ffff:10.0.0.1', '0000:0000:0000:0000:0000:ffff:0a00:0001', 'fe80::1', 'localhost', '127.0.0.1.evil.com', '', 'garbage'])('%s is not loopback', (a) => {
    expect(isLoopbackAddress(a)).toBe(false);
  });
  it('counts localhost as a loopback bind host', () => {
    expect(isLoopbackHost('localhost')).toBe(true);
    expect(isLoopbackHost('0.0.0.0')).toBe(false);
  });
});

describe('checkBindPolicy', () => {
  it('allows loopback binds and any bind with credentials', () => {
    expect(checkBindPolicy('127.0.0.1', false, false)).toEqual({});
    expect(checkBindPolicy('::1', false, false)).toEqual({});
    expect(checkBindPolicy('localhost', false, false)).toEqual({});
    expect(checkBindPolicy('0.0.0.0', true, false)).toEqual({});
  });
  it('refuses a non-loopback bind without credentials, naming --allow-unauthenticated', () => {
    expect(() => checkBindPolicy('0.0.0.0', false, false)).toThrow(/refusing to serve on 0.0.0.0 without authentication.*--auth FILE.*--allow-unauthenticated/);
    expect(() => checkBindPolicy('::', false, false)).toThrow(/--allow-unauthenticated/);
  });
  it('allows it with --allow-unauthenticated, with a warning', () => {
    expect(checkBindPolicy('0.0.0.0', false, true).warning).toMatch(/^WARNING: serving on 0.0.0.0 without authentication/);
  });
});

describe('checkJsonContentType', () => {
  it.each(['application/json', 'application/json; charset=utf-8', 'Application/JSON ;charset=UTF-8'])('accepts %s', (t) => {
    expect(checkJsonContentType(t)).toBeUndefined();
  });
  it.each(['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/jsonp', 'application/json-seq', ''])('refuses %s', (t) => {
    expect(checkJsonContentType(t)).toMatchObject({ code: 'INVALID_INPUT', status: 400 });
  });
  it('refuses a missing content type, saying so', () => {
    expect(checkJsonContentType(undefined)!.message).toBe('this route changes server state and accepts only Content-Type: application/json, got none');
    expect(mediaType(' text/plain ; q=1')).toBe('text/plain');
  });
});

describe('HostAllowList', () => {
  it('on a loopback bind, answers only localhost names (any port): DNS rebinding is refused', () => {
    const hosts = new HostAllowList('127.0.0.1');
    for (const h of ['localhost:8000', '127.0.0.1:8000', '[::1]:8000', 'LOCALHOST', '127.0.0.1', undefined]) expect(hosts.check(h), String(h)).toBeUndefined();
    expect(hosts.check('attacker.example:8000')).toMatchObject({ code: 'FORBIDDEN', message: "Host 'attacker.example:8000' is not one this server answers to (--allowed-hosts)" });
  });
  it('elsewhere, answers any host unless a list is given', () => {
    expect(new HostAllowList('0.0.0.0').check('anything.example')).toBeUndefined();
    const listed = new HostAllowList('0.0.0.0', ['models.example.com', '*.internal', '10.0.0.5']);
    expect(listed.check('models.example.com:443')).toBeUndefined();
    expect(listed.check('a.b.internal')).toBeUndefined();
    expect(listed.check('10.0.0.5:8000')).toBeUndefined();
    expect(listed.check('internal')).toBeDefined();
    expect(listed.check('evil.example.com')).toBeDefined();
  });
  it('parses host names with ports and IPv6 brackets', () => {
    expect(hostName('[::1]:80')).toBe('::1');
    expect(hostName('Example.COM:8080')).toBe('example.com');
    expect(hostName('::1')).toBe('::1');
  });
});

describe('checkWebSocketOrigin', () => {
  it('allows no Origin (not a browser) and the server origin', () => {
    expect(checkWebSocketOrigin(undefined, 'localhost:8000', false)).toBeUndefined();
    expect(checkWebSocketOrigin('http://localhost:8000', 'localhost:8000', false)).toBeUndefined();
    expect(checkWebSocketOrigin('https://models.example.com', 'models.example.com', true)).toBeUndefined();
  });
  it('refuses other origins unless listed', () => {
    expect(checkWebSocketOrigin('https://evil.example', 'localhost:8000', false)).toMatchObject({ code: 'FORBIDDEN', message: "WebSocket connections from origin 'https://evil.example' are not allowed (--allowed-origins)" });
    expect(checkWebSocketOrigin('http://localhost:8000', 'localhost:8000', true)).toBeDefined();
    expect(checkWebSocketOrigin('null', 'localhost:8000', false)).toBeDefined();
    expect(checkWebSocketOrigin('https://app.example', 'localhost:8000', false, ['https://app.example'])).toBeUndefined();
  });
});

describe('CORS', () => {
  it('sends nothing for origins not configured', () => {
    const cors = new CorsPolicy(parseOrigins(['https://app.example'], '--cors-origins', true));
    expect(cors.headers('https://evil.example', false)).toBeUndefined();
    expect(cors.headers(undefined, false)).toBeUndefined();
  });
  it('echoes a configured origin with Vary, and answers preflights', () => {
    const cors = new CorsPolicy(parseOrigins(['https://app.example'], '--cors-origins', true));
    expect(cors.headers('https://app.example', false)).toEqual([
      ['Access-Control-Allow-Origin', 'https://app.example'],
      ['Vary', 'Origin'],
      ['Access-Control-Expose-Headers', 'inference-header-content-length, retry-after, x-request-id, www-authenticate'],
    ]);
    const preflight = new Map(cors.headers('https://app.example', true));
    expect(preflight.get('Access-Control-Allow-Methods')).toBe('GET, POST');
    expect(preflight.get('Access-Control-Allow-Headers')).toContain('authorization');
  });
  it('never allows credentials, with a wildcard or without', () => {
    for (const origins of [['*'], ['https://app.example']]) {
      const cors = new CorsPolicy(origins);
      for (const preflight of [true, false]) {
        const h = cors.headers('https://app.example', preflight)!;
        expect(h.map(([k]) => k.toLowerCase())).not.toContain('access-control-allow-credentials');
      }
    }
    expect(new Map(new CorsPolicy(['*']).headers('https://any.example', false)).get('Access-Control-Allow-Origin')).toBe('*');
  });
  it('validates the origin lists', () => {
    expect(() => parseOrigins(['https://app.example/path'], '--cors-origins', true)).toThrow("--cors-origins: 'https://app.example/path' is not an origin");
    expect(() => parseOrigins(['*'], '--allowed-origins', false)).toThrow(/--allowed-origins: '\*' is not an origin/);
    expect(() => parseListFlag(Array.from({ length: 65 }, (_, i) => `h${i}`).join(','), '--allowed-hosts')).toThrow('--allowed-hosts: at most 64 entries, got 65');
  });
});
