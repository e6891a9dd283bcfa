/**
 * Per-principal limits (auth file `limits`): a token bucket (`requests_per_second`
 * refilling up to `burst`, which defaults to one second's worth) and a cap on requests in
 * flight (`concurrent`). Past either, a 429 whose Retry-After is the time until the bucket
 * holds a token again (at least 1 s: Retry-After is whole seconds).
 *
 * A pure class with an injected clock. Memory is bounded: a principal's state is dropped
 * once it is idle (nothing in flight, bucket full again): such state is identical to a fresh
 * one, so dropping it changes no decision. Past `maxPrincipals`, the idle are swept first;
 * if all are busy the longest-unseen is dropped (it gets a full bucket back: generous, never
 * wrong towards others).
 */
import { TensorwireError } from '../errors';
import type { Limits } from './auth-file';

/** Default most principals tracked at once. */
export const DEFAULT_MAX_PRINCIPALS = 100_000;

interface PrincipalState {
  tokens: number;
  /** Clock reading of the last refill (= the last admit), ms. */
  refilledAt: number;
  inflight: number;
  /** The limits last applied (they change when the auth file does), to tell when the bucket is full. */
  rate: number | undefined;
  burst: number;
}

export interface PrincipalLimiterOptions {
  /** Milliseconds, monotonic (default performance.now). */
  now?: () => number;
  maxPrincipals?: number;
}

/** Token buckets and in-flight counts per principal. */
export class PrincipalLimiter {
  private readonly states = new Map<string, PrincipalState>();
  private readonly now: () => number;
  private readonly maxPrincipals: number;

  constructor(options: PrincipalLimiterOptions = {}) {
    this.now = options.now ?? (() => performance.now());
    this.maxPrincipals = Math.max(1, options.maxPrincipals ?? DEFAULT_MAX_PRINCIPALS);
  }

  /**
   * Admits one request of principal `key` under `limits`, or returns the 429 to answer.
   * When admitted (undefined returned) and `limits.concurrent` is set, the caller must call
   * `release(key)` exactly once when the request settles.
   */
  admit(key: string, limits: Limits): TensorwireError | undefined {
    const rate = limits.requestsPerSecond;
    const concurrent = limits.concurrent;
    if (rate === undefined && concurrent === undefined) return undefined;
    const now = this.now();
    const burst = limits.burst ?? Math.max(1, Math.ceil(rate ?? 1));
    let state = this.states.get(key);
    if (state === undefined) {
      if (this.states.size >= this.maxPrincipals) this.makeRoom();
      state = { tokens: burst, refilledAt: now, inflight: 0, rate, burst };
      this.states.set(key, state);
    } else {
      if (rate !== undefined) state.tokens = Math.min(burst, state.tokens + ((now - state.refilledAt) / 1000) * rate);
      state.refilledAt = now;
      state.rate = rate;
      state.burst = burst;
    }
    if (concurrent !== undefined && state.inflight >= concurrent) {
      return new TensorwireError('TOO_MANY_REQUESTS', `'${key}' has ${state.inflight} requests in flight, its limit (concurrent: ${concurrent}); retry when one finishes`, { retryAfterSeconds: 1 });
    }
    if (rate !== undefined) {
      if (state.tokens < 1) {
        const waitS = Math.max(1, Math.ceil((1 - state.tokens) / rate));
        return new TensorwireError('TOO_MANY_REQUESTS', `'${key}' is over its rate limit (${rate} requests/s, burst ${burst}); retry in ${waitS} s`, { retryAfterSeconds: waitS });
      }
      state.tokens -= 1;
    }
    if (concurrent !== undefined) state.inflight++;
    return undefined;
  }

  /** One admitted request of `key` settled (only for limits with `concurrent`). */
  release(key: string): void {
    const state = this.states.get(key);
    if (state !== undefined && state.inflight > 0) state.inflight--;
  }

  /** Principals tracked now. */
  get size(): number {
    return this.states.size;
  }

  /**
   * Drops idle principals: nothing in flight and a bucket that has refilled completely, so
   * forgetting them changes no later decision. Call it now and then (the limiter also
   * sweeps when it reaches `maxPrincipals`).
   */
  sweep(): void {
    const now = this.now();
    for (const [key, state] of this.states) {
      if (state.inflight !== 0) continue;
      if (state.rate === undefined || state.tokens + ((now - state.refilledAt) / 1000) * state.rate >= state.burst) this.states.delete(key);
    }
  }

  private makeRoom(): void {
    this.sweep();
    if (this.states.size < this.maxPrincipals) return;
    for (const [key, state] of this.states) {
      if (state.inflight === 0) {
        this.states.delete(key);
        return;
      }
    }
    // Everyone is busy: the oldest entry goes. Its in-flight count is forgotten with it, so
    // that principal may briefly exceed `concurrent`; others are unaffected.
    this.states.delete(this.states.keys().next().value!);
  }
}
