/**
 * The one module that owns uWebSockets.js's HTTP rules. Route code gets an `HttpExchange`
 * and never touches uWS's `res`/`req` itself:
 *
 * - `onAborted` is attached in the constructor, i.e. synchronously in the route handler,
 *   before anything asynchronous can happen (uWS terminates a process that returns from a
 *   handler without responding or attaching it).
 * - Method, URL, route parameters and the headers a route asks for are copied in the
 *   constructor: uWS's `HttpRequest` is stack-allocated and dies when the handler returns.
 * - Every write goes through `res.cork` (one syscall, and required after an `await`), and no
 *   write happens after the client went away or after the response was ended.
 * - Each exchange has a cancellation signal that fires when the client disconnects (a
 *   `RequestSignal`: AbortSignal-compatible and far cheaper to create than a real one).
 * - The body is read with a limit: an announced Content-Length over the limit is refused
 *   before a byte is buffered; chunks (which uWS reuses after the callback) are copied into
 *   one preallocated buffer; a body without Content-Length is cut off at the limit.
 */
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import { TensorwireError, toTensorwireError } from '../errors';
import { RequestSignal } from './request-signal';

/** Bodies the exchange can send as they are. */
export type ResponseBody = string | Uint8Array | ArrayBuffer;

const STATUS_LINES: Record<number, string> = {
  200: '200 OK',
  400: '400 Bad Request',
  404: '404 Not Found',
  405: '405 Method Not Allowed',
  413: '413 Payload Too Large',
  429: '429 Too Many Requests',
  499: '499 Client Closed Request',
  500: '500 Internal Server Error',
  503: '503 Service Unavailable',
  504: '504 Gateway Timeout',
};

/** The status line uWS expects ("404 Not Found"); unknown codes go out as the bare number. */
export function statusLine(status: number): string {
  return STATUS_LINES[status] ?? String(status);
}

/** Content types the server sends. */
export const JSON_TYPE = 'application/json';
export const OCTET_STREAM = 'application/octet-stream';

/** Seconds a client should wait when a 503/429 gives no better hint. */
const DEFAULT_RETRY_AFTER_S = 1;

/** Serialises an error the way every route answers it: `{"error": "..."}`. */
export function errorBody(message: string): string {
  return JSON.stringify({ error: message });
}

/**
 * One HTTP request/response pair. Construct it synchronously inside the uWS route handler;
 * after that, it is safe to use from any later tick.
 */
export class HttpExchange {
  /** Lower-case method ("get", "post"); '' unless the route asked for it (`copyUrl`). */
  readonly method: string;
  /** Path without the query string; '' unless the route asked for it (`copyUrl`). */
  readonly url: string;
  /** Route parameters, URL-decoded, in the order of the route pattern. */
  readonly params: string[];
  /** The headers named at construction (lower-case names), '' when absent. */
  readonly headers: Record<string, string>;

  private readonly res: HttpResponse;
  private cancel: RequestSignal | undefined;
  private aborted = false;
  private ended = false;
  /** True while a body is still arriving: answering then must close the connection. */
  private bodyPending = false;
  private rejectBody: ((e: TensorwireError) => void) | undefined;

  /**
   * @param paramCount how many route parameters to copy (`:model`, `:version`...).
   * @param headerNames lower-case names of the headers the route will read.
   * @param copyUrl copy the method and URL too (each copy is a native call; most routes know
   *   both already).
   */
  constructor(res: HttpResponse, req: HttpRequest, paramCount: number, headerNames: readonly string[], copyUrl = false) {
    this.res = res;
    res.onAborted(() => this.handleAbort());
    this.method = copyUrl ? req.getMethod() : '';
    this.url = copyUrl ? req.getUrl() : '';
    const params: string[] = new Array(paramCount);
    for (let i = 0; i < paramCount; i++) {
      const raw = req.getParameter(i);
      params[i] = raw.includes('%') ? safeDecode(raw) : raw;
    }
    this.params = params;
    const headers: Record<string, string> = {};
    for (const name of headerNames) headers[name] = req.getHeader(name);
    this.headers = headers;
  }

  /** Fires (reason: CANCELLED) when the client goes away before the response is sent. */
  get signal(): AbortSignal {
    if (this.cancel === undefined) {
      this.cancel = new RequestSignal();
      if (this.aborted) this.cancel.abort(cancelledError());
    }
    return this.cancel.asAbortSignal();
  }

  /** True when the client disconnected. */
  get isAborted(): boolean {
    return this.aborted;
  }

  /** True once a response went out or the client disconnected: nothing more can be sent. */
  get isDone(): boolean {
    return this.aborted || this.ended;
  }

  /**
   * Reads the whole body, refusing more than `maxBytes` with PAYLOAD_TOO_LARGE. Must be called
   * synchronously in the route handler (uWS discards data that arrives without a handler).
   * The returned Buffer is the server's own copy; views into it stay valid.
   */
  readBody(maxBytes: number): Promise<Buffer> {
    const announced = this.headers['content-length'];
    let expected = -1;
    if (announced !== undefined && announced !== '') {
      expected = Number(announced);
      if (!Number.isSafeInteger(expected) || expected < 0) {
        return Promise.reject(new TensorwireError('INVALID_INPUT', `invalid Content-Length header: expected a byte count, got '${announced}'`));
      }
      if (expected > maxBytes) {
        this.bodyPending = true;
        return Promise.reject(tooLarge(expected, maxBytes));
      }
    }
    this.bodyPending = true;
    return new Promise<Buffer>((resolve, reject) => {
      this.rejectBody = reject;
      // With a Content-Length the buffer is allocated once; otherwise it grows by doubling.
      let buffer: Buffer | undefined = expected >= 0 ? Buffer.allocUnsafe(expected) : undefined;
      let length = 0;
      this.res.onData((chunk, isLast) => {
        if (this.rejectBody === undefined) return; // already refused; ignore the rest
        const n = chunk.byteLength;
        if (length + n > maxBytes) {
          // Only reachable without Content-Length (chunked): stop at the limit.
          this.rejectBody = undefined;
          reject(tooLarge(length + n, maxBytes, true));
          return;
        }
        if (buffer === undefined) {
          // Fast path: the whole body in the first chunk needs exactly one copy.
          buffer = Buffer.allocUnsafe(isLast ? n : Math.min(maxBytes, Math.max(n * 2, 16384)));
        } else if (length + n > buffer.length) {
          if (expected >= 0) {
            this.rejectBody = undefined;
            reject(new TensorwireError('INVALID_INPUT', `request body is longer than its Content-Length of ${expected} bytes`));
            return;
          }
          const grown = Buffer.allocUnsafe(Math.min(maxBytes, Math.max(buffer.length * 2, length + n)));
          buffer.copy(grown, 0, 0, length);
          buffer = grown;
        }
        // The chunk is neutered when this callback returns: copy it now.
        buffer.set(new Uint8Array(chunk), length);
        length += n;
        if (isLast) {
          this.bodyPending = false;
          this.rejectBody = undefined;
          resolve(length === buffer.length ? buffer : buffer.subarray(0, length));
        }
      });
    });
  }

  /**
   * Sends a complete response. Returns false (and sends nothing) when the exchange is already
   * over. `headers` is a flat list: name, value, name, value...
   */
  send(status: number, body: ResponseBody = '', contentType?: string, headers?: readonly string[]): boolean {
    if (this.aborted || this.ended) return false;
    this.ended = true;
    // Answering before the body was read (413, early errors) leaves unread bytes on the
    // socket: close the connection rather than read and discard them.
    const close = this.bodyPending;
    const res = this.res;
    res.cork(() => {
      if (status !== 200) res.writeStatus(statusLine(status)); // uWS writes "200 OK" by default
      if (contentType !== undefined) res.writeHeader('Content-Type', contentType);
      if (headers !== undefined) for (let i = 0; i + 1 < headers.length; i += 2) res.writeHeader(headers[i]!, headers[i + 1]!);
      res.end(body, close);
    });
    return true;
  }

  /** Sends `value` as JSON. */
  sendJson(status: number, value: unknown): boolean {
    if (this.aborted || this.ended) return false;
    return this.send(status, JSON.stringify(value), JSON_TYPE);
  }

  /** Sends `{"error": message}` with the error's status (500 for anything unknown) and Retry-After for 503/429. */
  sendError(error: unknown): boolean {
    if (this.aborted || this.ended) return false;
    const e = toTensorwireError(error);
    const retry = e.status === 503 || e.status === 429 ? ['Retry-After', String(e.retryAfterSeconds ?? DEFAULT_RETRY_AFTER_S)] : undefined;
    return this.send(e.status, errorBody(e.message), JSON_TYPE, retry);
  }

  private handleAbort(): void {
    if (this.ended) return;
    this.aborted = true;
    const reject = this.rejectBody;
    this.rejectBody = undefined;
    this.bodyPending = false;
    this.cancel?.abort(cancelledError());
    reject?.(cancelledError());
  }
}

function cancelledError(): TensorwireError {
  return new TensorwireError('CANCELLED', 'the client closed the connection');
}

function tooLarge(bytes: number, limit: number, atLeast = false): TensorwireError {
  const size = atLeast ? `at least ${bytes}` : String(bytes);
  return new TensorwireError('PAYLOAD_TOO_LARGE', `request body of ${size} bytes exceeds the limit of ${limit} bytes`);
}

function safeDecode(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}
