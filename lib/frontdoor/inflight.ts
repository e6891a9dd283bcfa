/**
 * Counts the requests the front ends have handed to the server core and not yet seen settle,
 * so a graceful shutdown can wait for them. A plain counter: entering and leaving cost
 * nothing measurable on the hot path.
 */
export class InFlightTracker {
  private count = 0;
  private waiters: (() => void)[] = [];

  /** Requests currently in flight. */
  get size(): number {
    return this.count;
  }

  /** A request was handed to the core. */
  enter(): void {
    this.count++;
  }

  /** A request settled (answered, failed or cancelled). Every `enter` has exactly one `leave`. */
  leave(): void {
    if (--this.count === 0 && this.waiters.length > 0) {
      const waiters = this.waiters;
      this.waiters = [];
      for (const wake of waiters) wake();
    }
  }

  /** Resolves true once nothing is in flight, or false when `timeoutMs` passes first. */
  idle(timeoutMs: number): Promise<boolean> {
    if (this.count === 0) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== wake);
        resolve(false);
      }, timeoutMs);
      this.waiters.push(wake);
    });
  }
}
