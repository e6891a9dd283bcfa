/**
 * HTTPS and WSS of a real server (createTensorwire with --tls-cert/--tls-key[/--tls-ca]),
 * certificates made here with Debian's openssl: inference and the stream over TLS, the
 * separate metrics port over TLS too, client certificates verified when --tls-ca is given;
 * and CORS when configured (preflight, headers on answers, nothing for other origins).
 */
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addKey } from '../lib/auth/api-key';
import { mlpModel } from './fixtures/models';
import { frameCount, makeCertificates, openStream, raw } from './helpers/auth-client';
import { startHarness, type Harness } from './helpers/server-harness';

const MLP = { inputDim: 4, hidden: 8, outputDim: 2, file: 'model.onnx' };
const INFER_BODY = JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [0.1, 0.2, 0.3, 0.4] }] });
const models = [{ name: 'mlp', versions: { 1: (d: string) => mlpModel(d, MLP) } }];

let dir = '';
let key = '';
const file = (name: string): Buffer => readFileSync(join(dir, name));

beforeAll(() => {
  expect(existsSync('/usr/bin/openssl'), '/usr/bin/openssl is missing: apt-get install openssl').toBe(true);
  dir = mkdtempSync(join(tmpdir(), 'tw-authtls-'));
  makeCertificates(dir, [
    { ca: 'ca', issue: [{ name: 'server', cn: 'localhost' }, { name: 'client', cn: 'batch-job' }] },
    { ca: 'other-ca', issue: [{ name: 'stranger', cn: 'batch-job' }] },
  ]);
  key = addKey(join(dir, 'auth.json'), 'client', ['infer', 'monitor']);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('TLS', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ models, metricsPort: 0, security: { authFile: join(dir, 'auth.json'), tls: { cert: join(dir, 'server.pem'), key: join(dir, 'server.key') } } });
  }, 60_000);
  afterAll(async () => h?.close());

  it('serves HTTPS, WSS and the metrics port over TLS; plain HTTP gets nothing', async () => {
    expect(h.base).toMatch(/^https:\/\//);
    const ca = file('ca.pem');
    const r = await raw(h.base, 'POST', '/v2/models/mlp/infer', { authorization: `Bearer ${key}` }, INFER_BODY, { ca });
    expect(r.status, r.text).toBe(200);
    expect((await raw(h.base, 'GET', '/v2/models/mlp', {}, undefined, { ca })).status).toBe(401);
    expect(h.metricsUrl).toMatch(/^https:\/\//);
    const m = await raw(h.metricsUrl, 'GET', '/metrics', { authorization: `Bearer ${key}` }, undefined, { ca });
    expect(m.status).toBe(200);
    expect(m.text).toContain('tensorwire_auth_requests_total');
    await expect(raw(h.base.replace('https', 'http'), 'GET', '/v2/health/live')).rejects.toThrow();
    const s = await openStream(h.base, { authorization: `Bearer ${key}` }, { ca });
    expect(s.ws).toBeDefined();
    s.ws!.send(JSON.stringify({ id: 1, model_name: 'mlp', inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] }));
    await frameCount(s.frames, 1);
    expect(s.frames[0]).toHaveProperty('outputs');
    s.ws!.close();
  });
});

/** The serial number of the certificate a new TLS connection to `port` is served. */
function servedSerial(port: number, ca: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ca }, () => {
      resolve(socket.getPeerCertificate().serialNumber);
      socket.end();
    });
    socket.on('error', reject);
  });
}

describe('TLS certificate reload', () => {
  let h: Harness;
  let reloadDir = '';
  beforeAll(async () => {
    reloadDir = mkdtempSync(join(tmpdir(), 'tw-reload-'));
    copyFileSync(join(dir, 'server.pem'), join(reloadDir, 'cert.pem'));
    copyFileSync(join(dir, 'server.key'), join(reloadDir, 'key.pem'));
    h = await startHarness({ models, security: { authFile: join(dir, 'auth.json'), tls: { cert: join(reloadDir, 'cert.pem'), key: join(reloadDir, 'key.pem') } } });
  }, 60_000);
  afterAll(async () => {
    await h?.close();
    rmSync(reloadDir, { recursive: true, force: true });
  });

  it('serves the renewed certificate to new connections; under load no request fails (only a connection attempt racing the switch may be reset)', async () => {
    const ca = file('ca.pem');
    const before = await servedSerial(h.port, ca);
    // A renewed certificate of the same CA (what certbot does), swapped in by rename.
    const { execFileSync } = await import('node:child_process');
    execFileSync('/usr/bin/openssl', ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'new.key', '-out', 'new.csr', '-subj', '/CN=localhost'], { cwd: reloadDir, stdio: 'pipe' });
    execFileSync('/usr/bin/openssl', ['x509', '-req', '-in', 'new.csr', '-CA', join(dir, 'ca.pem'), '-CAkey', join(dir, 'ca.key'), '-CAcreateserial', '-out', 'new.pem', '-days', '30', '-extfile', join(dir, 'server.ext')], { cwd: reloadDir, stdio: 'pipe' });
    copyFileSync(join(reloadDir, 'new.pem'), join(reloadDir, 'cert.pem'));
    copyFileSync(join(reloadDir, 'new.key'), join(reloadDir, 'key.pem'));
    // Load: 8 clients, each a new TLS connection per request, before, during and after the reload.
    let running = true;
    const statuses: (number | string)[] = [];
    const client = async (): Promise<void> => {
      while (running) statuses.push(await raw(h.base, 'GET', '/v2/models/mlp', { authorization: `Bearer ${key}` }, undefined, { ca }).then((r) => r.status, (e: Error) => e.message));
    };
    const clients = Array.from({ length: 8 }, client);
    await new Promise((r) => setTimeout(r, 200));
    await h.server.reloadTls();
    await new Promise((r) => setTimeout(r, 300));
    running = false;
    await Promise.all(clients);
    expect(statuses.length).toBeGreaterThan(10);
    // Requests never fail; a connection attempt queued on the old listener as it closes is
    // reset before any byte of a request was sent (docs/security.md, TLS), which clients retry.
    const failed = statuses.filter((s) => s !== 200);
    for (const f of failed) expect(f).toMatch(/ECONNRESET|socket hang up/);
    // How many depends on the machine's load; none with net.ipv4.tcp_migrate_req=1 (test/integration-tls-reload.test.ts).
    console.log(`certificate reload: ${statuses.length} requests on new connections, ${failed.length} connection attempts reset`);
    const after = await servedSerial(h.port, ca);
    expect(after).not.toBe(before);
  });

  it('keeps the old certificate when the new files are not usable', async () => {
    const ca = file('ca.pem');
    const before = await servedSerial(h.port, ca);
    copyFileSync(join(dir, 'stranger.key'), join(reloadDir, 'key.pem')); // not the certificate's key
    await expect(h.server.reloadTls()).rejects.toThrow(/is not the key of the certificate/);
    expect(await servedSerial(h.port, ca)).toBe(before);
  });
});

describe('TLS with --tls-ca', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ models, security: { authFile: join(dir, 'auth.json'), tls: { cert: join(dir, 'server.pem'), key: join(dir, 'server.key'), ca: join(dir, 'ca.pem') } } });
  }, 60_000);
  afterAll(async () => h?.close());

  it('serves a client with a certificate of the CA, and one without; refuses one of another CA', async () => {
    const ca = file('ca.pem');
    const auth = { authorization: `Bearer ${key}` };
    expect((await raw(h.base, 'GET', '/v2/models/mlp', auth, undefined, { ca, key: file('client.key'), cert: file('client.pem') })).status).toBe(200);
    // Verification is not a requirement (uWS cannot require one): credentials still decide.
    expect((await raw(h.base, 'GET', '/v2/models/mlp', auth, undefined, { ca })).status).toBe(200);
    await expect(raw(h.base, 'GET', '/v2/models/mlp', auth, undefined, { ca, key: file('stranger.key'), cert: file('stranger.pem') })).rejects.toThrow();
  });
});

describe('CORS when configured', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ models, security: { authFile: join(dir, 'auth.json'), corsOrigins: ['https://app.example'] } });
  }, 60_000);
  afterAll(async () => h?.close());

  it('answers the preflight and marks answers for the configured origin only', async () => {
    const pre = await raw(h.base, 'OPTIONS', '/v2/models/mlp/infer', { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' });
    expect(pre.status).toBe(204);
    expect(pre.headers['access-control-allow-origin']).toBe('https://app.example');
    expect(String(pre.headers['access-control-allow-headers'])).toContain('authorization');
    expect(pre.headers['access-control-allow-credentials']).toBeUndefined();
    const other = await raw(h.base, 'OPTIONS', '/v2/models/mlp/infer', { origin: 'https://evil.example', 'access-control-request-method': 'POST' });
    expect(other.headers['access-control-allow-origin']).toBeUndefined();
    const r = await raw(h.base, 'POST', '/v2/models/mlp/infer', { origin: 'https://app.example', authorization: `Bearer ${key}`, 'content-type': 'application/json' }, INFER_BODY);
    expect(r.status).toBe(200);
    expect(r.headers['access-control-allow-origin']).toBe('https://app.example');
    // Errors carry them too, so the page can read why.
    const denied = await raw(h.base, 'GET', '/v2/models/mlp', { origin: 'https://app.example' });
    expect(denied.status).toBe(401);
    expect(denied.headers['access-control-allow-origin']).toBe('https://app.example');
    expect(String(denied.headers['access-control-expose-headers'])).toContain('www-authenticate');
  });
});
