/**
 * Flow control of one WebSocket stream connection.
 *
 * uWebSockets.js cannot pause reading a WebSocket, and `ws.send` silently drops a message
 * when the socket's buffered amount is already over `maxBackpressure`. So the rule is:
 *
 * 1. A request counts as in flight from the moment it is admitted until its response has been
 *    handed to uWS. At most `maxInflight` are admitted; past that the client gets a 429 error
 *    frame. Responses waiting in the outbox are therefore bounded by `maxInflight`.
 * 2. We hand frames to uWS only while `getBufferedAmount()` is under `highWaterBytes`;
 *    the rest wait in the outbox and go out from the `drain` handler. Because uWS checks its
 *    limit before accepting a frame, a frame handed over under the high-water mark is never
 *    dropped, whatever its size; `maxBackpressure` only has to exceed `highWaterBytes`.
 * 3. Error frames (429s, malformed frames) are not in flight but still wait in the outbox
 *    when the socket is backed up. A client that keeps sending while reading nothing would
 *    grow that without bound, so once the outbox holds more than `maxInflight` error frames
 *    on top of the responses, the connection is closed (the TCP connection is dropped: uWS
 *    cannot send a close frame through a full buffer). This is the only case where the server
 *    closes a stream on its own; bad requests never do.
 *
 * So a slow reader costs at most: `highWaterBytes` + one frame in uWS's buffer, plus
 * `maxInflight` responses and `maxInflight` small error frames in the outbox.
 *
 * 4. uWS can stop polling a socket for writable while bytes are still in its buffer. This
 *    happens with uWebSockets.js 20.30 when frames are sent from outside its own callbacks
 *    (ours come from engine completions) to a socket that is backed up. The buffered tail
 *    then waits for the next send, and `drain` never fires: a reader that resumes would hang
 *    short of its last answers. (test/integration-stream-flow.test.ts hit this under CPU
 *    load. An answer stayed stuck until another frame went out.) So while uWS holds bytes,
 *    a watchdog checks that they move. When they have not moved since the last check, an
 *    empty `cork()` makes uWS try to write its buffer, and poll for writable again if the
 *    write cannot finish. It sends nothing and adds no bytes. The check backs off from
 *    20 ms to 1 s while nothing moves, so a reader that really is stopped costs one timer.
 *
 * Frames are flushed once per microtask checkpoint inside one `cork`, so the responses of a
 * batch that completes at once leave in one write.
 *
 * 5. Feed frames (the live prediction feed) are best effort and never wait: one goes out only
 *    when nothing waits in the outbox for the socket to drain and uWS holds less than
 *    `highWaterBytes`; otherwise the feed drops it (and counts it). They are not in flight
 *    and never take an outbox place, so they add nothing to the memory bound above.
 */
import { TensorwireError } from '../errors';
import { RequestSignal } from './request-signal';
import { createRequestContext } from '../frontdoor/request-context';
import type { RequestContext } from '../frontdoor/types';
import type { StreamId } from '../protocol/stream-frame';

/** The subset of uWS's WebSocket the connection uses (a fake one makes the policy testable). */
export interface FrameSocket {
  send(message: string | Uint8Array, isBinary: boolean): number;
  getBufferedAmount(): number;
  cork(callback: () => void): unknown;
  end(code?: number, shortMessage?: string): void;
  close(): void;
}

/** Limits of one connection. */
export interface StreamLimits {
  /** Requests admitted and not yet answered, per connection. */
  maxInflight: number;
  /** Buffered bytes in uWS above which frames wait in the outbox. */
  highWaterBytes: number;
}

interface OutFrame {
  data: string | Uint8Array;
  binary: boolean;
  /** A response to an admitted request (releases an in-flight place when sent). */
  response: boolean;
}

/** WebSocket close code for a client that ignores both its responses and its 429s. */
export const CLOSE_POLICY_VIOLATION = 1008;

/** First and longest interval of the backpressure watchdog (rule 4), ms. */
const WATCHDOG_MIN_MS = 20;
const WATCHDOG_MAX_MS = 1000;

/** Per-connection state: in-flight accounting, cancellation and the outbox. */
export class StreamConnection {
  private inflightCount = 0;
  private closed = false;
  private outbox: OutFrame[] = [];
  private head = 0;
  private queuedErrors = 0;
  private flushScheduled = false;
  private readonly pending = new Set<RequestSignal>();
  private socket: FrameSocket | undefined;
  private readonly flushNow = (): void => this.flush();
  private watchdog: NodeJS.Timeout | undefined;
  private watchdogMs = WATCHDOG_MIN_MS;
  /** uWS's buffered bytes at the last watchdog check. */
  private watchedBytes = -1;
  private readonly checkNow = (): void => this.checkBackpressure();

  /**
   * @param origin what the upgrade request told about the client (address, selected headers),
   *   for the front door's request contexts of this connection's requests.
   */
  constructor(
    private readonly limits: StreamLimits,
    private origin: { address: string; headers: Readonly<Record<string, string>> } = { address: '', headers: {} },
  ) {}

  /** The client's address, as the upgrade saw it. */
  get address(): string {
    return this.origin.address;
  }

  /** The credential this connection's requests present: the upgrade's Authorization header, or the one its first frame sent. */
  get authorization(): string | undefined {
    return this.origin.headers['authorization'];
  }

  /**
   * Replaces the connection's credential (a browser's `{"authorization": ...}` frame, checked
   * by the caller). Later requests present it; contexts already made keep theirs.
   */
  setAuthorization(value: string): void {
    this.origin = { address: this.origin.address, headers: { ...this.origin.headers, authorization: value } };
  }

  /** The front door's context of one request of this connection (`id`: its frame id). */
  requestContext(id: StreamId | undefined): RequestContext {
    return createRequestContext('stream', this.origin.address, this.origin.headers, id === undefined ? undefined : String(id));
  }

  /** Binds the uWS socket once it is open. */
  attach(socket: FrameSocket): void {
    this.socket = socket;
  }

  /** Requests admitted whose response has not been handed to uWS yet. */
  get inflight(): number {
    return this.inflightCount;
  }

  /** True once the socket closed (nothing is sent after that). */
  get isClosed(): boolean {
    return this.closed;
  }

  /** Frames waiting for the socket to drain. */
  get queued(): number {
    return this.outbox.length - this.head;
  }

  /**
   * Admits one request: returns its cancellation signal (aborted if the socket closes), or
   * undefined when `maxInflight` requests are already in flight.
   */
  admit(): RequestSignal | undefined {
    if (this.closed || this.inflightCount >= this.limits.maxInflight) return undefined;
    this.inflightCount++;
    const signal = new RequestSignal();
    this.pending.add(signal);
    return signal;
  }

  /** Queues the one frame that answers an admitted request (response or error). */
  respond(signal: RequestSignal, data: string | Uint8Array, binary: boolean): void {
    this.pending.delete(signal);
    if (this.closed) return;
    this.outbox.push({ data, binary, response: true });
    this.schedule();
  }

  /**
   * Queues an error frame for a request that was never admitted, or the answer to a control
   * frame (subscribe, unsubscribe): neither is in flight, and both are bounded by rule 3.
   */
  reject(data: string): void {
    if (this.closed) return;
    if (this.queuedErrors >= this.limits.maxInflight) {
      // Many rejections within one tick are fine if the socket takes them: try it first.
      this.flush();
      if (this.closed) return;
      if (this.queuedErrors >= this.limits.maxInflight) {
        // Still full of unread rejections: the client is not reading (rule 3).
        this.shutdown(CLOSE_POLICY_VIOLATION, 'client does not read its responses');
        return;
      }
    }
    this.queuedErrors++;
    this.outbox.push({ data, binary: false, response: false });
    this.schedule();
  }

  /** Hands queued frames to uWS while it is under the high-water mark (also the `drain` handler). */
  flush(): void {
    this.flushScheduled = false;
    const socket = this.socket;
    if (this.closed || socket === undefined || this.head === this.outbox.length) return;
    socket.cork(() => {
      const highWater = this.limits.highWaterBytes;
      while (this.head < this.outbox.length && !this.closed && socket.getBufferedAmount() < highWater) {
        const frame = this.outbox[this.head]!;
        this.outbox[this.head++] = undefined as unknown as OutFrame; // let the bytes be collected
        socket.send(frame.data, frame.binary);
        if (frame.response) this.inflightCount--;
        else this.queuedErrors--;
      }
    });
    if (this.head === this.outbox.length) {
      this.outbox = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.outbox.length) {
      this.outbox = this.outbox.slice(this.head);
      this.head = 0;
    }
    if (this.watchdog === undefined && !this.closed && socket.getBufferedAmount() > 0) this.watch();
  }

  /**
   * Rule 5: true when a feed frame can go to uWS now without backing anything up. Answers
   * already queued for this microtask's flush are flushed first, so they keep their place in
   * front of the feed frame; answers waiting for `drain` mean the socket is backed up.
   */
  feedWritable(): boolean {
    if (this.closed || this.socket === undefined) return false;
    if (this.head !== this.outbox.length) this.flush();
    return !this.closed && this.head === this.outbox.length && this.socket !== undefined && this.socket.getBufferedAmount() < this.limits.highWaterBytes;
  }

  /** Hands a feed frame to uWS; the caller checked feedWritable() (rule 5). */
  sendFeed(frame: string): void {
    const socket = this.socket;
    if (this.closed || socket === undefined) return;
    socket.cork(() => socket.send(frame, false));
    if (this.watchdog === undefined && socket.getBufferedAmount() > 0) this.watch();
  }

  /** Starts the backpressure watchdog (rule 4). */
  private watch(): void {
    this.watchdogMs = WATCHDOG_MIN_MS;
    this.watchedBytes = -1;
    this.watchdog = setTimeout(this.checkNow, this.watchdogMs);
    this.watchdog.unref();
  }

  /** Rule 4: while uWS holds bytes, make sure they keep moving. */
  private checkBackpressure(): void {
    this.watchdog = undefined;
    const socket = this.socket;
    if (this.closed || socket === undefined) return;
    let buffered = socket.getBufferedAmount();
    if (buffered > 0 && buffered === this.watchedBytes) {
      // Nothing moved since the last check: have uWS try its write (and poll again) now.
      socket.cork(() => {});
      buffered = socket.getBufferedAmount();
    }
    if (this.head < this.outbox.length && buffered < this.limits.highWaterBytes) {
      this.flush(); // restarts the watchdog if bytes are still buffered
      return;
    }
    if (buffered === 0) return;
    // Back off while a reader stays stopped; check soon again while bytes move.
    this.watchdogMs = buffered === this.watchedBytes ? Math.min(this.watchdogMs * 2, WATCHDOG_MAX_MS) : WATCHDOG_MIN_MS;
    this.watchedBytes = buffered;
    this.watchdog = setTimeout(this.checkNow, this.watchdogMs);
    this.watchdog.unref();
  }

  /** The socket closed: cancel every admitted request and forget queued frames. */
  onClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket = undefined;
    if (this.watchdog !== undefined) clearTimeout(this.watchdog);
    this.watchdog = undefined;
    this.outbox = [];
    this.head = 0;
    const reason = new TensorwireError('CANCELLED', 'the stream connection closed');
    for (const signal of this.pending) signal.abort(reason);
    this.pending.clear();
  }

  /**
   * Closes the socket from the server side (shutdown, policy violation). A close frame with
   * `code` goes out when the socket is not backed up; otherwise the TCP connection is simply
   * closed (the client sees 1006): uWS cannot queue a close frame behind a full buffer, it
   * would cut the buffered frames anyway.
   */
  shutdown(code: number, message: string): void {
    const socket = this.socket;
    if (this.closed || socket === undefined) return;
    // uWS calls the close handler synchronously, which calls onClose().
    if (socket.getBufferedAmount() === 0) socket.end(code, message);
    else socket.close();
    this.onClose();
  }

  private schedule(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    queueMicrotask(this.flushNow);
  }
}
