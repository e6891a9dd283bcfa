/**
 * The subject of the client certificate a TLS connection verified (grpc-js's auth context),
 * written as the auth file's `mtls` entries name it: "CN=batch-job", or "O=Example,CN=batch-job"
 * for a longer distinguished name (its attributes in certificate order, joined by commas;
 * normalizeSubject in lib/auth/auth-file.ts ignores spaces around them).
 */
import type { PeerCertificate } from 'node:tls';

/** The call's verified client certificate subject, or undefined (plaintext, no certificate, or not verified). */
export function peerSubject(call: { getAuthContext(): { sslPeerCertificate?: PeerCertificate } | null }): string | undefined {
  const subject = call.getAuthContext()?.sslPeerCertificate?.subject as Record<string, string | string[] | undefined> | undefined;
  if (subject === undefined) return undefined;
  const parts: string[] = [];
  for (const [attribute, value] of Object.entries(subject)) {
    // A multi-valued attribute (two OUs) comes as an array.
    for (const v of Array.isArray(value) ? value : [value]) if (v !== undefined) parts.push(`${attribute}=${v}`);
  }
  return parts.length > 0 ? parts.join(',') : undefined;
}
