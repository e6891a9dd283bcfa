/**
 * The one timer of a runner: it wakes the scheduler at the earliest time anything may change
 * without an event (a batching delay running out, a queued request's deadline). Arming it for
 * a later time than it is already set for does nothing, so arming on every schedule is cheap.
 */
import type { Clock } from './clock';

/**
 * setTimeout's longest delay (2^31 - 1 ms, about 24.8 days). Node runs a longer one after 1 ms
 * (with a TimeoutOverflowWarning), so a far deadline, e.g. a client's timeout of years, would
 * wake the scheduler every millisecond: a longer wait is done in steps of this size.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** A single re-armable wake-up, in the clock's microseconds. */
export class WakeTimer {
  private timer: NodeJS.Timeout | null = null;
  private atUs = 0;
  private readonly fire = (): void => {
    this.timer = null;
    // One step of a wait longer than MAX_TIMER_MS: wait on without waking the scheduler.
    if (this.atUs - this.clock.nowUs() > 1000) this.start(this.atUs);
    else this.onWake();
  };

  constructor(
    private readonly clock: Clock,
    private readonly onWake: () => void,
  ) {}

  /** Makes sure the wake-up comes no later than `untilUs` (null: none needed). */
  arm(untilUs: number | null): void {
    if (untilUs === null) return;
    if (this.timer !== null) {
      if (this.atUs <= untilUs) return;
      clearTimeout(this.timer);
    }
    this.start(untilUs);
  }

  private start(untilUs: number): void {
    // Timers have millisecond resolution: round up, so a wake-up is late by < 1 ms, never early.
    const delayMs = Math.max(0, Math.ceil((untilUs - this.clock.nowUs()) / 1000));
    this.atUs = untilUs;
    this.timer = setTimeout(this.fire, Math.min(delayMs, MAX_TIMER_MS));
  }

  /** Cancels the pending wake-up, if any. */
  clear(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
}
