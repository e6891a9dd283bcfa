/**
 * HTTPS for the server: builds uWebSockets.js SSLApp options from `--tls-cert`, `--tls-key`
 * and `--tls-ca`, checking the files first so a mistake is a clear startup error instead
 * of a server that accepts connections and fails every handshake.
 *
 * What uWebSockets.js 20.30 (our @trufflesuite build) can and cannot do, checked by
 * test/auth-tls.test.ts and by hand (docs/security.md, "Access control", "TLS"):
 * - SSLApp({key_file_name, cert_file_name, passphrase}) serves HTTPS and WSS.
 * - ca_file_name turns on client-certificate *verification* but does not *require* one: a
 *   client without a certificate is served; one whose certificate another CA signed fails
 *   the handshake. There is no way to read the client certificate or its subject from JS
 *   (HttpResponse has no getX509Certificate in this version; upstream uWebSockets.js added
 *   peer certificate access later), so `mtls` principals of the auth file cannot be
 *   identified over this HTTP server: terminate mTLS at a proxy, or use gRPC.
 * - Certificates cannot be replaced in a running app for clients that send no SNI: the
 *   default context is fixed at construction. A second app can listen on the same port
 *   (uSockets sets SO_REUSEPORT), which is how RunningServer.reloadTls swaps certificates
 *   (lib/server/server.ts; queued connections survive the old listener's close only with
 *   net.ipv4.tcp_migrate_req=1). Reloads check the files with `tlsAppOptionsAsync`, off
 *   the JS thread; lib/auth/tls-file-watcher.ts runs them when the files change.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import type { AppOptions } from 'uWebSockets.js';
import { TensorwireError } from '../errors';
import { clip } from './scopes';

/** The TLS flags as given. */
export interface TlsFlags {
  /** PEM certificate (chain) file. */
  cert: string;
  /** PEM private key file. */
  key: string;
  /** PEM CA bundle that client certificates are verified against (optional). */
  ca?: string;
  /** Passphrase of an encrypted key (from TENSORWIRE_TLS_KEY_PASSPHRASE, never a flag: flags show in `ps`). */
  passphrase?: string;
}

/** SSLApp options plus what the operator should be told at startup. */
export interface TlsSetup {
  readonly appOptions: AppOptions;
  /** The certificate's subject and expiry, for the startup line. */
  readonly summary: string;
  readonly warnings: readonly string[];
}

/** Days before expiry from which startup warns. */
const EXPIRY_WARNING_DAYS = 14;
/** Largest PEM file read. */
const MAX_PEM_BYTES = 1024 * 1024;

function readPem(path: string, flag: string): string {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw unreadable(path, flag, e);
  }
  return pemText(bytes, path, flag);
}

/** readPem off the JS thread, for reloads while serving. */
async function readPemAsync(path: string, flag: string): Promise<string> {
  let bytes: Buffer;
  try {
    const s = await stat(path);
    if (s.size > MAX_PEM_BYTES) throw new TensorwireError('INVALID_INPUT', `${flag} ${basename(path)} is over ${MAX_PEM_BYTES} bytes`);
    bytes = await readFile(path);
  } catch (e) {
    throw unreadable(path, flag, e);
  }
  return pemText(bytes, path, flag);
}

function unreadable(path: string, flag: string, e: unknown): TensorwireError {
  if (e instanceof TensorwireError) return e;
  return new TensorwireError('INVALID_INPUT', `${flag} ${basename(path)} cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
}

function pemText(bytes: Buffer, path: string, flag: string): string {
  if (bytes.byteLength > MAX_PEM_BYTES) throw new TensorwireError('INVALID_INPUT', `${flag} ${basename(path)} is over ${MAX_PEM_BYTES} bytes`);
  const text = bytes.toString('utf8');
  if (!text.includes('-----BEGIN ')) throw new TensorwireError('INVALID_INPUT', `${flag} ${basename(path)} is not PEM (no -----BEGIN line)`);
  return text;
}

/** The PEM text of the three files. */
interface TlsPems {
  cert: string;
  key: string;
  ca?: string;
}

/**
 * Checks the files again, reading them off the JS thread (a reload while serving): the same
 * checks and result as `tlsAppOptions`.
 */
export async function tlsAppOptionsAsync(flags: TlsFlags, now = Date.now()): Promise<TlsSetup> {
  const [cert, key, ca] = await Promise.all([
    readPemAsync(flags.cert, '--tls-cert'),
    readPemAsync(flags.key, '--tls-key'),
    flags.ca === undefined ? undefined : readPemAsync(flags.ca, '--tls-ca'),
  ]);
  return checkTls(flags, { cert, key, ...(ca !== undefined ? { ca } : {}) }, now);
}

/** The files an SSLApp was made from: certificate, key and CA when given. */
export function tlsFilesOf(options: AppOptions): string[] {
  const { cert, key, ca } = tlsFlagsOf(options);
  return ca === undefined ? [cert, key] : [cert, key, ca];
}

/** The flags an SSLApp was made from (to check its files again on reload). */
export function tlsFlagsOf(options: AppOptions): TlsFlags {
  return {
    cert: options.cert_file_name as string,
    key: options.key_file_name as string,
    ...(options.ca_file_name !== undefined ? { ca: options.ca_file_name as string } : {}),
    ...(options.passphrase !== undefined ? { passphrase: options.passphrase as string } : {}),
  };
}

/** Validates the files and returns the SSLApp options; `now` is ms since the epoch. */
export function tlsAppOptions(flags: TlsFlags, now = Date.now()): TlsSetup {
  const cert = readPem(flags.cert, '--tls-cert');
  const key = readPem(flags.key, '--tls-key');
  const ca = flags.ca === undefined ? undefined : readPem(flags.ca, '--tls-ca');
  return checkTls(flags, { cert, key, ...(ca !== undefined ? { ca } : {}) }, now);
}

function checkTls(flags: TlsFlags, pems: TlsPems, now: number): TlsSetup {
  const certPem = pems.cert;
  const keyPem = pems.key;
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (e) {
    throw new TensorwireError('INVALID_INPUT', `--tls-cert ${basename(flags.cert)} holds no usable certificate (${clip((e as Error).message, 100)})`);
  }
  let key;
  try {
    key = createPrivateKey(flags.passphrase === undefined ? keyPem : { key: keyPem, passphrase: flags.passphrase });
  } catch (e) {
    const encrypted = /ENCRYPTED/.test(keyPem);
    throw new TensorwireError('INVALID_INPUT', `--tls-key ${basename(flags.key)} cannot be used${encrypted && flags.passphrase === undefined ? ': it is encrypted; set TENSORWIRE_TLS_KEY_PASSPHRASE' : ` (${clip((e as Error).message, 100)})`}`);
  }
  if (!cert.checkPrivateKey(key)) throw new TensorwireError('INVALID_INPUT', `--tls-key ${basename(flags.key)} is not the key of the certificate in --tls-cert ${basename(flags.cert)}`);
  const notAfter = Date.parse(cert.validTo);
  if (notAfter <= now) throw new TensorwireError('INVALID_INPUT', `--tls-cert ${basename(flags.cert)} expired on ${cert.validTo}`);
  const warnings: string[] = [];
  if (notAfter - now < EXPIRY_WARNING_DAYS * 86_400_000) warnings.push(`TLS certificate expires on ${cert.validTo}; renew it and send SIGHUP (or restart tensorwire)`);
  const appOptions: AppOptions = { key_file_name: flags.key, cert_file_name: flags.cert };
  if (flags.passphrase !== undefined) appOptions.passphrase = flags.passphrase;
  if (flags.ca !== undefined) {
    const caPem = pems.ca ?? '';
    try {
      new X509Certificate(caPem);
    } catch (e) {
      throw new TensorwireError('INVALID_INPUT', `--tls-ca ${basename(flags.ca)} holds no usable certificate (${clip((e as Error).message, 100)})`);
    }
    appOptions.ca_file_name = flags.ca;
    warnings.push('--tls-ca: client certificates signed by another CA are refused, but clients without one are still served and the certificate subject cannot be read by this HTTP server; credentials (--auth) still decide access');
  }
  return { appOptions, summary: `${cert.subject.replace(/\n/g, ', ')}, valid until ${cert.validTo}`, warnings };
}
