/**
 * The shadow lane of one model under one policy: after the primary answered, a copy of the
 * request may go to the shadow version, be compared with the primary's answer, and be
 * dropped. It is strictly best-effort work that must never take capacity the primary could
 * use, so a copy is sent only when all of these hold when it would start (a setImmediate
 * after the answer: after the transport wrote it and after the I/O that brought the next
 * requests in):
 *
 * - the primary version's queue is empty (`primary_queued` otherwise): requests waiting
 *   for the primary mean it has no capacity to spare;
 * - the shadow version's own queue is empty (`shadow_queued`): when the shadow version also
 *   serves real traffic (a canary of the split, requests naming it), copies never wait
 *   ahead of it;
 * - fewer than `maxInFlight` copies of this model are in flight (`in_flight_limit`);
 * - the event loop was at most `maxLoopUtilization` busy over the last ~100 ms (`loop_busy`).
 *
 * Checked first when the primary answers (a skipped copy then costs no setImmediate) and
 * again when the copy would start, where the budget is taken.
 *
 * A copy not sent is counted in `tensorwire_shadow_skipped_total{reason}`, so
 * sent / (sent + skipped) is the fraction of drawn requests actually shadowed. The copy has
 * its own cancellation (a client that leaves does not cancel it) and its outcome is only
 * recorded, never seen by the client.
 */
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import type { InferCall } from '../frontdoor/types';
import type { InferResponse } from '../protocol/types';
import type { CounterCell, HistogramCell } from '../metrics/families';
import type { RoutingMetrics } from './routing-metrics';
import { compareOutputs } from './shadow-compare';

/** Shadow copies one model may have in flight (default of RoutingTableOptions.shadowMaxInFlight). */
export const MAX_SHADOWS_IN_FLIGHT = 4;
/** Event-loop utilization (0..1, over the last ~100 ms) above which copies are skipped. */
export const SHADOW_MAX_LOOP_UTILIZATION = 0.8;

/** Why a drawn copy was not sent (the `reason` label). */
export type ShadowSkipReason = 'primary_queued' | 'shadow_queued' | 'in_flight_limit' | 'loop_busy';

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

/**
 * Never aborted: every copy shares it instead of allocating an AbortController. The batch
 * runner removes its listener when a request settles, so listeners do not pile up on it.
 */
const NEVER_ABORTED = new AbortController().signal;

/** Options of a lane (RoutingTableOptions passes them on). */
export interface ShadowLaneOptions {
  maxInFlight: number;
  maxLoopUtilization: number;
  /** Requests waiting in the queue of `version` of this model (0 when it does not serve). */
  queueDepth: (version: string) => number;
}

/** The metric cells of one output's comparison (created on the output's first comparison). */
interface OutputCells {
  diff: HistogramCell;
  agree: CounterCell;
  disagree: CounterCell;
}

/** The lane's metric cells, bound once (no label lookups per copy). */
class ShadowCells {
  readonly success: CounterCell;
  readonly failure: CounterCell;
  readonly duration: HistogramCell;
  private readonly skipped = new Map<ShadowSkipReason, CounterCell>();
  private readonly outputs = new Map<string, OutputCells>();

  constructor(
    private readonly metrics: RoutingMetrics,
    private readonly model: string,
    private readonly version: string,
  ) {
    this.success = metrics.shadowRequests.child(model, version, 'success');
    this.failure = metrics.shadowRequests.child(model, version, 'failure');
    this.duration = metrics.shadowDuration.child(model, version);
  }

  skip(reason: ShadowSkipReason): void {
    let cell = this.skipped.get(reason);
    if (cell === undefined) this.skipped.set(reason, (cell = this.metrics.shadowSkipped.child(this.model, this.version, reason)));
    cell.inc();
  }

  output(name: string): OutputCells {
    let cells = this.outputs.get(name);
    if (cells === undefined) {
      const m = this.metrics;
      cells = { diff: m.shadowDiff.child(this.model, this.version, name), agree: m.shadowArgmax.child(this.model, this.version, name, 'true'), disagree: m.shadowArgmax.child(this.model, this.version, name, 'false') };
      this.outputs.set(name, cells);
    }
    return cells;
  }
}

export class ShadowLane {
  /** Copies in flight now. */
  inFlight = 0;
  private readonly cells: ShadowCells | undefined;

  constructor(
    model: string,
    readonly version: string,
    private readonly percent: number,
    metrics: RoutingMetrics | undefined,
    private readonly options: ShadowLaneOptions,
  ) {
    this.cells = metrics === undefined ? undefined : new ShadowCells(metrics, model, version);
  }

  /**
   * Called once the primary answered `call` with `primary` (through `next`, the rest of the
   * front door): draws the request by `percent`, and sends the copy when the lane is free.
   */
  offer(call: InferCall, primary: InferResponse, next: (call: InferCall) => Promise<InferResponse>): void {
    if (primary.modelVersion === this.version) return;
    if (this.percent < 100 && Math.random() * 100 >= this.percent) return;
    const busy = this.busy(primary.modelVersion);
    if (busy !== undefined) {
      this.cells?.skip(busy);
      return;
    }
    setImmediate(() => {
      // The requests that arrived with this turn of the loop are queued now: they go first.
      // The budget is taken here, not above: a copy that will not start holds none of it.
      const late = this.busy(primary.modelVersion);
      if (late !== undefined) {
        this.cells?.skip(late);
        return;
      }
      this.inFlight++;
      this.send(call, primary, next);
    });
  }

  /** Why the lane cannot take a copy now, or undefined when it can. */
  private busy(primaryVersion: string): ShadowSkipReason | undefined {
    if (this.options.queueDepth(primaryVersion) > 0) return 'primary_queued';
    // Its queue holds at most `inFlight` of our own copies: more than that is real traffic waiting.
    if (this.options.queueDepth(this.version) > this.inFlight) return 'shadow_queued';
    if (this.inFlight >= this.options.maxInFlight) return 'in_flight_limit';
    if (loopLoad.utilization > this.options.maxLoopUtilization) return 'loop_busy';
    return undefined;
  }

  private send(call: InferCall, primary: InferResponse, next: (call: InferCall) => Promise<InferResponse>): void {
    const start = performance.now();
    const copy: InferCall = { model: call.model, version: this.version, request: call.request, context: call.context, signal: NEVER_ABORTED };
    let pending: Promise<InferResponse>;
    try {
      pending = next(copy);
    } catch (e) {
      pending = Promise.reject(e);
    }
    pending.then(
      (answer) => {
        this.inFlight--;
        const cells = this.cells;
        if (cells === undefined) return;
        cells.success.inc();
        cells.duration.observe((performance.now() - start) / 1000);
        for (const c of compareOutputs(primary.outputs, answer.outputs)) {
          if (c.maxAbsDiff === undefined) continue;
          const out = cells.output(c.name);
          out.diff.observe(c.maxAbsDiff);
          if (c.argmaxAgree > 0) out.agree.inc(c.argmaxAgree);
          if (c.rows > c.argmaxAgree) out.disagree.inc(c.rows - c.argmaxAgree);
        }
      },
      () => {
        this.inFlight--;
        this.cells?.failure.inc();
      },
    );
  }
}
