/**
 * CORS, only when `--cors-origins` is configured (otherwise no CORS header is ever sent and
 * browsers keep other sites' pages out). Credentials are never allowed: tensorwire reads
 * no cookies, and a page sends its key or token in the Authorization header, which only
 * needs to be listed in Access-Control-Allow-Headers. So `*` is safe to configure: it can
 * never combine with credentials.
 */
import { normalizeOrigin } from './browser-checks';

/** Request headers a browser may send cross-origin (answered in preflights). */
export const CORS_ALLOW_HEADERS = 'authorization, content-type, inference-header-content-length, x-request-id, traceparent';
/** Response headers a page may read. */
export const CORS_EXPOSE_HEADERS = 'inference-header-content-length, retry-after, x-request-id, www-authenticate';
/** Methods tensorwire's routes use. */
export const CORS_ALLOW_METHODS = 'GET, POST';
/** How long a browser may cache a preflight answer, seconds. */
export const CORS_MAX_AGE_S = 600;

/** Header name/value pairs to add to a response. */
export type HeaderList = readonly (readonly [string, string])[];

/** The CORS answer for configured origins (the parsed `--cors-origins`, see browser-checks parseOrigins). */
export class CorsPolicy {
  private readonly any: boolean;
  private readonly origins: ReadonlySet<string>;

  constructor(origins: readonly string[]) {
    this.any = origins.includes('*');
    this.origins = new Set(origins.filter((o) => o !== '*'));
  }

  /**
   * Headers for a response to a request with this `Origin` (a preflight when `preflight`),
   * or undefined when the origin is not allowed (the browser then blocks the page from
   * reading the answer, or from sending the request after a preflight).
   */
  headers(origin: string | undefined, preflight: boolean): HeaderList | undefined {
    if (origin === undefined || origin === '') return undefined;
    let allowOrigin: string;
    if (this.any) allowOrigin = '*';
    else {
      const normalized = normalizeOrigin(origin);
      if (normalized === undefined || !this.origins.has(normalized)) return undefined;
      allowOrigin = normalized;
    }
    const out: [string, string][] = [['Access-Control-Allow-Origin', allowOrigin]];
    // The answer depends on Origin unless it is '*': caches must key on it.
    if (!this.any) out.push(['Vary', 'Origin']);
    if (preflight) {
      out.push(['Access-Control-Allow-Methods', CORS_ALLOW_METHODS], ['Access-Control-Allow-Headers', CORS_ALLOW_HEADERS], ['Access-Control-Max-Age', String(CORS_MAX_AGE_S)]);
    } else {
      out.push(['Access-Control-Expose-Headers', CORS_EXPOSE_HEADERS]);
    }
    return out;
  }
}
