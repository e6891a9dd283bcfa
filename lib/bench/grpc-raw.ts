/**
 * gRPC for the load generator (`--protocol grpc` and `grpc-stream`) as HTTP/2 frames written
 * on a plain TCP socket: Node's HTTP/2 client costs ~0.5 ms of CPU per unary call on the
 * development box (a stream object, header objects, async-hook bindings, timers per call)
 * and ~40-50 µs per stream message, which made the generator, not the server, the limit.
 *
 * Unary: each call is one write of pre-built bytes: a HEADERS frame whose HPACK block uses
 * only the static table and literals "without indexing" (so it never depends on, or changes,
 * any HPACK state) and a DATA frame ending the stream, with the stream id patched in. A call
 * succeeded when its stream carried DATA before the trailers ending it (grpc-js answers a
 * failure trailers-only, without DATA); RST_STREAM fails it.
 *
 * Streaming: one ModelStreamInfer stream (stream 1) per connection; each request is a gRPC
 * message built once per lane id, and the requests sent in one tick leave in as few DATA
 * frames as the frame size allows (several messages per frame, as gRPC's C++ and Go clients
 * send them); answers are split out of the stream's DATA and matched by `id`
 * (streamAnswerInfo). The stream ending for any reason loses the connection's requests and
 * reconnects.
 *
 * Everything written in one tick leaves in one system call (the socket is corked until the
 * next tick), and reads land in one reused buffer (raw-socket.ts), as for HTTP and the
 * WebSocket stream.
 *
 * The server's HPACK-encoded headers are skipped unread, which is safe because this side
 * never decodes a header block (the dynamic table only matters to a decoder). Flow control:
 * the send windows (connection, per stream) are tracked and a request waits when it would
 * overrun them; the receive windows are opened wide at the start and topped up as answers
 * arrive. Requests larger than one default frame go through node:http2 (GrpcMux) instead.
 */
import type { Socket } from 'node:net';
import type { Completion, ConnectionEvents } from './connections';
import { connectReusingBuffer } from './raw-socket';
import { GrpcFrameReader, GrpcLaneHost, grpcFrame, streamAnswerInfo, withGrpcId, type GrpcLane } from './grpc-connection';
import {
  ACK, DATA, DEFAULT_WINDOW, END_HEADERS, END_STREAM, GOAWAY, HEADERS, MAX_WINDOW, PING, PREFACE, RST_STREAM, SETTINGS, WINDOW_UPDATE,
  dataFrames, frame, headerBlock, windowUpdate,
} from './http2-frames';

export { RAW_MAX_MESSAGE } from './http2-frames';

interface Call {
  lane: GrpcLane;
  gotData: boolean;
}

/** The stream id of the one ModelStreamInfer stream: the first a client opens on a connection. */
const STREAM_ID = 1;

/** One TCP connection carrying up to `lanes` unary calls at once, or one ModelStreamInfer stream of `lanes` requests in flight. */
export class RawGrpcMux extends GrpcLaneHost {
  /** Streaming: lanes by the id of their request in flight. */
  private readonly byId = new Map<string, GrpcLane>();
  private readonly reader = new GrpcFrameReader((answer) => this.onAnswer(answer));
  /** Streaming: what the server still lets us send on the stream. */
  private streamSendWindow = DEFAULT_WINDOW;
  private readonly calls = new Map<number, Call>();
  private socket: Socket | undefined;
  private nextStreamId = 1;
  /** HEADERS + DATA of one call; stream ids at byte 5 and at dataIdAt. */
  private readonly template: Buffer;
  private readonly dataIdAt: number;
  private readonly dataBytes: number;
  private sendWindow = DEFAULT_WINDOW;
  private streamWindow = DEFAULT_WINDOW;
  private readonly waiting: GrpcLane[] = [];
  /** Streaming: messages sent this tick, not yet written (sendMessages). */
  private outgoing: Buffer[] = [];
  private outgoingBytes = 0;
  private received = 0;
  private pending: Buffer | undefined;
  private readonly streamHeaders: Buffer;
  /** Reads land here (connectReusingBuffer); each is parsed before the next. */
  private readonly readBuffer = Buffer.allocUnsafe(256 * 1024);
  /** The socket is corked until the end of this tick: the frames of one tick leave in one system call. */
  private corked = false;

  constructor(
    private readonly host: string,
    private readonly port: number,
    path: string,
    private readonly request: Buffer,
    readonly lanes: number,
    readonly streaming: boolean,
    readonly events: ConnectionEvents,
  ) {
    super();
    const headers = frame(HEADERS, END_HEADERS, 0, headerBlock(path, `${host.includes(':') ? `[${host}]` : host}:${port}`));
    // Streaming: the stream's HEADERS (not ending it), sent once per connection.
    this.streamHeaders = Buffer.from(headers);
    this.streamHeaders.writeUInt32BE(STREAM_ID, 5);
    const framed = Buffer.allocUnsafe(5 + request.length);
    framed[0] = 0;
    framed.writeUInt32BE(request.length, 1);
    request.copy(framed, 5);
    const data = frame(DATA, END_STREAM, 0, framed);
    this.template = Buffer.concat([headers, data]);
    this.dataIdAt = headers.length + 5;
    this.dataBytes = framed.length;
  }

  requestFor(id: string): Buffer {
    // Streaming: a DATA frame of the stream carrying the request with the lane's id.
    // Streaming: the gRPC message carrying the lane's id; the DATA frames around it are built as it leaves (sendMessages).
    return this.streaming ? grpcFrame(withGrpcId(this.request, id)) : this.template;
  }

  connect(lane: GrpcLane): void {
    if (this.state === 'open') {
      queueMicrotask(() => lane.wanted && this.events.onReady(lane));
      return;
    }
    if (this.state !== 'idle') return;
    this.state = 'connecting';
    const socket = connectReusingBuffer(
      this.host,
      this.port,
      this.readBuffer,
      (s) => this.socket === s,
      (bytes) => this.read(bytes),
      () => socket.destroy(),
    );
    this.socket = socket;
    this.corked = false;
    this.nextStreamId = 1;
    this.sendWindow = DEFAULT_WINDOW;
    this.streamWindow = DEFAULT_WINDOW;
    this.streamSendWindow = DEFAULT_WINDOW;
    this.pending = undefined;
    this.outgoing = [];
    this.outgoingBytes = 0;
    this.reader.reset();
    socket.once('connect', () => {
      if (this.socket !== socket) return;
      // Our SETTINGS: no push, the largest stream window; then the largest connection window.
      const settings = Buffer.from([0, 2, 0, 0, 0, 0, 0, 4, 0x7f, 0xff, 0xff, 0xff]);
      this.write(Buffer.concat([PREFACE, frame(SETTINGS, 0, 0, settings), windowUpdate(0, MAX_WINDOW - DEFAULT_WINDOW), ...(this.streaming ? [this.streamHeaders] : [])]));
      this.state = 'open';
      for (const l of this.laneList) if (l.wanted) this.events.onReady(l);
    });
    const lost = (error?: Error): void => {
      if (this.socket !== socket) return;
      this.socket = undefined;
      socket.destroy();
      this.connectionLost(error);
    };
    socket.on('error', lost);
    socket.on('close', () => lost());
  }

  send(lane: GrpcLane): void {
    if (this.streaming) {
      const bytes = lane.request.length;
      if (this.sendWindow < bytes || this.streamSendWindow < bytes || this.waiting.length > 0) {
        this.waiting.push(lane);
        return;
      }
      this.sendWindow -= bytes;
      this.streamSendWindow -= bytes;
      this.byId.set(lane.id, lane);
      this.queueMessage(lane.request);
      return;
    }
    if (this.sendWindow < this.dataBytes || this.streamWindow < this.dataBytes) {
      this.waiting.push(lane);
      return;
    }
    this.sendWindow -= this.dataBytes;
    const id = this.nextStreamId;
    this.nextStreamId += 2;
    const bytes = Buffer.from(this.template);
    bytes.writeUInt32BE(id, 5);
    bytes.writeUInt32BE(id, this.dataIdAt);
    lane.streamId = id;
    this.calls.set(id, { lane, gotData: false });
    this.write(bytes);
  }

  /** Streaming: queues a gRPC message; the messages of one tick leave together (sendMessages). */
  private queueMessage(message: Buffer): void {
    if (this.outgoing.length === 0) process.nextTick(() => this.sendMessages());
    this.outgoing.push(message);
    this.outgoingBytes += message.length;
  }

  /** The stream's queued messages, as few DATA frames as they fit in (dataFrames), in one write. */
  private sendMessages(): void {
    const messages = this.outgoing;
    const total = this.outgoingBytes;
    this.outgoing = [];
    this.outgoingBytes = 0;
    if (this.socket === undefined || messages.length === 0) return;
    this.write(dataFrames(STREAM_ID, messages, total));
  }

  /** Queues bytes on the socket; everything written in one tick (every request sent while one read's answers are handled) leaves in one system call. */
  private write(bytes: Buffer): void {
    const socket = this.socket;
    if (socket === undefined) return;
    if (!this.corked) {
      this.corked = true;
      socket.cork();
      process.nextTick(() => {
        if (this.socket === socket) this.corked = false;
        socket.uncork();
      });
    }
    socket.write(bytes);
  }

  cancel(lane: GrpcLane): void {
    const i = this.waiting.indexOf(lane);
    if (i >= 0) this.waiting.splice(i, 1);
    if (this.streaming) {
      this.byId.delete(lane.id);
      return;
    }
    const id = lane.streamId;
    if (id === 0 || !this.calls.delete(id)) return;
    const code = Buffer.alloc(4);
    code.writeUInt32BE(8, 0); // CANCEL
    this.write(frame(RST_STREAM, 0, id, code));
  }

  close(): void {
    if (this.state === 'closed') return;
    if (this.laneList.some((l) => l.wanted)) return;
    this.state = 'closed';
    this.socket?.destroy();
    this.socket = undefined;
  }

  protected failAll(kind: string): void {
    const calls = [...this.calls.values(), ...[...this.byId.values()].map((lane) => ({ lane }))];
    this.calls.clear();
    this.byId.clear();
    const waiting = this.waiting.splice(0);
    for (const { lane } of calls) this.finish(lane, { ok: false, kind });
    for (const lane of waiting) this.finish(lane, { ok: false, kind });
  }

  private finish(lane: GrpcLane, result: Completion): void {
    if (lane.busy) lane.finish(result);
  }

  private read(chunk: Buffer): void {
    let b = chunk;
    if (this.pending !== undefined) {
      b = Buffer.concat([this.pending, chunk]);
      this.pending = undefined;
    }
    let at = 0;
    while (b.length - at >= 9) {
      const length = b.readUIntBE(at, 3);
      if (b.length - at - 9 < length) break;
      this.onFrame(b[at + 3]!, b[at + 4]!, b.readUInt32BE(at + 5) & 0x7fffffff, b.subarray(at + 9, at + 9 + length));
      at += 9 + length;
    }
    if (at < b.length) this.pending = Buffer.from(b.subarray(at));
  }

  /** A ModelStreamInferResponse: finish the lane whose request it answers. */
  private onAnswer(answer: Buffer): void {
    const { id, failed } = streamAnswerInfo(answer);
    const lane = this.byId.get(id);
    if (lane === undefined) return; // the answer to a request abandoned on timeout
    this.byId.delete(id);
    this.finish(lane, failed ? { ok: false, kind: 'stream error' } : { ok: true });
  }

  private onFrame(type: number, flags: number, streamId: number, payload: Buffer): void {
    if (this.streaming && streamId === STREAM_ID) {
      // The stream's answers; its end (trailers, END_STREAM, a reset) loses the connection's requests: reconnect.
      if (type === DATA) {
        this.received += payload.length;
        this.reader.push(payload);
      }
      if (type === RST_STREAM || ((type === DATA || type === HEADERS) && flags & END_STREAM)) {
        this.socket?.destroy();
        return;
      }
      if (type === WINDOW_UPDATE) {
        this.streamSendWindow += payload.readUInt32BE(0) & 0x7fffffff;
        this.flushWaiting();
      }
      if (type !== DATA) return;
      if (this.received > 256 * 1024 * 1024) {
        this.write(windowUpdate(0, this.received));
        this.received = 0;
      }
      return;
    }
    switch (type) {
      case DATA: {
        this.received += payload.length;
        // Keep the connection window open: top it up after every 256 MiB received.
        if (this.received > 256 * 1024 * 1024) {
          this.write(windowUpdate(0, this.received));
          this.received = 0;
        }
        const call = this.calls.get(streamId);
        if (call !== undefined && payload.length > 0) call.gotData = true;
        if (flags & END_STREAM) this.end(streamId, call?.gotData === true);
        return;
      }
      case HEADERS:
        if (flags & END_STREAM) this.end(streamId, this.calls.get(streamId)?.gotData === true);
        return;
      case RST_STREAM: {
        const call = this.calls.get(streamId);
        if (call === undefined) return;
        this.calls.delete(streamId);
        this.finish(call.lane, { ok: false, kind: 'gRPC stream reset' });
        return;
      }
      case SETTINGS:
        if (flags & ACK) return;
        for (let i = 0; i + 6 <= payload.length; i += 6) {
          if (payload.readUInt16BE(i) === 4) {
            const window = payload.readUInt32BE(i + 2);
            // A change of the initial window applies to the open stream too (RFC 9113 6.9.2).
            this.streamSendWindow += window - this.streamWindow;
            this.streamWindow = window;
          }
        }
        this.write(frame(SETTINGS, ACK, 0, Buffer.alloc(0)));
        this.flushWaiting();
        return;
      case PING:
        if (!(flags & ACK)) this.write(frame(PING, ACK, 0, payload));
        return;
      case WINDOW_UPDATE:
        if (streamId === 0) this.sendWindow += payload.readUInt32BE(0) & 0x7fffffff;
        this.flushWaiting();
        return;
      case GOAWAY:
        this.socket?.destroy();
        return;
      default:
    }
  }

  private end(streamId: number, ok: boolean): void {
    const call = this.calls.get(streamId);
    if (call === undefined) return;
    this.calls.delete(streamId);
    // grpc-js answers a failed call trailers-only: no DATA before the trailers.
    this.finish(call.lane, ok ? { ok: true } : { ok: false, kind: 'gRPC error status' });
  }

  private flushWaiting(): void {
    if (this.streaming) {
      while (this.waiting.length > 0) {
        const bytes = this.waiting[0]!.request.length;
        if (this.sendWindow < bytes || this.streamSendWindow < bytes) return;
        const lane = this.waiting.shift()!;
        this.sendWindow -= bytes;
        this.streamSendWindow -= bytes;
        this.byId.set(lane.id, lane);
        this.queueMessage(lane.request);
      }
      return;
    }
    while (this.waiting.length > 0 && this.sendWindow >= this.dataBytes && this.streamWindow >= this.dataBytes) this.send(this.waiting.shift()!);
  }
}
