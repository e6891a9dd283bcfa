/**
 * The one catalogue of tensorwire errors. Every failure that reaches a user carries one of
 * these codes; each code maps to exactly one HTTP status and one gRPC status code (`grpc`,
 * the numeric code of grpc's Status enum, chosen as Triton's gRPC front end answers the same
 * failure). docs/errors.md lists the same table and test/errors.test.ts keeps the two in
 * agreement; docs/grpc.md lists the gRPC codes (test/grpc-status.test.ts).
 */
export const ERROR_CATALOGUE = {
  /** A request or argument is malformed or does not match the model. */
  INVALID_INPUT: { status: 400, grpc: 3, description: 'The request does not match the model or the protocol.' },
  /** No credentials, or credentials that do not verify (answered with `WWW-Authenticate: Bearer`). */
  UNAUTHENTICATED: { status: 401, grpc: 16, description: 'Credentials are missing or invalid.' },
  /** The server does not allow this (a feature switched off; later, a missing permission). */
  FORBIDDEN: { status: 403, grpc: 7, description: 'Not allowed on this server.' },
  /** Unknown model, version or route. */
  NOT_FOUND: { status: 404, grpc: 5, description: 'Unknown model, version or endpoint.' },
  /** Request body larger than the configured limit. */
  PAYLOAD_TOO_LARGE: { status: 413, grpc: 8, description: 'The body is over the configured limit.' },
  /** A batch's outputs would exceed the model's maxOutputBytes (their size depends on input values). */
  OUTPUT_TOO_LARGE: { status: 413, grpc: 8, description: 'The outputs are over the configured limit.' },
  /** Too many requests in flight for one stream connection. */
  TOO_MANY_REQUESTS: { status: 429, grpc: 8, description: 'Too many requests in flight on this connection.' },
  /** The model's queue is full. */
  QUEUE_FULL: { status: 503, grpc: 14, description: 'The model queue is full; retry later.' },
  /** The model (or server) is not ready: loading, warming, draining, shutting down. */
  UNAVAILABLE: { status: 503, grpc: 14, description: 'The model or server is not ready.' },
  /** The request's deadline passed before it ran. */
  DEADLINE_EXCEEDED: { status: 504, grpc: 4, description: 'The request timed out before it was answered.' },
  /** The request was withdrawn (client went away, unload, explicit cancel). */
  CANCELLED: { status: 499, grpc: 1, description: 'The request was cancelled.' },
  /** The model file could not be loaded. */
  MODEL_LOAD_FAILED: { status: 400, grpc: 3, description: 'The model could not be loaded.' },
  /** The requested execution provider is not available on this machine. */
  PROVIDER_UNAVAILABLE: { status: 400, grpc: 3, description: 'The execution provider is not available.' },
  /** ONNX Runtime failed while running a batch. */
  ENGINE_FAILURE: { status: 500, grpc: 13, description: 'The engine failed to run the model.' },
  /** A bug: something that should not happen. */
  INTERNAL: { status: 500, grpc: 13, description: 'Internal error.' },
} as const;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

/** The error class every layer throws; `status` comes from the catalogue. */
export class TensorwireError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** Seconds a client should wait before retrying (503/429), when known. */
  readonly retryAfterSeconds?: number;

  constructor(code: ErrorCode, message: string, options?: { retryAfterSeconds?: number; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'TensorwireError';
    this.code = code;
    this.status = ERROR_CATALOGUE[code].status;
    if (options?.retryAfterSeconds !== undefined) this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

/** True when `e` is a TensorwireError (also across realms, by shape). */
export function isTensorwireError(e: unknown): e is TensorwireError {
  return e instanceof TensorwireError || (typeof e === 'object' && e !== null && (e as { name?: string }).name === 'TensorwireError' && typeof (e as { code?: unknown }).code === 'string');
}

/** Converts anything thrown into a TensorwireError (native errors carry `code` already). */
export function toTensorwireError(e: unknown): TensorwireError {
  if (e instanceof TensorwireError) return e;
  if (typeof e === 'object' && e !== null) {
    const code = (e as { code?: unknown }).code;
    const message = (e as { message?: unknown }).message;
    if (typeof code === 'string' && code in ERROR_CATALOGUE) {
      return new TensorwireError(code as ErrorCode, String(message ?? code), { cause: e });
    }
    return new TensorwireError('INTERNAL', String(message ?? e), { cause: e });
  }
  return new TensorwireError('INTERNAL', String(e));
}
