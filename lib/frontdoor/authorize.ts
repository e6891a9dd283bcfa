/**
 * The one access check of every call, whatever the transport: authenticate what the call
 * presented (an Authorization header, gRPC `authorization` metadata, or a principal the
 * transport already established: a stream connection's), authorize it for what the call
 * needs (lib/auth/route-scopes.ts), then admit it under its principal's limits (429 with
 * Retry-After past them). HTTP routes call `admit` in lib/server/router.ts before their
 * handler runs; the stream and gRPC reach it through the front door's infer stage
 * (`inferStage`), which skips calls a transport already admitted (`context.authorized`).
 *
 * The hot path (a credential seen before, or no security) is synchronous; a token seen for
 * the first time is verified asynchronously and `admit` returns a Promise then.
 */
import { TensorwireError } from '../errors';
import { isAuthFailure, LOOPBACK_PRINCIPAL, type AccessControl, type AuthenticationInfo, type AuthPrincipal } from '../auth/access-control';
import type { AuditLog } from '../auth/audit';
import type { PrincipalLimiter } from '../auth/principal-limiter';
import { needOf } from '../auth/route-scopes';
import type { Need } from '../auth/scopes';
import type { InferCall, InferStage, Principal, RequestContext } from './types';

/** A call let in: who it is, and what to call once it settled (frees its `concurrent` place). */
export interface Admitted {
  readonly principal: Principal;
  readonly release: () => void;
}

/** A call turned away: the error to answer with (401: add WWW-Authenticate), and who it was when known (for audit). */
export interface Refused {
  readonly refused: TensorwireError;
  readonly principal: Principal | undefined;
}

/** The outcome of `admit`. */
export type Admission = Admitted | Refused;

/** The parts of a SecuritySetup the gate uses. */
export interface GateParts {
  readonly access: AccessControl;
  readonly limiter: PrincipalLimiter;
  readonly audit: AuditLog;
}

const NOTHING = (): void => undefined;

/** True when `admission` refused the call. */
export function isRefusal(admission: Admission): admission is Refused {
  return (admission as Refused).refused !== undefined;
}

/** Authentication, authorization and per-principal limits of every call. */
export class Gate {
  private readonly access: AccessControl;
  private readonly limiter: PrincipalLimiter;
  private readonly audit: AuditLog;
  /** What open needs (health probes) get: no credential read, no limit applied. */
  private readonly open: Admitted;
  /**
   * Set on a server without credentials bound to loopback: every client is then a loopback
   * client, so the per-request read of the client address (a native call) is skipped.
   */
  private readonly everyoneLoopback: Principal | undefined;

  /** `loopbackBind`: the server listens on a loopback address only. */
  constructor(parts: GateParts, anonymous: Principal, loopbackBind = false) {
    this.access = parts.access;
    this.limiter = parts.limiter;
    this.audit = parts.audit;
    this.open = Object.freeze({ principal: anonymous, release: NOTHING });
    this.everyoneLoopback = loopbackBind && !parts.access.enabled ? LOOPBACK_PRINCIPAL : undefined;
  }

  /**
   * The principal every caller is, when no credentials are configured and the server listens
   * on loopback only (every client is then a loopback client with every scope and no limits);
   * undefined otherwise. Transports use it to skip per-request admission work.
   */
  get everyone(): Principal | undefined {
    return this.everyoneLoopback;
  }

  /** True when credentials are configured (then only health probes are open). */
  get enabled(): boolean {
    return this.access.enabled;
  }

  /** The audit trail (management actions are recorded by the front door's `control`). */
  get auditLog(): AuditLog {
    return this.audit;
  }

  /**
   * Authenticates `authorization` (the header or metadata, '' or undefined when absent),
   * authorizes `need` and admits the call. `info.address` may be a getter: it is read only
   * when needed (no credentials configured, or a failure to record).
   */
  admit(authorization: string | undefined, info: AuthenticationInfo, need: Need): Admission | Promise<Admission> {
    if (need.scope === 'open') return this.open;
    if (this.everyoneLoopback !== undefined) return this.admitPrincipal(this.everyoneLoopback, need);
    const who = this.access.authenticate(authorization, info);
    if (who instanceof Promise) return who.then((p) => (isAuthFailure(p) ? { refused: p.error, principal: undefined } : this.admitPrincipal(p, need)));
    if (isAuthFailure(who)) return { refused: who.error, principal: undefined };
    return this.admitPrincipal(who, need);
  }

  /** Authorizes a principal already authenticated (a stream connection's) and applies its limits. */
  admitPrincipal(principal: Principal, need: Need): Admission {
    const refused = this.access.authorize(principal, need);
    if (refused !== undefined) return { refused, principal };
    const limits = (principal as Partial<AuthPrincipal>).limits;
    if (limits === undefined || (limits.requestsPerSecond === undefined && limits.concurrent === undefined)) return { principal, release: NOTHING };
    const key = (principal as AuthPrincipal).limiterKey;
    const limited = this.limiter.admit(key, limits);
    if (limited !== undefined) {
      this.audit.countRequest('rate_limited');
      return { refused: limited, principal };
    }
    if (limits.concurrent === undefined) return { principal, release: NOTHING };
    let released = false;
    return {
      principal,
      release: () => {
        if (released) return;
        released = true;
        this.limiter.release(key);
      },
    };
  }

  /**
   * Authenticates a credential alone (a stream's first-frame token, a stream upgrade):
   * the principal, or the 401 / 429 to answer with.
   */
  authenticate(authorization: string, info: AuthenticationInfo): Principal | TensorwireError | Promise<Principal | TensorwireError> {
    const who = this.access.authenticate(authorization, info);
    if (who instanceof Promise) return who.then((p) => (isAuthFailure(p) ? p.error : p));
    return isAuthFailure(who) ? who.error : who;
  }

  /**
   * The front door's stage for inference calls of transports that did not admit them
   * themselves (gRPC: metadata `authorization` in context.headers; the stream: the
   * connection's principal in context.principal). Needs `infer` on the call's model.
   */
  inferStage(): InferStage {
    return (call, next) => {
      const context = call.context;
      if (context.authorized === true) return next(call);
      const need = needOf('infer-model', call.model);
      const admission = context.principal.via !== 'none' ? this.admitPrincipal(context.principal, need) : this.admit(context.headers['authorization'], addressOf(context), need);
      if (admission instanceof Promise) return admission.then((a) => this.proceed(call, a, next));
      return this.proceed(call, admission, next);
    };
  }

  private proceed<R>(call: InferCall, admission: Admission, next: (call: InferCall) => Promise<R>): Promise<R> {
    if (isRefusal(admission)) return Promise.reject(admission.refused);
    call.context.principal = admission.principal;
    call.context.authorized = true;
    if (admission.release === NOTHING) return next(call);
    let pending: Promise<R>;
    try {
      pending = next(call);
    } catch (e) {
      admission.release();
      return Promise.reject(e);
    }
    return pending.finally(admission.release);
  }
}

/** The context's address, read only if authentication needs it, and its verified client certificate subject. */
function addressOf(context: RequestContext): AuthenticationInfo {
  const tlsSubject = context.tlsSubject;
  const info = {
    get address() {
      return context.address;
    },
  };
  return tlsSubject === undefined ? info : Object.defineProperty(info, 'tlsSubject', { value: tlsSubject, enumerable: true }) as AuthenticationInfo;
}
