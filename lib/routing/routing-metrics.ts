/**
 * The routing stage's Prometheus families (docs/metrics.md, docs/routing.md): the split per
 * version, fallbacks, rollbacks, and the shadow comparison as `tensorwire_shadow_*`.
 * Registered once per registry; cells are cached by the callers (one Map lookup a call).
 */
import type { Registry } from 'prom-client';
import { CounterFamily, HistogramFamily, exponentialBounds } from '../metrics/families';
import { DURATION_BUCKETS_S } from '../metrics/registry';

/** Bounds of the shadow's max abs diff: 1e-7 growing ×10 to 1e3 (exact agreement lands in the first). */
const DIFF_BUCKETS = exponentialBounds(1e-7, 10, 11);

export interface RoutingMetrics {
  /** Requests routed, by the version that answered and how it was chosen (split, explicit, label, fallback). */
  routed: CounterFamily;
  fallbacks: CounterFamily;
  rollbacks: CounterFamily;
  shadowRequests: CounterFamily;
  shadowSkipped: CounterFamily;
  shadowDiff: HistogramFamily;
  shadowArgmax: CounterFamily;
  shadowDuration: HistogramFamily;
}

const byRegistry = new WeakMap<Registry, RoutingMetrics>();

/** The families on `registry` (created and registered on first use). */
export function routingMetrics(registry: Registry): RoutingMetrics {
  let m = byRegistry.get(registry);
  if (m === undefined) {
    m = {
      routed: new CounterFamily('tensorwire_routing_requests_total', 'Requests of a model with a traffic policy, by the version that answered and how it was chosen (split, explicit, fallback).', ['model', 'version', 'via']).registerWith(registry),
      fallbacks: new CounterFamily('tensorwire_routing_fallbacks_total', 'Requests retried on the fallback version after the chosen one failed.', ['model', 'from', 'to']).registerWith(registry),
      rollbacks: new CounterFamily('tensorwire_routing_rollbacks_total', 'Automatic rollbacks of a guarded version (its weight set to 0).', ['model', 'version']).registerWith(registry),
      shadowRequests: new CounterFamily('tensorwire_shadow_requests_total', 'Copies of answered requests sent to the shadow version, by outcome (success, failure).', ['model', 'version', 'outcome']).registerWith(registry),
      shadowSkipped: new CounterFamily('tensorwire_shadow_skipped_total', 'Requests drawn for the shadow but not copied, by reason (primary_queued, shadow_queued, in_flight_limit, loop_busy).', ['model', 'version', 'reason']).registerWith(registry),
      shadowDiff: new HistogramFamily('tensorwire_shadow_max_abs_diff', 'Largest absolute difference between the shadow\'s and the primary\'s output, per compared request.', ['model', 'version', 'output'], DIFF_BUCKETS).registerWith(registry),
      shadowArgmax: new CounterFamily('tensorwire_shadow_argmax_rows_total', 'Rows compared between shadow and primary, by whether their argmax agreed.', ['model', 'version', 'output', 'agree']).registerWith(registry),
      shadowDuration: new HistogramFamily('tensorwire_shadow_duration_seconds', 'Time the shadow version took to answer its copy.', ['model', 'version'], DURATION_BUCKETS_S).registerWith(registry),
    };
    byRegistry.set(registry, m);
  }
  return m;
}
