/**
 * tensorwire's Prometheus metrics: one `createMetrics()` call registers every family on a
 * prom-client Registry and returns the small API the server core records through.
 * docs/metrics.md lists the same metrics; test/metrics-catalogue.test.ts keeps them in step.
 *
 * Cost model: per-request recording goes through `ModelMetrics` handles cached per
 * model/version (two Map lookups when called by name, none when the caller keeps the
 * handle), and touches only numbers in preallocated cells (see families.ts). Values that
 * are "current state" rather than events (queue depth, in-flight, pinned memory, GPU) are
 * read from providers when /metrics is scraped, so they are right at scrape time.
 */
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { VersionState } from '../core/types';
import type { ModelMemory } from '../engine/types';
import type { StageTimings } from '../protocol/types';
import { CounterCell, CounterFamily, HistogramCell, HistogramFamily, exponentialBounds } from './families';
import { TensorwireError } from '../errors';


/** Outcomes of taking a failed batch apart (lib/scheduler/batch-isolation.ts). */
const ISOLATION_OUTCOMES = ['isolated', 'gave_up', 'skipped'] as const;
/** Whether a request was answered with outputs or with an error. */
export type Outcome = 'success' | 'failure';

/** Stages of `tensorwire_request_duration_seconds`. */
export const STAGES = ['total', 'queue', 'compute_input', 'compute_infer', 'compute_output'] as const;
export type Stage = (typeof STAGES)[number];

/** Every state a model version can be in; the `state` label of `tensorwire_model_state`. */
export const MODEL_STATES = ['loading', 'warming', 'ready', 'draining', 'unloading', 'unavailable', 'failed'] as const satisfies readonly VersionState[];
// Compile-time check that MODEL_STATES names every VersionState (adding a state must add it here).
const _allStates: Record<VersionState, true> = Object.fromEntries(MODEL_STATES.map((s) => [s, true])) as Record<(typeof MODEL_STATES)[number], true>;
void _allStates;

/** Duration buckets in seconds: 10 µs doubling to ~10.5 s (21 bounds). */
export const DURATION_BUCKETS_S: readonly number[] = exponentialBounds(1e-5, 2, 21);
/** Batch size buckets: 1, 2, 4, ... 1024. */
export const BATCH_SIZE_BUCKETS: readonly number[] = exponentialBounds(1, 2, 11);

/** Current queue depth of one model version. */
export interface QueueDepthSample {
  model: string;
  version: string;
  depth: number;
}
/** Called at scrape time; returns the depth of every queue it knows. Several providers add up. */
export type QueueDepthProvider = () => Iterable<QueueDepthSample>;

/** One GPU as NVML reports it. */
export interface GpuSample {
  /** Device index or UUID, the `gpu` label. */
  gpu: string;
  /** Busy fraction over NVML's last sample period, 0..1. */
  utilization: number;
  memoryUsedBytes: number;
  memoryTotalBytes: number;
}
/** Called at scrape time (e.g. the native addon's NVML binding). */
export type GpuProvider = () => Iterable<GpuSample>;

/** Pinned (page-locked) host memory of the staging slots. */
export interface PinnedMemorySample {
  usedBytes: number;
  totalBytes: number;
}
/** Called at scrape time, when registered; otherwise the last `setPinnedMemory` values are exported. */
export type PinnedMemoryProvider = () => PinnedMemorySample;

/** Options of `createMetrics`. */
export interface MetricsOptions {
  /** Register prom-client's process and Node.js defaults (event-loop lag, heap, GC, CPU, fds). Default true. */
  defaultMetrics?: boolean;
  /** Registers the GPU gauges fed by this provider; without one they do not exist. */
  gpuProvider?: GpuProvider;
  pinnedMemoryProvider?: PinnedMemoryProvider;
}

/** Label-bound series of one model version; keep it to record without any lookup. */
export class ModelMetrics {
  private readonly success: CounterCell;
  private readonly failures = new Map<string, CounterCell>();
  private readonly inferences: CounterCell;
  private readonly executions: CounterCell;
  private readonly total: HistogramCell;
  private readonly queue: HistogramCell;
  private readonly computeInput: HistogramCell;
  private readonly computeInfer: HistogramCell;
  private readonly computeOutput: HistogramCell;
  private readonly batchSize: HistogramCell;
  private readonly isolations = new Map<string, CounterCell>();

  private readonly isolationRuns: CounterCell;

  /** @internal created by TensorwireMetrics.model() */
  constructor(
    readonly model: string,
    readonly version: string,
    private readonly families: Families,
  ) {
    this.success = families.requests.child(model, version, 'success', '');
    this.inferences = families.inferences.child(model, version);
    this.executions = families.executions.child(model, version);
    this.total = families.duration.child(model, version, 'total');
    this.queue = families.duration.child(model, version, 'queue');
    this.computeInput = families.duration.child(model, version, 'compute_input');
    this.computeInfer = families.duration.child(model, version, 'compute_infer');
    this.computeOutput = families.duration.child(model, version, 'compute_output');
    this.batchSize = families.batch.child(model, version);
    this.isolationRuns = families.isolationRuns.child(model, version);
    // Every outcome's series exists from the start (at 0), so a rate() sees the first one.
    for (const outcome of ISOLATION_OUTCOMES) this.isolations.set(outcome, families.isolations.child(model, version, outcome));
  }

  /**
   * A request answered with outputs. `samples` is its batch dimension (inference count,
   * Triton's meaning); `totalUs` the end-to-end time, defaulting to the sum of the stages.
   */
  recordSuccess(timings: StageTimings, samples = 1, totalUs?: number): void {
    this.success.value++;
    this.inferences.value += samples;
    this.queue.observe(timings.queueUs * 1e-6);
    this.computeInput.observe(timings.computeInputUs * 1e-6);
    this.computeInfer.observe(timings.computeInferUs * 1e-6);
    this.computeOutput.observe(timings.computeOutputUs * 1e-6);
    const t = totalUs ?? timings.queueUs + timings.computeInputUs + timings.computeInferUs + timings.computeOutputUs;
    this.total.observe(t * 1e-6);
  }

  /** A request answered with an error; `reason` is the TensorwireError code (keep it low-cardinality). */
  recordFailure(reason: string): void {
    let cell = this.failures.get(reason);
    if (cell === undefined) {
      cell = this.families.requests.child(this.model, this.version, 'failure', reason);
      this.failures.set(reason, cell);
    }
    cell.value++;
  }

  /**
   * A batch of several requests failed in the engine and was taken apart (`outcome`:
   * isolated, gave_up) with `reruns` re-runs, or was not (skipped).
   */
  recordIsolation(outcome: string, reruns: number): void {
    let cell = this.isolations.get(outcome);
    if (cell === undefined) {
      cell = this.families.isolations.child(this.model, this.version, outcome);
      this.isolations.set(outcome, cell);
    }
    cell.value++;
    this.isolationRuns.value += reruns;
  }

  /** One batch (model execution) of `batchSize` samples ran. */
  recordBatch(batchSize: number): void {
    this.executions.value++;
    this.batchSize.observe(batchSize);
  }
}

interface Families {
  requests: CounterFamily;
  inferences: CounterFamily;
  executions: CounterFamily;
  duration: HistogramFamily;
  batch: HistogramFamily;
  isolations: CounterFamily;
  isolationRuns: CounterFamily;
}

/** The handles `createMetrics` returns. */
export class TensorwireMetrics {
  private readonly families: Families;
  private readonly models = new Map<string, Map<string, ModelMetrics>>();
  private readonly queueProviders = new Set<QueueDepthProvider>();
  private readonly modelState: Gauge<'model' | 'version' | 'state'>;
  private readonly modelMemory: Gauge<'model' | 'version' | 'device'>;
  private inflight = 0;
  private pinned: PinnedMemorySample = { usedBytes: 0, totalBytes: 0 };
  private pinnedProvider?: PinnedMemoryProvider;
  private gpuProvider?: GpuProvider;

  /** @internal use createMetrics() */
  constructor(
    readonly registry: Registry,
    options: MetricsOptions,
  ) {
    const labels = ['model', 'version'] as const;
    this.families = {
      requests: new CounterFamily('tensorwire_inference_requests_total', 'Inference requests answered, by outcome and failure reason (error code).', [...labels, 'outcome', 'reason']).registerWith(registry),
      inferences: new CounterFamily('tensorwire_inference_count_total', 'Inferences (samples, i.e. batch dimension) of successful requests.', labels).registerWith(registry),
      executions: new CounterFamily('tensorwire_inference_exec_count_total', 'Model executions (batches run).', labels).registerWith(registry),
      duration: new HistogramFamily('tensorwire_request_duration_seconds', 'Time of successful requests per stage: total (end to end), queue, compute_input, compute_infer, compute_output.', [...labels, 'stage'], DURATION_BUCKETS_S).registerWith(registry),
      batch: new HistogramFamily('tensorwire_batch_size', 'Samples per executed batch.', labels, BATCH_SIZE_BUCKETS).registerWith(registry),
      isolations: new CounterFamily(
        'tensorwire_batch_isolation_total',
        'Batches of several requests that failed in the engine, by outcome: isolated (re-run in parts so only the failing requests got the error), gave_up (no part succeeded within the budget), skipped (too many failed batches at once; all got the error).',
        [...labels, 'outcome'],
      ).registerWith(registry),
      isolationRuns: new CounterFamily('tensorwire_batch_isolation_runs_total', 'Re-runs made to take failed batches apart.', labels).registerWith(registry),
    };
    const providers = this.queueProviders;
    new Gauge({
      name: 'tensorwire_queue_depth',
      help: 'Requests waiting in a model version queue, read when scraped.',
      labelNames: labels,
      registers: [registry],
      collect() {
        this.reset();
        for (const p of providers) for (const s of p()) this.inc({ model: s.model, version: s.version }, s.depth);
      },
    });
    const self = this;
    new Gauge({
      name: 'tensorwire_inflight_requests',
      help: 'Inference requests received and not yet answered.',
      registers: [registry],
      collect() {
        this.set(self.inflight);
      },
    });
    this.modelState = new Gauge({ name: 'tensorwire_model_state', help: 'State of each model version: 1 for the current state, 0 for the others.', labelNames: [...labels, 'state'], registers: [registry] });
    this.modelMemory = new Gauge({ name: 'tensorwire_model_memory_bytes', help: 'Memory a model version holds, by device (host, gpu).', labelNames: [...labels, 'device'], registers: [registry] });
    this.pinnedProvider = options.pinnedMemoryProvider;
    new Gauge({
      name: 'tensorwire_pinned_memory_bytes',
      help: 'Pinned host memory of the staging slots: used and total.',
      labelNames: ['state'],
      registers: [registry],
      collect() {
        const p = self.pinnedProvider ? self.pinnedProvider() : self.pinned;
        this.set({ state: 'used' }, p.usedBytes);
        this.set({ state: 'total' }, p.totalBytes);
      },
    });
    if (options.gpuProvider) this.registerGpuProvider(options.gpuProvider);
    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry });
  }

  /** The cached handles of one model version (created on first use). */
  model(model: string, version: string): ModelMetrics {
    let versions = this.models.get(model);
    if (versions === undefined) {
      versions = new Map();
      this.models.set(model, versions);
    }
    let m = versions.get(version);
    if (m === undefined) {
      m = new ModelMetrics(model, version, this.families);
      versions.set(version, m);
    }
    return m;
  }

  /**
   * Records one answered request. Success needs `timings` (stage durations, µs); `samples`
   * is the request's batch dimension; `totalUs` the end-to-end time (default: sum of stages).
   * Failures count under `reason` (the error code) and record no durations.
   */
  recordRequest(model: string, version: string, outcome: Outcome, reason: string, timings?: StageTimings, samples = 1, totalUs?: number): void {
    const m = this.model(model, version);
    if (outcome === 'success') {
      if (timings === undefined) throw new TensorwireError('INTERNAL', `recordRequest(${model}, ${version}): a success needs its stage timings`);
      m.recordSuccess(timings, samples, totalUs);
    } else {
      m.recordFailure(reason);
    }
  }

  /** Records one executed batch of `batchSize` samples. */
  recordBatch(model: string, version: string, batchSize: number): void {
    this.model(model, version).recordBatch(batchSize);
  }

  /** A request arrived (in-flight gauge +1). Pair with requestFinished(). */
  requestStarted(): void {
    this.inflight++;
  }

  /** A request was answered or dropped (in-flight gauge -1). */
  requestFinished(): void {
    if (this.inflight > 0) this.inflight--;
  }

  /** Sets the version's state: its `state` series is 1, the other states 0. */
  setModelState(model: string, version: string, state: VersionState): void {
    for (const s of MODEL_STATES) this.modelState.set({ model, version, state: s }, s === state ? 1 : 0);
  }

  /** Sets the bytes a version holds on the host and on the GPU. */
  setModelMemory(model: string, version: string, memory: ModelMemory): void {
    this.modelMemory.set({ model, version, device: 'host' }, memory.host);
    this.modelMemory.set({ model, version, device: 'gpu' }, memory.gpu);
  }

  /** Sets pinned memory figures (ignored while a pinned memory provider is registered). */
  setPinnedMemory(usedBytes: number, totalBytes: number): void {
    this.pinned = { usedBytes, totalBytes };
  }

  /** Reads pinned memory from `fn` at every scrape from now on. */
  registerPinnedMemoryProvider(fn: PinnedMemoryProvider): void {
    this.pinnedProvider = fn;
  }

  /** Adds a queue-depth provider read at every scrape; returns a function that removes it. */
  registerQueueDepthProvider(fn: QueueDepthProvider): () => void {
    this.queueProviders.add(fn);
    return () => {
      this.queueProviders.delete(fn);
    };
  }

  /**
   * Registers the GPU gauges (`tensorwire_gpu_utilization_ratio`, `tensorwire_gpu_memory_bytes`)
   * fed by `fn`. Only once per registry: a machine without a GPU never has these series.
   */
  registerGpuProvider(fn: GpuProvider): void {
    if (this.gpuProvider) throw new TensorwireError('INTERNAL', 'a GPU provider is already registered on this metrics registry');
    this.gpuProvider = fn;
    new Gauge({
      name: 'tensorwire_gpu_utilization_ratio',
      help: 'GPU busy fraction (0..1) as NVML reports it.',
      labelNames: ['gpu'],
      registers: [this.registry],
      collect() {
        // NVML queries take microseconds: each gauge samples on its own, so each is right alone.
        this.reset();
        for (const s of fn()) this.set({ gpu: s.gpu }, s.utilization);
      },
    });
    new Gauge({
      name: 'tensorwire_gpu_memory_bytes',
      help: 'GPU memory as NVML reports it: used and total.',
      labelNames: ['gpu', 'state'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const s of fn()) {
          this.set({ gpu: s.gpu, state: 'used' }, s.memoryUsedBytes);
          this.set({ gpu: s.gpu, state: 'total' }, s.memoryTotalBytes);
        }
      },
    });
  }

  /** Forgets every series of a model version (after it is unloaded for good). */
  removeModel(model: string, version: string): void {
    this.models.get(model)?.delete(version);
    const match = { model, version };
    this.families.requests.remove(match);
    this.families.inferences.remove(match);
    this.families.executions.remove(match);
    this.families.duration.remove(match);
    this.families.batch.remove(match);
    this.families.isolations.remove(match);
    this.families.isolationRuns.remove(match);
    for (const s of MODEL_STATES) this.modelState.remove({ model, version, state: s });
    this.modelMemory.remove({ model, version, device: 'host' });
    this.modelMemory.remove({ model, version, device: 'gpu' });
  }

  /** The Prometheus text exposition (what GET /metrics answers) and its content type. */
  async exposition(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}

/**
 * Registers every tensorwire metric (and, unless disabled, prom-client's process/Node.js
 * defaults, event-loop lag included) on `registry` (a new one if omitted).
 * Throws if the registry already holds a metric of the same name.
 */
export function createMetrics(registry: Registry = new Registry(), options: MetricsOptions = {}): TensorwireMetrics {
  return new TensorwireMetrics(registry, options);
}
