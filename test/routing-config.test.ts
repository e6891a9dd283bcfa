/**
 * The traffic policy's validation (config.json `routing`, config.pbtxt `parameters.routing`,
 * POST bodies): every number bounded, every bad field named.
 */
import { describe, expect, it } from 'vitest';
import { parseConfigPbtxt, validateConfig } from '../lib/repository';
import { routingVersions, validateRoutingPolicy } from '../lib/repository/config-routing';
import { WeightedSplit } from '../lib/routing/split';
import { judge, VersionWindow } from '../lib/routing/guard-window';
import { compareOutputs } from '../lib/routing/shadow-compare';

const bad = (policy: unknown): string => {
  try {
    validateRoutingPolicy(policy, 'policy');
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error(`accepted ${JSON.stringify(policy)}`);
};

describe('routing policy validation', () => {
  it('accepts the documented shape and fills the guard defaults', () => {
    const p = validateRoutingPolicy(
      { weights: { '2': 95, '3': 5 }, route_key: 'header:X-Tensorwire-Route-Key', labels: { stable: '2', canary: 3 }, shadow: { version: '3', percent: 100 }, fallback: '2', guard: { version: '3' } },
      'p',
    );
    expect(p.route_key).toBe('x-tensorwire-route-key');
    expect(p.labels).toEqual({ stable: '2', canary: '3' });
    expect(p.guard).toEqual({ version: '3', max_error_rate_increase: 0.05, max_p99_ratio: 2, window_s: 60, min_requests: 100 });
    expect(routingVersions(p)).toEqual([2, 3]);
  });

  it('refuses out-of-range numbers, naming the field', () => {
    expect(bad({ weights: { '2': 101 } })).toMatch(/weights\.2 must be an integer from 0 to 100, got 101/);
    expect(bad({ weights: { '2': -1 } })).toMatch(/weights\.2/);
    expect(bad({ weights: { '2': 0, '3': 0 } })).toMatch(/every weight is 0/);
    expect(bad({ weights: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [String(i + 1), 1])) })).toMatch(/at most 16 versions, got 17/);
    expect(bad({ weights: { abc: 1 } })).toMatch(/weights key "abc"/);
    expect(bad({ shadow: { version: '3', percent: 150 } })).toMatch(/shadow\.percent must be a number from 0 to 100/);
    expect(bad({ weights: { '1': 1, '2': 1 }, guard: { version: '2', window_s: 0 } })).toMatch(/guard\.window_s must be an integer from 1 to 3600/);
    expect(bad({ weights: { '1': 1, '2': 1 }, guard: { version: '2', window_s: 3601 } })).toMatch(/window_s/);
    expect(bad({ weights: { '1': 1, '2': 1 }, guard: { version: '2', min_requests: 1_000_001 } })).toMatch(/min_requests must be an integer from 1 to 1000000/);
    expect(bad({ weights: { '1': 1, '2': 1 }, guard: { version: '3' } })).toMatch(/version 3 has no weight/);
    expect(bad({ weights: { '2': 1 }, guard: { version: '2' } })).toMatch(/names only one/);
    expect(bad({ route_key: 'cookie:x' })).toMatch(/route_key must be "header:<name>"/);
    expect(bad({ waits: {} })).toMatch(/unknown field waits; allowed here: weights/);
    expect(bad({ fallback: '0' })).toMatch(/fallback must be an integer from 1/);
  });

  it('reads the policy from config.json and from config.pbtxt parameters', () => {
    expect(validateConfig({ routing: { weights: { '1': 50, '2': 50 } } }).routing).toEqual({ weights: { '1': 50, '2': 50 } });
    const pbtxt = parseConfigPbtxt(`parameters { key: "routing" value: { string_value: "{\\"weights\\": {\\"1\\": 90, \\"2\\": 10}, \\"fallback\\": \\"1\\"}" } }\nparameters { key: "intra_op_thread_count" value: { string_value: "1" } }`);
    expect(pbtxt.routing).toEqual({ weights: { '1': 90, '2': 10 }, fallback: '1' });
    expect(pbtxt.parameters).toEqual({ intra_op_thread_count: 1 });
    expect(() => parseConfigPbtxt(`parameters { key: "routing" value: { string_value: "{nope" } }`)).toThrow(/parameters\.routing is not valid JSON/);
    expect(() => parseConfigPbtxt(`parameters { key: "routing" value: { string_value: "{\\"weights\\": {\\"1\\": 500}}" } }`)).toThrow(/parameters\.routing\.weights\.1 must be an integer from 0 to 100/);
  });
});

describe('weighted split', () => {
  it('is deterministic per key and follows the weights without one', () => {
    const split = new WeightedSplit({ '1': 3, '2': 1, '9': 0 });
    for (let i = 0; i < 100; i++) expect(split.pick(`user-${i}`)).toBe(split.pick(`user-${i}`));
    const seen = new Map<string, number>();
    let seed = 1;
    const random = (): number => ((seed = (seed * 16807) % 2147483647) / 2147483647);
    for (let i = 0; i < 40_000; i++) {
      const v = split.pick(undefined, random)!;
      seen.set(v, (seen.get(v) ?? 0) + 1);
    }
    expect(seen.get('9')).toBeUndefined();
    expect(Math.abs(seen.get('2')! / 40_000 - 0.25)).toBeLessThan(0.01);
  });
});

describe('guard window', () => {
  it('judges after min_requests only, and forgets what left the window', () => {
    const canary = new VersionWindow(10);
    const stable = new VersionWindow(10);
    for (let i = 0; i < 50; i++) stable.record(i, true, 1);
    for (let i = 0; i < 9; i++) canary.record(i, false, 1);
    const limits = { max_error_rate_increase: 0.05, max_p99_ratio: 2, min_requests: 10 };
    expect(judge(canary.summary(10), stable.summary(10), limits)).toBeUndefined();
    canary.record(10, false, 1);
    expect(judge(canary.summary(10), stable.summary(10), limits)).toMatch(/error rate 100\.0% vs 0\.0%/);
    // 20 s later nothing of either is left in a 10 s window.
    expect(canary.summary(20_000).requests).toBe(0);
  });

  it('compares p99 latency by ratio', () => {
    const canary = new VersionWindow(60);
    const stable = new VersionWindow(60);
    for (let i = 0; i < 100; i++) {
      stable.record(i, true, 1);
      canary.record(i, true, 5);
    }
    const s = canary.summary(100);
    expect(s.p99Ms).toBeGreaterThanOrEqual(5);
    expect(s.p99Ms).toBeLessThan(6);
    expect(judge(s, stable.summary(100), { max_error_rate_increase: 0.05, max_p99_ratio: 2, min_requests: 100 })).toMatch(/p99/);
    expect(judge(s, stable.summary(100), { max_error_rate_increase: 0.05, max_p99_ratio: 10, min_requests: 100 })).toBeUndefined();
  });
});

describe('shadow comparison', () => {
  const t = (values: number[], shape = [2, 2]) => ({ name: 'y', datatype: 'FP32' as const, shape, data: new Uint8Array(new Float32Array(values).buffer), binary: true });
  it('gives the max abs diff and the rows whose argmax agrees', () => {
    const [c] = compareOutputs([t([1, 2, 3, 4])], [t([1.5, 2, 4, 3])]);
    expect(c).toEqual({ name: 'y', maxAbsDiff: 1, argmaxAgree: 1, rows: 2 });
    expect(compareOutputs([t([1, 2, 3, 4])], [t([1, 2, 3, 4], [4, 1])])[0]!.maxAbsDiff).toBe(Infinity);
  });

  it('takes byte-identical outputs (NaN included) as full agreement, and one NaN as a difference', () => {
    expect(compareOutputs([t([1, NaN, 3, 4])], [t([1, NaN, 3, 4])])[0]).toEqual({ name: 'y', maxAbsDiff: 0, argmaxAgree: 2, rows: 2 });
    expect(compareOutputs([t([1, 2, 3, 4])], [t([1, NaN, 3, 4])])[0]!.maxAbsDiff).toBe(Infinity);
    expect(compareOutputs([t([], [2, 0])], [t([], [2, 0])])[0]).toEqual({ name: 'y', maxAbsDiff: 0, argmaxAgree: 0, rows: 0 });
  });
});
