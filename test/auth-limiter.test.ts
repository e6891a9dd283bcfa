/** Per-principal token buckets and concurrency caps, on an injected clock. */
import { describe, expect, it } from 'vitest';
import { PrincipalLimiter } from '../lib/auth/principal-limiter';

function clock(): { now: () => number; advance: (ms: number) => void } {
  let t = 1000;
  return { now: () => t, advance: (ms) => (t += ms) };
}

describe('PrincipalLimiter', () => {
  it('lets a burst through, then refuses with the seconds until the next token', () => {
    const c = clock();
    const limiter = new PrincipalLimiter({ now: c.now });
    const limits = { requestsPerSecond: 0.5, burst: 3 };
    for (let i = 0; i < 3; i++) expect(limiter.admit('a', limits)).toBeUndefined();
    const refused = limiter.admit('a', limits);
    expect(refused).toMatchObject({ code: 'TOO_MANY_REQUESTS', status: 429, retryAfterSeconds: 2 });
    expect(refused!.message).toBe("'a' is over its rate limit (0.5 requests/s, burst 3); retry in 2 s");
    c.advance(1000);
    expect(limiter.admit('a', limits)?.retryAfterSeconds).toBe(1);
    c.advance(1000);
    expect(limiter.admit('a', limits)).toBeUndefined();
  });

  it('refills at the configured rate, never above the burst', () => {
    const c = clock();
    const limiter = new PrincipalLimiter({ now: c.now });
    const limits = { requestsPerSecond: 10, burst: 5 };
    for (let i = 0; i < 5; i++) limiter.admit('a', limits);
    expect(limiter.admit('a', limits)).toBeDefined();
    c.advance(60_000);
    let admitted = 0;
    while (limiter.admit('a', limits) === undefined) admitted++;
    expect(admitted).toBe(5);
  });

  it('defaults the burst to one second of the rate', () => {
    const c = clock();
    const limiter = new PrincipalLimiter({ now: c.now });
    let admitted = 0;
    while (limiter.admit('a', { requestsPerSecond: 4 }) === undefined) admitted++;
    expect(admitted).toBe(4);
  });

  it('caps requests in flight until one is released', () => {
    const limiter = new PrincipalLimiter({ now: clock().now });
    const limits = { concurrent: 2 };
    expect(limiter.admit('a', limits)).toBeUndefined();
    expect(limiter.admit('a', limits)).toBeUndefined();
    expect(limiter.admit('a', limits)).toMatchObject({ code: 'TOO_MANY_REQUESTS', retryAfterSeconds: 1, message: "'a' has 2 requests in flight, its limit (concurrent: 2); retry when one finishes" });
    // Another principal has its own count.
    expect(limiter.admit('b', limits)).toBeUndefined();
    limiter.release('a');
    expect(limiter.admit('a', limits)).toBeUndefined();
  });

  it('does not spend a token on a request refused for concurrency', () => {
    const limiter = new PrincipalLimiter({ now: clock().now });
    const limits = { requestsPerSecond: 1, burst: 1, concurrent: 1 };
    expect(limiter.admit('a', limits)).toBeUndefined();
    expect(limiter.admit('a', limits)?.message).toMatch(/in flight/);
    limiter.release('a');
    expect(limiter.admit('a', limits)?.message).toMatch(/rate limit/);
  });

  it('tracks nobody without limits', () => {
    const limiter = new PrincipalLimiter();
    for (let i = 0; i < 100; i++) expect(limiter.admit(`p${i}`, {})).toBeUndefined();
    expect(limiter.size).toBe(0);
  });

  it('drops idle principals and stays within maxPrincipals', () => {
    const c = clock();
    const limiter = new PrincipalLimiter({ now: c.now, maxPrincipals: 100 });
    const limits = { requestsPerSecond: 10, burst: 10 };
    for (let i = 0; i < 1000; i++) limiter.admit(`p${i}`, limits);
    expect(limiter.size).toBeLessThanOrEqual(100);
    c.advance(2000);
    limiter.sweep();
    expect(limiter.size).toBe(0);
  });

  it('keeps a principal whose bucket is still refilling or who has requests in flight', () => {
    const c = clock();
    const limiter = new PrincipalLimiter({ now: c.now });
    limiter.admit('draining', { requestsPerSecond: 1, burst: 10 });
    limiter.admit('busy', { concurrent: 5 });
    c.advance(500);
    limiter.sweep();
    expect(limiter.size).toBe(2);
    limiter.release('busy');
    limiter.sweep();
    expect(limiter.size).toBe(1);
    c.advance(1000);
    limiter.sweep();
    expect(limiter.size).toBe(0);
  });
});
