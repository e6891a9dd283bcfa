/**
 * The runner's wake-up timer with deadlines beyond setTimeout's range: a client's timeout of
 * years must not turn into a wake-up every millisecond.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Clock } from '../lib/scheduler/clock';
import { WakeTimer } from '../lib/scheduler/wake-timer';
const MAX_TIMER_MS = 2 ** 31 - 1;

const DAY_US = 86_400_000_000;

describe('WakeTimer', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  /** The fake timers' time, so timers and clock move together. */
  const clock: Clock = { nowUs: () => Date.now() * 1000 };
  const advance = (ms: number): void => {
    vi.advanceTimersByTime(ms);
  };

  it('waits out a deadline 30 days away in steps, and wakes once, on time', () => {
    let wakes = 0;
    const timer = new WakeTimer(clock, () => wakes++);
    const start = clock.nowUs();
    timer.arm(start + 30 * DAY_US);
    // Before: setTimeout got 2.6e9 ms, which Node runs after 1 ms: a wake-up every millisecond.
    advance(50);
    expect(wakes).toBe(0);
    advance(MAX_TIMER_MS);
    expect(wakes).toBe(0);
    advance(30 * 86_400_000 - MAX_TIMER_MS - 51);
    expect(wakes).toBe(0);
    advance(1);
    expect(wakes).toBe(1);
    expect(clock.nowUs() - start).toBe(30 * DAY_US);
    advance(MAX_TIMER_MS);
    expect(wakes).toBe(1);
  });

  it('an earlier deadline replaces a far one; a later one does not', () => {
    let wakes = 0;
    const timer = new WakeTimer(clock, () => wakes++);
    timer.arm(clock.nowUs() + 10 * 365 * DAY_US);
    timer.arm(clock.nowUs() + 5_000);
    timer.arm(clock.nowUs() + 20 * 365 * DAY_US);
    advance(4);
    expect(wakes).toBe(0);
    advance(1);
    expect(wakes).toBe(1);
  });
});
