/**
 * The audit trail: one JSON line per management action and per authentication failure,
 *
 *   {"audit":true,"time":"2026-12-04T21:00:00.000Z","principal":"ci","address":"10.0.0.7",
 *    "action":"repository.load","target":"resnet","result":"ok"}
 *
 * and two counters, `tensorwire_auth_requests_total{result}` and
 * `tensorwire_audit_events_total{action,result}`. Keys and tokens are never written: a
 * line names the principal (or null when nobody was identified) and the reason.
 *
 * Authentication failures are what an attacker can produce at will, so their lines are
 * capped (`maxFailureLinesPerSecond`); the counter still counts every one and a line says
 * how many were left out.
 */
import type { Registry } from 'prom-client';
import { CounterFamily, type CounterCell } from '../metrics/families';
import type { ControlCall } from '../frontdoor/types';

/** Outcomes of the access check of one request, the `result` label of tensorwire_auth_requests_total. */
export const AUTH_RESULTS = ['allowed', 'unauthenticated', 'invalid_credentials', 'forbidden', 'rate_limited'] as const;
export type AuthResult = (typeof AUTH_RESULTS)[number];

/** Most distinct action names counted (actions come from code, but a bound costs nothing). */
const MAX_ACTIONS = 256;
const DEFAULT_MAX_FAILURE_LINES_PER_SECOND = 100;

/** One audit event. */
export interface AuditEvent {
  readonly principal: string | null;
  readonly address: string;
  readonly action: string;
  readonly target: string | null;
  /** `ok`, or the error code that ended it (`FORBIDDEN`, `UNAUTHENTICATED`, `NOT_FOUND`...). */
  readonly result: string;
  /** Why it failed, for failures (never a credential). */
  readonly reason?: string;
}

export interface AuditLogOptions {
  /** Where lines go (default: stdout). */
  write?: (line: string) => void;
  /** Wall clock for `time` and the failure cap, ms since the epoch. */
  now?: () => number;
  /** When given, the counters are registered there. */
  registry?: Registry;
  maxFailureLinesPerSecond?: number;
}

/** Writes audit lines and counts access outcomes. */
export class AuditLog {
  readonly authRequests = new CounterFamily('tensorwire_auth_requests_total', 'Requests by outcome of authentication and authorization.', ['result']);
  readonly auditEvents = new CounterFamily('tensorwire_audit_events_total', 'Audited events (management actions, authentication failures) by action and result.', ['action', 'result']);
  private readonly resultCells: Record<AuthResult, CounterCell>;
  private readonly write: (line: string) => void;
  private readonly now: () => number;
  private readonly maxFailureLines: number;
  private readonly actions = new Set<string>();
  private failureSecond = 0;
  private failureLines = 0;
  private suppressed = 0;

  constructor(options: AuditLogOptions = {}) {
    this.write = options.write ?? ((line) => process.stdout.write(line + '\n'));
    this.now = options.now ?? Date.now;
    this.maxFailureLines = options.maxFailureLinesPerSecond ?? DEFAULT_MAX_FAILURE_LINES_PER_SECOND;
    this.resultCells = Object.fromEntries(AUTH_RESULTS.map((r) => [r, this.authRequests.child(r)])) as Record<AuthResult, CounterCell>;
    if (options.registry) this.registerWith(options.registry);
  }

  /** Registers the two counters with `registry` (the server's, for /metrics). */
  registerWith(registry: Registry): void {
    this.authRequests.registerWith(registry);
    this.auditEvents.registerWith(registry);
  }

  /** Counts one request's access outcome (hot path: one increment). */
  countRequest(result: AuthResult): void {
    this.resultCells[result].inc();
  }

  /** Records a management action: after it ran (`result` 'ok' or its error code) or when refused. */
  control(call: ControlCall, result: string): void {
    this.record({ principal: call.context.principal.name, address: call.context.address, action: call.action, target: call.target ?? null, result });
  }

  /** Records a failed authentication (capped per second; the counter counts all). */
  authenticationFailed(address: string, result: string, reason: string): void {
    const second = Math.floor(this.now() / 1000);
    if (second !== this.failureSecond) {
      if (this.suppressed > 0) this.record({ principal: null, address: '', action: 'authenticate.suppressed', target: null, result: String(this.suppressed), reason: `${this.suppressed} authentication failure line(s) left out (over ${this.maxFailureLines}/s)` }, false);
      this.failureSecond = second;
      this.failureLines = 0;
      this.suppressed = 0;
    }
    this.count('authenticate', result);
    if (this.failureLines >= this.maxFailureLines) {
      this.suppressed++;
      return;
    }
    this.failureLines++;
    this.record({ principal: null, address, action: 'authenticate', target: null, result, reason }, false);
  }

  /** Writes one event and counts it. */
  record(event: AuditEvent, count = true): void {
    if (count) this.count(event.action, event.result);
    this.write(JSON.stringify({ audit: true, time: new Date(this.now()).toISOString(), ...event }));
  }

  private count(action: string, result: string): void {
    this.auditEvents.child(this.boundedAction(action), result).inc();
  }

  /** Action names come from code, yet a label set must stay bounded: past MAX_ACTIONS they fold into 'other'. */
  private boundedAction(action: string): string {
    if (this.actions.has(action)) return action;
    if (this.actions.size >= MAX_ACTIONS) return 'other';
    this.actions.add(action);
    return action;
  }
}
