/**
 * The front door's routing stage: per request of a model with a traffic policy, it picks the
 * version (the request's own, else the weighted split, sticky per routing key), retries once
 * on the fallback version when the chosen one fails, feeds the guard, and after the answer
 * sends a copy to the shadow version. Models without a policy pass straight through.
 *
 * Ordering guarantees: the shadow copy starts in a setImmediate after the primary's promise
 * settled (so after the transport wrote the answer); its errors and latency are only
 * recorded, never seen by the client. At most MAX_SHADOWS_IN_FLIGHT copies per model run at
 * once, and none while the event loop is over SHADOW_MAX_LOOP_UTILIZATION busy; beyond that
 * copies are skipped (and counted), so a slow shadow cannot pile work up or take the
 * primary's capacity.
 */
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { toTensorwireError, type ErrorCode } from '../errors';
import type { InferCall, InferStage } from '../frontdoor/types';
import type { InferResponse } from '../protocol/types';
import type { ModelRouting } from './model-routing';
import type { RoutingTable } from './routing-table';
import { compareOutputs } from './shadow-compare';

/** Shadow copies one model may have in flight. */
export const MAX_SHADOWS_IN_FLIGHT = 32;
/**
 * Event-loop utilization (0..1, over the last ~100 ms) above which shadow copies are shed
 * (counted as skipped): a shadow is best-effort work and must not take the primary's
 * capacity when the server is saturated.
 */
export const SHADOW_MAX_LOOP_UTILIZATION = 0.8;

/** Samples the event loop's utilization at most every 100 ms (one call to perf_hooks). */
class LoopLoad {
  private last: EventLoopUtilization = performance.eventLoopUtilization();
  private sampledAt = performance.now();
  private value = 0;

  get utilization(): number {
    const now = performance.now();
    if (now - this.sampledAt >= 100) {
      const current = performance.eventLoopUtilization();
      this.value = performance.eventLoopUtilization(current, this.last).utilization;
      this.last = current;
      this.sampledAt = now;
    }
    return this.value;
  }
}
const loopLoad = new LoopLoad();

/** Longest routing key used (the rest is ignored; keys are hashed, never stored). */
export const MAX_ROUTE_KEY_CHARS = 256;

/** The request parameter carrying a routing key when no header does. */
export const ROUTE_KEY_PARAMETER = 'route_key';

/** Failures of the chosen version that a retry on another version may fix (not the client's fault, not a cancel). */
const FALLBACK_ON: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['ENGINE_FAILURE', 'UNAVAILABLE', 'DEADLINE_EXCEEDED', 'QUEUE_FULL', 'INTERNAL', 'NOT_FOUND', 'OUTPUT_TOO_LARGE']);

/** The stage; register it with `frontDoor.use(routingStage(table))`. */
export function routingStage(table: RoutingTable): InferStage {
  return (call, next) => {
    const routing = table.lookup(call.model);
    if (routing === undefined) return next(call);
    return route(routing, call, next);
  };
}

/** The routing key of a request: the policy's header, else the `route_key` parameter. */
function routeKey(routing: ModelRouting, call: InferCall): string | undefined {
  const header = routing.policy.route_key;
  let key: unknown = header === undefined ? undefined : call.context.headers[header];
  if (key === undefined || key === '') key = call.request.parameters[ROUTE_KEY_PARAMETER];
  if (typeof key === 'number') key = String(key);
  if (typeof key !== 'string' || key === '') return undefined;
  return key.length > MAX_ROUTE_KEY_CHARS ? key.slice(0, MAX_ROUTE_KEY_CHARS) : key;
}

async function route(routing: ModelRouting, call: InferCall, next: (call: InferCall) => Promise<InferResponse>): Promise<InferResponse> {
  const explicit = call.version !== undefined && call.version !== '';
  const chosen = explicit ? call.version : routing.choose(routeKey(routing, call));
  const target = chosen === undefined || chosen === call.version ? call : { ...call, version: chosen };
  const start = performance.now();
  let response: InferResponse;
  try {
    response = await next(target);
  } catch (e) {
    const err = toTensorwireError(e);
    const latencyMs = performance.now() - start;
    if (chosen !== undefined) routing.record(chosen, false, latencyMs);
    const fallback = routing.policy.fallback;
    // Only a version the policy chose falls back: a client that named one gets that one's answer.
    if (explicit || fallback === undefined || fallback === chosen || !FALLBACK_ON.has(err.code) || call.signal.aborted) throw err;
    const timeoutUs = call.request.timeoutUs;
    const leftUs = timeoutUs === undefined || timeoutUs === 0 ? undefined : timeoutUs - latencyMs * 1000;
    if (leftUs !== undefined && leftUs <= 0) throw err;
    routing.metrics?.fallbacks.child(routing.model, chosen ?? 'default', fallback).inc();
    const retry: InferCall = { ...call, version: fallback, ...(leftUs === undefined ? {} : { request: { ...call.request, timeoutUs: Math.max(1, Math.floor(leftUs)) } }) };
    response = await next(retry);
    routing.count(response.modelVersion, 'fallback');
    afterAnswer(routing, call, response, next);
    return response;
  }
  if (chosen !== undefined) routing.record(chosen, true, performance.now() - start);
  routing.count(response.modelVersion, explicit ? 'explicit' : 'split');
  afterAnswer(routing, call, response, next);
  return response;
}

/** Schedules the shadow copy when the policy draws this request (never before the answer). */
function afterAnswer(routing: ModelRouting, call: InferCall, primary: InferResponse, next: (call: InferCall) => Promise<InferResponse>): void {
  const shadow = routing.policy.shadow;
  if (shadow === undefined || shadow.version === primary.modelVersion) return;
  if (shadow.percent < 100 && Math.random() * 100 >= shadow.percent) return;
  const metrics = routing.metrics;
  if (routing.shadowsInFlight >= MAX_SHADOWS_IN_FLIGHT || loopLoad.utilization > routing.shadowMaxLoopUtilization) {
    routing.cell('shadowRequests', shadow.version, 'skipped')?.inc();
    return;
  }
  routing.shadowsInFlight++;
  setImmediate(() => {
    const start = performance.now();
    // Its own signal: the client may be gone by now, and the copy must not be cancelled with it.
    const copy: InferCall = { ...call, version: shadow.version, signal: new AbortController().signal };
    let pending: Promise<InferResponse>;
    try {
      pending = next(copy);
    } catch (e) {
      pending = Promise.reject(e);
    }
    pending.then(
      (answer) => {
        routing.shadowsInFlight--;
        if (metrics === undefined) return;
        routing.cell('shadowRequests', shadow.version, 'success')!.inc();
        routing.histogram('shadowDuration', shadow.version)!.observe((performance.now() - start) / 1000);
        for (const c of compareOutputs(primary.outputs, answer.outputs)) {
          if (c.maxAbsDiff === undefined) continue;
          routing.histogram('shadowDiff', shadow.version, c.name)!.observe(c.maxAbsDiff);
          if (c.argmaxAgree > 0) routing.cell('shadowArgmax', shadow.version, c.name, 'true')!.inc(c.argmaxAgree);
          if (c.rows > c.argmaxAgree) routing.cell('shadowArgmax', shadow.version, c.name, 'false')!.inc(c.rows - c.argmaxAgree);
        }
      },
      () => {
        routing.shadowsInFlight--;
        routing.cell('shadowRequests', shadow.version, 'failure')?.inc();
      },
    );
  });
}
