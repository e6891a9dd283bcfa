/** The credential cache stays bounded however long or many the tokens clients send. */
import { describe, expect, it } from 'vitest';
import { BoundedCache } from '../lib/auth/bounded-cache';

describe('BoundedCache', () => {
  it('bounds entries, dropping the oldest', () => {
    const c = new BoundedCache<number>(3, 1000);
    for (let i = 0; i < 5; i++) c.set(`k${i}`, i);
    expect(c.size).toBe(3);
    expect(c.get('k0')).toBeUndefined();
    expect(c.get('k4')).toBe(4);
  });

  it('bounds characters held: many 8 KiB tokens cannot grow it past the budget', () => {
    const c = new BoundedCache<number>(1_000_000, 64 * 1024);
    for (let i = 0; i < 100; i++) c.set(`${i}:`.padEnd(8192, 'x'), i);
    expect(c.size).toBe(8);
    expect(c.get(`${99}:`.padEnd(8192, 'x'))).toBe(99);
    c.set('y'.repeat(100_000), 1);
    expect(c.size).toBe(8);
  });

  it('expires entries at their time', () => {
    let t = 0;
    const c = new BoundedCache<string>(10, 1000, () => t);
    c.set('jwt', 'p', 100);
    c.set('key', 'q');
    t = 99;
    expect(c.get('jwt')).toBe('p');
    t = 100;
    expect(c.get('jwt')).toBeUndefined();
    expect(c.get('key')).toBe('q');
    expect(c.size).toBe(1);
  });
});
