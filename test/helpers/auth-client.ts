/**
 * Clients for the access-control tests: raw HTTP(S) requests with any headers (fetch will
 * not send a foreign Host), a WebSocket opener that reports the upgrade's refusal status,
 * and certificates made with Debian's openssl.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import WebSocket from 'ws';

export interface RawReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: { error?: string; code?: string } & Record<string, unknown>;
}

/** One request to `base` (http:// or https://) with exactly these headers; TLS options for https. */
export function raw(base: string, method: string, path: string, headers: Record<string, string> = {}, body?: string | Buffer, tls: { ca?: Buffer; key?: Buffer; cert?: Buffer } = {}): Promise<RawReply> {
  const url = new URL(path, base);
  const https = url.protocol === 'https:';
  return new Promise((resolve, reject) => {
    const options = { method, host: url.hostname, port: url.port, path: url.pathname, headers: { ...headers, ...(body !== undefined ? { 'content-length': String(Buffer.byteLength(body)) } : {}) }, agent: false as const };
    const onResponse = (res: import('node:http').IncomingMessage): void => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json = {};
        try {
          json = JSON.parse(text);
        } catch {
          // not JSON (metrics)
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
    };
    const req = https ? httpsRequest({ ...options, servername: 'localhost', ...tls }, onResponse) : httpRequest(options, onResponse);
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/** Opens the stream with these upgrade headers: the socket, or the status the upgrade was refused with. */
export function openStream(base: string, headers: Record<string, string> = {}, tls: { ca?: Buffer } = {}): Promise<{ ws?: WebSocket; status?: number; frames: Record<string, unknown>[] }> {
  const ws = new WebSocket(base.replace(/^http/, 'ws') + '/v2/stream', { headers, perMessageDeflate: false, ...tls, ...(tls.ca ? { servername: 'localhost' } : {}) } as WebSocket.ClientOptions);
  const frames: Record<string, unknown>[] = [];
  ws.on('message', (data: Buffer) => frames.push(JSON.parse(data.toString('utf8')) as Record<string, unknown>));
  return new Promise((resolve) => {
    ws.once('open', () => resolve({ ws, frames }));
    ws.once('unexpected-response', (_req, res) => {
      resolve({ status: res.statusCode ?? 0, frames });
      ws.terminate();
    });
    ws.once('error', () => resolve({ status: -1, frames }));
  });
}

/** Waits until `frames` holds `n` entries. */
export async function frameCount(frames: unknown[], n: number, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (frames.length < n) {
    if (Date.now() > end) throw new Error(`waited for ${n} frames, have ${frames.length}: ${JSON.stringify(frames)}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A CA and certificates it signed (P-256, localhost and 127.0.0.1), made in `dir` with /usr/bin/openssl. */
export function makeCertificates(dir: string, names: { ca: string; issue: { name: string; cn: string; ca?: string }[] }[]): void {
  const openssl = (...args: string[]): void => void execFileSync('/usr/bin/openssl', args, { cwd: dir, stdio: 'pipe' });
  for (const { ca, issue } of names) {
    openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${ca}.key`, '-out', `${ca}.pem`, '-subj', `/CN=${ca}`, '-days', '2');
    for (const { name, cn } of issue) {
      openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
      writeFileSync(join(dir, `${name}.ext`), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
      openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.pem`, '-days', '30', '-extfile', `${name}.ext`);
    }
  }
}
