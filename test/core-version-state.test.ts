/**
 * The version lifecycle's transition table (lib/core/version-state.ts): every legal move is
 * allowed, every other one throws INTERNAL naming the version and both states.
 */
import { describe, expect, it } from 'vitest';
import type { VersionState } from '../lib/core/types';
import { canTransition, INITIAL_VERSION_STATE, isFinalState, transition, VERSION_TRANSITIONS } from '../lib/core/version-state';
import { thrownError } from './helpers/expect-error';

const STATES: VersionState[] = ['loading', 'warming', 'ready', 'draining', 'unloading', 'unavailable', 'failed'];

/** The diagram of docs/lifecycle.md, written out move by move. */
const LEGAL: [VersionState, VersionState][] = [
  ['loading', 'warming'],
  ['loading', 'failed'],
  ['warming', 'ready'],
  ['warming', 'failed'],
  ['ready', 'draining'],
  ['draining', 'unloading'],
  ['unloading', 'unavailable'],
];

describe('version state table', () => {
  it('covers every state and starts in loading', () => {
    expect(Object.keys(VERSION_TRANSITIONS).sort()).toEqual([...STATES].sort());
    expect(INITIAL_VERSION_STATE).toBe('loading');
  });

  it.each(LEGAL)('allows %s -> %s', (from, to) => {
    expect(canTransition(from, to)).toBe(true);
    expect(transition(from, to, 'model "m" version 1')).toBe(to);
  });

  it('throws INTERNAL for every move the diagram does not draw', () => {
    let illegal = 0;
    for (const from of STATES) {
      for (const to of STATES) {
        if (LEGAL.some(([f, t]) => f === from && t === to)) continue;
        illegal++;
        expect(canTransition(from, to)).toBe(false);
        const e = thrownError(() => transition(from, to, 'model "m" version 3'), { code: 'INTERNAL', status: 500 });
        expect(e.message).toBe(`model "m" version 3: illegal state change ${from} -> ${to}`);
      }
    }
    expect(illegal).toBe(STATES.length * STATES.length - LEGAL.length);
  });

  it('a failed or unavailable version never moves again; a ready one never fails or loads again', () => {
    expect(STATES.filter(isFinalState).sort()).toEqual(['failed', 'unavailable']);
    expect(canTransition('ready', 'failed')).toBe(false);
    expect(canTransition('ready', 'loading')).toBe(false);
    expect(canTransition('failed', 'loading')).toBe(false);
  });
});
