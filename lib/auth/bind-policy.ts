/**
 * Secure defaults when no credentials are configured (no `--auth`, no JWT keys):
 * - the server binds to loopback; binding elsewhere is refused unless the operator says
 *   `--allow-unauthenticated` (then it starts, with a warning);
 * - management routes (load/unload, changing settings) answer only loopback clients.
 * Pure functions: the CLI and the front door decide with them, tests call them directly.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { TensorwireError } from '../errors';
import { clip } from './scopes';

/** Strips `[...]` around an IPv6 address and a `%zone` suffix. */
function bare(address: string): string {
  let a = address.trim();
  if (a.startsWith('[') && a.endsWith(']')) a = a.slice(1, -1);
  const zone = a.indexOf('%');
  return zone >= 0 ? a.slice(0, zone) : a;
}

/** The eight 16-bit groups of an IPv6 address (valid per net.isIPv6), `::` and a dotted tail expanded. */
function ipv6Groups(address: string): number[] {
  let a = address;
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (dotted) {
    const [b0, b1, b2, b3] = dotted[1]!.split('.').map(Number) as [number, number, number, number];
    a = `${a.slice(0, dotted.index)}${((b0 << 8) | b1).toString(16)}:${((b2 << 8) | b3).toString(16)}`;
  }
  const [head, tail] = a.includes('::') ? a.split('::') : [a, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const fill = tail === undefined ? [] : new Array<string>(8 - h.length - t.length).fill('0');
  return [...h, ...fill, ...t].map((g) => parseInt(g, 16));
}

/**
 * True for loopback clients: 127.0.0.0/8, ::1, and IPv4-mapped 127.x (`::ffff:127.0.0.1`,
 * also in uWS's long hex form `0000:...:ffff:7f00:0001`). Anything unparsable is not loopback.
 */
export function isLoopbackAddress(address: string): boolean {
  // The usual answers first: this runs per request on a server without --auth.
  if (address === '127.0.0.1' || address === '::1' || address === '0000:0000:0000:0000:0000:ffff:7f00:0001') return true;
  const a = bare(address);
  if (isIPv4(a)) return a.startsWith('127.');
  if (!isIPv6(a)) return false;
  const g = ipv6Groups(a);
  if (g.length !== 8) return false;
  const zeros = (n: number): boolean => g.slice(0, n).every((x) => x === 0);
  if (zeros(7) && g[7] === 1) return true;
  return zeros(5) && g[5] === 0xffff && g[6]! >> 8 === 127;
}

/** True when binding to `host` only accepts local connections (`localhost` counts). */
export function isLoopbackHost(host: string): boolean {
  return host.trim().toLowerCase() === 'localhost' || isLoopbackAddress(host);
}

/** What checkBindPolicy decided. */
export interface BindDecision {
  /** A warning to log at startup (listening unauthenticated beyond loopback), if any. */
  readonly warning?: string;
}

/**
 * Decides whether the server may listen on `host`. Throws FORBIDDEN (a message naming
 * `--allow-unauthenticated` and `--auth`) for a non-loopback bind without credentials.
 */
export function checkBindPolicy(host: string, authConfigured: boolean, allowUnauthenticated: boolean): BindDecision {
  if (authConfigured || isLoopbackHost(host)) return {};
  const where = clip(host);
  if (!allowUnauthenticated) {
    throw new TensorwireError(
      'FORBIDDEN',
      `refusing to serve on ${where} without authentication: anyone who can reach it could run and manage models. ` +
        `Configure --auth FILE (or JWT: TENSORWIRE_JWT_SECRET / --jwt-public-keys), bind to 127.0.0.1, or pass --allow-unauthenticated if the network itself is trusted`,
    );
  }
  return { warning: `WARNING: serving on ${where} without authentication (--allow-unauthenticated): anyone who can reach it can run models; management routes still answer only loopback clients` };
}
