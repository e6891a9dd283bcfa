/**
 * A minimal incremental HTTP/1.1 response parser for the load generator's raw sockets. It
 * finds where each response ends (Content-Length, chunked, or connection close) and reports
 * its status; the body itself is skipped, never copied, so a worker spends its time sending
 * requests rather than parsing replies. Keeping a body is opt-in (for the first response,
 * which the bench checks for sanity).
 */

import { TensorwireError } from '../errors';

const CRLFCRLF = Buffer.from('\r\n\r\n');
const CONTENT_LENGTH = /\r\ncontent-length:[ \t]*(\d+)/i;
const CHUNKED = /\r\ntransfer-encoding:[^\r]*chunked/i;
const CONNECTION_CLOSE = /\r\nconnection:[ \t]*close/i;
const MAX_HEAD = 64 * 1024;

// Parser states (plain numbers: a const enum would not survive per-file transpilers).
const State = { Head: 0, Body: 1, ChunkSize: 2, ChunkData: 3, Trailers: 4, UntilClose: 5 } as const;
type State = (typeof State)[keyof typeof State];

/** Called once per complete response. */
export type ResponseHandler = (status: number, keepAlive: boolean, body: Buffer | undefined) => void;

/** Parses a byte stream of HTTP/1.1 responses; throws on a malformed head. */
export class HttpResponseParser {
  private state: State = State.Head;
  private pending: Buffer | undefined;
  private remaining = 0;
  private status = 0;
  private keepAlive = true;
  private line = '';
  private bodyParts: Buffer[] | undefined;
  private lastHead: Buffer | undefined;
  private lastStatus = 0;
  private lastKeepAlive = true;
  private lastState: State = State.Head;
  private lastRemaining = 0;
  /** Keep the body of the next response (for a sanity check); cleared after it. */
  keepNextBody = false;

  constructor(private readonly onResponse: ResponseHandler) {}

  /** Feeds bytes read from the socket. */
  feed(chunk: Buffer): void {
    let buf = chunk;
    let off = 0;
    if (this.pending !== undefined) {
      buf = Buffer.concat([this.pending, chunk]);
      this.pending = undefined;
    }
    while (off < buf.length) {
      switch (this.state) {
        case State.Head: {
          const end = buf.indexOf(CRLFCRLF, off);
          if (end < 0) {
            if (buf.length - off > MAX_HEAD) throw new TensorwireError('INVALID_INPUT', `response head longer than ${MAX_HEAD} bytes`);
            this.pending = Buffer.from(buf.subarray(off));
            return;
          }
          this.startHead(buf, off, end + 2);
          off = end + 4;
          if ((this.state as State) === State.Body && this.remaining === 0) this.finish(); // startResponse changed it
          break;
        }
        case State.Body: {
          const take = Math.min(this.remaining, buf.length - off);
          this.keep(buf, off, take);
          off += take;
          this.remaining -= take;
          if (this.remaining === 0) this.finish();
          break;
        }
        case State.ChunkSize:
        case State.Trailers: {
          const nl = buf.indexOf(10, off);
          const end = nl < 0 ? buf.length : nl + 1;
          this.line += buf.toString('latin1', off, end);
          off = end;
          if (nl < 0) break;
          const text = this.line.trim();
          this.line = '';
          if (this.state === State.Trailers) {
            if (text === '') this.finish();
          } else {
            const size = parseInt(text.split(';', 1)[0]!, 16);
            if (!Number.isFinite(size) || size < 0) throw new TensorwireError('INVALID_INPUT', `bad chunk size line '${text}'`);
            if (size === 0) this.state = State.Trailers;
            else {
              this.state = State.ChunkData;
              this.remaining = size + 2; // data and its CRLF
            }
          }
          break;
        }
        case State.ChunkData: {
          const take = Math.min(this.remaining, buf.length - off);
          // The chunk's trailing CRLF is not body: keep only data bytes.
          const data = Math.max(0, Math.min(take, this.remaining - 2));
          this.keep(buf, off, data);
          off += take;
          this.remaining -= take;
          if (this.remaining === 0) this.state = State.ChunkSize;
          break;
        }
        case State.UntilClose:
          this.keep(buf, off, buf.length - off);
          off = buf.length;
          break;
      }
    }
  }

  /** The socket closed: a response that ends at close is complete; returns false if one was cut off. */
  end(): boolean {
    if (this.state === State.UntilClose) {
      this.finish();
      return true;
    }
    return this.state === State.Head && this.pending === undefined;
  }

  /** Back to a fresh state (after a reconnect). */
  reset(): void {
    this.state = State.Head;
    this.pending = undefined;
    this.line = '';
    this.bodyParts = undefined;
  }

  /**
   * Servers send the same head again and again (only a Date header changes, once a second):
   * a byte comparison with the previous head replaces decoding and three regular expressions.
   */
  private startHead(buf: Buffer, start: number, end: number): void {
    const last = this.lastHead;
    if (last !== undefined && last.length === end - start && buf.compare(last, 0, last.length, start, end) === 0) {
      this.status = this.lastStatus;
      this.keepAlive = this.lastKeepAlive;
      this.state = this.lastState;
      this.remaining = this.lastRemaining;
      if (this.keepNextBody) this.bodyParts = [];
      return;
    }
    this.startResponse(buf.toString('latin1', start, end));
    if (this.status >= 200) {
      this.lastHead = Buffer.from(buf.subarray(start, end));
      this.lastStatus = this.status;
      this.lastKeepAlive = this.keepAlive;
      this.lastState = this.state;
      this.lastRemaining = this.remaining;
    }
  }

  private startResponse(head: string): void {
    if (!head.startsWith('HTTP/1.')) throw new TensorwireError('INVALID_INPUT', `not an HTTP/1.x response: '${head.slice(0, 40)}'`);
    this.status = parseInt(head.slice(9, 12), 10);
    this.keepAlive = head.charCodeAt(7) === 0x31 /* HTTP/1.1 */ ? !CONNECTION_CLOSE.test(head) : /\r\nconnection:[ \t]*keep-alive/i.test(head);
    if (this.keepNextBody) this.bodyParts = [];
    if (this.status >= 100 && this.status < 200) {
      this.state = State.Head; // interim response (100 Continue): the real one follows
      this.bodyParts = undefined;
      return;
    }
    const len = CONTENT_LENGTH.exec(head);
    if (len) {
      this.state = State.Body;
      this.remaining = Number(len[1]);
    } else if (CHUNKED.test(head)) {
      this.state = State.ChunkSize;
    } else if (this.status === 204 || this.status === 304) {
      this.state = State.Body;
      this.remaining = 0;
    } else {
      this.state = State.UntilClose;
      this.keepAlive = false;
    }
  }

  private keep(buf: Buffer, off: number, n: number): void {
    if (this.bodyParts !== undefined && n > 0) this.bodyParts.push(Buffer.from(buf.subarray(off, off + n)));
  }

  private finish(): void {
    const body = this.bodyParts === undefined ? undefined : Buffer.concat(this.bodyParts);
    if (body !== undefined) this.keepNextBody = false;
    this.bodyParts = undefined;
    this.state = State.Head;
    this.onResponse(this.status, this.keepAlive, body);
  }
}
