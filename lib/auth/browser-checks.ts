/**
 * Checks that keep a browser from being used against the server (pure functions):
 *
 * - Control routes that change state accept only `Content-Type: application/json`. A page
 *   can POST `text/plain` (or a form) to any address without a CORS preflight; it cannot
 *   send `application/json` cross-origin without one, which the server never grants unless
 *   configured (cors.ts).
 * - Host allow-list: a DNS-rebinding page reaches a loopback server under its own host
 *   name; refusing Host names the server does not answer to defeats that. Default on a
 *   loopback bind: localhost, 127.0.0.1 and [::1], any port; elsewhere any Host unless
 *   `--allowed-hosts` lists them.
 * - WebSocket Origin: browsers send Origin on every upgrade and do not apply CORS to
 *   WebSockets, so a stream upgrade from another site's page is refused unless its origin is
 *   the server's own or listed in `--allowed-origins`. No Origin header: not a browser, allowed.
 */
import { TensorwireError } from '../errors';
import { isLoopbackHost } from './bind-policy';
import { clip } from './scopes';

/** Most entries of --allowed-hosts / --allowed-origins / --cors-origins. */
export const MAX_LIST_ENTRIES = 64;
/** Longest entry of those lists. */
export const MAX_LIST_ENTRY_LENGTH = 253;

/** The media type of a Content-Type header, lower-case, parameters dropped (RFC 9110 §8.3.1). */
export function mediaType(contentType: string): string {
  const semicolon = contentType.indexOf(';');
  return (semicolon < 0 ? contentType : contentType.slice(0, semicolon)).trim().toLowerCase();
}

/** For control routes that change state: undefined when the body is declared JSON, else the 400. */
export function checkJsonContentType(contentType: string | undefined): TensorwireError | undefined {
  if (contentType !== undefined && mediaType(contentType) === 'application/json') return undefined;
  return new TensorwireError('INVALID_INPUT', `this route changes server state and accepts only Content-Type: application/json, got ${contentType === undefined || contentType === '' ? 'none' : `'${clip(contentType)}'`}`);
}

/** A list flag (`a,b,c`) split, trimmed and bounded. */
export function parseListFlag(value: string, flag: string): string[] {
  const entries = value.split(',').map((e) => e.trim()).filter((e) => e !== '');
  if (entries.length === 0) throw new TensorwireError('INVALID_INPUT', `${flag} needs at least one entry`);
  if (entries.length > MAX_LIST_ENTRIES) throw new TensorwireError('INVALID_INPUT', `${flag}: at most ${MAX_LIST_ENTRIES} entries, got ${entries.length}`);
  for (const e of entries) if (e.length > MAX_LIST_ENTRY_LENGTH) throw new TensorwireError('INVALID_INPUT', `${flag}: entry '${clip(e)}' is longer than ${MAX_LIST_ENTRY_LENGTH} characters`);
  return entries;
}

/** The host name of a Host header (or `--allowed-hosts` entry), lower-case, port and IPv6 brackets dropped. */
export function hostName(host: string): string {
  const h = host.trim().toLowerCase();
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    return end < 0 ? h : h.slice(1, end);
  }
  const colon = h.indexOf(':');
  // More than one colon without brackets: a bare IPv6 address, no port.
  return colon >= 0 && h.indexOf(':', colon + 1) < 0 ? h.slice(0, colon) : h;
}

const LOOPBACK_HOST_NAMES = ['localhost', '127.0.0.1', '::1'];

/** Which Host headers the server answers. */
export class HostAllowList {
  /** undefined: any host. */
  private readonly exact: Set<string> | undefined;
  /** `*.example.com` entries, as `.example.com`. */
  private readonly suffixes: string[] = [];
  /** The last Host header allowed: clients repeat theirs on every request, so one compare answers most. */
  private lastAllowed = '';

  /** `allowedHosts`: the --allowed-hosts entries, if given; `bindHost`: the address the server listens on. */
  constructor(bindHost: string, allowedHosts?: readonly string[]) {
    if (allowedHosts === undefined) {
      this.exact = isLoopbackHost(bindHost) ? new Set(LOOPBACK_HOST_NAMES) : undefined;
      return;
    }
    this.exact = new Set();
    for (const entry of allowedHosts) {
      if (entry.startsWith('*.')) this.suffixes.push(entry.slice(1).toLowerCase());
      else this.exact.add(hostName(entry));
    }
  }

  /** True when every Host is accepted. */
  get open(): boolean {
    return this.exact === undefined;
  }

  /** Undefined when `host` (the Host header; absent for non-browser clients) is allowed, else the 403. */
  check(host: string | undefined): TensorwireError | undefined {
    if (this.exact === undefined || host === undefined || host === '' || host === this.lastAllowed) return undefined;
    const name = hostName(host);
    if (this.exact.has(name) || this.suffixes.some((suffix) => name.endsWith(suffix) && name.length > suffix.length)) {
      this.lastAllowed = host;
      return undefined;
    }
    return new TensorwireError('FORBIDDEN', `Host '${clip(host)}' is not one this server answers to (--allowed-hosts)`);
  }
}

/** `scheme://host[:port]` of an origin, normalized by the URL parser, or undefined when it is not one. */
export function normalizeOrigin(origin: string): string | undefined {
  try {
    const url = new URL(origin);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
    if (url.pathname !== '/' || url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') return undefined;
    return url.origin;
  } catch {
    return undefined;
  }
}

/** Parses `--allowed-origins` / `--cors-origins` entries (`*` only where `allowWildcard`). */
export function parseOrigins(entries: readonly string[], flag: string, allowWildcard: boolean): string[] {
  return entries.map((e) => {
    if (e === '*' && allowWildcard) return '*';
    const o = normalizeOrigin(e);
    if (o === undefined) throw new TensorwireError('INVALID_INPUT', `${flag}: '${clip(e)}' is not an origin like https://app.example.com (scheme, host, optional port, nothing else)`);
    return o;
  });
}

/**
 * Undefined when a WebSocket upgrade with this `Origin` may proceed, else the 403. The
 * server's own origin is the Host the request was sent to, under the server's scheme.
 */
export function checkWebSocketOrigin(origin: string | undefined, host: string | undefined, tls: boolean, allowedOrigins: readonly string[] = []): TensorwireError | undefined {
  if (origin === undefined || origin === '') return undefined;
  const normalized = normalizeOrigin(origin);
  if (normalized !== undefined) {
    if (host !== undefined && host !== '' && normalized === normalizeOrigin(`${tls ? 'https' : 'http'}://${host}`)) return undefined;
    if (allowedOrigins.includes(normalized)) return undefined;
  }
  return new TensorwireError('FORBIDDEN', `WebSocket connections from origin '${clip(origin)}' are not allowed (--allowed-origins)`);
}
