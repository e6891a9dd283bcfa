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
 *   (lib/server/server.ts).
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
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
  let text: string;
  try {
    const bytes = readFileSync(path);
    if (bytes.byteLength > MAX_PEM_BYTES) throw new TensorwireError('INVALID_INPUT', `${flag} ${basename(path)} is over ${MAX_PEM_BYTES} bytes`);
    text = bytes.toString('utf8');
  } catch (e) {
    if (e instanceof TensorwireError) throw e;
    throw new TensorwireError('INVALID_INPUT', `${flag} ${basename(path)} cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (!text.includes('-----BEGIN ')) throw new TensorwireError('INVALID_INPUT', `${flag} ${basename(path)} is not PEM (no -----BEGIN line)`);
  return text;
}

/** Validates the files and returns the SSLApp options; `now` is ms since the epoch. */
export function tlsAppOptions(flags: TlsFlags, now = Date.now()): TlsSetup {
  const certPem = readPem(flags.cert, '--tls-cert');
  const keyPem = readPem(flags.key, '--tls-key');
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
    const caPem = readPem(flags.ca, '--tls-ca');
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
