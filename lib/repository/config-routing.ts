/**
 * A model's traffic policy (tensorwire's extension, docs/routing.md): the `routing` object of
 * config.json, the same JSON in config.pbtxt's `parameters { key: "routing" value: {
 * string_value: "..." } }`, and the body of POST /v2/models/{m}/routing. One reader for all
 * three, bounded by CONFIG_LIMITS: every number a policy sets is checked here, so the
 * request-time code (lib/routing) never sees an out-of-range weight or window.
 */
import { truncateForMessage } from '../util/message-text';
import { CONFIG_LIMITS as L } from './config-limits';
import { checkNesting, FieldReader, join, parseJsonText } from './field-reader';

/** Automatic rollback of a version whose errors or latency exceed the stable version's. */
export interface RoutingGuard {
  version: string;
  /** Error rate (0..1) the guarded version may exceed the stable one's by. Default 0.05. */
  max_error_rate_increase: number;
  /** p99 latency of the guarded version over the stable one's. Default 2. */
  max_p99_ratio: number;
  /** Seconds of history compared. Default 60. */
  window_s: number;
  /** Requests of the guarded version in the window before it is judged. Default 100. */
  min_requests: number;
}

/** A validated traffic policy; every field is optional (absent: that feature is off). */
export interface RoutingPolicy {
  /** Version → share of unversioned requests (integers 0..100; the split is share / sum). */
  weights?: Record<string, number>;
  /** Lower-case name of the header carrying the routing key (`header:<name>` in the config). */
  route_key?: string;
  /** Label → version (Triton's version labels: `stable`, `canary`). */
  labels?: Record<string, string>;
  /** Also send `percent` of answered requests to `version`, compare, never return. */
  shadow?: { version: string; percent: number };
  /** Version retried once when the chosen one fails or misses its deadline. */
  fallback?: string;
  guard?: RoutingGuard;
  /** Epsilon-greedy choice between `versions` by the rewards posted to /feedback (lib/routing/bandit.ts). */
  bandit?: { versions: string[]; epsilon: number };
}

export const GUARD_DEFAULTS = Object.freeze({ max_error_rate_increase: 0.05, max_p99_ratio: 2, window_s: 60, min_requests: 100 });

const FIELDS = ['weights', 'route_key', 'labels', 'shadow', 'fallback', 'guard', 'bandit'] as const;
const HEADER_NAME = /^[a-z0-9][a-z0-9-]*$/;
const LABEL = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

/** A version number as the policy writes it: a decimal string (a JSON number is accepted). */
function readVersion(r: FieldReader, v: unknown, path: string): string {
  const n = r.int(typeof v === 'number' ? String(v) : v, path, 1, L.versionNumber);
  return String(n);
}

/** A number in [min, max] (fractions allowed). */
function readNumber(r: FieldReader, v: unknown, path: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) r.fail(path, `a number from ${min} to ${max}`, v);
  return v;
}

/** Reads a `routing` object (already parsed JSON) at `path` of the config `r` reads. */
export function readRouting(r: FieldReader, v: unknown, path: string): RoutingPolicy {
  const o = r.object(v, path, FIELDS);
  const p: RoutingPolicy = {};
  if (o.weights !== undefined) {
    const at = join(path, 'weights');
    const w = r.object(o.weights, at);
    const keys = Object.keys(w);
    if (keys.length > L.routingVersions) r.error(`${at}: at most ${L.routingVersions} versions, got ${keys.length}`);
    p.weights = {};
    let sum = 0;
    for (const key of keys) {
      const version = readVersion(r, key, `${at} key "${truncateForMessage(key)}"`);
      const weight = r.int(w[key], join(at, version), 0, L.routingWeight);
      p.weights[version] = weight;
      sum += weight;
    }
    if (keys.length > 0 && sum === 0) r.error(`${at}: every weight is 0; give at least one version a weight above 0`);
  }
  if (o.route_key !== undefined) {
    const at = join(path, 'route_key');
    const s = r.string(o.route_key, at, L.routingNameChars + 7);
    const name = s.startsWith('header:') ? s.slice(7).toLowerCase() : '';
    if (!HEADER_NAME.test(name) || name.length > L.routingNameChars) r.fail(at, `"header:<name>" with a header name of letters, digits and - (at most ${L.routingNameChars} characters)`, o.route_key);
    p.route_key = name;
  }
  if (o.labels !== undefined) {
    const at = join(path, 'labels');
    const m = r.object(o.labels, at);
    const keys = Object.keys(m);
    if (keys.length > L.routingVersions) r.error(`${at}: at most ${L.routingVersions} labels, got ${keys.length}`);
    p.labels = {};
    for (const label of keys) {
      if (!LABEL.test(label) || label.length > L.routingNameChars) r.fail(`${at} key`, `a label of letters, digits, _ . - (at most ${L.routingNameChars} characters)`, label);
      p.labels[label] = readVersion(r, m[label], join(at, label));
    }
  }
  if (o.shadow !== undefined) {
    const at = join(path, 'shadow');
    const s = r.object(o.shadow, at, ['version', 'percent']);
    p.shadow = { version: readVersion(r, s.version, join(at, 'version')), percent: readNumber(r, s.percent ?? 100, join(at, 'percent'), 0, 100) };
  }
  if (o.fallback !== undefined) p.fallback = readVersion(r, o.fallback, join(path, 'fallback'));
  if (o.guard !== undefined) {
    const at = join(path, 'guard');
    const g = r.object(o.guard, at, ['version', 'max_error_rate_increase', 'max_p99_ratio', 'window_s', 'min_requests']);
    const version = readVersion(r, g.version, join(at, 'version'));
    if (p.weights?.[version] === undefined) r.error(`${join(at, 'version')}: version ${version} has no weight; a guard watches a version of the split (add it to weights)`);
    if (Object.keys(p.weights!).length < 2) r.error(`${at}: a guard compares the guarded version with another version of the split; weights names only one`);
    p.guard = {
      version,
      max_error_rate_increase: g.max_error_rate_increase === undefined ? GUARD_DEFAULTS.max_error_rate_increase : readNumber(r, g.max_error_rate_increase, join(at, 'max_error_rate_increase'), 0, 1),
      max_p99_ratio: g.max_p99_ratio === undefined ? GUARD_DEFAULTS.max_p99_ratio : readNumber(r, g.max_p99_ratio, join(at, 'max_p99_ratio'), 1, L.routingMaxP99Ratio),
      window_s: g.window_s === undefined ? GUARD_DEFAULTS.window_s : r.int(g.window_s, join(at, 'window_s'), 1, L.routingWindowS),
      min_requests: g.min_requests === undefined ? GUARD_DEFAULTS.min_requests : r.int(g.min_requests, join(at, 'min_requests'), 1, L.routingMinRequests),
    };
  }
  if (o.bandit !== undefined) {
    const at = join(path, 'bandit');
    const b = r.object(o.bandit, at, ['versions', 'epsilon']);
    if (!Array.isArray(b.versions) || b.versions.length < 2 || b.versions.length > L.routingVersions) r.fail(join(at, 'versions'), `a list of 2 to ${L.routingVersions} versions`, b.versions);
    const versions = (b.versions as unknown[]).map((v, i) => readVersion(r, v, join(at, `versions[${i}]`)));
    if (new Set(versions).size !== versions.length) r.error(`${join(at, 'versions')}: a version is listed twice`);
    if (p.weights !== undefined) r.error(`${at}: a bandit chooses the version itself; leave weights out (and the guard, which watches a split)`);
    p.bandit = { versions, epsilon: b.epsilon === undefined ? 0.1 : readNumber(r, b.epsilon, join(at, 'epsilon'), 0, 1) };
  }
  return p;
}

/** Validates a policy from outside a config file (a POST body); `where` starts every message. */
export function validateRoutingPolicy(obj: unknown, where: string): RoutingPolicy {
  checkNesting(obj, where);
  return readRouting(new FieldReader(where), obj, '');
}

/** Reads the JSON text of config.pbtxt's `parameters.routing` string value. */
export function readRoutingText(r: FieldReader, text: unknown, path: string): RoutingPolicy {
  return readRouting(r, parseJsonText(r, text, path), path);
}

/** Every version a policy names (they are kept loaded whatever the version policy says), ascending. */
export function routingVersions(p: RoutingPolicy | undefined): number[] {
  if (p === undefined) return [];
  const all = new Set<string>([...Object.keys(p.weights ?? {}), ...Object.values(p.labels ?? {})]);
  if (p.shadow) all.add(p.shadow.version);
  if (p.fallback) all.add(p.fallback);
  if (p.guard) all.add(p.guard.version);
  for (const v of p.bandit?.versions ?? []) all.add(v);
  return [...all].map(Number).sort((a, b) => a - b);
}
