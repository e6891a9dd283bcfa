/**
 * gRPC over TLS with the server's certificate (`--tls-cert`, `--tls-key`, `--tls-ca`): the
 * same files HTTPS serves, already checked at startup (lib/auth/tls-options.ts). With a CA,
 * a client certificate is *required* and verified against it (grpc-js can require one,
 * where the HTTP server can only verify one that is offered). The certificate is reloaded
 * with the HTTPS one (SIGHUP or the file watch): new connections get it, open ones keep theirs.
 */
import { createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import type { CaCertificateUpdate, CaCertificateUpdateListener, CertificateProvider, IdentityCertificateUpdate, IdentityCertificateUpdateListener } from '@grpc/grpc-js/build/src/certificate-provider';

/** The TLS files, as the HTTPS server takes them (TlsSetup.appOptions). */
export interface GrpcTlsFiles {
  cert_file_name?: string | ArrayBufferLike | ArrayBufferView;
  key_file_name?: string | ArrayBufferLike | ArrayBufferView;
  ca_file_name?: string | ArrayBufferLike | ArrayBufferView;
  passphrase?: string | ArrayBufferLike | ArrayBufferView;
}

/** uWebSockets.js takes names as any "recognized string"; tensorwire passes strings. */
function text(value: string | ArrayBufferLike | ArrayBufferView): string {
  if (typeof value === 'string') return value;
  return Buffer.from(ArrayBuffer.isView(value) ? Buffer.from(value.buffer, value.byteOffset, value.byteLength) : new Uint8Array(value)).toString('utf8');
}

/** gRPC's credentials, and how to load the certificate again (`undefined` without TLS). */
export interface GrpcCredentials {
  readonly credentials: grpc.ServerCredentials;
  /**
   * Reads the files again (off the JS thread) and serves them to new connections; open
   * connections keep their certificate. Rejects, leaving the running certificate in force,
   * when the files do not make a usable TLS context.
   */
  readonly reload: (() => Promise<void>) | undefined;
}

interface LoadedFiles {
  identity: IdentityCertificateUpdate;
  ca: CaCertificateUpdate | undefined;
}

/** The key as grpc-js takes it: grpc-js takes no passphrase, so an encrypted key is decrypted here, in memory only. */
function plainKey(key: Buffer, passphrase: string | undefined): Buffer {
  if (passphrase === undefined) return key;
  return Buffer.from(createPrivateKey({ key, passphrase }).export({ type: 'pkcs8', format: 'pem' }));
}

/** Refuses files that do not make a TLS context (a half-written renewal) before any connection sees them. */
function checked(files: LoadedFiles): LoadedFiles {
  createSecureContext({ cert: files.identity.certificate, key: files.identity.privateKey, ...(files.ca !== undefined ? { ca: files.ca.caCertificate } : {}) });
  return files;
}

/**
 * A certificate provider (grpc-js's interface) whose certificate the server replaces at
 * runtime: grpc-js builds a new secure context for new connections on every update, so a
 * reload drops no connection (unlike HTTPS, no listener is swapped).
 */
class ReloadableCertificates implements CertificateProvider {
  private readonly identityListeners = new Set<IdentityCertificateUpdateListener>();
  private readonly caListeners = new Set<CaCertificateUpdateListener>();

  constructor(private current: LoadedFiles) {}

  set(files: LoadedFiles): void {
    this.current = files;
    for (const l of this.identityListeners) l(files.identity);
    if (files.ca !== undefined) for (const l of this.caListeners) l(files.ca);
  }

  // A new listener gets the current files on the next tick, not at once: grpc-js adds its
  // server's watcher only after adding these listeners, and an update before that is lost
  // (the server would then drop every connection as having no credentials).
  addIdentityCertificateListener(listener: IdentityCertificateUpdateListener): void {
    this.identityListeners.add(listener);
    process.nextTick(() => {
      if (this.identityListeners.has(listener)) listener(this.current.identity);
    });
  }

  removeIdentityCertificateListener(listener: IdentityCertificateUpdateListener): void {
    this.identityListeners.delete(listener);
  }

  addCaCertificateListener(listener: CaCertificateUpdateListener): void {
    this.caListeners.add(listener);
    process.nextTick(() => {
      if (this.caListeners.has(listener) && this.current.ca !== undefined) listener(this.current.ca);
    });
  }

  removeCaCertificateListener(listener: CaCertificateUpdateListener): void {
    this.caListeners.delete(listener);
  }
}

/**
 * Server credentials: insecure without files; TLS with them (a client certificate required
 * and verified against the CA when one is given), reloadable.
 */
export function grpcServerCredentials(tls: GrpcTlsFiles | undefined): GrpcCredentials {
  if (tls === undefined) return { credentials: grpc.ServerCredentials.createInsecure(), reload: undefined };
  if (tls.cert_file_name === undefined || tls.key_file_name === undefined) throw new TypeError('gRPC TLS needs both a certificate and a key file');
  const certFile = text(tls.cert_file_name);
  const keyFile = text(tls.key_file_name);
  const caFile = tls.ca_file_name === undefined ? undefined : text(tls.ca_file_name);
  const passphrase = tls.passphrase === undefined ? undefined : text(tls.passphrase);
  // At start (the HTTPS server read and checked the same files just before).
  const provider = new ReloadableCertificates(
    checked({
      identity: { certificate: readFileSync(certFile), privateKey: plainKey(readFileSync(keyFile), passphrase) },
      ca: caFile === undefined ? undefined : { caCertificate: readFileSync(caFile) },
    }),
  );
  // grpc-js's factory takes the identity provider first (its declared parameter names are swapped).
  const credentials = grpc.experimental.createCertificateProviderServerCredentials(provider, caFile === undefined ? null : provider, caFile !== undefined);
  const reload = async (): Promise<void> => {
    const [cert, key, ca] = await Promise.all([readFile(certFile), readFile(keyFile), caFile === undefined ? undefined : readFile(caFile)]);
    provider.set(checked({ identity: { certificate: cert, privateKey: plainKey(key, passphrase) }, ca: ca === undefined ? undefined : { caCertificate: ca } }));
  };
  return { credentials, reload };
}
