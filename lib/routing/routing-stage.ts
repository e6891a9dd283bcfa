/**
 * The front door's routing stage: per request of a model with a traffic policy, it picks the
 * version (the request's own, else the bandit's or the weighted split's, sticky per routing
 * key), retries once on the fallback version when the chosen one fails or does not answer
 * within its share of the request's timeout (deadline-attempt.ts), feeds the guard and the
 * bandit, and after the answer offers a copy to the shadow lane
 * (shadow-lane.ts: best-effort, never ahead of primary traffic). Models without a policy
 * pass straight through.
 */
import { performance } from 'node:perf_hooks';
import { toTensorwireError, type ErrorCode } from '../errors';
import type { InferCall, InferStage } from '../frontdoor/types';
import type { InferResponse } from '../protocol/types';
import type { ModelRouting } from './model-routing';
import type { RoutingTable } from './routing-table';
import { attemptWithin } from './deadline-attempt';

/** Longest routing key used (the rest is ignored; keys are hashed, never stored). */
export const MAX_ROUTE_KEY_CHARS = 256;

/** The request parameter carrying a routing key when no header does. */
export const ROUTE_KEY_PARAMETER = 'route_key';

/** Failures of the chosen version that a retry on another version may fix (not the client's fault, not a cancel). */
const FALLBACK_ON: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['ENGINE_FAILURE', 'UNAVAILABLE', 'DEADLINE_EXCEEDED', 'QUEUE_FULL', 'INTERNAL', 'NOT_FOUND', 'OUTPUT_TOO_LARGE']);

/**
 * The share of a request's timeout the chosen version gets when the policy has a fallback:
 * past it the chosen version is abandoned and the fallback gets the rest.
 */
export const CHOSEN_SHARE_OF_TIMEOUT = 0.5;

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
  const fallback = routing.policy.fallback;
  const timeoutUs = call.request.timeoutUs;
  // Only a version the policy chose falls back: a client that named one gets that one's answer.
  const mayFallBack = !explicit && fallback !== undefined && fallback !== chosen;
  const start = performance.now();
  let response: InferResponse;
  try {
    // With a timeout to share, the chosen version gets the first part of it (deadline-attempt.ts).
    response = mayFallBack && timeoutUs !== undefined && timeoutUs > 0 ? await attemptWithin(next, call, chosen, (timeoutUs / 1000) * CHOSEN_SHARE_OF_TIMEOUT) : await next(target);
  } catch (e) {
    const err = toTensorwireError(e);
    const latencyMs = performance.now() - start;
    if (chosen !== undefined) routing.record(chosen, false, latencyMs);
    if (!mayFallBack || !FALLBACK_ON.has(err.code) || call.signal.aborted) throw err;
    const leftMs = timeoutUs === undefined || timeoutUs === 0 ? undefined : timeoutUs / 1000 - latencyMs;
    if (leftMs !== undefined && leftMs <= 0) throw err;
    routing.metrics?.fallbacks.child(routing.model, chosen ?? 'default', fallback).inc();
    response = leftMs === undefined ? await next({ ...call, version: fallback }) : await attemptWithin(next, call, fallback, leftMs);
    routing.count(response.modelVersion, 'fallback');
    routing.shadow?.offer(call, response, next);
    return response;
  }
  if (chosen !== undefined) routing.record(chosen, true, performance.now() - start);
  routing.count(response.modelVersion, explicit ? 'explicit' : 'split');
  // Only the bandit's own choices earn it rewards (not versions a client named, not fallbacks).
  if (!explicit) routing.bandit?.answered(call.request.id, response.modelVersion);
  routing.shadow?.offer(call, response, next);
  return response;
}
