/**
 * Access control, transport-neutral: `authenticate` turns what a request presented (the
 * Authorization header or gRPC metadata, the client address, a verified client-certificate
 * subject) into a Principal; `authorize` says whether that principal may do what the
 * request needs (route-scopes.ts). The front door calls both for every call, whatever
 * the wire.
 *
 * Two modes:
 * - Credentials configured (an auth file and/or JWT verification): every request but the
 *   health probes needs a credential. No credential: 401 with `WWW-Authenticate: Bearer`.
 *   A credential that does not verify: 401. A credential without the scope: 403 naming
 *   the scope. Loopback clients get no exemption (behind a local proxy everyone is loopback).
 * - No credentials configured: loopback clients may do everything; other clients (only
 *   possible with --allow-unauthenticated, bind-policy.ts) everything but management.
 *
 * Neither answer depends on whether the model exists: authorization runs before any lookup
 * and names only what the client sent.
 *
 * Cost: the hot path (an API key or JWT seen before) is synchronous: one Map lookup by the
 * header's text and a few field reads (bench/auth.ts). A key seen for the first time costs
 * one SHA-256; a new JWT an asynchronous signature check (authenticate then returns a
 * Promise).
 */
import { ANONYMOUS } from '../frontdoor/request-context';
import type { Principal } from '../frontdoor/types';
import { TensorwireError } from '../errors';
import { API_KEY_PREFIX, hashApiKey } from './api-key';
import { EMPTY_AUTH_CONFIG, normalizeSubject, type AuthConfig, type Limits, type PrincipalEntry } from './auth-file';
import type { AuditLog } from './audit';
import { isLoopbackAddress } from './bind-policy';
import { BoundedCache } from './bounded-cache';
import { PrincipalLimiter } from './principal-limiter';
import type { JwtVerifier, VerifiedToken } from './jwt-verifier';
import { clip, grants, parseScopes, PLAIN_SCOPES, type Need, type ScopeSet } from './scopes';

/** The challenge every 401 carries (RFC 6750). Transports add it to UNAUTHENTICATED answers. */
export const WWW_AUTHENTICATE = 'Bearer realm="tensorwire"';
/** Longest Authorization header looked at; longer ones fail without parsing. */
export const MAX_AUTHORIZATION_LENGTH = 8200;
/** Most Authorization headers remembered (each saves a SHA-256 or a token lookup per request). */
const HEADER_CACHE_SIZE = 10_000;
/** Most characters of remembered headers (JWTs are long). */
const HEADER_CACHE_CHARS = 8 * 1024 * 1024;

/** A principal this module made: its scopes parsed and its limits resolved. */
export interface AuthPrincipal extends Principal {
  readonly scopeSet: ScopeSet;
  readonly limits: Limits;
  /** Key of its limiter state: via and name, so a JWT `sub` cannot share an API key's bucket. */
  readonly limiterKey: string;
}

/** A credential was presented and did not verify (or too many new ones came from its address). */
export interface AuthFailure {
  readonly failed: true;
  /** UNAUTHENTICATED (answer it with WWW_AUTHENTICATE), or TOO_MANY_REQUESTS with Retry-After. */
  readonly error: TensorwireError;
}

/** What authenticate may learn besides the header. */
export interface AuthenticationInfo {
  /** Client IP as the transport saw it. */
  readonly address: string;
  /** Subject of a client certificate the TLS layer verified, when there is one. */
  readonly tlsSubject?: string;
}

export interface AccessControlOptions {
  /** The auth file in force (an AuthFileWatcher's `current`), when --auth was given. */
  authConfig?: () => AuthConfig;
  jwt?: JwtVerifier;
  audit?: AuditLog;
  /**
   * Credentials not seen before that one client address may have checked per second
   * (default 100/s, burst 200). A signature check costs tens of microseconds of the one JS
   * thread, so a client sending fresh forged tokens must not get unlimited ones; clients
   * reusing their credential never reach this limit. Behind a proxy, raise it.
   */
  newCredentialLimits?: Limits;
  /** Clock of the new-credential limiter (tests), ms. */
  now?: () => number;
}

/** Default of AccessControlOptions.newCredentialLimits. */
export const DEFAULT_NEW_CREDENTIAL_LIMITS: Limits = Object.freeze({ requestsPerSecond: 100, burst: 200 });

const ALL_SCOPES = parseScopes(PLAIN_SCOPES, 'built-in');
const REMOTE_SCOPES = parseScopes(['infer', 'monitor', 'feed:inputs'], 'built-in');

/** Loopback client of a server without credentials: may do everything. */
export const LOOPBACK_PRINCIPAL: AuthPrincipal = Object.freeze({ name: 'loopback', scopes: ALL_SCOPES.names, via: 'loopback' as const, scopeSet: ALL_SCOPES, limits: Object.freeze({}), limiterKey: 'loopback' });
/** Non-loopback client of a server without credentials (--allow-unauthenticated): all but management. */
export const REMOTE_ANONYMOUS: AuthPrincipal = Object.freeze({ name: 'anonymous', scopes: REMOTE_SCOPES.names, via: 'none' as const, scopeSet: REMOTE_SCOPES, limits: Object.freeze({}), limiterKey: 'anonymous' });

function failure(message: string): AuthFailure {
  return { failed: true, error: new TensorwireError('UNAUTHENTICATED', message) };
}

/** True when `outcome` is a failure rather than a principal. */
export function isAuthFailure(outcome: Principal | AuthFailure): outcome is AuthFailure {
  return (outcome as AuthFailure).failed === true;
}

/** The scope name a need is about, for messages. */
function scopeName(need: Need): string {
  return need.scope === 'infer' ? `infer (or infer:${clip(need.model)})` : need.scope;
}

/** Authentication and authorization of every request. */
export class AccessControl {
  /** True when credentials are configured: requests without one are refused. */
  readonly enabled: boolean;
  private readonly authConfig: () => AuthConfig;
  private readonly jwt: JwtVerifier | undefined;
  private readonly audit: AuditLog | undefined;
  /**
   * Principals by the exact Authorization header that identified them: the hot path is one
   * lookup of the header as received (hashing the whole header string once is cheaper than
   * cutting the token out of it first). JWT entries expire with the token.
   */
  private readonly byHeader = new BoundedCache<AuthPrincipal>(HEADER_CACHE_SIZE, HEADER_CACHE_CHARS);
  private readonly parsedScopes = new WeakMap<Principal, ScopeSet>();
  private readonly newCredentials: PrincipalLimiter;
  private readonly newCredentialLimits: Limits;
  private configSeen: AuthConfig;

  constructor(options: AccessControlOptions = {}) {
    this.authConfig = options.authConfig ?? (() => EMPTY_AUTH_CONFIG);
    this.jwt = options.jwt;
    this.audit = options.audit;
    this.enabled = options.authConfig !== undefined || options.jwt !== undefined;
    this.configSeen = this.authConfig();
    this.newCredentials = new PrincipalLimiter({ ...(options.now ? { now: options.now } : {}), maxPrincipals: 100_000 });
    this.newCredentialLimits = options.newCredentialLimits ?? DEFAULT_NEW_CREDENTIAL_LIMITS;
  }

  /**
   * Who is calling. Synchronous for no credential, an API key, a client certificate or a
   * JWT verified before; a Promise for a JWT seen for the first time. A presented
   * credential that does not verify is an AuthFailure (audited); no credential at all is
   * ANONYMOUS, refused by authorize unless the need is open (health).
   */
  authenticate(authorization: string | undefined, info: AuthenticationInfo): AuthPrincipal | Principal | AuthFailure | Promise<AuthPrincipal | AuthFailure> {
    if (!this.enabled) return isLoopbackAddress(info.address) ? LOOPBACK_PRINCIPAL : REMOTE_ANONYMOUS;
    const config = this.authConfig();
    if (config !== this.configSeen) this.configChanged(config);
    if (authorization === undefined || authorization === '') {
      if (info.tlsSubject !== undefined) return this.certificate(config, info);
      return ANONYMOUS;
    }
    const known = this.byHeader.get(authorization);
    if (known !== undefined) return known;
    const throttled = this.newCredentials.admit(info.address, this.newCredentialLimits);
    if (throttled !== undefined) {
      this.audit?.countRequest('rate_limited');
      this.audit?.authenticationFailed(info.address, 'throttled', 'too many new credentials from this address');
      return { failed: true, error: new TensorwireError('TOO_MANY_REQUESTS', `too many new credentials from ${clip(info.address)} (${this.newCredentialLimits.requestsPerSecond}/s); retry in ${throttled.retryAfterSeconds} s`, { retryAfterSeconds: throttled.retryAfterSeconds! }) };
    }
    const token = bearerToken(authorization);
    if (token === undefined) return this.fail(info.address, 'malformed', "the Authorization header must be 'Bearer <API key or JWT>'");
    if (token.startsWith(API_KEY_PREFIX)) {
      // Looked up by hash: the file holds no keys, and no comparison of key text takes place.
      const entry = config.keysByHash.get(hashApiKey(token));
      if (entry === undefined) return this.fail(info.address, 'invalid_key', 'unknown API key');
      const principal = principalOf(entry, 'api-key');
      this.byHeader.set(authorization, principal);
      return principal;
    }
    const jwt = this.jwt;
    if (jwt === undefined) return this.fail(info.address, 'invalid_key', `not an API key (keys start with '${API_KEY_PREFIX}') and JWT verification is not configured`);
    return jwt.verify(token).then(
      (verified) => {
        const principal = tokenPrincipal(verified, this.authConfig());
        // Unless the file changed while verifying (then the next request builds it afresh).
        if (this.authConfig() === this.configSeen) this.byHeader.set(authorization, principal, verified.expiresAtMs);
        return principal;
      },
      (e: unknown) => this.fail(info.address, 'invalid_token', (e as Error).message),
    );
  }

  /**
   * May `principal` do `need`? Undefined when yes; else the error to answer with:
   * UNAUTHENTICATED (401, add WWW_AUTHENTICATE) when no credential was given, FORBIDDEN
   * (403) naming the missing scope otherwise. Counts the outcome.
   */
  authorize(principal: Principal, need: Need): TensorwireError | undefined {
    if (need.scope === 'open') return undefined;
    if (!this.enabled) {
      if (need.scope === 'manage' && principal.via !== 'loopback') {
        this.audit?.countRequest('forbidden');
        return new TensorwireError('FORBIDDEN', 'management routes answer only loopback clients on a server without --auth');
      }
      this.audit?.countRequest('allowed');
      return undefined;
    }
    if (principal.via === 'none') {
      this.audit?.countRequest('unauthenticated');
      return new TensorwireError('UNAUTHENTICATED', 'this server requires credentials: send Authorization: Bearer <API key or JWT>');
    }
    if (grants(this.scopesOf(principal), need)) {
      this.audit?.countRequest('allowed');
      return undefined;
    }
    this.audit?.countRequest('forbidden');
    const target = need.scope === 'infer' ? ` for model '${clip(need.model)}'` : '';
    return new TensorwireError('FORBIDDEN', `'${clip(principal.name)}' lacks the scope ${scopeName(need)}${target}`);
  }

  /** Drops remembered keys and tokens (called on an auth-file reload; also on its own when it sees one). */
  configChanged(config: AuthConfig = this.authConfig()): void {
    this.configSeen = config;
    this.byHeader.clear();
    this.jwt?.clear();
  }

  private certificate(config: AuthConfig, info: AuthenticationInfo): AuthPrincipal | AuthFailure {
    const entry = config.mtlsBySubject.get(normalizeSubject(info.tlsSubject!));
    if (entry === undefined) return this.fail(info.address, 'unknown_certificate', `client certificate subject '${clip(info.tlsSubject!)}' is not in the auth file`);
    return principalOf(entry, 'mtls');
  }

  private scopesOf(principal: Principal): ScopeSet {
    const own = (principal as Partial<AuthPrincipal>).scopeSet;
    if (own !== undefined) return own;
    let parsed = this.parsedScopes.get(principal);
    if (parsed === undefined) {
      parsed = parseScopes(principal.scopes.filter((s) => (PLAIN_SCOPES as readonly string[]).includes(s) || s.startsWith('infer:')), `principal '${clip(principal.name)}'`);
      this.parsedScopes.set(principal, parsed);
    }
    return parsed;
  }

  private fail(address: string, result: string, reason: string): AuthFailure {
    this.audit?.countRequest('invalid_credentials');
    this.audit?.authenticationFailed(address, result, reason);
    return failure(reason);
  }
}

function tokenPrincipal(verified: VerifiedToken, config: AuthConfig): AuthPrincipal {
  return Object.freeze({ name: verified.subject, scopes: verified.scopes.names, via: 'jwt' as const, scopeSet: verified.scopes, limits: config.defaultLimits, limiterKey: `jwt:${verified.subject}` });
}

function principalOf(entry: PrincipalEntry, via: 'api-key' | 'mtls'): AuthPrincipal {
  return Object.freeze({ name: entry.name, scopes: entry.scopes.names, via, scopeSet: entry.scopes, limits: entry.limits, limiterKey: `${via}:${entry.name}` });
}

/** The token of `Bearer <token>` (scheme case-insensitive, RFC 7235), or undefined. */
export function bearerToken(authorization: string): string | undefined {
  if (authorization.length > MAX_AUTHORIZATION_LENGTH) return undefined;
  let rest: string;
  if (authorization.startsWith('Bearer ')) rest = authorization.slice(7);
  else if (authorization.length > 7 && authorization.slice(0, 7).toLowerCase() === 'bearer ') rest = authorization.slice(7);
  else return undefined;
  // The common case has no extra blanks; trim only when there are some.
  if (rest.charCodeAt(0) === 32 || rest.charCodeAt(rest.length - 1) === 32) rest = rest.trim();
  return rest === '' || rest.includes(' ') ? undefined : rest;
}
