/**
 * The scheduler of one model version: a DynamicBatcher of pending requests driven by one
 * timer, feeding the engine's staging slots. It owns timing (when to ask the policy again),
 * the copies in and out of slots, cancellation and shutdown; the policy itself lives in
 * DynamicBatcher.
 *
 * Ownership: once `infer` is called the runner owns the request until its promise settles,
 * exactly once: with the outputs, or with a TensorwireError (QUEUE_FULL, INVALID_INPUT,
 * DEADLINE_EXCEEDED, CANCELLED, UNAVAILABLE, ENGINE_FAILURE, INTERNAL). The request's input bytes are
 * read only while its batch is staged; the caller may reuse them once the promise settles.
 * Timeouts (queue policy) apply while a request is queued, as in Triton; once its batch runs
 * only cancellation ends it early.
 *
 * A batch of several requests that fails in the engine is taken apart (batch-isolation.ts):
 * its requests wait again, this time to be re-run in parts, so that only the ones that make
 * the run fail get the error. A part ready to run takes a free staging slot before the queue
 * does (its requests came first, and the work per failed batch is bounded); each failed
 * batch runs one part at a time, so while parts run the queue still gets the other slots. A
 * re-run skips requests whose client left and answers DEADLINE_EXCEEDED to those whose
 * timeout passed meanwhile.
 *
 * Hot path cost: per request one promise, one pending object, one queue entry and one output
 * buffer; no timers and no closures per request (an abort signal gets the pending object itself
 * as its listener). Scheduling after an enqueue is deferred to setImmediate, once per event-loop
 * turn, so requests that arrive in the same turn can share a batch.
 */
import { TensorwireError, isTensorwireError, toTensorwireError } from '../errors';
import type { BatchOutput, BatchResult } from '../engine/types';
import type { InferRequest, StageTimings } from '../protocol/types';
import { checkInputBytes, gatherInputs, resolveInputOrder, resolveOutputIndices, scatterOutputs, type BatchMember } from './batch-io';
import { BatchIsolation, worthIsolating, type IsolationGroup } from './batch-isolation';
import { DEFAULT_BATCHER_CONFIG, mergeBatcherConfig, type BatcherConfig, type BatcherConfigPatch } from './batcher-config';
import { monotonicClock, type Clock } from './clock';
import { DynamicBatcher, type BatchEntry } from './dynamic-batcher';
import type { BatchRunnerListener, BatchRunnerOptions, RunnerModel, RunnerResult, RunnerSlot, ValidatedRequest } from './runner-types';
import { WakeTimer } from './wake-timer';

export type { BatchRunnerListener, BatchRunnerOptions, RunnerModel, RunnerResult, RunnerSlot, ValidatedRequest } from './runner-types';

const QUEUED = 0;
const RUNNING = 1;
/** Its batch failed; it waits to be re-run in a part of that batch. */
const WAITING_RERUN = 2;
const SETTLED = 3;

/**
 * Failed batches being taken apart at once; a batch that fails beyond that fails as a whole,
 * so a flood of bad requests costs bounded memory and re-runs instead of a growing backlog.
 */
export const MAX_ISOLATIONS = 8;

/** A request from infer() until its promise settles. Doubles as its abort listener. */
class PendingRequest implements BatchMember {
  state = QUEUED;
  entry!: BatchEntry<PendingRequest>;
  batch: RunningBatch | null = null;
  resolve!: (r: RunnerResult) => void;
  reject!: (e: TensorwireError) => void;

  constructor(
    readonly runner: BatchRunner,
    readonly request: InferRequest,
    readonly batchSize: number,
    readonly inputOrder: Int32Array | null,
    readonly outputIndices: Int32Array | null,
    readonly signal: AbortSignal | undefined,
  ) {}

  get wantsResult(): boolean {
    return this.state === RUNNING;
  }

  /** AbortSignal listener (EventListenerObject), so no closure per request. */
  handleEvent(): void {
    this.runner.abort(this);
  }
}

/** A batch between staging and completion. */
interface RunningBatch {
  slot: RunnerSlot;
  members: PendingRequest[];
  batchSize: number;
  startUs: number;
  copyInUs: number;
  /** Members still waiting for the result; at 0 the run is cancelled. */
  live: number;
  /** The failed batch this one is a part of, when it is a re-run. */
  isolation: BatchIsolation<PendingRequest> | null;
}

/** Per-model-version scheduler; see the file comment. */
export class BatchRunner {
  private readonly batcher: DynamicBatcher<PendingRequest>;
  private readonly clock: Clock;
  private readonly listener: BatchRunnerListener | undefined;
  private readonly name: string;
  private readonly batchable: boolean;
  private readonly inputCount: number;
  private readonly busyPerInstance: Int32Array;
  private busyInstances = 0;
  private inflightBatches = 0;
  private inflightRequests = 0;
  /** Requests of failed batches waiting for their re-run. */
  private waitingRerun = 0;
  /** Failed batches being taken apart, oldest first. */
  private readonly isolations: BatchIsolation<PendingRequest>[] = [];
  private closedReason: string | null = null;
  private immediate: NodeJS.Immediate | null = null;
  private readonly wake: WakeTimer;
  private drainWaiters: (() => void)[] = [];
  private readonly onImmediate = (): void => {
    this.immediate = null;
    this.schedule();
  };

  constructor(
    readonly model: RunnerModel,
    options: BatchRunnerOptions = {},
  ) {
    this.clock = options.clock ?? monotonicClock;
    this.listener = options.listener;
    this.name = options.name ?? 'model';
    this.batchable = model.maxBatchSize > 0;
    this.inputCount = model.metadata.inputs.length;
    this.busyPerInstance = new Int32Array(model.instanceCount);
    this.wake = new WakeTimer(this.clock, () => this.schedule());
    const base = mergeBatcherConfig(DEFAULT_BATCHER_CONFIG, { maxBatchSize: model.maxBatchSize });
    this.batcher = new DynamicBatcher<PendingRequest>(mergeBatcherConfig(base, options.config), {
      clock: this.clock,
      maxBatchSizeLimit: model.maxBatchSize,
    });
  }

  /** The batching config in force. */
  get config(): Readonly<BatcherConfig> {
    return this.batcher.config;
  }

  /**
   * Queues one validated request and resolves with its outputs once its batch ran. Rejects
   * (never throws) with QUEUE_FULL, INVALID_INPUT (bad priority, unknown input/output),
   * DEADLINE_EXCEEDED, CANCELLED (signal aborted), UNAVAILABLE (closed) or the batch's error.
   */
  infer(request: InferRequest, validated: ValidatedRequest, signal?: AbortSignal): Promise<RunnerResult> {
    let pending: PendingRequest;
    try {
      if (this.closedReason !== null) throw this.unavailable();
      if (signal?.aborted) throw new TensorwireError('CANCELLED', 'request cancelled before it was queued');
      const meta = this.model.metadata;
      checkInputBytes(request, this.batchable, validated.batchSize);
      pending = new PendingRequest(
        this,
        request,
        this.batchable ? validated.batchSize : 1,
        resolveInputOrder(meta.inputs, request),
        resolveOutputIndices(meta.outputs, request),
        signal,
      );
      pending.entry = this.batcher.enqueue({
        payload: pending,
        batchSize: pending.batchSize,
        compatKey: validated.compatKey,
        priority: request.priority,
        timeoutUs: request.timeoutUs,
      });
    } catch (e) {
      const err = toTensorwireError(e);
      this.listener?.onComplete('failure', err.code, undefined);
      return Promise.reject(err);
    }
    const promise = new Promise<RunnerResult>((resolve, reject) => {
      pending.resolve = resolve;
      pending.reject = reject;
    });
    signal?.addEventListener('abort', pending, { once: true });
    this.listener?.onEnqueue();
    if (this.immediate === null) this.immediate = setImmediate(this.onImmediate);
    return promise;
  }

  /**
   * Applies a live batching change (validated; INVALID_INPUT changes nothing). Queued requests
   * whose batch size exceeds a new, smaller max_batch_size are rejected with INVALID_INPUT.
   */
  updateConfig(patch: BatcherConfigPatch): void {
    const dropped = this.batcher.updateConfig(patch);
    if (dropped.length > 0) {
      this.listener?.onDequeue(dropped.length);
      const max = this.batcher.config.maxBatchSize;
      for (const e of dropped) this.fail(e.payload, new TensorwireError('INVALID_INPUT', `batch size ${e.batchSize} exceeds the new max_batch_size ${max} of ${this.name}`));
    }
    this.schedule();
  }

  /** Requests waiting in the queue. */
  queueDepth(): number {
    return this.batcher.size();
  }

  /** Requests whose batch is being staged or run, or that wait to be re-run after their batch failed. */
  inflight(): number {
    return this.inflightRequests + this.waitingRerun;
  }

  /** Queued requests of each non-empty priority level, highest first (level 0: the model has no priorities). */
  queueDepthByLevel(): { level: number; depth: number }[] {
    return this.batcher.sizeByLevel();
  }

  /** How long the oldest queued request has waited, microseconds. */
  oldestWaitUs(): number {
    return this.batcher.oldestWaitUs();
  }

  /** Resolves once the queue is empty and no batch runs (new requests may still arrive unless closed). */
  drain(): Promise<void> {
    if (this.idle()) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /**
   * Stops taking requests: every queued request, every request waiting for a re-run after its
   * batch failed, and every later `infer` rejects with UNAVAILABLE naming `reason`. Batches
   * already running finish and answer normally.
   */
  close(reason: string): void {
    if (this.closedReason !== null) return;
    this.closedReason = reason;
    if (this.immediate !== null) clearImmediate(this.immediate);
    this.immediate = null;
    this.wake.clear();
    const queued = this.batcher.removeAll();
    if (queued.length > 0) this.listener?.onDequeue(queued.length);
    for (const e of queued) this.fail(e.payload, this.unavailable());
    for (const iso of this.isolations) this.failGroups(iso.takeAll(), this.unavailable());
    this.startRerun(); // only reports the emptied isolations that run nothing (and forgets them)
    this.checkDrained();
  }

  /** @internal the abort listener of a pending request. */
  abort(p: PendingRequest): void {
    if (p.state === QUEUED) {
      if (!this.batcher.remove(p.entry)) return;
      this.listener?.onDequeue(1);
      this.fail(p, new TensorwireError('CANCELLED', 'request cancelled while queued'));
      this.checkDrained();
    } else if (p.state === RUNNING) {
      // Its batch runs for others too: answer now, drop the rows when the batch completes.
      const batch = p.batch!;
      this.fail(p, new TensorwireError('CANCELLED', 'request cancelled while its batch ran'));
      if (--batch.live === 0) batch.slot.cancel();
    } else if (p.state === WAITING_RERUN) {
      // Its group skips it when its turn comes.
      this.waitingRerun--;
      this.fail(p, new TensorwireError('CANCELLED', 'request cancelled while it waited to be re-run after its batch failed'));
      this.checkDrained();
    }
  }

  /** Expires deadlines, then stages batches while slots are free and the policy says go. */
  private schedule(): void {
    this.startRerun();
    if (this.closedReason !== null) {
      this.checkDrained();
      return;
    }
    const batcher = this.batcher;
    if (batcher.size() > 0) {
      const expired = batcher.expire();
      if (expired.length > 0) {
        this.listener?.onDequeue(expired.length);
        const now = this.clock.nowUs();
        for (const e of expired) {
          this.fail(e.payload, new TensorwireError('DEADLINE_EXCEEDED', `request timed out after ${now - e.enqueueUs} us in the queue of ${this.name}`));
        }
      }
    }
    while (batcher.size() > 0) {
      // startRerun took the free slots it could use: when a part still waits, none is free.
      if (this.model.freeSlotCount() === 0) {
        // A completion calls us again; only a deadline can need us sooner.
        this.wake.arm(batcher.nextDeadlineUs());
        return;
      }
      const decision = batcher.next(this.model.instanceCount - this.busyInstances, this.inflightBatches);
      if (decision.kind === 'wait') {
        this.wake.arm(decision.untilUs);
        return;
      }
      this.stage(decision.entries, decision.batchSize);
    }
    this.wake.clear();
    this.checkDrained();
  }

  /** Takes a batch the policy chose out of the queue and starts it. */
  private stage(entries: BatchEntry<PendingRequest>[], batchSize: number): void {
    const members = new Array<PendingRequest>(entries.length);
    for (let k = 0; k < entries.length; k++) {
      const p = entries[k]!.payload;
      p.state = RUNNING;
      members[k] = p;
    }
    this.listener?.onDequeue(entries.length);
    this.start(members, batchSize, null);
  }

  /**
   * Starts parts of failed batches, oldest batch first, while slots are free. Parts whose
   * requests all left are skipped; finished isolations are reported and forgotten.
   */
  private startRerun(): void {
    let i = 0;
    while (i < this.isolations.length) {
      const iso = this.isolations[i]!;
      if (iso.finished) {
        this.isolations.splice(i, 1);
        this.listener?.onIsolation?.(iso.outcome, iso.runs);
        continue;
      }
      if (!iso.hasNext()) {
        i++;
        continue;
      }
      // A completion calls us again.
      if (this.model.freeSlotCount() === 0) return;
      const group = iso.next()!;
      const now = this.clock.nowUs();
      const members: PendingRequest[] = [];
      let rows = 0;
      for (const p of group.members) {
        if (p.state !== WAITING_RERUN) continue;
        this.waitingRerun--;
        const e = p.entry;
        if (this.batcher.isOverdue(e, now)) {
          this.fail(p, new TensorwireError('DEADLINE_EXCEEDED', `request timed out after ${now - e.enqueueUs} us: its batch failed and it waited to be re-run in ${this.name}`));
          continue;
        }
        p.state = RUNNING;
        members.push(p);
        rows += p.batchSize;
      }
      if (members.length === 0) continue;
      iso.started();
      this.start(members, rows, iso);
    }
  }

  /** Copies a batch into a slot and runs it. */
  private start(members: PendingRequest[], batchSize: number, isolation: BatchIsolation<PendingRequest> | null): void {
    const slot = this.model.acquireSlot();
    if (slot === undefined) {
      // freeSlotCount() said otherwise a moment ago on the same thread: a bug, not a load issue.
      const err = new TensorwireError('INTERNAL', `no free staging slot on ${this.name} although one was reported`);
      if (isolation !== null) this.failGroups(isolation.failed(members, err));
      else for (const p of members) this.fail(p, err);
      return;
    }
    const startUs = this.clock.nowUs();
    const batch: RunningBatch = { slot, members, batchSize, startUs, copyInUs: 0, live: members.length, isolation };
    for (const p of members) p.batch = batch;
    this.inflightBatches++;
    this.inflightRequests += members.length;
    if (this.busyPerInstance[slot.instance]!++ === 0) this.busyInstances++;
    let run: Promise<BatchResult>;
    try {
      const shapes = gatherInputs(slot, this.inputCount, members, this.batchable, batchSize);
      batch.copyInUs = this.clock.nowUs() - startUs;
      run = slot.run(shapes);
    } catch (e) {
      // schedule() is our caller and goes on by itself.
      this.finishFailed(batch, e, false);
      return;
    }
    run.then(
      (result) => this.finish(batch, result),
      (e: unknown) => this.finishFailed(batch, e),
    );
  }

  /** A batch ran: copy each member's rows out, free the slot, schedule the next, answer. */
  private finish(batch: RunningBatch, result: BatchResult): void {
    const t0 = this.clock.nowUs();
    let outputs: (BatchOutput[] | null)[];
    try {
      outputs = scatterOutputs(result.outputs, batch.members, this.batchable, batch.batchSize);
    } catch (e) {
      this.finishFailed(batch, e);
      return;
    }
    const copyOutUs = this.clock.nowUs() - t0;
    this.retire(batch);
    batch.isolation?.succeeded();
    // Start the next batch before answering: the instance is idle until we do.
    this.schedule();
    const timing = result.timing;
    const computeInputUs = batch.copyInUs + timing.inputUs;
    const computeOutputUs = timing.outputUs + copyOutUs;
    this.listener?.onBatch(batch.batchSize, { inputUs: computeInputUs, inferUs: timing.inferUs, outputUs: computeOutputUs });
    const members = batch.members;
    for (let k = 0; k < members.length; k++) {
      const p = members[k]!;
      if (p.state !== RUNNING) continue;
      const timings: StageTimings = {
        queueUs: batch.startUs - p.entry.enqueueUs,
        computeInputUs,
        computeInferUs: timing.inferUs,
        computeOutputUs,
      };
      this.settle(p);
      this.listener?.onComplete('success', undefined, timings);
      p.resolve({ outputs: outputs[k]!, timings });
    }
  }

  /**
   * A batch failed (staging, run or split). A batch of several requests that failed for a
   * reason that may be one request's fault is taken apart (see the file comment); otherwise
   * every member still waiting gets the error.
   */
  private finishFailed(batch: RunningBatch, e: unknown, reschedule = true): void {
    const err = isTensorwireError(e)
      ? e
      : new TensorwireError('ENGINE_FAILURE', `${this.name}: batch of ${batch.batchSize} failed: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    this.retire(batch);
    // Cancelled members were answered already and are not re-run.
    const live = batch.members.filter((p) => p.state === RUNNING);
    if (batch.isolation !== null) {
      this.failGroups(batch.isolation.failed(live, err));
      // Shut down meanwhile: the parts just queued will not run.
      if (this.closedReason !== null) this.failGroups(batch.isolation.takeAll(), this.unavailable());
      for (const p of live) if (p.state === RUNNING) this.waitForRerun(p);
    } else if (batch.members.length > 1 && live.length > 0 && worthIsolating(err.code) && this.closedReason === null) {
      if (this.isolations.length < MAX_ISOLATIONS) {
        for (const p of live) this.waitForRerun(p);
        this.isolations.push(new BatchIsolation(live, err));
      } else {
        this.listener?.onIsolation?.('skipped', 0);
        for (const p of live) this.fail(p, err);
      }
    } else {
      for (const p of live) this.fail(p, err);
    }
    if (reschedule) this.schedule();
  }

  /** Answers every member of `groups` that still waits with its group's error (or `override`, when given). */
  private failGroups(groups: IsolationGroup<PendingRequest>[], override?: TensorwireError): void {
    for (const g of groups) {
      for (const p of g.members) {
        if (p.state === WAITING_RERUN) this.waitingRerun--;
        if (p.state === RUNNING || p.state === WAITING_RERUN) this.fail(p, override ?? g.error);
      }
    }
  }

  private waitForRerun(p: PendingRequest): void {
    p.state = WAITING_RERUN;
    p.batch = null;
    this.waitingRerun++;
  }

  /** Gives the batch's slot back and updates the in-flight counts. */
  private retire(batch: RunningBatch): void {
    batch.slot.release();
    this.inflightBatches--;
    this.inflightRequests -= batch.members.length;
    if (--this.busyPerInstance[batch.slot.instance]! === 0) this.busyInstances--;
  }

  /** Marks `p` settled and detaches its abort listener; the caller resolves or rejects. */
  private settle(p: PendingRequest): void {
    p.state = SETTLED;
    p.batch = null;
    p.signal?.removeEventListener('abort', p);
  }

  private fail(p: PendingRequest, err: TensorwireError): void {
    if (p.state === SETTLED) return;
    this.settle(p);
    this.listener?.onComplete('failure', err.code, undefined);
    p.reject(err);
  }

  private unavailable(): TensorwireError {
    return new TensorwireError('UNAVAILABLE', `${this.name} is not available: ${this.closedReason}`, { retryAfterSeconds: 1 });
  }

  /** Nothing queued, running or waiting for a re-run. */
  private idle(): boolean {
    return this.batcher.size() === 0 && this.inflightBatches === 0 && this.isolations.length === 0;
  }

  private checkDrained(): void {
    if (this.drainWaiters.length === 0 || !this.idle()) return;
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }
}
