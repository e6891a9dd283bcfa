/**
 * The load generator's connections: one request in flight per connection, the request
 * bytes prepared once and written as they are. HTTP goes over raw node:net sockets with
 * keep-alive (measured faster than node:http with a keep-alive Agent: no per-request
 * ClientRequest/IncomingMessage objects, no header parsing beyond what ends a response);
 * the WebSocket stream's connections (lanes of a shared socket) are ws-connection.ts's.
 */
import type { Socket } from 'node:net';
import { connectReusingBuffer } from './raw-socket';
import { HttpResponseParser } from './http-parser';

/** How a request ended: ok, or the error kind the report counts it under. */
export type Completion = { ok: true } | { ok: false; kind: string };

/** What a connection tells its owner. */
export interface ConnectionEvents {
  /** The connection is open and idle (first time, or again after a reconnect). */
  onReady(conn: Connection): void;
  /** The request in flight finished (response, error status, or transport failure); `startedAt` is its start time. */
  onComplete(conn: Connection, result: Completion, startedAt: number): void;
  /** Opening failed; the owner decides when to retry. */
  onConnectError(conn: Connection, message: string): void;
}

/** One connection with at most one request in flight. */
export interface Connection {
  /** performance.now() the request in flight counts from (its scheduled or send time); NaN when idle. */
  startedAt: number;
  readonly busy: boolean;
  readonly open: boolean;
  /** Opens (or reopens) the connection. */
  connect(): void;
  /** Sends the prepared request; `startedAt` is the time latency counts from. */
  send(startedAt: number): void;
  /** Abandons the request in flight (timeout): it completes with `kind`, the connection reopens. */
  fail(kind: string): void;
  close(): void;
}

/** HTTP/1.1 over a raw keep-alive socket. */
export class HttpConnection implements Connection {
  startedAt = NaN;
  busy = false;
  open = false;
  private socket: Socket | undefined;
  private closed = false;
  private readonly parser: HttpResponseParser;

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly request: Buffer,
    private readonly events: ConnectionEvents,
    /** Read buffer, shared by the connections of one thread (each read is parsed before the next). */
    private readonly readBuffer: Buffer = Buffer.allocUnsafe(64 * 1024),
  ) {
    this.parser = new HttpResponseParser((status, keepAlive) => this.response(status, keepAlive));
  }

  connect(): void {
    if (this.closed) return;
    this.parser.reset();
    const socket = connectReusingBuffer(
      this.host, this.port, this.readBuffer, (s) => s === this.socket,
      (bytes) => this.parser.feed(bytes), (message) => this.reopen(message),
    );
    this.socket = socket;
    socket.on('connect', () => {
      if (socket !== this.socket) return;
      this.open = true;
      this.events.onReady(this);
    });
    socket.on('error', () => {}); // 'close' follows and says what happened
    socket.on('close', () => {
      if (socket !== this.socket) return;
      const wasOpen = this.open;
      this.open = false;
      this.socket = undefined;
      // A response delimited by the close completes now (and reopen() has reconnected).
      if (this.busy && this.parser.end() && !this.busy) return;
      if (this.busy) this.finish({ ok: false, kind: 'connection closed' });
      if (this.closed) return;
      if (wasOpen) this.connect();
      else this.events.onConnectError(this, `cannot connect to ${this.host}:${this.port}`);
    });
  }

  send(startedAt: number): void {
    this.startedAt = startedAt;
    this.busy = true;
    this.socket!.write(this.request);
  }

  fail(kind: string): void {
    if (this.busy) this.reopen(kind);
  }

  close(): void {
    this.closed = true;
    this.socket?.destroy();
    this.socket = undefined;
    this.open = false;
  }

  private response(status: number, keepAlive: boolean): void {
    if (!this.busy) return; // nothing asked: a stray response (server bug); ignore it
    const result: Completion = status >= 200 && status < 300 ? { ok: true } : { ok: false, kind: `HTTP ${status}` };
    // The server closes after this response: reconnect before the next request.
    if (!keepAlive) this.reopen(result);
    else this.finish(result);
  }

  private finish(result: Completion): void {
    // Clear the state first: the owner may send the next request from onComplete.
    const startedAt = this.startedAt;
    this.busy = false;
    this.startedAt = NaN;
    this.events.onComplete(this, result, startedAt);
  }

  /**
   * Detaches and destroys the socket *before* completing the request in flight, so the owner
   * (which may send again from onComplete) sees the connection closed and waits for onReady.
   */
  private reopen(result: Completion | string): void {
    const old = this.socket;
    this.socket = undefined;
    this.open = false;
    old?.destroy();
    if (this.busy) this.finish(typeof result === 'string' ? { ok: false, kind: result } : result);
    if (!this.closed) this.connect();
  }
}
