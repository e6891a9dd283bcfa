/**
 * The lifecycle of one model version as a transition table (Triton's model lifecycle): the
 * diagram in docs/lifecycle.md is this table, and a move it does not list is a bug in the
 * caller, so it throws instead of leaving a version in a state nobody planned for.
 *
 *   loading ──▶ warming ──▶ ready ──▶ draining ──▶ unloading ──▶ unavailable
 *      │           │
 *      └───────────┴──▶ failed (never took traffic; reason kept)
 *
 * `ready` is the serving state: the only one that takes requests. `failed` and `unavailable`
 * are final: a new attempt (repaired files, a reload) is a new version object.
 */
import { TensorwireError } from '../errors';
import type { VersionState } from './types';

/** Every legal move: from a state (key) to the states listed. */
export const VERSION_TRANSITIONS: Readonly<Record<VersionState, readonly VersionState[]>> = Object.freeze({
  loading: ['warming', 'failed'],
  warming: ['ready', 'failed'],
  ready: ['draining'],
  draining: ['unloading'],
  unloading: ['unavailable'],
  unavailable: [],
  failed: [],
});

/** The state every version starts in (its files are being loaded). */
export const INITIAL_VERSION_STATE: VersionState = 'loading';

/** True when the table allows `from` → `to`. */
export function canTransition(from: VersionState, to: VersionState): boolean {
  return VERSION_TRANSITIONS[from].includes(to);
}

/**
 * Checks a move against the table; INTERNAL naming the version (`where`) and both states when
 * the table does not list it. Returns `to`, so a caller can assign the checked state in one step.
 */
export function transition(from: VersionState, to: VersionState, where: string): VersionState {
  if (!canTransition(from, to)) throw new TensorwireError('INTERNAL', `${where}: illegal state change ${from} -> ${to}`);
  return to;
}

/** True for the states a version never leaves. */
export function isFinalState(state: VersionState): boolean {
  return VERSION_TRANSITIONS[state].length === 0;
}
