import { describe, expect, it } from 'vitest';
import { TensorwireError } from '../lib/errors';
import { DEFAULT_BATCHER_CONFIG, mergeBatcherConfig, type BatcherConfigPatch } from '../lib/scheduler/batcher-config';
import { ManualClock } from '../lib/scheduler/clock';
import { DynamicBatcher, type BatchDecision } from '../lib/scheduler/dynamic-batcher';

function make(patch: BatcherConfigPatch = {}, limit?: number) {
  const clock = new ManualClock(1_000_000);
  const batcher = new DynamicBatcher<string>(mergeBatcherConfig(DEFAULT_BATCHER_CONFIG, patch), { clock, maxBatchSizeLimit: limit });
  const add = (payload: string, extra: { batchSize?: number; compatKey?: string; priority?: number; timeoutUs?: number } = {}) =>
    batcher.enqueue({ payload, batchSize: extra.batchSize ?? 1, compatKey: extra.compatKey ?? '', priority: extra.priority, timeoutUs: extra.timeoutUs });
  return { clock, batcher, add };
}

function payloads(d: BatchDecision<string>): string[] {
  if (d.kind !== 'batch') throw new Error(`expected a batch, got wait until ${d.untilUs}`);
  return d.entries.map((e) => e.payload);
}

function catchError(fn: () => unknown): TensorwireError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(TensorwireError);
    return e as TensorwireError;
  }
  throw new Error('expected a throw');
}

describe('DynamicBatcher: idle rule', () => {
  it('dispatches at once when an instance is idle and nothing is in flight, whatever the delay', () => {
    const { batcher, add } = make({ maxBatchSize: 8, maxQueueDelayUs: 1_000_000 });
    add('a');
    add('b');
    const d = batcher.next(1, 0);
    expect(payloads(d)).toEqual(['a', 'b']);
    expect(d.kind === 'batch' && d.batchSize).toBe(2);
    expect(batcher.size()).toBe(0);
  });

  it('with no idle instance only a full batch goes, even after the delay ran out', () => {
    const { batcher, add, clock } = make({ maxBatchSize: 4, maxQueueDelayUs: 100 });
    add('a');
    add('b');
    clock.advance(10_000);
    expect(batcher.next(0, 1)).toEqual({ kind: 'wait', untilUs: null });
    add('c');
    add('d');
    add('e');
    expect(payloads(batcher.next(0, 1))).toEqual(['a', 'b', 'c', 'd']);
    expect(batcher.size()).toBe(1);
  });

  it('an idle instance beside a busy one waits out max_queue_delay, then sends what is pending', () => {
    const { batcher, add, clock } = make({ maxBatchSize: 8, maxQueueDelayUs: 1000 });
    const t0 = clock.nowUs();
    add('a');
    clock.advance(400);
    add('b');
    expect(batcher.next(1, 1)).toEqual({ kind: 'wait', untilUs: t0 + 1000 });
    clock.advance(599);
    expect(batcher.next(1, 1).kind).toBe('wait');
    clock.advance(1);
    expect(payloads(batcher.next(1, 1))).toEqual(['a', 'b']);
  });

  it('with max_queue_delay 0 an idle instance takes whatever is queued even while another batch runs', () => {
    const { batcher, add } = make({ maxBatchSize: 8 });
    add('a');
    expect(payloads(batcher.next(1, 3))).toEqual(['a']);
  });

  it('returns wait with no wake-up when the queue is empty', () => {
    const { batcher } = make();
    expect(batcher.next(1, 0)).toEqual({ kind: 'wait', untilUs: null });
  });
});

describe('DynamicBatcher: batch sizes', () => {
  it('sends the largest preferred size reachable and leaves the rest queued', () => {
    const { batcher, add } = make({ maxBatchSize: 16, preferredBatchSizes: [2, 4], maxQueueDelayUs: 5000 });
    for (const p of ['a', 'b', 'c', 'd', 'e']) add(p);
    // A busy instance: only preferred/full batches may go; 4 is the largest preferred prefix of 5.
    expect(payloads(batcher.next(0, 1))).toEqual(['a', 'b', 'c', 'd']);
    expect(batcher.size()).toBe(1);
    expect(batcher.next(0, 1).kind).toBe('wait');
    add('f');
    expect(payloads(batcher.next(0, 1))).toEqual(['e', 'f']);
  });

  it('preferred sizes must be hit exactly by the running sum of request batch sizes', () => {
    const { batcher, add } = make({ maxBatchSize: 16, preferredBatchSizes: [4], maxQueueDelayUs: 5000 });
    add('three', { batchSize: 3 });
    add('two', { batchSize: 2 });
    expect(batcher.next(0, 1).kind).toBe('wait'); // sums 3, 5: 4 is never reached
    add('eleven', { batchSize: 11 });
    const d = batcher.next(0, 1); // 3 + 2 + 11 = 16 = max: full
    expect(payloads(d)).toEqual(['three', 'two', 'eleven']);
    expect(d.kind === 'batch' && d.batchSize).toBe(16);
  });

  it('a preferred size wins over a full batch, but an expired delay sends everything pending', () => {
    const { batcher, add, clock } = make({ maxBatchSize: 8, preferredBatchSizes: [4], maxQueueDelayUs: 100 });
    for (let i = 0; i < 10; i++) add(`r${i}`);
    expect(payloads(batcher.next(1, 1))).toEqual(['r0', 'r1', 'r2', 'r3']);
    clock.advance(100);
    expect(payloads(batcher.next(1, 1))).toEqual(['r4', 'r5', 'r6', 'r7', 'r8', 'r9']);
  });

  it('a batch never exceeds max_batch_size and stops at the first request that does not fit', () => {
    const { batcher, add } = make({ maxBatchSize: 5 });
    add('a', { batchSize: 2 });
    add('b', { batchSize: 2 });
    add('c', { batchSize: 2 });
    add('d', { batchSize: 1 });
    const first = batcher.next(0, 1);
    expect(payloads(first)).toEqual(['a', 'b']); // c does not fit: full, and d does not jump ahead of c
    expect(payloads(batcher.next(1, 0))).toEqual(['c', 'd']);
  });

  it('rejects a batch size outside 1..max_batch_size', () => {
    const { add } = make({ maxBatchSize: 4 });
    expect(catchError(() => add('big', { batchSize: 5 })).message).toBe('batch size: expected 1..4 (max_batch_size), got 5');
    expect(catchError(() => add('zero', { batchSize: 0 })).code).toBe('INVALID_INPUT');
  });

  it('max_batch_size 0 (model does not batch) runs one request per batch', () => {
    const { batcher, add } = make({ maxBatchSize: 0 });
    add('a');
    add('b');
    expect(payloads(batcher.next(0, 1))).toEqual(['a']);
    expect(payloads(batcher.next(0, 1))).toEqual(['b']);
  });
});

describe('DynamicBatcher: compatibility, order, priorities', () => {
  it('batches only entries with the same compatKey, in FIFO order', () => {
    const { batcher, add } = make({ maxBatchSize: 8 });
    add('a1', { compatKey: 'seq=16' });
    add('b1', { compatKey: 'seq=32' });
    add('a2', { compatKey: 'seq=16' });
    add('b2', { compatKey: 'seq=32' });
    add('a3', { compatKey: 'seq=16' });
    expect(payloads(batcher.next(1, 0))).toEqual(['a1', 'a2', 'a3']);
    expect(payloads(batcher.next(1, 0))).toEqual(['b1', 'b2']);
  });

  it('serves higher priority levels first, FIFO within a level, and fills a batch across levels', () => {
    const { batcher, add } = make({ maxBatchSize: 3, priorityLevels: 3, defaultPriorityLevel: 2 });
    add('low1', { priority: 3 });
    add('mid1');
    add('low2', { priority: 3 });
    add('high1', { priority: 1 });
    add('mid2', { priority: 0 });
    add('high2', { priority: 1 });
    expect(batcher.sizeByLevel()).toEqual([
      { level: 1, depth: 2 },
      { level: 2, depth: 2 },
      { level: 3, depth: 2 },
    ]);
    expect(payloads(batcher.next(0, 1))).toEqual(['high1', 'high2', 'mid1']);
    expect(payloads(batcher.next(0, 1))).toEqual(['mid2', 'low1', 'low2']);
  });

  it('a high-priority request arriving later bypasses a long low-priority queue', () => {
    const { batcher, add } = make({ maxBatchSize: 1, priorityLevels: 2, defaultPriorityLevel: 2 });
    for (let i = 0; i < 100; i++) add(`low${i}`);
    add('urgent', { priority: 1 });
    expect(payloads(batcher.next(1, 0))).toEqual(['urgent']);
    expect(payloads(batcher.next(1, 0))).toEqual(['low0']);
  });

  it('a priority the model has no level for is its default level, as in Triton; negative or fractional ones are 400', () => {
    const { batcher, add } = make({ maxBatchSize: 1, priorityLevels: 2, defaultPriorityLevel: 2 });
    add('low', { priority: 2 });
    add('above', { priority: 3 }); // above the highest level: the default (2), behind 'low'
    add('high', { priority: 1 });
    expect(payloads(batcher.next(1, 0))).toEqual(['high']);
    expect(payloads(batcher.next(1, 0))).toEqual(['low']);
    expect(payloads(batcher.next(1, 0))).toEqual(['above']);
    const none = make();
    none.add('x', { priority: 1 }); // no levels at all: queued, not refused
    expect(payloads(none.batcher.next(1, 0))).toEqual(['x']);
    for (const bad of [-1, 1.5, Number.NaN]) {
      const e = catchError(() => none.add('y', { priority: bad }));
      expect(e.code).toBe('INVALID_INPUT');
      expect(e.status).toBe(400);
      expect(e.message).toBe(`priority: expected an integer >= 0, got ${bad}`);
    }
  });
});

describe('DynamicBatcher: queue policy', () => {
  it('rejects at once with QUEUE_FULL (503, retry after 1 s) when a level is full; other levels are separate', () => {
    const { batcher, add } = make({
      priorityLevels: 2,
      defaultPriorityLevel: 2,
      defaultQueuePolicy: { maxQueueSize: 2 },
      priorityQueuePolicy: { 1: { maxQueueSize: 1 } },
    });
    add('a');
    add('b');
    const e = catchError(() => add('c'));
    expect(e.code).toBe('QUEUE_FULL');
    expect(e.status).toBe(503);
    expect(e.retryAfterSeconds).toBe(1);
    expect(e.message).toBe('queue full: priority level 2 holds its max_queue_size of 2 requests');
    add('h', { priority: 1 });
    expect(catchError(() => add('h2', { priority: 1 })).code).toBe('QUEUE_FULL');
    expect(batcher.size()).toBe(3);
    batcher.next(1, 0); // frees room
    add('d');
    expect(batcher.size()).toBe(1);
  });

  it('REJECT: a queued request past its timeout is returned by expire() and leaves the queue', () => {
    const { batcher, add, clock } = make({ maxBatchSize: 4, defaultQueuePolicy: { defaultTimeoutUs: 500 } });
    const t0 = clock.nowUs();
    const a = add('a');
    clock.advance(100);
    add('b');
    // A busy instance: the wake-up is the first deadline.
    expect(batcher.next(0, 1)).toEqual({ kind: 'wait', untilUs: t0 + 500 });
    clock.advance(399);
    expect(batcher.expire()).toEqual([]);
    clock.advance(1);
    const expired = batcher.expire();
    expect(expired.map((e) => e.payload)).toEqual(['a']);
    expect(a.state).toBe('removed');
    expect(batcher.size()).toBe(1);
    expect(batcher.nextDeadlineUs()).toBe(t0 + 600);
    clock.advance(100);
    expect(batcher.expire().map((e) => e.payload)).toEqual(['b']);
    expect(batcher.nextDeadlineUs()).toBeNull();
  });

  it('the wake-up is the earlier of the delay and the next deadline', () => {
    const { batcher, add, clock } = make({ maxBatchSize: 4, maxQueueDelayUs: 1000, defaultQueuePolicy: { defaultTimeoutUs: 300 } });
    const t0 = clock.nowUs();
    add('a');
    expect(batcher.next(1, 1)).toEqual({ kind: 'wait', untilUs: t0 + 300 });
  });

  it('timeout override: only when allowed, and it may shorten the default but not lengthen it', () => {
    const allowed = make({ defaultQueuePolicy: { defaultTimeoutUs: 1000, allowTimeoutOverride: true } });
    const t0 = allowed.clock.nowUs();
    expect(allowed.add('short', { timeoutUs: 200 }).deadlineUs).toBe(t0 + 200);
    expect(allowed.add('long', { timeoutUs: 5000 }).deadlineUs).toBe(t0 + 1000);
    expect(allowed.add('none').deadlineUs).toBe(t0 + 1000);
    // Out-of-order deadlines still expire in deadline order.
    allowed.clock.advance(200);
    expect(allowed.batcher.expire().map((e) => e.payload)).toEqual(['short']);

    const denied = make({ defaultQueuePolicy: { defaultTimeoutUs: 1000 } });
    expect(denied.add('x', { timeoutUs: 200 }).deadlineUs).toBe(denied.clock.nowUs() + 1000);
    const noDefault = make({ defaultQueuePolicy: { allowTimeoutOverride: true } });
    expect(noDefault.add('y', { timeoutUs: 50 }).deadlineUs).toBe(noDefault.clock.nowUs() + 50);
    expect(catchError(() => noDefault.add('z', { timeoutUs: -1 })).code).toBe('INVALID_INPUT');
  });

  it('DELAY: a timed-out request stays queued, behind every request of its level that has not timed out', () => {
    const { batcher, add, clock } = make({
      maxBatchSize: 1,
      defaultQueuePolicy: { timeoutAction: 'DELAY', allowTimeoutOverride: true },
    });
    const a = add('a', { timeoutUs: 100 });
    add('b');
    add('c');
    clock.advance(100);
    expect(batcher.expire()).toEqual([]);
    expect(a.delayed).toBe(true);
    expect(a.state).toBe('queued');
    expect(batcher.size()).toBe(3);
    expect(batcher.nextDeadlineUs()).toBeNull();
    expect(payloads(batcher.next(1, 0))).toEqual(['b']);
    expect(payloads(batcher.next(1, 0))).toEqual(['c']);
    expect(payloads(batcher.next(1, 0))).toEqual(['a']);
  });
});

describe('DynamicBatcher: remove, sizes, live changes', () => {
  it('remove() withdraws a queued entry once; a dispatched entry cannot be removed', () => {
    const { batcher, add } = make({ maxBatchSize: 8 });
    const a = add('a');
    const b = add('b');
    add('c');
    expect(batcher.remove(b)).toBe(true);
    expect(batcher.remove(b)).toBe(false);
    expect(b.state).toBe('removed');
    expect(batcher.size()).toBe(2);
    expect(payloads(batcher.next(1, 0))).toEqual(['a', 'c']);
    expect(a.state).toBe('dispatched');
    expect(batcher.remove(a)).toBe(false);
  });

  it('removing entries keeps the fast path exact: a full batch is no longer full', () => {
    const { batcher, add } = make({ maxBatchSize: 2 });
    add('a');
    const b = add('b');
    batcher.remove(b);
    expect(batcher.next(0, 1).kind).toBe('wait');
  });

  it('oldestWaitUs and sizeByLevel report the queue', () => {
    const { batcher, add, clock } = make({ priorityLevels: 2, defaultPriorityLevel: 2 });
    expect(batcher.oldestWaitUs()).toBe(0);
    add('a');
    clock.advance(250);
    add('b', { priority: 1 });
    clock.advance(50);
    expect(batcher.oldestWaitUs()).toBe(300);
    expect(batcher.sizeByLevel()).toEqual([
      { level: 1, depth: 1 },
      { level: 2, depth: 1 },
    ]);
  });

  it('updateConfig changes the delay of requests already queued', () => {
    const { batcher, add, clock } = make({ maxBatchSize: 8, maxQueueDelayUs: 10_000 });
    const t0 = clock.nowUs();
    add('a');
    expect(batcher.next(1, 1)).toEqual({ kind: 'wait', untilUs: t0 + 10_000 });
    batcher.updateConfig({ maxQueueDelayUs: 100 });
    expect(batcher.config.maxQueueDelayUs).toBe(100);
    expect(batcher.next(1, 1)).toEqual({ kind: 'wait', untilUs: t0 + 100 });
    clock.advance(100);
    expect(payloads(batcher.next(1, 1))).toEqual(['a']);
  });

  it('updateConfig with a smaller max_batch_size returns the entries that no longer fit; preferred sizes apply at once', () => {
    const { batcher, add } = make({ maxBatchSize: 8 });
    add('a', { batchSize: 2 });
    add('big', { batchSize: 6 });
    add('c', { batchSize: 1 });
    const dropped = batcher.updateConfig({ maxBatchSize: 4, preferredBatchSizes: [3] });
    expect(dropped.map((e) => e.payload)).toEqual(['big']);
    expect(dropped[0]!.state).toBe('removed');
    expect(batcher.size()).toBe(2);
    expect(payloads(batcher.next(0, 1))).toEqual(['a', 'c']); // 2 + 1 = 3, preferred
  });

  it('updateConfig re-levels queued entries when priority levels change; merged levels keep arrival order', () => {
    const { batcher, add, clock } = make({ maxBatchSize: 1, priorityLevels: 3, defaultPriorityLevel: 1 });
    add('p3', { priority: 3 });
    clock.advance(1);
    add('p1', { priority: 1 });
    clock.advance(1);
    add('p2', { priority: 2 });
    batcher.updateConfig({ priorityLevels: 2, defaultPriorityLevel: 2 });
    expect(batcher.sizeByLevel()).toEqual([
      { level: 1, depth: 1 },
      { level: 2, depth: 2 },
    ]);
    expect(['p1', 'p2', 'p3'].map(() => payloads(batcher.next(1, 0))[0])).toEqual(['p1', 'p3', 'p2']);
    batcher.updateConfig({ priorityLevels: 0, defaultPriorityLevel: 0 });
    add('x', { priority: 1 }); // no levels now: the default level, as Triton
    expect(batcher.sizeByLevel()).toEqual([{ level: 0, depth: 1 }]);
  });

  it('a bad live change throws INVALID_INPUT naming the field and changes nothing', () => {
    const { batcher } = make({ maxBatchSize: 64 }, 64);
    const e = catchError(() => batcher.updateConfig({ preferredBatchSizes: [128] }));
    expect(e.code).toBe('INVALID_INPUT');
    expect(e.message).toBe('dynamic_batching.preferred_batch_size: 128 exceeds max_batch_size 64');
    expect(catchError(() => batcher.updateConfig({ maxBatchSize: 65 })).message).toBe("max_batch_size: 65 exceeds the model's limit of 64");
    expect(batcher.config.maxBatchSize).toBe(64);
    expect(batcher.config.preferredBatchSizes).toEqual([]);
  });

  it('removeAll empties every level and returns the entries in dispatch order', () => {
    const { batcher, add } = make({ priorityLevels: 2, defaultPriorityLevel: 2, defaultQueuePolicy: { defaultTimeoutUs: 100 } });
    add('b');
    add('a', { priority: 1 });
    expect(batcher.removeAll().map((e) => e.payload)).toEqual(['a', 'b']);
    expect(batcher.size()).toBe(0);
    expect(batcher.nextDeadlineUs()).toBeNull();
  });

  it('keeps FIFO order and exact batch sizes over 100k requests', () => {
    const { batcher, add } = make({ maxBatchSize: 64, defaultQueuePolicy: { defaultTimeoutUs: 1_000_000 } });
    const n = 100_000;
    let expected = 0;
    let batches = 0;
    for (let i = 0; i < n; i++) {
      add(String(i));
      if (i % 100 === 99) {
        for (let d = batcher.next(0, 1); d.kind === 'batch'; d = batcher.next(0, 1)) {
          if (d.batchSize !== 64 || d.entries.length !== 64) throw new Error(`batch of ${d.batchSize}`);
          for (const e of d.entries) if (e.payload !== String(expected++)) throw new Error(`out of order at ${e.payload}`);
          batches++;
        }
      }
    }
    expect(batches).toBe(Math.floor(n / 64));
    expect(batcher.size()).toBe(n - expected);
  });
});

describe('mergeBatcherConfig', () => {
  it('fills defaults, sorts and dedupes preferred sizes, and never mutates its inputs', () => {
    const base = mergeBatcherConfig(DEFAULT_BATCHER_CONFIG, { maxBatchSize: 32 });
    const merged = mergeBatcherConfig(base, { preferredBatchSizes: [16, 4, 16], defaultQueuePolicy: { maxQueueSize: 10 } });
    expect(merged).toEqual({
      maxBatchSize: 32,
      preferredBatchSizes: [4, 16],
      maxQueueDelayUs: 0,
      priorityLevels: 0,
      defaultPriorityLevel: 0,
      defaultQueuePolicy: { maxQueueSize: 10, defaultTimeoutUs: 0, allowTimeoutOverride: false, timeoutAction: 'REJECT' },
    });
    expect(base.defaultQueuePolicy.maxQueueSize).toBe(0);
    expect(base.preferredBatchSizes).toEqual([]);
  });

  it('names the field and the bad value', () => {
    const msg = (patch: BatcherConfigPatch) => catchError(() => mergeBatcherConfig(DEFAULT_BATCHER_CONFIG, patch)).message;
    expect(msg({ maxQueueDelayUs: -5 })).toBe('dynamic_batching.max_queue_delay_microseconds: expected an integer from 0 to 60000000, got -5');
    expect(msg({ maxBatchSize: 1.5 })).toBe('max_batch_size: expected an integer from 0 to 4096, got 1.5');
    expect(msg({ priorityLevels: 2 })).toBe('dynamic_batching.default_priority_level: expected 1..2 (priority_levels), got 0');
    expect(msg({ defaultPriorityLevel: 1 })).toBe('dynamic_batching.default_priority_level: must be 0 when priority_levels is 0, got 1');
    expect(msg({ defaultQueuePolicy: { timeoutAction: 'DROP' as never } })).toBe(
      'dynamic_batching.default_queue_policy.timeout_action: expected "REJECT" or "DELAY", got "DROP"',
    );
    expect(msg({ priorityLevels: 2, defaultPriorityLevel: 1, priorityQueuePolicy: { 3: {} } })).toBe(
      'dynamic_batching.priority_queue_policy[3]: level must be 1..2 (priority_levels), got 3',
    );
    expect(msg({ preferredBatchSizes: [0] })).toBe('dynamic_batching.preferred_batch_size: expected an integer from 1 to 4096, got 0');
  });

  it('per-level policies take missing fields from the default policy', () => {
    const c = mergeBatcherConfig(DEFAULT_BATCHER_CONFIG, {
      priorityLevels: 2,
      defaultPriorityLevel: 2,
      defaultQueuePolicy: { defaultTimeoutUs: 700 },
      priorityQueuePolicy: { 1: { maxQueueSize: 3 } },
    });
    expect(c.priorityQueuePolicy).toEqual({ 1: { maxQueueSize: 3, defaultTimeoutUs: 700, allowTimeoutOverride: false, timeoutAction: 'REJECT' } });
  });
});

describe('DynamicBatcher: cost follows the levels in use, not priority_levels', () => {
  it('refuses 100,000,000 priority levels at once; at the bound, only the levels in use hold a queue', () => {
    // Before: one queue per configured level was allocated up front (V8 heap out of memory).
    expect(catchError(() => make({ maxBatchSize: 4, priorityLevels: 100_000_000, defaultPriorityLevel: 1 })).message).toContain('an integer from 0 to 100');
    const heapBefore = process.memoryUsage().heapUsed;
    const { batcher, add } = make({ maxBatchSize: 4, priorityLevels: 100, defaultPriorityLevel: 50 });
    add('default');
    add('last', { priority: 100 });
    add('first', { priority: 1 });
    expect(batcher.sizeByLevel()).toEqual([
      { level: 1, depth: 1 },
      { level: 50, depth: 1 },
      { level: 100, depth: 1 },
    ]);
    expect(payloads(batcher.next(1, 0))).toEqual(['first', 'default', 'last']);
    expect(batcher.sizeByLevel()).toEqual([]);
    batcher.updateConfig({ priorityLevels: 90, defaultPriorityLevel: 1 });
    add('again', { priority: 90 });
    expect(payloads(batcher.next(1, 0))).toEqual(['again']);
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(16 * 1024 * 1024);
  });

  it('an emptied level is dropped and a later request re-opens it with its own queue policy', () => {
    const { batcher, add } = make({ maxBatchSize: 1, priorityLevels: 3, defaultPriorityLevel: 3, priorityQueuePolicy: { 2: { maxQueueSize: 1 } } });
    add('a', { priority: 2 });
    expect(catchError(() => add('b', { priority: 2 })).code).toBe('QUEUE_FULL');
    expect(payloads(batcher.next(1, 0))).toEqual(['a']);
    expect(batcher.sizeByLevel()).toEqual([]);
    add('c', { priority: 2 });
    expect(catchError(() => add('d', { priority: 2 })).message).toBe('queue full: priority level 2 holds its max_queue_size of 1 requests');
    add('e');
    expect(batcher.sizeByLevel()).toEqual([
      { level: 2, depth: 1 },
      { level: 3, depth: 1 },
    ]);
  });
});

describe('DynamicBatcher: deadlines of dispatched requests waiting for a re-run', () => {
  it('isOverdue: past the deadline under REJECT; never under DELAY or without a timeout', () => {
    const { batcher, add, clock } = make({
      maxBatchSize: 4,
      priorityLevels: 2,
      defaultPriorityLevel: 2,
      defaultQueuePolicy: { defaultTimeoutUs: 1000 },
      priorityQueuePolicy: { 1: { defaultTimeoutUs: 1000, timeoutAction: 'DELAY' } },
    });
    const reject = add('reject');
    const delay = add('delay', { priority: 1 });
    expect(payloads(batcher.next(1, 0))).toEqual(['delay', 'reject']);
    expect(batcher.isOverdue(reject, clock.nowUs() + 999)).toBe(false);
    expect(batcher.isOverdue(reject, clock.nowUs() + 1000)).toBe(true);
    expect(batcher.isOverdue(delay, clock.nowUs() + 5000)).toBe(false);
    const { batcher: none, add: addNone, clock: c2 } = make({ maxBatchSize: 4 });
    const e = addNone('no timeout');
    expect(none.isOverdue(e, c2.nowUs() + 1e12)).toBe(false);
  });
});
