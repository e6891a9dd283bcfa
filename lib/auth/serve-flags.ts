/**
 * The security flags of `tensorwire serve` and what they build:
 *
 *   --auth FILE                 API keys, certificate subjects, default limits (auth-file.ts)
 *   --jwt-public-keys FILE      RS256/ES256 keys, PEM or JWKS; TENSORWIRE_JWT_SECRET for HS256
 *   --jwt-issuer ISS            required `iss` of tokens
 *   --jwt-audience AUD          required `aud` of tokens
 *   --allow-unauthenticated     serve beyond loopback without credentials (logs a warning)
 *   --allowed-hosts a,b         Host names answered (default on loopback: localhost, 127.0.0.1, [::1])
 *   --allowed-origins o1,o2     origins whose pages may open the WebSocket stream
 *   --cors-origins o1,o2|*      CORS for these origins (off when not given)
 *   --tls-cert F --tls-key F    HTTPS (TENSORWIRE_TLS_KEY_PASSPHRASE for an encrypted key)
 *   --tls-ca F                  verify client certificates against this CA
 *
 * lib/cli.ts only declares the flags and calls these; the front door and the transports
 * receive the built `SecuritySetup`.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import type { Registry } from 'prom-client';
import { TensorwireError } from '../errors';
import { AccessControl } from './access-control';
import { AuditLog } from './audit';
import { AuthFileWatcher, type AuthLog } from './auth-file-watcher';
import { checkBindPolicy } from './bind-policy';
import { HostAllowList, parseListFlag, parseOrigins } from './browser-checks';
import { CorsPolicy } from './cors';
import { JwtVerifier, parseJwtPublicKeys } from './jwt-verifier';
import { PrincipalLimiter } from './principal-limiter';
import { tlsAppOptions, type TlsFlags, type TlsSetup } from './tls-options';

/** parseArgs declarations of the security flags (spread into `serve`'s options). */
export const SECURITY_FLAGS = {
  auth: { type: 'string' },
  'jwt-public-keys': { type: 'string' },
  'jwt-issuer': { type: 'string' },
  'jwt-audience': { type: 'string' },
  'allow-unauthenticated': { type: 'boolean' },
  'allowed-hosts': { type: 'string' },
  'allowed-origins': { type: 'string' },
  'cors-origins': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'tls-ca': { type: 'string' },
} as const;

/** Usage lines of the security flags. */
export const SECURITY_USAGE = `                   [--auth FILE] [--jwt-public-keys FILE] [--jwt-issuer ISS] [--jwt-audience AUD]
                   [--allow-unauthenticated] [--allowed-hosts a,b] [--allowed-origins o1,o2] [--cors-origins o1,o2|*]
                   [--tls-cert FILE --tls-key FILE [--tls-ca FILE]]`;

/** The security flags, parsed (files not read yet). */
export interface SecurityOptions {
  authFile?: string;
  jwtPublicKeysFile?: string;
  jwtIssuer?: string;
  jwtAudience?: string;
  allowUnauthenticated?: boolean;
  allowedHosts?: string[];
  allowedOrigins?: string[];
  corsOrigins?: string[];
  tls?: Omit<TlsFlags, 'passphrase'>;
}

type FlagValues = { [K in keyof typeof SECURITY_FLAGS]?: (typeof SECURITY_FLAGS)[K]['type'] extends 'boolean' ? boolean : string };

/** Parses the security flags; undefined when none was given. Throws naming the bad flag. */
export function parseSecurityFlags(values: FlagValues): SecurityOptions | undefined {
  const out: SecurityOptions = {};
  if (values.auth !== undefined) out.authFile = values.auth;
  if (values['jwt-public-keys'] !== undefined) out.jwtPublicKeysFile = values['jwt-public-keys'];
  if (values['jwt-issuer'] !== undefined) out.jwtIssuer = values['jwt-issuer'];
  if (values['jwt-audience'] !== undefined) out.jwtAudience = values['jwt-audience'];
  if (values['allow-unauthenticated'] === true) out.allowUnauthenticated = true;
  if (values['allowed-hosts'] !== undefined) out.allowedHosts = parseListFlag(values['allowed-hosts'], '--allowed-hosts');
  if (values['allowed-origins'] !== undefined) out.allowedOrigins = parseOrigins(parseListFlag(values['allowed-origins'], '--allowed-origins'), '--allowed-origins', false);
  if (values['cors-origins'] !== undefined) out.corsOrigins = parseOrigins(parseListFlag(values['cors-origins'], '--cors-origins'), '--cors-origins', true);
  const cert = values['tls-cert'];
  const key = values['tls-key'];
  if ((cert === undefined) !== (key === undefined)) throw new TensorwireError('INVALID_INPUT', '--tls-cert and --tls-key go together');
  if (values['tls-ca'] !== undefined && cert === undefined) throw new TensorwireError('INVALID_INPUT', '--tls-ca needs --tls-cert and --tls-key');
  if (cert !== undefined && key !== undefined) out.tls = { cert, key, ...(values['tls-ca'] !== undefined ? { ca: values['tls-ca'] } : {}) };
  return Object.keys(out).length === 0 ? undefined : out;
}

/** Everything the front door and the transports need to enforce the flags. */
export interface SecuritySetup {
  readonly access: AccessControl;
  readonly limiter: PrincipalLimiter;
  readonly audit: AuditLog;
  readonly hosts: HostAllowList;
  /** Extra origins allowed to open the stream (the server's own always is). */
  readonly allowedOrigins: readonly string[];
  readonly cors: CorsPolicy | undefined;
  readonly tls: TlsSetup | undefined;
  /** Lines to print at startup (unauthenticated exposure, certificate expiry...). */
  readonly warnings: readonly string[];
  /** Stops watching the auth file. */
  close(): void;
}

/** The environment (process.env): TENSORWIRE_JWT_SECRET, TENSORWIRE_TLS_KEY_PASSPHRASE are read. */
export type SecurityEnvironment = Readonly<Record<string, string | undefined>>;

/**
 * Reads the files the flags name, applies the bind policy for `host` and builds the
 * enforcement pieces. Throws (INVALID_INPUT, FORBIDDEN) with a message for the operator.
 */
export function createSecurity(options: SecurityOptions | undefined, host: string, env: SecurityEnvironment, extras: { registry?: Registry; log?: AuthLog; audit?: AuditLog } = {}): SecuritySetup {
  const o = options ?? {};
  const secret = env['TENSORWIRE_JWT_SECRET'];
  let jwt: JwtVerifier | undefined;
  if (o.jwtPublicKeysFile !== undefined || (secret !== undefined && secret !== '')) {
    let publicKeys;
    if (o.jwtPublicKeysFile !== undefined) {
      let text: string;
      try {
        text = readFileSync(o.jwtPublicKeysFile, 'utf8');
      } catch (e) {
        throw new TensorwireError('INVALID_INPUT', `--jwt-public-keys ${basename(o.jwtPublicKeysFile)} cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
      }
      publicKeys = parseJwtPublicKeys(text);
    }
    jwt = new JwtVerifier({
      ...(secret ? { secret: new TextEncoder().encode(secret) } : {}),
      ...(publicKeys ? { publicKeys } : {}),
      ...(o.jwtIssuer !== undefined ? { issuer: o.jwtIssuer } : {}),
      ...(o.jwtAudience !== undefined ? { audience: o.jwtAudience } : {}),
    });
  } else if (o.jwtIssuer !== undefined || o.jwtAudience !== undefined) {
    throw new TensorwireError('INVALID_INPUT', '--jwt-issuer and --jwt-audience need JWT verification: set TENSORWIRE_JWT_SECRET or --jwt-public-keys');
  }
  const watcher = o.authFile === undefined ? undefined : AuthFileWatcher.open(o.authFile, extras.log ? { log: extras.log } : {});
  const authConfigured = watcher !== undefined || jwt !== undefined;
  const warnings: string[] = [];
  try {
    const bind = checkBindPolicy(host, authConfigured, o.allowUnauthenticated === true);
    if (bind.warning) warnings.push(bind.warning);
    const tls = o.tls === undefined ? undefined : tlsAppOptions({ ...o.tls, ...(env['TENSORWIRE_TLS_KEY_PASSPHRASE'] !== undefined ? { passphrase: env['TENSORWIRE_TLS_KEY_PASSPHRASE'] } : {}) });
    if (tls) warnings.push(...tls.warnings);
    const audit = extras.audit ?? new AuditLog(extras.registry ? { registry: extras.registry } : {});
    const access = new AccessControl({ ...(watcher ? { authConfig: () => watcher.current } : {}), ...(jwt ? { jwt } : {}), audit });
    return {
      access,
      limiter: new PrincipalLimiter(),
      audit,
      hosts: new HostAllowList(host, o.allowedHosts),
      allowedOrigins: o.allowedOrigins ?? [],
      cors: o.corsOrigins === undefined ? undefined : new CorsPolicy(o.corsOrigins),
      tls,
      warnings,
      close: () => watcher?.close(),
    };
  } catch (e) {
    watcher?.close();
    throw e;
  }
}
