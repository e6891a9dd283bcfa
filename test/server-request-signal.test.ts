/**
 * RequestSignal, the cheap AbortSignal look-alike the front end hands to the core: it must
 * behave like an AbortSignal for the ways code (ours and Node's) listens to one.
 */
import { addAbortListener } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { abortSignalOf, RequestSignal } from '../lib/server/request-signal';

describe('RequestSignal', () => {
  it('calls onabort then listeners in order, once-listeners once, with the reason set', () => {
    const s = new RequestSignal();
    const calls: string[] = [];
    s.onabort = () => calls.push(`onabort:${String(s.reason)}`);
    const a = (): number => calls.push('a');
    s.addEventListener('abort', a);
    s.addEventListener('abort', a); // duplicates are ignored, as with EventTarget
    s.addEventListener('abort', () => calls.push('b'), { once: true });
    s.addEventListener('abort', { handleEvent: (e: Event) => calls.push(`c:${e.type}`) });
    const removed = (): number => calls.push('removed');
    s.addEventListener('abort', removed);
    s.removeEventListener('abort', removed);
    s.abort('gone');
    s.abort('again');
    expect(calls).toEqual(['onabort:gone', 'a', 'b', 'c:abort']);
    expect(s.aborted).toBe(true);
    expect(s.reason).toBe('gone');
    expect(() => s.throwIfAborted()).toThrow('gone');
    s.addEventListener('abort', () => calls.push('late'));
    expect(calls).toHaveLength(4);
  });

  it('works with Node APIs that accept an AbortSignal', async () => {
    const s = new RequestSignal();
    let heard = false;
    addAbortListener(s.asAbortSignal(), () => (heard = true));
    const waiting = sleep(10_000, undefined, { signal: s.asAbortSignal() });
    s.abort(new Error('client left'));
    await expect(waiting).rejects.toThrow(/abort/i);
    expect(heard).toBe(true);
  });

  it('bridges to a real AbortSignal for APIs that need one', () => {
    const s = new RequestSignal();
    const real = abortSignalOf(s.asAbortSignal());
    expect(real).toBeInstanceOf(AbortSignal);
    const combined = AbortSignal.any([real]);
    s.abort('x');
    expect(real.aborted).toBe(true);
    expect(combined.reason).toBe('x');
  });
});
