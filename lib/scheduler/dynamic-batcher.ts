/**
 * The dynamic batching policy of one model version: Triton's dynamic batcher semantics
 * (max_batch_size, preferred_batch_size, max_queue_delay_microseconds, priority levels, queue
 * policies with timeouts) plus tensorwire's idle rule. A pure class: no timers, time comes from
 * an injected Clock, so the policy is unit-tested by moving a fake clock.
 *
 * Ownership: `enqueue` either throws (the caller still owns the request) or returns the entry,
 * which the batcher then holds until it leaves through `next` (dispatched), `expire` (timed out
 * under REJECT), `remove` (withdrawn), `updateConfig` (no longer fits) or `removeAll`.
 *
 * ## When a batch goes (`next`)
 * The candidate batch starts at the oldest entry of the highest non-empty priority level and
 * takes, in priority order then FIFO, the entries whose compatKey equals the first one's, as
 * long as the batch sizes add up to at most maxBatchSize. Then, in this order:
 * 1. If an instance is idle and the oldest entry has waited maxQueueDelayUs, the whole
 *    candidate goes (Triton: an expired delay sends whatever is pending).
 * 2. If a prefix of the candidate adds up exactly to a preferred batch size, the prefix of the
 *    largest such size goes (Triton: preferred sizes win over max_batch_size).
 * 3. If the candidate is full (maxBatchSize reached, or the next compatible entry does not
 *    fit), it goes (Triton).
 * 4. If an instance is idle and no batch is in flight at all, the candidate goes as it is.
 * 5. Otherwise wait.
 * Rule 4 is tensorwire's "idle rule". Waiting only pays when the requests that arrive during
 * the wait would otherwise have to run in a later batch on busy hardware. When nothing is in
 * flight the hardware is idle: running what is queued now costs nothing, and whatever arrives
 * meanwhile forms the next batch, which the completion of this one dispatches at once. So with
 * nothing in flight we never wait; under load batches still grow by themselves, because
 * requests pile up while a batch runs. With another batch in flight (several instances) the
 * idle instance waits up to maxQueueDelayUs as in Triton, since that wait can make both
 * batches larger. With no idle instance (the caller has a free staging slot on a busy
 * instance) only a full or preferred batch goes: staging it early (double buffering) is free,
 * while staging a partial batch would lock out requests that arrive before the instance frees
 * up; the delay is not checked then, because the batch could not start sooner anyway.
 */
import { TensorwireError } from '../errors';
import type { BatcherConfig, BatcherConfigPatch, QueuePolicy } from './batcher-config';
import { mergeBatcherConfig, queuePolicyOf } from './batcher-config';
import type { Clock } from './clock';
import { monotonicClock } from './clock';
import { BatchEntry, DeadlineIndex, EntryList } from './entry-queue';

export { BatchEntry } from './entry-queue';

/** What to enqueue: the caller's payload and what the policy needs to know about it. */
export interface EnqueueRequest<T> {
  payload: T;
  /** Rows this request adds to a batch (its batch dimension); 1 for a model that does not batch. */
  batchSize: number;
  /** Requests batch together only when their keys are equal (same non-batch dimensions, same inputs). */
  compatKey: string;
  /** 1 is the highest level; 0 or undefined = the default level. */
  priority?: number;
  /** Request timeout in microseconds; used only when the level's policy allows overrides. */
  timeoutUs?: number;
}

/** What `next` decided: run these entries now, or call again at `untilUs` (null: only when something changes). */
export type BatchDecision<T> =
  | { kind: 'batch'; entries: BatchEntry<T>[]; batchSize: number }
  | { kind: 'wait'; untilUs: number | null };

/** Options of a batcher. */
export interface DynamicBatcherOptions {
  clock?: Clock;
  /** Largest maxBatchSize the config may ever set (the staging slots' capacity); unlimited if absent. */
  maxBatchSizeLimit?: number;
}

/**
 * One priority level's queue. Levels exist only while they hold entries: a config may allow
 * many levels (priority_levels), but memory and scan time follow the levels in use.
 */
interface Level<T> {
  /** 1..priorityLevels, or 0 when there are no priorities. */
  readonly n: number;
  main: EntryList<T>;
  /** Entries that timed out under the DELAY action: served after every entry of `main`. */
  delayed: EntryList<T>;
  policy: QueuePolicy;
}

const NO_ENTRIES: readonly never[] = Object.freeze([]);

/** Beyond this many skipped (incompatible) entries, a candidate batch stops growing. */
const SCAN_SLACK = 256;

/** Triton-style dynamic batcher of one model version; see the file comment for the exact policy. */
export class DynamicBatcher<T> {
  private cfg: BatcherConfig;
  private readonly clock: Clock;
  private readonly limit: number;
  /** Non-empty levels, highest priority (lowest number) first. */
  private levels: Level<T>[] = [];
  private readonly levelByNumber = new Map<number, Level<T>>();
  private readonly deadlines = new DeadlineIndex<T>();
  private count = 0;
  /** Sum of the queued entries' batch sizes. */
  private units = 0;
  /** Largest batch, at least 1 (maxBatchSize 0 = one request per run). */
  private capacity = 1;
  /** isPreferred[n] is 1 when n is a preferred batch size. */
  private isPreferred = new Uint8Array(2);
  /** The smallest batch size that can trigger a dispatch without the idle rule. */
  private minTrigger = 1;

  constructor(config: BatcherConfig, options: DynamicBatcherOptions = {}) {
    this.clock = options.clock ?? monotonicClock;
    this.limit = options.maxBatchSizeLimit ?? Number.MAX_SAFE_INTEGER;
    this.cfg = this.checkLimit(mergeBatcherConfig(config));
    this.applyConfig([]);
  }

  /** The config in force (a copy is not made: do not mutate). */
  get config(): Readonly<BatcherConfig> {
    return this.cfg;
  }

  /**
   * Queues a request. Throws TensorwireError QUEUE_FULL (retry after 1 s) when its level is
   * full, INVALID_INPUT for a priority that is not an integer >= 0 (0, undefined or one above
   * priorityLevels: the default level), a batch size outside 1..maxBatchSize or a negative timeout.
   */
  enqueue(req: EnqueueRequest<T>): BatchEntry<T> {
    const { batchSize, priority, timeoutUs } = req;
    if (!Number.isSafeInteger(batchSize) || batchSize < 1 || batchSize > this.capacity) {
      throw new TensorwireError('INVALID_INPUT', `batch size: expected 1..${this.capacity} (max_batch_size), got ${batchSize}`);
    }
    let level = this.cfg.defaultPriorityLevel;
    if (priority !== undefined) {
      // Triton reads priority as an unsigned integer: anything else is a bad request.
      if (!Number.isSafeInteger(priority) || priority < 0) {
        throw new TensorwireError('INVALID_INPUT', `priority: expected an integer >= 0, got ${priority}`);
      }
      // Triton (InferenceRequest::SetPriority): 0, or a level the model does not have (any
      // level when it has none), is the model's default level, not an error.
      if (priority !== 0 && priority <= this.cfg.priorityLevels) level = priority;
    }
    const existing = this.levelByNumber.get(level);
    const policy = existing?.policy ?? queuePolicyOf(this.cfg, level);
    if (policy.maxQueueSize > 0 && existing !== undefined && existing.main.count + existing.delayed.count >= policy.maxQueueSize) {
      throw new TensorwireError('QUEUE_FULL', `queue full: priority level ${level} holds its max_queue_size of ${policy.maxQueueSize} requests`, {
        retryAfterSeconds: 1,
      });
    }
    let timeout = policy.defaultTimeoutUs;
    if (timeoutUs !== undefined && timeoutUs !== 0) {
      if (!(timeoutUs > 0) || !Number.isFinite(timeoutUs)) {
        throw new TensorwireError('INVALID_INPUT', `timeout: expected a positive number of microseconds, got ${timeoutUs}`);
      }
      // Triton: an override may shorten the default timeout, never lengthen it.
      if (policy.allowTimeoutOverride) timeout = timeout === 0 ? timeoutUs : Math.min(timeout, timeoutUs);
    }
    const now = this.clock.nowUs();
    const entry = new BatchEntry<T>(req.payload, batchSize, req.compatKey, level, now, timeout > 0 ? now + timeout : 0);
    (existing ?? this.openLevel(level)).main.push(entry);
    this.count++;
    this.units += batchSize;
    if (entry.deadlineUs > 0) this.deadlines.add(entry);
    return entry;
  }

  /** Withdraws a queued entry (its client went away). False when it is no longer queued. */
  remove(entry: BatchEntry<T>): boolean {
    if (entry.state !== 'queued' || entry.list === null) return false;
    this.unqueue(entry, 'removed');
    return true;
  }

  /**
   * Decides what to run now, given how many instances have nothing in flight and how many
   * batches are in flight in all. Call `expire` first so timed-out entries are not batched.
   * Call it whenever a staging slot is free and something changed (enqueue, completion,
   * the `untilUs` it last returned).
   */
  next(idleInstances: number, inflightBatches = 0): BatchDecision<T> {
    if (this.count === 0) return { kind: 'wait', untilUs: null };
    const head = this.head()!;
    const delayDue = head.enqueueUs + this.cfg.maxQueueDelayUs;
    // The delay matters only to an idle instance; skip the clock read otherwise.
    const delayExceeded = idleInstances > 0 && this.clock.nowUs() >= delayDue;
    const idleGo = idleInstances > 0 && (inflightBatches === 0 || delayExceeded);

    // Fast path: too few rows queued for any full or preferred batch.
    if (this.units < this.minTrigger && !idleGo) return this.wait(idleInstances > 0 ? delayDue : null);

    const key = head.compatKey;
    const capacity = this.capacity;
    const isPreferred = this.isPreferred;
    const taken: BatchEntry<T>[] = [];
    let total = 0;
    let full = false;
    let preferredCount = 0;
    let preferredSize = 0;
    let skipped = 0;
    scan: for (const lv of this.levels) {
      for (let list = lv.main; ; list = lv.delayed) {
        for (let e = list.head; e !== null; e = e.next) {
          if (e.compatKey !== key) {
            if (++skipped > SCAN_SLACK) break scan;
            continue;
          }
          if (total + e.batchSize > capacity) {
            full = true;
            break scan;
          }
          taken.push(e);
          total += e.batchSize;
          if (isPreferred[total] === 1) {
            preferredCount = taken.length;
            preferredSize = total;
          }
          if (total === capacity) {
            full = true;
            break scan;
          }
        }
        if (list === lv.delayed) break;
      }
    }

    // Triton: once the delay has run out, everything pending goes, preferred size or not.
    if (idleGo && delayExceeded) return this.dispatch(taken, total);
    if (preferredCount > 0) {
      taken.length = preferredCount;
      return this.dispatch(taken, preferredSize);
    }
    if (full || idleGo) return this.dispatch(taken, total);
    return this.wait(idleInstances > 0 ? delayDue : null);
  }

  /**
   * Handles entries whose deadline passed: under REJECT they leave the queue and are returned
   * (the caller answers DEADLINE_EXCEEDED); under DELAY they move behind every entry of their
   * level that has not timed out, and stay queued with no further deadline.
   */
  expire(): readonly BatchEntry<T>[] {
    if (this.count === 0) return NO_ENTRIES;
    const now = this.clock.nowUs();
    let rejected: BatchEntry<T>[] | null = null;
    for (let e = this.deadlines.popExpired(now); e !== null; e = this.deadlines.popExpired(now)) {
      const lv = this.levelOf(e);
      if (lv.policy.timeoutAction === 'DELAY') {
        lv.main.unlink(e);
        e.delayed = true;
        lv.delayed.push(e);
      } else {
        this.unqueue(e, 'removed');
        (rejected ??= []).push(e);
      }
    }
    return rejected ?? NO_ENTRIES;
  }

  /**
   * True when `entry` (dispatched, waiting to run again) is past its deadline and its level
   * rejects timed-out requests; under DELAY it stays, as it would in the queue.
   */
  isOverdue(entry: BatchEntry<T>, nowUs: number): boolean {
    if (entry.delayed || entry.deadlineUs === 0 || nowUs < entry.deadlineUs) return false;
    const level = this.cfg.priorityLevels === 0 ? 0 : Math.min(Math.max(entry.level, 1), this.cfg.priorityLevels);
    return queuePolicyOf(this.cfg, level).timeoutAction === 'REJECT';
  }

  /** The earliest deadline among queued entries, or null. */
  nextDeadlineUs(): number | null {
    return this.deadlines.peek()?.deadlineUs ?? null;
  }

  /**
   * Applies a live config change (validated like `mergeBatcherConfig`; throws INVALID_INPUT and
   * changes nothing on a bad patch). Queued entries stay, at their level clamped into the new
   * range and in arrival order within it, keeping their deadlines; those whose batch size exceeds a smaller maxBatchSize are
   * removed and returned for the caller to reject.
   */
  updateConfig(patch: BatcherConfigPatch): readonly BatchEntry<T>[] {
    const merged = this.checkLimit(mergeBatcherConfig(this.cfg, patch));
    const entries: BatchEntry<T>[] = [];
    for (const lv of this.levels) {
      for (let e = lv.main.head; e !== null; e = e.next) entries.push(e);
      for (let e = lv.delayed.head; e !== null; e = e.next) entries.push(e);
    }
    // Levels may merge: keep arrival order within each (sort is stable, changes are rare).
    entries.sort((a, b) => a.enqueueUs - b.enqueueUs);
    this.cfg = merged;
    return this.applyConfig(entries);
  }

  /** Removes and returns every queued entry, in dispatch order (for shutdown). */
  removeAll(): readonly BatchEntry<T>[] {
    const out: BatchEntry<T>[] = [];
    // unqueue closes emptied levels: walk a copy.
    for (const lv of this.levels.slice()) {
      for (const list of [lv.main, lv.delayed]) {
        while (list.head !== null) {
          const e = list.head;
          this.unqueue(e, 'removed');
          out.push(e);
        }
      }
    }
    this.deadlines.clear();
    return out;
  }

  /** Number of queued requests. */
  size(): number {
    return this.count;
  }

  /** Queued requests of each non-empty level, highest priority first (level 0: there are no priorities). */
  sizeByLevel(): { level: number; depth: number }[] {
    return this.levels.map((lv) => ({ level: lv.n, depth: lv.main.count + lv.delayed.count }));
  }

  /** How long the oldest queued request has waited, microseconds; 0 when the queue is empty. */
  oldestWaitUs(): number {
    let oldest = Infinity;
    for (const lv of this.levels) {
      if (lv.main.head !== null && lv.main.head.enqueueUs < oldest) oldest = lv.main.head.enqueueUs;
      // Delayed entries are ordered by when they timed out, not by arrival: look at all of them.
      for (let e = lv.delayed.head; e !== null; e = e.next) if (e.enqueueUs < oldest) oldest = e.enqueueUs;
    }
    return oldest === Infinity ? 0 : Math.max(0, this.clock.nowUs() - oldest);
  }

  private checkLimit(config: BatcherConfig): BatcherConfig {
    if (config.maxBatchSize > this.limit) {
      throw new TensorwireError('INVALID_INPUT', `max_batch_size: ${config.maxBatchSize} exceeds the model's limit of ${this.limit}`);
    }
    return config;
  }

  /** Rebuilds levels and lookup tables from `this.cfg` and re-queues `entries` in order. */
  private applyConfig(entries: BatchEntry<T>[]): BatchEntry<T>[] {
    const cfg = this.cfg;
    this.capacity = Math.max(1, cfg.maxBatchSize);
    this.isPreferred = new Uint8Array(this.capacity + 1);
    for (const size of cfg.preferredBatchSizes) this.isPreferred[size] = 1;
    this.minTrigger = cfg.preferredBatchSizes.length > 0 ? Math.min(cfg.preferredBatchSizes[0]!, this.capacity) : this.capacity;

    // Levels are opened as entries need them (never one per configured level: priority_levels
    // may be large, and only the levels in use should cost anything).
    this.levels = [];
    this.levelByNumber.clear();
    const dropped: BatchEntry<T>[] = [];
    for (const e of entries) {
      e.list = null;
      e.prev = null;
      e.next = null;
      if (e.batchSize > this.capacity) {
        e.state = 'removed';
        this.count--;
        this.units -= e.batchSize;
        dropped.push(e);
        continue;
      }
      if (cfg.priorityLevels === 0) e.level = 0;
      else if (e.level === 0) e.level = cfg.defaultPriorityLevel;
      else e.level = Math.min(e.level, cfg.priorityLevels);
      const lv = this.levelByNumber.get(e.level) ?? this.openLevel(e.level);
      (e.delayed ? lv.delayed : lv.main).push(e);
    }
    return dropped;
  }

  /** The level of a queued entry (it exists while the entry is in it). */
  private levelOf(e: BatchEntry<T>): Level<T> {
    return this.levelByNumber.get(e.level)!;
  }

  /** Creates level `n` and inserts it in priority order: O(levels in use). */
  private openLevel(n: number): Level<T> {
    const lv: Level<T> = { n, main: new EntryList<T>(), delayed: new EntryList<T>(), policy: queuePolicyOf(this.cfg, n) };
    const levels = this.levels;
    let at = levels.length;
    while (at > 0 && levels[at - 1]!.n > n) at--;
    levels.splice(at, 0, lv);
    this.levelByNumber.set(n, lv);
    return lv;
  }

  /** Drops `lv` once it holds nothing, so idle levels cost no memory and no scan time. */
  private closeLevelIfEmpty(lv: Level<T>): void {
    if (lv.main.count + lv.delayed.count > 0) return;
    this.levelByNumber.delete(lv.n);
    const at = this.levels.indexOf(lv);
    if (at >= 0) this.levels.splice(at, 1);
  }

  /** The entry a batch starts from: the oldest of the highest non-empty level. */
  private head(): BatchEntry<T> | null {
    for (const lv of this.levels) {
      if (lv.main.head !== null) return lv.main.head;
      if (lv.delayed.head !== null) return lv.delayed.head;
    }
    return null;
  }

  private unqueue(e: BatchEntry<T>, state: 'dispatched' | 'removed'): void {
    const lv = this.levelOf(e);
    e.list!.unlink(e);
    this.closeLevelIfEmpty(lv);
    e.state = state;
    this.count--;
    this.units -= e.batchSize;
  }

  private dispatch(entries: BatchEntry<T>[], batchSize: number): BatchDecision<T> {
    for (const e of entries) this.unqueue(e, 'dispatched');
    this.deadlines.prune();
    return { kind: 'batch', entries, batchSize };
  }

  /** A wait until the earlier of `delayDueUs` (when not null) and the next deadline. */
  private wait(delayDueUs: number | null): BatchDecision<T> {
    const deadline = this.nextDeadlineUs();
    let until = delayDueUs;
    if (deadline !== null && (until === null || deadline < until)) until = deadline;
    return { kind: 'wait', untilUs: until };
  }
}
