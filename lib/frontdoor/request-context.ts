/**
 * Request contexts: built by each transport from what it saw synchronously (address,
 * selected headers, the client's id). Ids are generated lazily, so a request nobody logs or
 * traces costs no random bytes on the hot path.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Principal, RequestContext, Transport } from './types';

/** The caller before authorization (or on a server that requires none). */
export const ANONYMOUS: Principal = Object.freeze({ name: 'anonymous', scopes: Object.freeze([]) as readonly string[], via: 'none' as const });

/** Longest client-given request id kept (longer ones are cut; ids are echoed and logged). */
export const MAX_REQUEST_ID_LENGTH = 256;

/** W3C traceparent: version-traceid-parentid-flags. */
const TRACEPARENT = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/;

class LazyContext implements RequestContext {
  principal: Principal = ANONYMOUS;
  authorized = false;
  private id: string | undefined;
  private trace: string | undefined;
  private addressText: string | undefined;

  constructor(
    readonly transport: Transport,
    private readonly addressOf: string | (() => string),
    readonly headers: Readonly<Record<string, string>>,
    clientId: string | undefined,
  ) {
    if (clientId !== undefined && clientId !== '') this.id = clientId.length > MAX_REQUEST_ID_LENGTH ? clientId.slice(0, MAX_REQUEST_ID_LENGTH) : clientId;
  }

  get address(): string {
    return (this.addressText ??= typeof this.addressOf === 'string' ? this.addressOf : this.addressOf());
  }

  get requestId(): string {
    return (this.id ??= this.headers['x-request-id']?.slice(0, MAX_REQUEST_ID_LENGTH) || randomUUID());
  }

  get traceId(): string {
    if (this.trace === undefined) {
      const m = TRACEPARENT.exec(this.headers['traceparent'] ?? '');
      this.trace = m ? m[1]! : randomBytes(16).toString('hex');
    }
    return this.trace;
  }
}

/**
 * A context for one request; `clientId` is the id the client gave (request body or frame), if
 * any. `address` may be a function, read on first use (it must stay valid that long).
 */
export function createRequestContext(transport: Transport, address: string | (() => string), headers: Readonly<Record<string, string>>, clientId?: string): RequestContext {
  return new LazyContext(transport, address, headers, clientId);
}
