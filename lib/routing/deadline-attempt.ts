/**
 * One attempt of a request on one version within a share of its timeout. The request's
 * `timeout` is a queue timeout in the core (Triton's meaning: a run that has started is not
 * stopped), so a version that is slow to *run* would spend the whole budget and leave
 * nothing for a fallback. Under a policy with a fallback the routing stage therefore gives
 * the chosen version a share of the time and abandons it when the share is spent: the
 * attempt's own signal is aborted (a queued copy leaves the queue; a running batch finishes
 * for its other members and this request's rows are dropped) and the attempt fails with
 * DEADLINE_EXCEEDED, so the fallback gets what remains.
 */
import { TensorwireError, toTensorwireError } from '../errors';
import type { InferCall } from '../frontdoor/types';
import type { InferResponse } from '../protocol/types';

/** Runs `call` on `version` through `next`; DEADLINE_EXCEEDED when it has not answered within `budgetMs`. */
export function attemptWithin(next: (call: InferCall) => Promise<InferResponse>, call: InferCall, version: string | undefined, budgetMs: number): Promise<InferResponse> {
  const controller = new AbortController();
  // The client leaving still cancels the attempt.
  const onClientAbort = (): void => controller.abort();
  call.signal.addEventListener('abort', onClientAbort, { once: true });
  let expired = false;
  const timer = setTimeout(() => {
    expired = true;
    controller.abort();
  }, budgetMs);
  const attempt: InferCall = { ...call, version, signal: controller.signal, request: { ...call.request, timeoutUs: Math.max(1, Math.floor(budgetMs * 1000)) } };
  let pending: Promise<InferResponse>;
  try {
    pending = next(attempt);
  } catch (e) {
    pending = Promise.reject(e);
  }
  const done = (): void => {
    clearTimeout(timer);
    call.signal.removeEventListener('abort', onClientAbort);
  };
  return pending.then(
    (response) => {
      done();
      return response;
    },
    (e: unknown) => {
      done();
      const err = toTensorwireError(e);
      if (expired && !call.signal.aborted && err.code === 'CANCELLED') {
        throw new TensorwireError('DEADLINE_EXCEEDED', `version ${version ?? '(default)'} did not answer within ${budgetMs.toFixed(1)} ms of the request's timeout`);
      }
      throw err;
    },
  );
}
