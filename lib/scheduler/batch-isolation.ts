/**
 * Taking a failed batch apart, so that one client's bad request fails alone instead of failing
 * every request it was batched with. ONNX Runtime fails a run as a whole (an out-of-range
 * index, a reshape that does not fit, an output over the limit): the batch's other requests
 * may be fine.
 *
 * Policy (bisection, depth first): the failed batch is split in two halves that run as
 * batches of their own; a half that succeeds answers its requests, a half that fails is split
 * again, down to single requests, whose run then fails with their own error. k bad requests
 * in a batch of n cost about 2·k·log2(n/k) extra runs, never more than 2n. A failure that is
 * not the requests' fault (the model fails whatever the input) would cost the full 2n: so when
 * `failedRunBudget(n)` re-runs have failed and none has succeeded yet, the isolation gives up
 * and the rest of the batch fails with the error of the smallest part it was in.
 *
 * One part of a batch runs at a time: what the last part did decides what runs next, and
 * the budget is then exact. This class is bookkeeping only (no engine, no timers):
 * BatchRunner runs the groups it hands out and reports each outcome back; it runs parts of
 * different failed batches at once when slots are free.
 */
import type { TensorwireError } from '../errors';

/** How an isolation ended: the `outcome` label of tensorwire_batch_isolation_total. */
export type IsolationOutcome = 'isolated' | 'gave_up' | 'skipped';

/** Requests to run together, and the error they get when they fail without a run of their own. */
export interface IsolationGroup<M> {
  members: M[];
  error: TensorwireError;
}

/**
 * Error codes that say something about the batch's requests, so a re-run in parts can tell
 * them apart. The others do not: CANCELLED (every request left), UNAVAILABLE (the model is
 * going away), INTERNAL (our own bug, e.g. requests of different shapes in one batch).
 */
const REQUEST_SPECIFIC = new Set<string>(['ENGINE_FAILURE', 'INVALID_INPUT', 'OUTPUT_TOO_LARGE']);

/** True when a batch that failed with `code` is worth re-running in parts. */
export function worthIsolating(code: string): boolean {
  return REQUEST_SPECIFIC.has(code);
}

/** Failed re-runs, with none successful, after which the isolation of a batch of `n` requests gives up. */
export function failedRunBudget(n: number): number {
  return 2 * Math.ceil(Math.log2(Math.max(2, n))) + 2;
}

/** The bisection of one failed batch; see the file comment. */
export class BatchIsolation<M> {
  /** Requests of the failed batch that were still waiting for an answer. */
  readonly size: number;
  /** Re-runs started so far. */
  runs = 0;
  /** Re-runs started and not reported back yet. */
  private running = 0;
  private failedRuns = 0;
  private anySuccess = false;
  private gaveUp = false;
  /** Groups still to run; the last one runs next (depth first: one part is settled before the next). */
  private readonly stack: IsolationGroup<M>[] = [];

  constructor(members: M[], error: TensorwireError) {
    this.size = members.length;
    this.push(members, error);
  }

  /** True when a group is left to run and none is running. */
  hasNext(): boolean {
    return this.stack.length > 0 && this.running === 0;
  }

  /** True once nothing is left to run and every run started was reported back. */
  get finished(): boolean {
    return this.stack.length === 0 && this.running === 0;
  }

  /** The next group to run, or null when none is left or one is running. The caller reports `started` if it runs it. */
  next(): IsolationGroup<M> | null {
    return this.running === 0 ? (this.stack.pop() ?? null) : null;
  }

  /** A group handed out by `next` started running; `succeeded` or `failed` follows. */
  started(): void {
    this.runs++;
    this.running++;
  }

  /** A started group ran. */
  succeeded(): void {
    this.running--;
    this.anySuccess = true;
  }

  /**
   * A started group failed with `error`; `members` are those still waiting. Returns
   * the groups to fail now: the member itself when it ran alone, everything left when the
   * budget is spent or the error is not request-specific; otherwise its halves are queued.
   */
  failed(members: M[], error: TensorwireError): IsolationGroup<M>[] {
    this.running--;
    this.failedRuns++;
    if (members.length <= 1 || !worthIsolating(error.code)) return [{ members, error }];
    if (!this.anySuccess && this.failedRuns >= failedRunBudget(this.size)) {
      this.gaveUp = true;
      return [{ members, error }, ...this.takeAll()];
    }
    this.push(members, error);
    return [];
  }

  /** Removes and returns every group not run yet (shutdown). */
  takeAll(): IsolationGroup<M>[] {
    return this.stack.splice(0).reverse();
  }

  /** How it ended (meaningful once `next` returned null). */
  get outcome(): IsolationOutcome {
    return this.gaveUp ? 'gave_up' : 'isolated';
  }

  /** Queues `members` as two halves (the first half runs first), or alone when it is one request. */
  private push(members: M[], error: TensorwireError): void {
    if (members.length <= 1) {
      if (members.length === 1) this.stack.push({ members, error });
      return;
    }
    const half = members.length >>> 1;
    this.stack.push({ members: members.slice(half), error });
    this.stack.push({ members: members.slice(0, half), error });
  }
}
