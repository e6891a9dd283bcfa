/**
 * The data structures under the dynamic batcher: an intrusive doubly linked FIFO of queued
 * entries (O(1) append, unlink from anywhere, no array shifting) and an index of deadlines
 * (O(1) in the usual case where deadlines arrive in order, a binary heap otherwise).
 */

/** Where an entry is in its life. Only 'queued' entries are in a list. */
export type EntryState = 'queued' | 'dispatched' | 'removed';

/**
 * One queued request as the batcher sees it. The object is the handle `enqueue` returns:
 * callers read its fields and pass it back to `remove`; only the batcher writes them.
 */
export class BatchEntry<T> {
  /** Level the entry is queued at: 1..priorityLevels, or 0 when there are no priorities. */
  level: number;
  /** Clock time of enqueue, microseconds. */
  readonly enqueueUs: number;
  /** Clock time after which the entry times out; 0 = never (or already delayed by DELAY). */
  deadlineUs: number;
  state: EntryState = 'queued';
  /** Set once the entry timed out under the DELAY action and was moved behind its level. */
  delayed = false;
  /** @internal links of the list the entry is in. */
  prev: BatchEntry<T> | null = null;
  /** @internal */
  next: BatchEntry<T> | null = null;
  /** @internal */
  list: EntryList<T> | null = null;

  constructor(
    readonly payload: T,
    readonly batchSize: number,
    readonly compatKey: string,
    level: number,
    enqueueUs: number,
    deadlineUs: number,
  ) {
    this.level = level;
    this.enqueueUs = enqueueUs;
    this.deadlineUs = deadlineUs;
  }
}

/** An intrusive FIFO of entries: each entry is in at most one list at a time. */
export class EntryList<T> {
  head: BatchEntry<T> | null = null;
  tail: BatchEntry<T> | null = null;
  count = 0;

  /** Appends `e` (which must be in no list). */
  push(e: BatchEntry<T>): void {
    e.list = this;
    e.prev = this.tail;
    e.next = null;
    if (this.tail === null) this.head = e;
    else this.tail.next = e;
    this.tail = e;
    this.count++;
  }

  /** Unlinks `e`, which must be in this list. */
  unlink(e: BatchEntry<T>): void {
    if (e.prev === null) this.head = e.next;
    else e.prev.next = e.next;
    if (e.next === null) this.tail = e.prev;
    else e.next.prev = e.prev;
    e.prev = null;
    e.next = null;
    e.list = null;
    this.count--;
  }

  /** Moves every entry of `other` to the end of this list, keeping their order. */
  appendAll(other: EntryList<T>): void {
    for (let e = other.head; e !== null; ) {
      const next = e.next;
      other.unlink(e);
      this.push(e);
      e = next;
    }
  }
}

/**
 * Deadlines of queued entries, earliest first. Entries are never removed from here when they
 * leave the queue; stale ones (no longer queued, or delayed) are dropped when they reach the
 * front, which `prune` does after each dispatch so the index does not hold on to them.
 */
export class DeadlineIndex<T> {
  // Deadlines appended in non-decreasing order (the usual case: one timeout per level and a
  // monotonic clock), consumed from `fifoHead`; compacted when half of the array is consumed.
  private fifo: BatchEntry<T>[] = [];
  private fifoHead = 0;
  // Deadlines that arrived out of order (per-request overrides): a binary min-heap.
  private heap: BatchEntry<T>[] = [];

  /** Records `e`'s deadline (which must be > 0). */
  add(e: BatchEntry<T>): void {
    const fifo = this.fifo;
    if (fifo.length === this.fifoHead || fifo[fifo.length - 1]!.deadlineUs <= e.deadlineUs) {
      fifo.push(e);
    } else {
      this.heapPush(e);
    }
  }

  /** The live entry with the earliest deadline, or null. Drops stale entries it meets. */
  peek(): BatchEntry<T> | null {
    this.prune();
    const a = this.fifoHead < this.fifo.length ? this.fifo[this.fifoHead]! : null;
    const b = this.heap.length > 0 ? this.heap[0]! : null;
    if (a === null) return b;
    if (b === null) return a;
    return a.deadlineUs <= b.deadlineUs ? a : b;
  }

  /** Removes and returns the live entry with the earliest deadline if it is <= `nowUs`. */
  popExpired(nowUs: number): BatchEntry<T> | null {
    const e = this.peek();
    if (e === null || e.deadlineUs > nowUs) return null;
    if (this.fifoHead < this.fifo.length && this.fifo[this.fifoHead] === e) this.shiftFifo();
    else this.heapPop();
    return e;
  }

  /** Drops stale entries from the front of both structures. */
  prune(): void {
    while (this.fifoHead < this.fifo.length && !isLive(this.fifo[this.fifoHead]!)) this.shiftFifo();
    while (this.heap.length > 0 && !isLive(this.heap[0]!)) this.heapPop();
  }

  /** Forgets every deadline. */
  clear(): void {
    this.fifo = [];
    this.fifoHead = 0;
    this.heap = [];
  }

  private shiftFifo(): void {
    this.fifo[this.fifoHead++] = undefined as unknown as BatchEntry<T>;
    if (this.fifoHead === this.fifo.length) {
      this.fifo.length = 0;
      this.fifoHead = 0;
    } else if (this.fifoHead >= 1024 && this.fifoHead * 2 >= this.fifo.length) {
      this.fifo = this.fifo.slice(this.fifoHead);
      this.fifoHead = 0;
    }
  }

  private heapPush(e: BatchEntry<T>): void {
    const h = this.heap;
    let i = h.length;
    h.push(e);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (h[parent]!.deadlineUs <= e.deadlineUs) break;
      h[i] = h[parent]!;
      i = parent;
    }
    h[i] = e;
  }

  private heapPop(): void {
    const h = this.heap;
    const last = h.pop()!;
    if (h.length === 0) return;
    let i = 0;
    const n = h.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && h[r]!.deadlineUs < h[l]!.deadlineUs ? r : l;
      if (h[c]!.deadlineUs >= last.deadlineUs) break;
      h[i] = h[c]!;
      i = c;
    }
    h[i] = last;
  }
}

function isLive<T>(e: BatchEntry<T>): boolean {
  return e.state === 'queued' && !e.delayed && e.deadlineUs > 0;
}
