/**
 * VersionRouter (lib/core/version-router.ts): today's rule, the named serving version or the
 * highest serving one, and a switch of the serving set seen by the very next request.
 */
import { describe, expect, it } from 'vitest';
import { LatestVersionRouter } from '../lib/core/version-router';

const v = (version: number) => ({ version, tag: `v${version}` });

describe('LatestVersionRouter', () => {
  it('routes nothing before it is told what serves', () => {
    const router = new LatestVersionRouter<ReturnType<typeof v>>();
    expect(router.route(undefined)).toBeUndefined();
    expect(router.route(1)).toBeUndefined();
  });

  it('sends an unversioned request to the highest serving version, whatever the order it was given in', () => {
    const router = new LatestVersionRouter<ReturnType<typeof v>>();
    router.update([v(2), v(7), v(3)]);
    expect(router.route(undefined)?.tag).toBe('v7');
  });

  it('sends a versioned request to that version only when it serves', () => {
    const router = new LatestVersionRouter<ReturnType<typeof v>>();
    const two = v(2);
    router.update([two, v(3)]);
    expect(router.route(2)).toBe(two);
    expect(router.route(3)?.tag).toBe('v3');
    expect(router.route(4)).toBeUndefined();
  });

  it('an update replaces the whole set at once (a swap): old versions stop being routed', () => {
    const router = new LatestVersionRouter<ReturnType<typeof v>>();
    router.update([v(1)]);
    const next = v(2);
    router.update(new Map([[2, next]]).values());
    expect(router.route(undefined)).toBe(next);
    expect(router.route(1)).toBeUndefined();
    router.update([]);
    expect(router.route(undefined)).toBeUndefined();
    expect(router.route(2)).toBeUndefined();
  });

  it('a reload under the same number routes to the new object', () => {
    const router = new LatestVersionRouter<ReturnType<typeof v>>();
    const old = v(5);
    router.update([old]);
    const reloaded = v(5);
    router.update([reloaded]);
    expect(router.route(5)).toBe(reloaded);
    expect(router.route(undefined)).toBe(reloaded);
  });
});
