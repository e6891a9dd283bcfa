/**
 * Statistics of one model version in Triton's shape (GET /v2/models/{m}/stats), recorded at
 * the same points as the Prometheus series so the two always agree.
 */
import type { BatchTiming } from '../engine/types';
import type { ModelMetrics } from '../metrics/registry';
import type { StageTimings } from '../protocol/types';
import type { BatchRunnerListener } from '../scheduler/batch-runner';
import type { ModelStatistics } from './types';

interface Duration {
  count: number;
  ns: number;
}

interface BatchSizeStats {
  compute_input: Duration;
  compute_infer: Duration;
  compute_output: Duration;
}

const zero = (): Duration => ({ count: 0, ns: 0 });
const add = (d: Duration, us: number): void => {
  d.count++;
  d.ns += Math.round(us * 1000);
};

export class VersionStatistics implements BatchRunnerListener {
  private readonly success = zero();
  private readonly fail = zero();
  private readonly queue = zero();
  private readonly computeInput = zero();
  private readonly computeInfer = zero();
  private readonly computeOutput = zero();
  private readonly cacheHit = zero();
  private readonly cacheMiss = zero();
  private readonly batches = new Map<number, BatchSizeStats>();
  private inferenceCount = 0;
  private executionCount = 0;
  private lastInferenceMs = 0;
  /** True while warm-up requests run: they are not user traffic and are not counted. */
  paused = false;

  constructor(
    readonly name: string,
    readonly version: string,
    private readonly metrics: ModelMetrics | undefined,
  ) {}

  onEnqueue(): void {}
  onDequeue(): void {}
  onComplete(): void {}

  /** A batch ran: Triton's execution_count and batch_stats. */
  onBatch(batchSize: number, timing: BatchTiming): void {
    if (this.paused) return;
    this.executionCount++;
    let b = this.batches.get(batchSize);
    if (b === undefined) {
      b = { compute_input: zero(), compute_infer: zero(), compute_output: zero() };
      this.batches.set(batchSize, b);
    }
    add(b.compute_input, timing.inputUs);
    add(b.compute_infer, timing.inferUs);
    add(b.compute_output, timing.outputUs);
    this.metrics?.recordBatch(batchSize);
  }

  /** A failed batch was taken apart (or not): counted in Prometheus only, Triton's statistics have no field for it. */
  onIsolation(outcome: string, reruns: number): void {
    if (this.paused) return;
    this.metrics?.recordIsolation(outcome, reruns);
  }

  /** A request answered with outputs; `samples` is its batch dimension. */
  recordSuccess(samples: number, timings: StageTimings, totalUs: number): void {
    add(this.success, totalUs);
    add(this.queue, timings.queueUs);
    add(this.computeInput, timings.computeInputUs);
    add(this.computeInfer, timings.computeInferUs);
    add(this.computeOutput, timings.computeOutputUs);
    this.inferenceCount += samples;
    this.lastInferenceMs = Date.now();
    this.metrics?.recordSuccess(timings, samples, totalUs);
  }

  /**
   * A request answered from the response cache (Triton's meaning: a success and an inference,
   * not an execution); `us` is the lookup's time.
   */
  recordCacheHit(samples: number, us: number): void {
    add(this.cacheHit, us);
    add(this.success, us);
    // Triton counts queue per success (cache hits included, with no queue time); compute_* per
    // success that ran (success - cache_hit), as recorded by recordSuccess.
    add(this.queue, 0);
    this.inferenceCount += samples;
    this.lastInferenceMs = Date.now();
  }

  /** A cache lookup that missed; `us` is the lookup's and the insertion's time (the inference is recorded as usual). */
  recordCacheMiss(us: number): void {
    add(this.cacheMiss, us);
  }

  /** A request answered with an error of code `reason`. */
  recordFailure(reason: string, totalUs: number): void {
    add(this.fail, totalUs);
    this.metrics?.recordFailure(reason);
  }

  toJSON(): ModelStatistics {
    return {
      name: this.name,
      version: this.version,
      last_inference: this.lastInferenceMs,
      inference_count: this.inferenceCount,
      execution_count: this.executionCount,
      inference_stats: {
        success: { ...this.success },
        fail: { ...this.fail },
        queue: { ...this.queue },
        compute_input: { ...this.computeInput },
        compute_infer: { ...this.computeInfer },
        compute_output: { ...this.computeOutput },
        cache_hit: { ...this.cacheHit },
        cache_miss: { ...this.cacheMiss },
      },
      // Per response index of decoupled models in Triton; none of tensorwire's models is decoupled.
      response_stats: {},
      batch_stats: [...this.batches.entries()]
        .sort((a, b) => a[0] - b[0])
        .map(([batch_size, s]) => ({ batch_size, compute_input: { ...s.compute_input }, compute_infer: { ...s.compute_infer }, compute_output: { ...s.compute_output } })),
      // What a backend reports it allocated; ORT's own allocations are not attributed per model here.
      memory_usage: [],
    };
  }
}
