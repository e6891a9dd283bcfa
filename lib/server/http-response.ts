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
 * - An answer sent while the body is still arriving (413, early errors) lingers: it goes out
 *   at once (chunked, so the response stays open), the rest of the body is read and dropped,
 *   and the response ends when the body ended; a client still sending after `LINGER_MS` is
 *   disconnected. Closing at once would leave unread bytes, so the kernel would send a
 *   reset, which can destroy the answer before the client reads it.
 * - Content codings (http-compression.ts): a body sent with `Content-Encoding: gzip`/`deflate`
 *   is read (bounded by the limit), then decompressed off the event loop with the same limit
 *   on its decompressed size; an answer at least `minResponseBytes` long to a client whose
 *   `Accept-Encoding` allows it is compressed off the event loop before it goes out. The
 *   exchange counts as answered (`isDone`) from `send`, and a client gone meanwhile gets
 *   nothing written. Without those headers the only cost is a string check.
 * - Bodies go out with `tryEnd` and `onWritable`: under backpressure uWS keeps no copy and the
 *   exchange knows when the last byte was handed to the kernel (`whenFlushed`), so a graceful
 *   shutdown can wait for responses still being written to slow readers.
 */
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import { TensorwireError, toTensorwireError } from '../errors';
import { RequestSignal } from './request-signal';
import { WWW_AUTHENTICATE } from '../auth/access-control';
import type { Principal } from '../frontdoor/types';
import { requestCoding, responseCoding, SUPPORTED_CODINGS, type ContentCoding } from './content-coding';
import type { HttpCompression } from './http-compression';

/** Bodies the exchange can send as they are. */
export type ResponseBody = string | Uint8Array | ArrayBuffer;

const STATUS_LINES: Record<number, string> = {
  200: '200 OK',
  204: '204 No Content',
  400: '400 Bad Request',
  401: '401 Unauthorized',
  403: '403 Forbidden',
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

/**
 * How long an answer sent before the request body ended waits for the rest of the body
 * before closing anyway (a client that keeps sending forever is cut off here).
 */
export const LINGER_MS = 2000;

/** Longest piece of client text (a URL, a header value) an error message repeats. */
const ECHO_LIMIT = 120;

/** `text` as an error message may repeat it: at most ECHO_LIMIT characters, marked when cut. */
export function echo(text: string): string {
  return text.length <= ECHO_LIMIT ? text : `${text.slice(0, ECHO_LIMIT)}... (${text.length} characters)`;
}

/**
 * Serialises an error the way every route answers it: `{"error": "...", "code": "..."}`.
 * Triton's clients read only `error`; ours read `code` (the catalogue's, lib/errors.ts).
 */
export function errorBody(error: TensorwireError): string {
  return JSON.stringify({ error: error.message, code: error.code });
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
  /**
   * Why the request's framing is ambiguous (two different Content-Length values), or
   * undefined. uWS reads the body by the first one; the rest would be parsed as another
   * request (request smuggling), so such a request is answered 400 and the connection closed.
   */
  readonly framingError: string | undefined;

  /** Who the router admitted this request as (access control on), for the front door's context. */
  principal: Principal | undefined;
  /**
   * Headers every answer of this exchange carries (CORS), flat name, value list; set by the
   * router when configured, so an exchange without them pays nothing.
   */
  extraHeaders: readonly string[] | undefined;
  /**
   * The server's compression (set by the router): request bodies in a content coding are
   * decoded with it, answers compressed. Undefined: codings are refused, nothing compressed.
   */
  compression: HttpCompression | undefined;

  private readonly res: HttpResponse;
  private addressText: string | undefined;
  /** A body read started before the handler ran (see prefetchBody). */
  private prefetched: Promise<Buffer> | undefined;
  private cancel: RequestSignal | undefined;
  private aborted = false;
  private ended = false;
  /** True once the last byte was handed to the kernel, or the client went away. */
  private flushed = false;
  private onFlushed: (() => void) | undefined;
  /** True while a body is still arriving: answering then must close the connection. */
  private bodyPending = false;
  /** Set while an early answer waits for the body to end before closing (see LINGER_MS). */
  private lingerTimer: NodeJS.Timeout | undefined;
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
    // getHeader returns the first of repeated headers; only a request with a body needs the
    // walk over all of them.
    const length = headerNames.includes('content-length') ? headers['content-length']! : req.getHeader('content-length');
    this.framingError = length === '' ? undefined : conflictingLength(req, length);
  }

  /**
   * The client's IP address as text ('' once it went away). Read on first use (a native call
   * and a decode that most requests never need).
   */
  get remoteAddress(): string {
    if (this.addressText === undefined) this.addressText = this.aborted ? '' : Buffer.from(this.res.getRemoteAddressAsText()).toString('latin1');
    return this.addressText;
  }

  /** The same as remoteAddress: lets the exchange stand for AuthenticationInfo without a copy. */
  get address(): string {
    return this.remoteAddress;
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
   * Calls `callback` once (at once if it already happened) when the response's last byte was
   * handed to the kernel or the client went away: until then the response is still in flight.
   */
  whenFlushed(callback: () => void): void {
    if (this.flushed) callback();
    else this.onFlushed = callback;
  }

  /**
   * Reads the whole body, refusing more than `maxBytes` with PAYLOAD_TOO_LARGE. Must be called
   * synchronously in the route handler (uWS discards data that arrives without a handler).
   * The returned Buffer is the server's own copy; views into it stay valid.
   */
  readBody(maxBytes: number): Promise<Buffer> {
    const encoding = this.headers['content-encoding'];
    if (encoding !== undefined && encoding !== '') return this.readEncodedBody(encoding, maxBytes);
    if (this.prefetched !== undefined) return this.prefetched;
    return this.startBodyRead(maxBytes);
  }

  /**
   * readBody of a body with a `Content-Encoding`: the compressed body is read with the limit,
   * then decompressed (off the event loop) with the limit on its decompressed size. A coding
   * the server does not speak is refused before a byte is buffered, and the answer says which
   * it does (`Accept-Encoding`, RFC 9110 §12.5.3).
   */
  private readEncodedBody(encoding: string, maxBytes: number): Promise<Buffer> {
    let coding: ContentCoding | undefined;
    try {
      coding = requestCoding(encoding);
    } catch (e) {
      this.extraHeaders = [...(this.extraHeaders ?? []), 'Accept-Encoding', SUPPORTED_CODINGS];
      this.discardBody();
      return Promise.reject(e);
    }
    const read = this.prefetched ?? this.startBodyRead(maxBytes);
    if (coding === undefined) return read;
    const compression = this.compression;
    if (compression === undefined) {
      this.discardBody();
      return Promise.reject(new TensorwireError('INVALID_INPUT', `Content-Encoding '${coding}' is not accepted on this endpoint: send the body uncompressed`));
    }
    return read.then((body) => (this.aborted ? Promise.reject(cancelledError()) : compression.decompress(body, coding, maxBytes)));
  }

  /**
   * Starts reading the body now, for a handler that runs later (after an asynchronous access
   * check): uWS drops data that arrives before a reader is attached. The handler's
   * `readBody` then gets this read. A refusal answered meanwhile lingers as usual.
   */
  prefetchBody(maxBytes: number): void {
    if (this.prefetched !== undefined) return;
    const read = this.startBodyRead(maxBytes);
    read.catch(ignoreChunk); // a refused request never looks at it
    this.prefetched = read;
  }

  /**
   * Reads and drops the body of a request refused before its handler ran, so the refusal
   * can go out while the body still arrives without the connection being reset (LINGER_MS).
   */
  discardBody(): void {
    if (this.prefetched !== undefined || this.bodyPending || this.aborted || this.ended) return;
    this.bodyPending = true;
    this.res.onData((_chunk, isLast) => {
      if (isLast) this.bodyEnded();
    });
  }

  private startBodyRead(maxBytes: number): Promise<Buffer> {
    const announced = this.headers['content-length'];
    let expected = -1;
    let refused: TensorwireError | undefined;
    if (announced !== undefined && announced !== '') {
      expected = Number(announced);
      if (!Number.isSafeInteger(expected) || expected < 0) {
        return Promise.reject(new TensorwireError('INVALID_INPUT', `invalid Content-Length header: expected a byte count, got '${echo(announced)}'`));
      }
      if (expected > maxBytes) refused = tooLarge(expected, maxBytes);
    }
    this.bodyPending = true;
    // The data handler is attached even when the body is refused up front: an early answer
    // waits for the body's end before closing the connection.
    let buffer: Buffer | undefined;
    let length = 0;
    this.res.onData((chunk, isLast) => {
      if (this.rejectBody !== undefined) this.takeChunk(chunk, isLast);
      if (isLast) this.bodyEnded();
    });
    if (refused !== undefined) return Promise.reject(refused);
    return new Promise<Buffer>((resolve, reject) => {
      this.rejectBody = reject;
      // With a Content-Length the buffer is allocated once; otherwise it grows by doubling.
      if (expected >= 0) buffer = Buffer.allocUnsafe(expected);
      this.takeChunk = (chunk, isLast) => {
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
          this.rejectBody = undefined;
          resolve(length === buffer.length ? buffer : buffer.subarray(0, length));
        }
      };
    });
  }

  /** Consumes one body chunk while a body read is pending (set by readBody). */
  private takeChunk: (chunk: ArrayBuffer, isLast: boolean) => void = ignoreChunk;

  /** The request body ended: a lingering early answer can now close the connection cleanly. */
  private bodyEnded(): void {
    this.bodyPending = false;
    if (this.lingerTimer !== undefined) this.finishLinger();
  }

  /**
   * Sends a complete response. Returns false (and sends nothing) when the exchange is already
   * over. `headers` is a flat list: name, value, name, value...
   */
  send(status: number, body: ResponseBody = '', contentType?: string, headers?: readonly string[]): boolean {
    if (this.aborted || this.ended) return false;
    this.ended = true;
    if (this.bodyPending) {
      const res = this.res;
      // Answer now, end once the rest of the body was read (see LINGER_MS). A chunked answer
      // leaves the response open until then. (No "Connection: close": uWS would write it into
      // the body of a chunked answer, and once the body is read the connection is reusable.)
      res.cork(() => {
        res.writeStatus(statusLine(status));
        if (contentType !== undefined) res.writeHeader('Content-Type', contentType);
        if (headers !== undefined) for (let i = 0; i + 1 < headers.length; i += 2) res.writeHeader(headers[i]!, headers[i + 1]!);
        const extra = this.extraHeaders;
        if (extra !== undefined) for (let i = 0; i + 1 < extra.length; i += 2) res.writeHeader(extra[i]!, extra[i + 1]!);
        res.write(typeof body === 'string' && body === '' ? ' ' : body);
      });
      this.lingerTimer = setTimeout(() => this.finishLinger(), LINGER_MS);
      return true;
    }
    const size = typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength;
    const compression = this.compression;
    if (compression !== undefined && size >= compression.minResponseBytes && size > 0) {
      if (!this.sendCompressed(compression, status, body, contentType, headers)) this.writeResponse(status, body, size, contentType, headers, VARY_ONLY);
      return true;
    }
    this.writeResponse(status, body, size, contentType, headers, undefined);
    return true;
  }

  /**
   * Starts compressing an answer for a client that accepts a coding; false (nothing started)
   * when it accepts none or the server's compression jobs are all taken. `body` must not
   * change once sent (the codecs hand over fresh buffers).
   */
  private sendCompressed(compression: HttpCompression, status: number, body: ResponseBody, contentType: string | undefined, headers: readonly string[] | undefined): boolean {
    const accept = this.headers['accept-encoding'];
    if (accept === undefined || accept === '') return false;
    const coding = responseCoding(accept);
    if (coding === undefined) return false;
    const bytes = typeof body === 'string' ? Buffer.from(body) : body instanceof ArrayBuffer ? new Uint8Array(body) : body;
    const job = compression.compress(bytes, coding);
    if (job === undefined) return false;
    // Until the job ends the exchange is answered but not flushed: a graceful shutdown waits
    // for it; a client gone meanwhile (handleAbort) gets nothing written.
    job.then(
      (compressed) => {
        if (!this.aborted) this.writeResponse(status, compressed, compressed.byteLength, contentType, headers, coding === 'gzip' ? GZIP_HEADERS : DEFLATE_HEADERS);
      },
      () => {
        // zlib failed (memory): the answer is still good uncompressed, as Triton sends it.
        if (!this.aborted) this.writeResponse(status, bytes, bytes.byteLength, contentType, headers, VARY_ONLY);
      },
    );
    return true;
  }

  /** Writes a whole answer (`coding`: the Content-Encoding/Vary headers it needs, flat). */
  private writeResponse(status: number, body: ResponseBody, size: number, contentType: string | undefined, headers: readonly string[] | undefined, coding: readonly string[] | undefined): void {
    const res = this.res;
    let done = false;
    res.cork(() => {
      if (status !== 200) res.writeStatus(statusLine(status)); // uWS writes "200 OK" by default
      if (contentType !== undefined) res.writeHeader('Content-Type', contentType);
      if (headers !== undefined) for (let i = 0; i + 1 < headers.length; i += 2) res.writeHeader(headers[i]!, headers[i + 1]!);
      if (coding !== undefined) for (let i = 0; i + 1 < coding.length; i += 2) res.writeHeader(coding[i]!, coding[i + 1]!);
      const extra = this.extraHeaders;
      if (extra !== undefined) for (let i = 0; i + 1 < extra.length; i += 2) res.writeHeader(extra[i]!, extra[i + 1]!);
      done = res.tryEnd(body, size)[1];
    });
    if (done) this.markFlushed();
    else this.writeRest(typeof body === 'string' ? Buffer.from(body) : body, size);
  }

  /**
   * The kernel took only part of the body: send the rest as the socket drains. uWS keeps no
   * copy of what it could not write, so `body` is held here until then.
   */
  private writeRest(body: Uint8Array | ArrayBuffer, size: number): void {
    const bytes = body instanceof ArrayBuffer ? new Uint8Array(body) : body;
    const res = this.res;
    res.onWritable((offset) => {
      const [ok, done] = res.tryEnd(bytes.subarray(offset), size);
      if (done) this.markFlushed();
      return ok;
    });
  }

  private markFlushed(): void {
    if (this.flushed) return;
    this.flushed = true;
    const callback = this.onFlushed;
    this.onFlushed = undefined;
    callback?.();
  }

  /**
   * Ends a lingering early answer: cleanly once the body ended, else (LINGER_MS passed and the
   * client still sends) by closing the connection.
   */
  private finishLinger(): void {
    clearTimeout(this.lingerTimer);
    this.lingerTimer = undefined;
    this.takeChunk = ignoreChunk;
    if (!this.aborted) {
      if (this.bodyPending) this.res.close();
      else this.res.cork(() => this.res.end());
    }
    this.markFlushed();
  }

  /**
   * Answers `error` and closes the connection without reading what follows (for a request
   * whose framing cannot be trusted: the rest of the bytes are not known to be its body).
   */
  sendErrorAndClose(error: TensorwireError): void {
    if (this.aborted || this.ended) return;
    this.ended = true;
    const res = this.res;
    res.cork(() => {
      res.writeStatus(statusLine(error.status));
      res.writeHeader('Content-Type', JSON_TYPE);
      res.end(errorBody(error), true);
    });
    // uWS closes once its parser returns; a request that came in the same bytes after this
    // one is still dispatched first (docs/http-conformance.md).
    this.markFlushed();
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
    const retry = e.status === 503 || e.status === 429 ? ['Retry-After', String(e.retryAfterSeconds ?? DEFAULT_RETRY_AFTER_S)] : e.status === 401 ? UNAUTHENTICATED_HEADERS : undefined;
    return this.send(e.status, errorBody(e), JSON_TYPE, retry);
  }

  private handleAbort(): void {
    this.bodyPending = false;
    if (this.lingerTimer !== undefined) {
      clearTimeout(this.lingerTimer);
      this.lingerTimer = undefined;
    }
    if (this.ended) {
      // The answer went out (or was going out); only its delivery is over.
      this.aborted = true;
      this.markFlushed();
      return;
    }
    this.aborted = true;
    const reject = this.rejectBody;
    this.rejectBody = undefined;
    this.cancel?.abort(cancelledError());
    reject?.(cancelledError());
    this.markFlushed();
  }
}

/**
 * Headers of an answer long enough to be compressed: whether it is depends on the request's
 * Accept-Encoding, which a cache must know (RFC 9110 §12.5.5).
 */
const VARY_ONLY: readonly string[] = ['Vary', 'Accept-Encoding'];
const GZIP_HEADERS: readonly string[] = ['Content-Encoding', 'gzip', 'Vary', 'Accept-Encoding'];
const DEFLATE_HEADERS: readonly string[] = ['Content-Encoding', 'deflate', 'Vary', 'Accept-Encoding'];

/** Every 401 says how to authenticate (RFC 6750). */
const UNAUTHENTICATED_HEADERS: readonly string[] = ['WWW-Authenticate', WWW_AUTHENTICATE];

/** The body consumer of an exchange that reads no body (shared: no closure per request). */
function ignoreChunk(): void {}

function cancelledError(): TensorwireError {
  return new TensorwireError('CANCELLED', 'the client closed the connection');
}

function tooLarge(bytes: number, limit: number, atLeast = false): TensorwireError {
  const size = atLeast ? `at least ${bytes}` : String(bytes);
  return new TensorwireError('PAYLOAD_TOO_LARGE', `request body of ${size} bytes exceeds the limit of ${limit} bytes`);
}

/** A message naming two different Content-Length values in `req`, or undefined. */
function conflictingLength(req: HttpRequest, first: string): string | undefined {
  let other: string | undefined;
  req.forEach((name, value) => {
    if (other === undefined && name === 'content-length' && value !== first) other = value;
  });
  return other === undefined ? undefined : `conflicting Content-Length headers: '${echo(first)}' and '${echo(other)}'`;
}

function safeDecode(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}
