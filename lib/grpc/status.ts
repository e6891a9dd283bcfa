/**
 * TensorwireError -> gRPC status: the code from the catalogue (lib/errors.ts `grpc`), the
 * message as details, and the catalogue code itself in the trailing metadata
 * (`tensorwire-error-code`) so a client never parses messages. `retry-after` (seconds) comes
 * along when the error has one, as HTTP's Retry-After header.
 */
import * as grpc from '@grpc/grpc-js';
import { ERROR_CATALOGUE, toTensorwireError, TensorwireError } from '../errors';

/** Trailing metadata key carrying the catalogue code. */
export const ERROR_CODE_METADATA = 'tensorwire-error-code';

/**
 * Longest status message sent. Details travel in an HTTP/2 trailer, and clients (grpc-js,
 * grpc-core) refuse header blocks over 8-16 KiB; a long message must not turn into a
 * transport failure that hides the status.
 */
export const MAX_STATUS_DETAILS = 2048;

/** The gRPC status code of a catalogue error. */
export function grpcStatusOf(error: TensorwireError): grpc.status {
  return ERROR_CATALOGUE[error.code].grpc as grpc.status;
}

/** Anything thrown, as the error object grpc-js turns into a status. */
export function toServiceError(e: unknown): Partial<grpc.StatusObject> & Error {
  const error = toTensorwireError(e);
  const metadata = new grpc.Metadata();
  metadata.set(ERROR_CODE_METADATA, error.code);
  if (error.retryAfterSeconds !== undefined) metadata.set('retry-after', String(error.retryAfterSeconds));
  return Object.assign(new Error(error.message), { code: grpcStatusOf(error), details: statusDetails(error.message), metadata });
}

/** A message cut to MAX_STATUS_DETAILS. */
export function statusDetails(message: string): string {
  return message.length > MAX_STATUS_DETAILS ? `${message.slice(0, MAX_STATUS_DETAILS - 3)}...` : message;
}

/** The error of a call that arrives while the server drains. */
export function shuttingDown(): TensorwireError {
  return new TensorwireError('UNAVAILABLE', 'the server is shutting down', { retryAfterSeconds: 1 });
}
