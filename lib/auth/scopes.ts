/**
 * Scopes: what a principal may do. Parsed once (at auth-file load or JWT verification) into
 * a `ScopeSet`, so the per-request check is a couple of boolean reads and, for
 * `infer:<glob>`, one precompiled RegExp test.
 *
 *   infer              every model
 *   infer:<glob>       models whose name matches (`*` any run, `?` one character); also that
 *                      model's metadata, config and readiness
 *   monitor            metrics, statistics, the repository index, GET of batching settings,
 *                      readiness details, the live feed (without inputs)
 *   manage             load/unload, changing batching settings, trace/log settings
 *   feed:inputs        the live feed with each request's inputs
 */
import { TensorwireError } from '../errors';

/** The scope a request needs (route-scopes.ts maps routes and stream ops to these). */
export type Need =
  | { readonly scope: 'open' }
  /** Any valid credential, whatever its scopes (server metadata, the stream's upgrade). */
  | { readonly scope: 'authenticated' }
  | { readonly scope: 'infer'; readonly model: string }
  | { readonly scope: 'monitor' }
  | { readonly scope: 'manage' }
  | { readonly scope: 'feed:inputs' };

/** Scope names other than `infer:<glob>`. */
export const PLAIN_SCOPES = ['infer', 'monitor', 'manage', 'feed:inputs'] as const;

/** Most scopes one key or token may carry (a token's `scope` claim is client-made text). */
export const MAX_SCOPES = 64;
/** Longest scope string, `infer:` included. */
export const MAX_SCOPE_LENGTH = 200;

/** Model-name characters plus the glob's `*` and `?` (model names: lib/core/service.ts). */
const GLOB = /^[A-Za-z0-9_.*?-]+$/;

/** A parsed, immutable set of scopes. */
export interface ScopeSet {
  /** The scope strings as given (for Principal.scopes and logs). */
  readonly names: readonly string[];
  readonly inferAll: boolean;
  /** `infer:<name>` without wildcards. */
  readonly inferExact: ReadonlySet<string>;
  /** `infer:<prefix>*`, as the prefix (the common glob: a string compare, not a RegExp). */
  readonly inferPrefixes: readonly string[];
  /** Other `infer:<glob>` patterns, compiled. */
  readonly inferPatterns: readonly RegExp[];
  readonly monitor: boolean;
  readonly manage: boolean;
  readonly feedInputs: boolean;
}

/** Compiles `infer:` globs: `*` → any run, `?` → one character, everything else literal. */
function compileGlob(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\-]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`);
}

/**
 * Parses scope strings; throws INVALID_INPUT naming the first bad one (`where` says whose:
 * "key 'ci'", "token"). Unknown scopes are errors, never ignored: a typo in `manage` must not
 * silently grant less (or more) than meant.
 */
export function parseScopes(scopes: readonly unknown[], where: string): ScopeSet {
  if (scopes.length > MAX_SCOPES) throw new TensorwireError('INVALID_INPUT', `${where}: at most ${MAX_SCOPES} scopes, got ${scopes.length}`);
  let inferAll = false;
  let monitor = false;
  let manage = false;
  let feedInputs = false;
  const inferExact = new Set<string>();
  const inferPrefixes: string[] = [];
  const inferPatterns: RegExp[] = [];
  const names: string[] = [];
  for (const s of scopes) {
    if (typeof s !== 'string' || s.length === 0 || s.length > MAX_SCOPE_LENGTH) {
      throw new TensorwireError('INVALID_INPUT', `${where}: a scope must be a non-empty string of at most ${MAX_SCOPE_LENGTH} characters, got ${describe(s)}`);
    }
    names.push(s);
    if (s === 'infer') inferAll = true;
    else if (s === 'monitor') monitor = true;
    else if (s === 'manage') manage = true;
    else if (s === 'feed:inputs') feedInputs = true;
    else if (s.startsWith('infer:') && GLOB.test(s.slice(6))) {
      const glob = s.slice(6);
      const star = glob.indexOf('*');
      if (!/[*?]/.test(glob)) inferExact.add(glob);
      else if (star === glob.length - 1 && !glob.includes('?')) inferPrefixes.push(glob.slice(0, -1));
      else inferPatterns.push(compileGlob(glob));
    }
    else throw new TensorwireError('INVALID_INPUT', `${where}: unknown scope '${clip(s)}' (expected ${PLAIN_SCOPES.join(', ')} or infer:<model or glob of letters, digits, _ . - * ?>)`);
  }
  return Object.freeze({ names: Object.freeze(names), inferAll, inferExact, inferPrefixes: Object.freeze(inferPrefixes), inferPatterns: Object.freeze(inferPatterns), monitor, manage, feedInputs });
}

/** True when `scopes` grants `need`. */
export function grants(scopes: ScopeSet, need: Need): boolean {
  switch (need.scope) {
    case 'open':
    case 'authenticated':
      return true;
    case 'infer':
      if (scopes.inferAll || scopes.inferExact.has(need.model)) return true;
      for (const prefix of scopes.inferPrefixes) if (need.model.startsWith(prefix)) return true;
      for (const re of scopes.inferPatterns) if (re.test(need.model)) return true;
      return false;
    case 'monitor':
      return scopes.monitor;
    case 'manage':
      return scopes.manage;
    case 'feed:inputs':
      return scopes.feedInputs;
  }
}

/** Client or config text in a message: cut to 64 characters, control characters escaped by JSON. */
export function clip(text: string, max = 64): string {
  const cut = text.length > max ? `${text.slice(0, max)}…` : text;
  return JSON.stringify(cut).slice(1, -1);
}

/** A short description of any JSON value for messages. */
export function describe(value: unknown): string {
  if (typeof value === 'string') return `'${clip(value)}'`;
  if (value === null || typeof value !== 'object') return String(value);
  return Array.isArray(value) ? 'an array' : 'an object';
}
