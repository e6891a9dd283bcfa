/**
 * HTTPS with uWebSockets.js SSLApp, from certificates made here with Debian's openssl
 * (/usr/bin/openssl; .ci/run must apt-install `openssl` where it is missing): the options
 * tls-options.ts builds serve a real request, and client-certificate verification behaves
 * as documented there (verified when sent, not required, subject not readable).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import uWS from 'uWebSockets.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tlsAppOptions } from '../lib/auth/tls-options';

const OPENSSL = '/usr/bin/openssl';
let dir = '';

function openssl(...args: string[]): void {
  execFileSync(OPENSSL, args, { cwd: dir, stdio: 'pipe' });
}
/** A P-256 key and a certificate for `cn` signed by CA `ca` (localhost and 127.0.0.1 as names). */
function issue(name: string, cn: string, ca: string): void {
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
  writeFileSync(join(dir, `${name}.ext`), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.pem`, '-days', '30', '-extfile', `${name}.ext`);
}
function makeCa(name: string): void {
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.pem`, '-subj', `/CN=${name}`, '-days', '2');
}
const file = (name: string) => join(dir, name);

beforeAll(() => {
  expect(existsSync(OPENSSL), `${OPENSSL} is missing: apt-get install openssl`).toBe(true);
  dir = mkdtempSync(join(tmpdir(), 'tw-tls-'));
  makeCa('ca');
  makeCa('other-ca');
  issue('server', 'localhost', 'ca');
  issue('client', 'batch-job', 'ca');
  issue('stranger', 'batch-job', 'other-ca');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Serves `GET /*` → "hello <client address>" on an SSLApp; returns the port and a closer. */
function serve(options: uWS.AppOptions): Promise<{ port: number; close: () => void }> {
  const app = uWS.SSLApp(options).get('/*', (res) => {
    res.end(`hello ${Buffer.from(res.getRemoteAddressAsText()).toString()}`);
  });
  return new Promise((resolve, reject) => {
    app.listen('127.0.0.1', 0, (socket) => {
      if (!socket) return reject(new Error('SSLApp did not listen'));
      resolve({ port: uWS.us_socket_local_port(socket), close: () => uWS.us_listen_socket_close(socket) });
    });
  });
}

function get(port: number, extra: { key?: Buffer; cert?: Buffer } = {}): Promise<{ status: number; body: string; subject: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', servername: 'localhost', ca: readFileSync(file('ca.pem')), agent: false, ...extra }, (res) => {
      const subject = (res.socket as import('node:tls').TLSSocket).getPeerCertificate().subject.CN;
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, body, subject }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('TLS', () => {
  it('serves HTTPS with the options built from --tls-cert/--tls-key', async () => {
    const setup = tlsAppOptions({ cert: file('server.pem'), key: file('server.key') });
    expect(setup.appOptions).toEqual({ cert_file_name: file('server.pem'), key_file_name: file('server.key') });
    expect(setup.summary).toMatch(/^CN=localhost, valid until /);
    expect(setup.warnings).toEqual([]);
    const server = await serve(setup.appOptions);
    try {
      const answer = await get(server.port);
      expect(answer).toEqual({ status: 200, body: 'hello 127.0.0.1', subject: 'localhost' });
    } finally {
      server.close();
    }
  });

  it('with --tls-ca: a certificate from another CA fails the handshake, none at all is still served', async () => {
    const setup = tlsAppOptions({ cert: file('server.pem'), key: file('server.key'), ca: file('ca.pem') });
    expect(setup.warnings[0]).toMatch(/clients without one are still served/);
    const server = await serve(setup.appOptions);
    try {
      expect((await get(server.port, { key: readFileSync(file('client.key')), cert: readFileSync(file('client.pem')) })).status).toBe(200);
      await expect(get(server.port, { key: readFileSync(file('stranger.key')), cert: readFileSync(file('stranger.pem')) })).rejects.toMatchObject({ code: 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA' });
      expect((await get(server.port)).status).toBe(200);
    } finally {
      server.close();
    }
  });

  it('refuses mismatched, missing and non-PEM files with messages that name the flag, not the directory', () => {
    expect(() => tlsAppOptions({ cert: file('server.pem'), key: file('client.key') })).toThrow('--tls-key client.key is not the key of the certificate in --tls-cert server.pem');
    expect(() => tlsAppOptions({ cert: file('nope.pem'), key: file('server.key') })).toThrow('--tls-cert nope.pem cannot be read (ENOENT)');
    expect(() => tlsAppOptions({ cert: file('server.ext'), key: file('server.key') })).toThrow('--tls-cert server.ext is not PEM');
    expect(() => tlsAppOptions({ cert: file('server.pem'), key: file('server.key') }, Date.now() + 40 * 86_400_000)).toThrow(/--tls-cert server.pem expired on /);
  });

  it('warns when the certificate expires within two weeks', () => {
    expect(tlsAppOptions({ cert: file('server.pem'), key: file('server.key') }, Date.now() + 20 * 86_400_000).warnings[0]).toMatch(/^TLS certificate expires on /);
  });
});
