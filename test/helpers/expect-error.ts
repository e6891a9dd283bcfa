/** What a call throws or a promise rejects with, for tests that check error codes and messages. */
import { expect } from 'vitest';
import { TensorwireError, type ErrorCode } from '../../lib/errors';

/**
 * The TensorwireError `fn` throws; fails the test when it throws something else, returns, or
 * the error has another code or status than expected.
 */
export function thrownError(fn: () => unknown, expected: { code?: ErrorCode; status?: number } = {}): TensorwireError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(TensorwireError);
    const error = e as TensorwireError;
    if (expected.code !== undefined) expect(error.code).toBe(expected.code);
    if (expected.status !== undefined) expect(error.status).toBe(expected.status);
    return error;
  }
  throw new Error('expected an error');
}

/** The message of the INVALID_INPUT (400) error `fn` throws. */
export function invalidInputMessage(fn: () => unknown): string {
  return thrownError(fn, { code: 'INVALID_INPUT', status: 400 }).message;
}

/** The TensorwireError a promise rejects with (fails the test if it resolves or rejects with something else). */
export async function rejection(p: Promise<unknown>): Promise<TensorwireError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(TensorwireError);
    return e as TensorwireError;
  }
  throw new Error('expected a rejection');
}
