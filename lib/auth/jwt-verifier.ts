/**
 * JWT bearer tokens, verified with jose: HS256 with a shared secret
 * (`TENSORWIRE_JWT_SECRET`) and/or RS256/ES256 with public keys (`--jwt-public-keys`, PEM
 * or JWKS). `alg: none` and every other algorithm are refused; `exp` and `sub` are
 * required; `iss`/`aud` are checked when configured; 30 s of clock skew is tolerated.
 *
 * Signature checks cost tens of microseconds (RS256) and are asynchronous, so a verified
 * token is remembered by its exact text until its `exp` (a cache bounded in entries and characters): a client that
 * reuses its token pays a Map lookup per request. The cache is dropped whenever the auth
 * configuration changes.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import { TensorwireError } from '../errors';
import { BoundedCache } from './bounded-cache';
import { clip, parseScopes, PLAIN_SCOPES, type ScopeSet } from './scopes';

/** Tokens longer than this are refused before any parsing. */
export const MAX_TOKEN_LENGTH = 8192;
/** Shortest accepted HS256 secret, bytes (RFC 7518 §3.2: at least the hash size). */
export const MIN_HS256_SECRET_BYTES = 32;
/** Most public keys in a `--jwt-public-keys` file. */
export const MAX_PUBLIC_KEYS = 64;
/** Default clock skew tolerated on `exp`/`nbf`, seconds. */
export const DEFAULT_CLOCK_TOLERANCE_S = 30;
/** Default most verified tokens remembered. */
export const DEFAULT_TOKEN_CACHE_SIZE = 10_000;
/** Most characters of verified tokens remembered (tokens are up to MAX_TOKEN_LENGTH each). */
const TOKEN_CACHE_CHARS = 8 * 1024 * 1024;

/** A public key and the one algorithm it verifies. */
export interface JwtPublicKey {
  readonly alg: 'RS256' | 'ES256';
  readonly kid: string | undefined;
  readonly key: KeyObject;
}

export interface JwtVerifierOptions {
  /** HS256 secret (the UTF-8 bytes of TENSORWIRE_JWT_SECRET). */
  secret?: Uint8Array;
  publicKeys?: readonly JwtPublicKey[];
  issuer?: string;
  audience?: string;
  clockToleranceS?: number;
  cacheSize?: number;
  /** Milliseconds since the epoch (tests move time). */
  now?: () => number;
}

/** What a verified token says. */
export interface VerifiedToken {
  readonly subject: string;
  readonly scopes: ScopeSet;
  /** `exp`, ms since the epoch: the cache forgets the token then. */
  readonly expiresAtMs: number;
}

const KNOWN_SCOPE = (s: string): boolean => (PLAIN_SCOPES as readonly string[]).includes(s) || s.startsWith('infer:');

function unauthenticated(reason: string): TensorwireError {
  return new TensorwireError('UNAUTHENTICATED', `invalid bearer token: ${reason}`);
}

/** Turns jose's failures into one line a client can act on (never the token itself). */
function reasonOf(e: unknown): string {
  if (e instanceof TensorwireError) return e.message;
  if (e instanceof joseErrors.JWTExpired) return 'it has expired';
  if (e instanceof joseErrors.JWTClaimValidationFailed) return `claim '${e.claim}' ${e.reason === 'check_failed' ? 'does not match' : e.reason}`;
  if (e instanceof joseErrors.JOSEAlgNotAllowed) return 'its algorithm is not accepted';
  if (e instanceof joseErrors.JWSSignatureVerificationFailed) return 'the signature does not verify';
  if (e instanceof joseErrors.JWTInvalid || e instanceof joseErrors.JWSInvalid) return 'it is malformed';
  return 'it could not be verified';
}

/** Verifies bearer JWTs and remembers the good ones until they expire. */
export class JwtVerifier {
  private readonly cache: BoundedCache<VerifiedToken>;
  private readonly now: () => number;
  private readonly algorithms: string[];

  constructor(private readonly options: JwtVerifierOptions) {
    if (options.secret !== undefined && options.secret.byteLength < MIN_HS256_SECRET_BYTES) {
      throw new TensorwireError('INVALID_INPUT', `TENSORWIRE_JWT_SECRET must be at least ${MIN_HS256_SECRET_BYTES} bytes, got ${options.secret.byteLength}`);
    }
    this.algorithms = [...(options.secret ? ['HS256'] : []), ...new Set((options.publicKeys ?? []).map((k) => k.alg))];
    if (this.algorithms.length === 0) throw new TensorwireError('INVALID_INPUT', 'JWT verification needs TENSORWIRE_JWT_SECRET or --jwt-public-keys');
    this.now = options.now ?? Date.now;
    this.cache = new BoundedCache(Math.max(1, Math.min(1_000_000, options.cacheSize ?? DEFAULT_TOKEN_CACHE_SIZE)), TOKEN_CACHE_CHARS, this.now);
  }

  /** A token verified before and not expired yet, else undefined. Synchronous: the hot path. */
  cached(token: string): VerifiedToken | undefined {
    return this.cache.get(token);
  }

  /** Verifies `token`; rejects with UNAUTHENTICATED saying why. */
  async verify(token: string): Promise<VerifiedToken> {
    const hit = this.cached(token);
    if (hit !== undefined) return hit;
    if (token.length > MAX_TOKEN_LENGTH) throw unauthenticated(`longer than ${MAX_TOKEN_LENGTH} characters`);
    let payload: JWTPayload;
    try {
      payload = await this.check(token);
    } catch (e) {
      throw unauthenticated(reasonOf(e));
    }
    const subject = payload.sub;
    if (typeof subject !== 'string' || subject.length === 0 || subject.length > 256) throw unauthenticated("claim 'sub' must be a string of 1-256 characters");
    const scopeClaim = payload.scope ?? '';
    if (typeof scopeClaim !== 'string') throw unauthenticated("claim 'scope' must be a space-separated string");
    // Identity providers add scopes of their own (openid, profile): those grant nothing here.
    const scopes = parseScopes(scopeClaim.split(' ').filter(KNOWN_SCOPE).slice(0, 64), `token of '${clip(subject)}'`);
    const verified: VerifiedToken = Object.freeze({ subject, scopes, expiresAtMs: payload.exp! * 1000 });
    this.cache.set(token, verified, verified.expiresAtMs);
    return verified;
  }

  /** Forgets every verified token (the auth configuration changed). */
  clear(): void {
    this.cache.clear();
  }

  /** Tokens remembered now. */
  get cachedCount(): number {
    return this.cache.size;
  }

  private async check(token: string): Promise<JWTPayload> {
    const header = decodeProtectedHeader(token);
    const alg = header.alg;
    if (typeof alg !== 'string' || !this.algorithms.includes(alg)) throw unauthenticated(`algorithm '${clip(String(alg))}' is not accepted (accepted: ${this.algorithms.join(', ')})`);
    const verifyOptions = {
      algorithms: [alg],
      clockTolerance: this.options.clockToleranceS ?? DEFAULT_CLOCK_TOLERANCE_S,
      requiredClaims: ['exp', 'sub'],
      currentDate: new Date(this.now()),
      ...(this.options.issuer !== undefined ? { issuer: this.options.issuer } : {}),
      ...(this.options.audience !== undefined ? { audience: this.options.audience } : {}),
    };
    if (alg === 'HS256') return (await jwtVerify(token, this.options.secret!, verifyOptions)).payload;
    const all = (this.options.publicKeys ?? []).filter((k) => k.alg === alg);
    const byKid = header.kid === undefined ? [] : all.filter((k) => k.kid === header.kid);
    const candidates = byKid.length > 0 ? byKid : all;
    let last: unknown = unauthenticated('no key matches it');
    for (const candidate of candidates) {
      try {
        return (await jwtVerify(token, candidate.key, verifyOptions)).payload;
      } catch (e) {
        // Only a signature mismatch means "try the next key"; an expired token stays expired.
        if (!(e instanceof joseErrors.JWSSignatureVerificationFailed)) throw e;
        last = e;
      }
    }
    throw last;
  }
}

/** The algorithm a public key verifies, or an error naming what is wrong with it. */
function algorithmOf(key: KeyObject, where: string): 'RS256' | 'ES256' {
  if (key.asymmetricKeyType === 'rsa') {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < 2048) throw new TensorwireError('INVALID_INPUT', `${where}: RSA keys must be at least 2048 bits, got ${bits}`);
    return 'RS256';
  }
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
  throw new TensorwireError('INVALID_INPUT', `${where}: only RSA (RS256) and P-256 EC (ES256) public keys are accepted, got ${key.asymmetricKeyType ?? 'unknown'}${key.asymmetricKeyDetails?.namedCurve ? ` ${key.asymmetricKeyDetails.namedCurve}` : ''}`);
}

/**
 * Parses a `--jwt-public-keys` file: PEM public keys (one or more `-----BEGIN PUBLIC KEY-----`
 * blocks) or a JWKS (`{"keys": [...]}`). Private keys are refused: a verifier needs none.
 */
export function parseJwtPublicKeys(text: string): JwtPublicKey[] {
  const out: JwtPublicKey[] = [];
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) {
    let jwks: unknown;
    try {
      jwks = JSON.parse(trimmed);
    } catch {
      throw new TensorwireError('INVALID_INPUT', 'JWT public keys: not valid JSON (expected a JWKS {"keys": [...]} or PEM)');
    }
    const keys = (jwks as { keys?: unknown }).keys;
    if (!Array.isArray(keys) || keys.length === 0) throw new TensorwireError('INVALID_INPUT', 'JWT public keys: a JWKS needs a non-empty "keys" array');
    if (keys.length > MAX_PUBLIC_KEYS) throw new TensorwireError('INVALID_INPUT', `JWT public keys: at most ${MAX_PUBLIC_KEYS} keys, got ${keys.length}`);
    keys.forEach((jwk: unknown, i) => {
      const where = `JWT public keys: keys[${i}]`;
      if (jwk === null || typeof jwk !== 'object') throw new TensorwireError('INVALID_INPUT', `${where} must be an object`);
      const j = jwk as Record<string, unknown>;
      if ('d' in j) throw new TensorwireError('INVALID_INPUT', `${where} is a private key; give only public keys`);
      let key: KeyObject;
      try {
        key = createPublicKey({ key: j as never, format: 'jwk' });
      } catch (e) {
        throw new TensorwireError('INVALID_INPUT', `${where} is not a usable public key (${clip((e as Error).message, 100)})`);
      }
      const alg = algorithmOf(key, where);
      if (j.alg !== undefined && j.alg !== alg) throw new TensorwireError('INVALID_INPUT', `${where}: alg '${clip(String(j.alg))}' does not fit a ${key.asymmetricKeyType} key (expected ${alg})`);
      out.push({ alg, kid: typeof j.kid === 'string' ? j.kid : undefined, key });
    });
    return out;
  }
  const blocks = trimmed.match(/-----BEGIN ([A-Z ]+)-----[\s\S]*?-----END \1-----/g) ?? [];
  if (blocks.length === 0) throw new TensorwireError('INVALID_INPUT', 'JWT public keys: no PEM block and not a JWKS');
  if (blocks.length > MAX_PUBLIC_KEYS) throw new TensorwireError('INVALID_INPUT', `JWT public keys: at most ${MAX_PUBLIC_KEYS} keys, got ${blocks.length}`);
  blocks.forEach((pem, i) => {
    const where = `JWT public keys: PEM block ${i + 1}`;
    if (/PRIVATE KEY/.test(pem.slice(0, 40))) throw new TensorwireError('INVALID_INPUT', `${where} is a private key; give only public keys`);
    let key: KeyObject;
    try {
      key = createPublicKey(pem);
    } catch (e) {
      throw new TensorwireError('INVALID_INPUT', `${where} is not a usable public key (${clip((e as Error).message, 100)})`);
    }
    out.push({ alg: algorithmOf(key, where), kid: undefined, key });
  });
  return out;
}
