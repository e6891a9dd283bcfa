/**
 * The auth file (`tensorwire serve --auth FILE`): API keys (stored only as SHA-256 hashes),
 * client-certificate subjects, and default per-principal limits.
 *
 *   {"keys": [{"name": "ci", "sha256": "<64 hex>", "scopes": ["infer", "monitor"],
 *              "limits": {"requests_per_second": 100, "burst": 200, "concurrent": 16}}],
 *    "mtls": [{"subject": "CN=batch-job", "name": "batch", "scopes": ["infer:resnet*"]}],
 *    "defaults": {"limits": {"requests_per_second": 1000, "burst": 2000, "concurrent": 64}}}
 *
 * Validation is strict: an unknown field, a bad hash, a duplicate name or an out-of-range
 * number is an error naming the entry, never a silently ignored line (a typo must not turn
 * into an open door). Everything a file can make us allocate is bounded.
 */
import { readFileSync, statSync } from 'node:fs';
import { TensorwireError } from '../errors';
import { clip, describe, parseScopes, type ScopeSet } from './scopes';

/** Largest auth file read, bytes. */
export const MAX_AUTH_FILE_BYTES = 4 * 1024 * 1024;
/** Most API keys (and, separately, mTLS subjects) in one file. */
export const MAX_KEYS = 10_000;
/** Longest principal name. */
export const MAX_NAME_LENGTH = 64;
/** Longest certificate subject. */
export const MAX_SUBJECT_LENGTH = 512;
/** Bounds of each limit (inclusive). */
export const LIMIT_BOUNDS = {
  requests_per_second: [0.001, 1_000_000],
  burst: [1, 1_000_000],
  concurrent: [1, 100_000],
} as const;

const NAME = /^[A-Za-z0-9_.@:-]+$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;

/** Per-principal limits; an absent field is unlimited. */
export interface Limits {
  readonly requestsPerSecond?: number;
  readonly burst?: number;
  readonly concurrent?: number;
}

/** One principal the file defines (a key or a certificate subject). */
export interface PrincipalEntry {
  readonly name: string;
  readonly scopes: ScopeSet;
  /** The entry's limits over the file's defaults. */
  readonly limits: Limits;
}

/** A validated auth file. */
export interface AuthConfig {
  /** API keys by lower-case hex SHA-256 of the key. */
  readonly keysByHash: ReadonlyMap<string, PrincipalEntry>;
  /** Client-certificate principals by normalized subject (normalizeSubject). */
  readonly mtlsBySubject: ReadonlyMap<string, PrincipalEntry>;
  /** Limits for principals the file does not list (JWT subjects). */
  readonly defaultLimits: Limits;
}

/** An empty configuration (a file that does not exist yet, before `auth add-key`). */
export const EMPTY_AUTH_CONFIG: AuthConfig = Object.freeze({ keysByHash: new Map(), mtlsBySubject: new Map(), defaultLimits: Object.freeze({}) });

function invalid(message: string): TensorwireError {
  return new TensorwireError('INVALID_INPUT', `auth file: ${message}`);
}

function object(value: unknown, where: string, allowed: readonly string[]): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw invalid(`${where} must be an object, got ${describe(value)}`);
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) throw invalid(`${where}: unknown field '${clip(key)}' (allowed: ${allowed.join(', ')})`);
  }
  return value as Record<string, unknown>;
}

function array(value: unknown, where: string, max: number): unknown[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw invalid(`${where} must be an array, got ${describe(value)}`);
  if (value.length > max) throw invalid(`${where}: at most ${max} entries, got ${value.length}`);
  return value;
}

function name(value: unknown, where: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_NAME_LENGTH || !NAME.test(value)) {
    throw invalid(`${where}: 'name' must be 1-${MAX_NAME_LENGTH} letters, digits or _ . @ : -, got ${describe(value)}`);
  }
  return value;
}

/** Parses `{"requests_per_second", "burst", "concurrent"}` (each optional, each bounded). */
function limits(value: unknown, where: string): Limits {
  if (value === undefined) return {};
  const o = object(value, `${where} limits`, Object.keys(LIMIT_BOUNDS));
  const out: { requestsPerSecond?: number; burst?: number; concurrent?: number } = {};
  for (const field of Object.keys(LIMIT_BOUNDS) as (keyof typeof LIMIT_BOUNDS)[]) {
    const v = o[field];
    if (v === undefined) continue;
    const [lo, hi] = LIMIT_BOUNDS[field];
    const integer = field !== 'requests_per_second';
    if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v > hi || (integer && !Number.isInteger(v))) {
      throw invalid(`${where} limits: '${field}' must be ${integer ? 'an integer' : 'a number'} from ${lo} to ${hi}, got ${describe(v)}`);
    }
    if (field === 'requests_per_second') out.requestsPerSecond = v;
    else if (field === 'burst') out.burst = v;
    else out.concurrent = v;
  }
  if (out.burst !== undefined && out.requestsPerSecond === undefined) throw invalid(`${where} limits: 'burst' needs 'requests_per_second'`);
  return out;
}

/** Entry limits over defaults, field by field. */
function merge(defaults: Limits, own: Limits): Limits {
  return Object.freeze({ ...defaults, ...own });
}

/**
 * Certificate subjects compare as their RDNs, trimmed and joined by ','; both OpenSSL's
 * one-line form (`CN=a, O=b`) and Node's X509Certificate.subject (`CN=a\nO=b`) normalize
 * to `CN=a,O=b`.
 */
export function normalizeSubject(subject: string): string {
  return subject
    .split(/[\n,]/)
    .map((part) => part.trim())
    .filter((part) => part !== '')
    .join(',');
}

/** Parses and validates auth-file text; throws INVALID_INPUT naming the bad entry. */
export function parseAuthFile(text: string): AuthConfig {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw invalid(`not valid JSON (${clip((e as Error).message, 120)})`);
  }
  const root = object(json, 'the top level', ['keys', 'mtls', 'defaults']);
  const defaults = root.defaults === undefined ? {} : object(root.defaults, "'defaults'", ['limits']);
  const defaultLimits = Object.freeze(limits(defaults.limits, "'defaults'"));
  const names = new Set<string>();
  const keysByHash = new Map<string, PrincipalEntry>();
  array(root.keys, "'keys'", MAX_KEYS).forEach((raw, i) => {
    const o = object(raw, `keys[${i}]`, ['name', 'sha256', 'scopes', 'limits']);
    const n = name(o.name, `keys[${i}]`);
    const where = `key '${n}'`;
    if (names.has(n)) throw invalid(`${where}: the name is used twice (names identify principals in limits and audit logs)`);
    names.add(n);
    if (typeof o.sha256 !== 'string' || !SHA256_HEX.test(o.sha256)) throw invalid(`${where}: 'sha256' must be 64 lower-case hex digits (the key's SHA-256; tensorwire auth add-key writes it), got ${describe(o.sha256)}`);
    if (keysByHash.has(o.sha256)) throw invalid(`${where}: the same key hash is listed twice`);
    const scopes = parseScopes(array(o.scopes, `${where} scopes`, 64), `auth file: ${where}`);
    keysByHash.set(o.sha256, Object.freeze({ name: n, scopes, limits: merge(defaultLimits, limits(o.limits, where)) }));
  });
  const mtlsBySubject = new Map<string, PrincipalEntry>();
  array(root.mtls, "'mtls'", MAX_KEYS).forEach((raw, i) => {
    const o = object(raw, `mtls[${i}]`, ['subject', 'name', 'scopes', 'limits']);
    const n = name(o.name, `mtls[${i}]`);
    const where = `mtls entry '${n}'`;
    if (names.has(n)) throw invalid(`${where}: the name is used twice (names identify principals in limits and audit logs)`);
    names.add(n);
    if (typeof o.subject !== 'string' || o.subject.length === 0 || o.subject.length > MAX_SUBJECT_LENGTH || !o.subject.includes('=')) {
      throw invalid(`${where}: 'subject' must be a certificate subject like "CN=client" of at most ${MAX_SUBJECT_LENGTH} characters, got ${describe(o.subject)}`);
    }
    const subject = normalizeSubject(o.subject);
    if (mtlsBySubject.has(subject)) throw invalid(`${where}: subject '${clip(subject)}' is listed twice`);
    const scopes = parseScopes(array(o.scopes, `${where} scopes`, 64), `auth file: ${where}`);
    mtlsBySubject.set(subject, Object.freeze({ name: n, scopes, limits: merge(defaultLimits, limits(o.limits, where)) }));
  });
  return Object.freeze({ keysByHash, mtlsBySubject, defaultLimits });
}

/** Reads and parses the auth file at `path` (size checked before reading). `shownAs` names it in messages. */
export function loadAuthFile(path: string, shownAs = 'the auth file'): AuthConfig {
  let size: number;
  try {
    size = statSync(path).size;
  } catch (e) {
    throw new TensorwireError('INVALID_INPUT', `cannot read ${shownAs}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  if (size > MAX_AUTH_FILE_BYTES) throw new TensorwireError('INVALID_INPUT', `${shownAs} is ${size} bytes, over the ${MAX_AUTH_FILE_BYTES}-byte limit`);
  return parseAuthFile(readFileSync(path, 'utf8'));
}
