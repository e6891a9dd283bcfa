/**
 * gRPC over TLS with the server's certificate (`--tls-cert`, `--tls-key`, `--tls-ca`): the
 * same files HTTPS serves, already checked at startup (lib/auth/tls-options.ts). With a CA,
 * a client certificate is *required* and verified against it (grpc-js can require one,
 * where the HTTP server can only verify one that is offered).
 */
import { createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';

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

/** Server credentials: insecure without files, TLS (mutual with a CA) with them. */
export function grpcServerCredentials(tls: GrpcTlsFiles | undefined): grpc.ServerCredentials {
  if (tls === undefined) return grpc.ServerCredentials.createInsecure();
  if (tls.cert_file_name === undefined || tls.key_file_name === undefined) throw new TypeError('gRPC TLS needs both a certificate and a key file');
  const cert = readFileSync(text(tls.cert_file_name));
  let key = readFileSync(text(tls.key_file_name));
  // grpc-js takes no passphrase: an encrypted key is decrypted here, in memory only.
  if (tls.passphrase !== undefined) key = Buffer.from(createPrivateKey({ key, passphrase: text(tls.passphrase) }).export({ type: 'pkcs8', format: 'pem' }));
  const ca = tls.ca_file_name === undefined ? null : readFileSync(text(tls.ca_file_name));
  return grpc.ServerCredentials.createSsl(ca, [{ cert_chain: cert, private_key: key }], ca !== null);
}
