/**
 * The load generator's gRPC client (`--protocol grpc` and `grpc-stream`): gRPC's framing over
 * node:http2 directly, with none of the per-request message work, so a comparison with HTTP
 * measures the server rather than a client library (the server stays grpc-js):
 *
 * - The ModelInferRequest is encoded and framed once (raw_input_contents); each request
 *   writes those bytes. Each stream lane appends its own `id` (field 3) to them: in protobuf
 *   the last occurrence of a scalar field wins, so no re-encoding is needed.
 * - Answers are never decoded: a unary answer only counts (its grpc-status trailer says how it
 *   went), a stream answer is walked just far enough to read its `id` and whether
 *   `error_message` is set.
 *
 * One channel (HTTP/2 connection) carries `lanes` requests in flight (`--pipeline N`): unary
 * calls multiplexed on it (grpc), or one ModelStreamInfer stream (grpc-stream). Each lane is
 * a `Connection` to the load runner with one request in flight.
 */
import * as http2 from 'node:http2';
import type { ClientHttp2Session, ClientHttp2Stream } from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import type { WireTensor } from '../client/tensor';
import { TensorwireError } from '../errors';
import { loadProtos } from '../grpc/proto';
import type { Completion, Connection, ConnectionEvents } from './connections';

const INFER_PATH = '/inference.GRPCInferenceService/ModelInfer';
export const GRPC_INFER_PATH = INFER_PATH;
export const GRPC_STREAM_PATH = '/inference.GRPCInferenceService/ModelStreamInfer';

/** The host of a `host:port` gRPC address (brackets of an IPv6 host removed). */
export function grpcHost(address: string): string {
  return address.slice(0, address.lastIndexOf(':')).replace(/^\[(.*)\]$/, '$1');
}

export function grpcPort(address: string): number {
  return Number(address.slice(address.lastIndexOf(':') + 1));
}
const STREAM_PATH = '/inference.GRPCInferenceService/ModelStreamInfer';
const identity = (b: Buffer): Buffer => b;

/** The encoded ModelInferRequest of `tensors` (raw inputs, every output). */
export function encodeGrpcRequest(model: string, version: string | undefined, tensors: readonly WireTensor[]): Buffer {
  const method = loadProtos().inference.ModelInfer!;
  return method.requestSerialize({
    model_name: model,
    model_version: version ?? '',
    inputs: tensors.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape })),
    raw_input_contents: tensors.map((t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)),
  });
}

/** `request` with its `id` (field 3, length-delimited) set to `id`. */
export function withGrpcId(request: Uint8Array, id: string): Buffer {
  const text = Buffer.from(id, 'utf8');
  if (text.length > 127) throw new RangeError('bench request ids are short');
  return Buffer.concat([request, Buffer.from([0x1a, text.length]), text]);
}

/** Reads a varint at `at`: [value, next offset]. */
function varint(b: Buffer, at: number): [number, number] {
  let v = 0;
  let shift = 0;
  for (;;) {
    const c = b[at++]!;
    v += (c & 0x7f) * 2 ** shift;
    if (c < 0x80) return [v, at];
    shift += 7;
  }
}

/** Skips the field with wire type `type` at `at`. */
function skip(b: Buffer, type: number, at: number): number {
  if (type === 0) return varint(b, at)[1];
  if (type === 1) return at + 8;
  if (type === 5) return at + 4;
  const [length, next] = varint(b, at);
  return next + length;
}

/** The `id` and error flag of an encoded ModelStreamInferResponse, walking only its headers. */
export function streamAnswerInfo(b: Buffer): { id: string; failed: boolean } {
  let id = '';
  let failed = false;
  let at = 0;
  while (at < b.length) {
    const [tag, next] = varint(b, at);
    const field = Math.floor(tag / 8);
    const type = tag & 7;
    if (field === 1 && type === 2) {
      const [length, start] = varint(b, next);
      failed = length > 0;
      at = start + length;
    } else if (field === 2 && type === 2) {
      const [length, start] = varint(b, next);
      const end = start + length;
      let i = start;
      while (i < end) {
        const [t, n] = varint(b, i);
        if (t === 0x1a) {
          const [l, s] = varint(b, n);
          id = b.toString('utf8', s, s + l);
          break;
        }
        i = skip(b, t & 7, n);
      }
      at = end;
    } else {
      at = skip(b, type, next);
    }
  }
  return { id, failed };
}

/** gRPC's length-prefixed message: a 0 (not compressed) byte, the length (u32 BE), the message. */
export function grpcFrame(message: Buffer): Buffer {
  const framed = Buffer.allocUnsafe(5 + message.length);
  framed[0] = 0;
  framed.writeUInt32BE(message.length, 1);
  message.copy(framed, 5);
  return framed;
}

/**
 * Splits a stream of DATA chunks into gRPC messages (a message may span chunks, a chunk may
 * hold several). Each message is handed over as a Buffer (a view when it lies in one chunk).
 */
export class GrpcFrameReader {
  /** Chunks of an incomplete message, and how many bytes they hold and the message needs. */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private needed = 0;

  constructor(private readonly onMessage: (message: Buffer) => void) {}

  /** Drops a partial message (the connection it came from is gone). */
  reset(): void {
    this.pending = [];
    this.pendingBytes = 0;
  }

  /** `chunk` may be a view of a read buffer the caller reuses: what is kept past this call is copied. */
  push(chunk: Buffer): void {
    let b = chunk;
    if (this.pending.length > 0) {
      this.pending.push(Buffer.from(chunk));
      this.pendingBytes += chunk.length;
      if (this.pendingBytes < this.needed) return;
      b = Buffer.concat(this.pending, this.pendingBytes);
      this.pending = [];
      this.pendingBytes = 0;
    }
    let at = 0;
    while (b.length - at >= 5) {
      const length = b.readUInt32BE(at + 1);
      if (b.length - at - 5 < length) break;
      this.onMessage(b.subarray(at + 5, at + 5 + length));
      at += 5 + length;
    }
    if (at < b.length) {
      const rest = Buffer.from(b.subarray(at));
      this.pending.push(rest);
      this.pendingBytes = rest.length;
      this.needed = rest.length >= 5 ? 5 + rest.readUInt32BE(1) : 5;
    }
  }
}

/** What a lane needs of the connection it shares (GrpcMux, or RawGrpcMux for unary calls). */
export interface GrpcLaneOwner {
  readonly isOpen: boolean;
  readonly streaming: boolean;
  readonly events: ConnectionEvents;
  requestFor(id: string): Buffer;
  connect(lane: GrpcLane): void;
  send(lane: GrpcLane): void;
  /** Abandons the lane's request in flight (timeout). */
  cancel(lane: GrpcLane): void;
  close(): void;
}

export class GrpcLane implements Connection {
  startedAt = NaN;
  busy = false;
  wanted = false;
  /** Stream lanes: the id of the request in flight; a timed-out request's id is never reused. */
  id: string;
  /** The framed request this lane sends. */
  request: Buffer;
  /** Unary lanes: the HTTP/2 stream of the call in flight (node:http2), or its stream id (raw frames). */
  call: ClientHttp2Stream | undefined;
  streamId = 0;
  private seq = 0;

  constructor(
    private readonly mux: GrpcLaneOwner,
    readonly index: number,
  ) {
    this.id = `${index}`;
    this.request = mux.requestFor(this.id);
  }

  get open(): boolean {
    return this.mux.isOpen;
  }

  connect(): void {
    this.wanted = true;
    this.mux.connect(this);
  }

  send(startedAt: number): void {
    this.startedAt = startedAt;
    this.busy = true;
    this.mux.send(this);
  }

  fail(kind: string): void {
    if (!this.busy) return;
    this.mux.cancel(this);
    if (this.mux.streaming) {
      this.id = `${this.index}.${++this.seq}`;
      this.request = this.mux.requestFor(this.id);
    }
    this.finish({ ok: false, kind });
  }

  close(): void {
    this.wanted = false;
    this.mux.close();
  }

  finish(result: Completion): void {
    const startedAt = this.startedAt;
    this.busy = false;
    this.startedAt = NaN;
    this.call = undefined;
    this.streamId = 0;
    this.mux.events.onComplete(this, result, startedAt);
  }
}

/**
 * What both connection kinds (GrpcMux over node:http2, RawGrpcMux over raw frames) do the
 * same way: their lanes, their state, and what a lost connection does to the lanes.
 */
export abstract class GrpcLaneHost implements GrpcLaneOwner {
  protected readonly laneList: GrpcLane[] = [];
  protected state: 'idle' | 'connecting' | 'open' | 'closed' = 'idle';
  abstract readonly lanes: number;
  abstract readonly streaming: boolean;
  abstract readonly events: ConnectionEvents;

  abstract requestFor(id: string): Buffer;
  abstract connect(lane: GrpcLane): void;
  abstract send(lane: GrpcLane): void;
  abstract cancel(lane: GrpcLane): void;
  abstract close(): void;
  /** Fails every request in flight with `kind`. */
  protected abstract failAll(kind: string): void;

  get full(): boolean {
    return this.laneList.length >= this.lanes;
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  addLane(): GrpcLane {
    if (this.full) throw new RangeError(`this gRPC connection already carries ${this.lanes} lanes`);
    const lane = new GrpcLane(this, this.laneList.length);
    this.laneList.push(lane);
    return lane;
  }

  /** The connection went away: lanes still connecting hear why; requests in flight fail and their lanes reconnect. */
  protected connectionLost(error?: Error): void {
    if (this.state === 'closed') return;
    const wasConnecting = this.state === 'connecting';
    this.state = 'idle';
    if (wasConnecting) {
      for (const l of this.laneList) if (l.wanted) this.events.onConnectError(l, `cannot connect: ${error?.message ?? 'connection closed'}`);
      return;
    }
    this.failAll('connection closed');
    for (const l of this.laneList) if (l.wanted) this.connect(l);
  }
}

/**
 * One HTTP/2 connection (node:http2, gRPC's framing written by hand) shared by `lanes`
 * request slots: unary calls multiplexed on it, or one ModelStreamInfer stream. The
 * generator's own per-request cost is then one HTTP/2 stream (unary) or one DATA frame
 * (stream): grpc-js's client spent ~1 ms of CPU per unary call on the development box, more
 * than the server's whole cost, so a comparison through it measured the client.
 */
export class GrpcMux extends GrpcLaneHost {
  private readonly byId = new Map<string, GrpcLane>();
  private session: ClientHttp2Session | undefined;
  private stream: ClientHttp2Stream | undefined;
  private readonly authority: string;

  constructor(
    address: string,
    private readonly request: Buffer,
    readonly lanes: number,
    readonly streaming: boolean,
    readonly events: ConnectionEvents,
  ) {
    super();
    this.authority = `http://${address}`;
  }

  requestFor(id: string): Buffer {
    return grpcFrame(this.streaming ? withGrpcId(this.request, id) : this.request);
  }

  connect(lane: GrpcLane): void {
    if (this.state === 'open') {
      queueMicrotask(() => lane.wanted && this.events.onReady(lane));
      return;
    }
    if (this.state !== 'idle') return;
    this.state = 'connecting';
    // Windows as large as the server allows, so flow control never paces a pipelined stream.
    const session = http2.connect(this.authority, { settings: { initialWindowSize: 16 * 1024 * 1024 } });
    this.session = session;
    session.once('connect', () => {
      if (this.state === 'closed' || this.session !== session) return;
      session.setLocalWindowSize(64 * 1024 * 1024);
      if (this.streaming) this.openStream(session);
      this.state = 'open';
      for (const l of this.laneList) if (l.wanted) this.events.onReady(l);
    });
    const lost = (error?: Error): void => {
      if (this.session !== session) return;
      this.session = undefined;
      this.connectionLost(error);
    };
    session.on('error', lost);
    session.on('close', () => lost());
    session.on('goaway', () => lost());
  }

  private headers(path: string): http2.OutgoingHttpHeaders {
    return { ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' };
  }

  private openStream(session: ClientHttp2Session): void {
    const stream = session.request(this.headers(STREAM_PATH));
    this.stream = stream;
    const reader = new GrpcFrameReader((answer) => {
      const { id, failed } = streamAnswerInfo(answer);
      const lane = this.byId.get(id);
      if (lane === undefined) return; // the answer to a request abandoned on timeout
      this.byId.delete(id);
      lane.finish(failed ? { ok: false, kind: 'stream error' } : { ok: true });
    });
    stream.on('data', (chunk: Buffer) => reader.push(chunk));
    const lost = (): void => {
      if (this.stream !== stream) return;
      this.stream = undefined;
      if (this.state === 'closed') return;
      // Every request of the stream is lost with it; the next connect opens a new one.
      this.failAll('stream closed');
      if (this.session !== undefined && !this.session.closed && !this.session.destroyed) this.openStream(this.session);
    };
    stream.on('error', lost);
    stream.on('close', lost);
  }

  protected failAll(kind: string): void {
    const busy = this.streaming ? [...this.byId.values()] : this.laneList.filter((l) => l.busy);
    this.byId.clear();
    for (const lane of busy) lane.finish({ ok: false, kind });
  }

  send(lane: GrpcLane): void {
    if (this.streaming) {
      this.byId.set(lane.id, lane);
      this.stream!.write(lane.request);
      return;
    }
    const call = this.session!.request(this.headers(INFER_PATH), { endStream: false });
    lane.call = call;
    let status: string | undefined;
    call.on('response', (headers) => {
      // A trailers-only answer (an error) carries grpc-status in the headers.
      const s = headers['grpc-status'];
      if (s !== undefined) status = String(s);
    });
    call.on('trailers', (trailers) => {
      const s = trailers['grpc-status'];
      if (s !== undefined) status = String(s);
    });
    // The answer's bytes are not read, only drained (its status says how it went).
    call.on('data', noop);
    call.on('close', () => {
      if (lane.call !== call || !lane.busy) return;
      const code = status === undefined ? undefined : Number(status);
      lane.finish(code === 0 ? { ok: true } : { ok: false, kind: code === undefined ? 'gRPC no status' : `gRPC ${grpc.status[code] ?? code}` });
    });
    call.on('error', noop);
    call.end(lane.request);
  }

  cancel(lane: GrpcLane): void {
    if (this.streaming) this.byId.delete(lane.id);
    const call = lane.call;
    lane.call = undefined;
    call?.close(http2.constants.NGHTTP2_CANCEL);
  }

  close(): void {
    if (this.state === 'closed') return;
    if (this.laneList.some((l) => l.wanted)) return;
    this.state = 'closed';
    this.stream?.close(http2.constants.NGHTTP2_CANCEL);
    this.session?.close();
  }
}

const noop = (): void => undefined;

/**
 * Sends the encoded request once before the load, as preflight() does for HTTP: a refusal
 * for the request itself (INVALID_ARGUMENT, NOT_FOUND) stops the run with the server's
 * message; another failure is returned for a warning.
 */
export function preflightGrpc(address: string, request: Buffer): Promise<string | undefined> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': -1, 'grpc.max_send_message_length': -1 });
  return new Promise<string | undefined>((resolve, reject) => {
    client.makeUnaryRequest(INFER_PATH, identity, identity, request, new grpc.Metadata(), { deadline: Date.now() + 30_000 }, (error) => {
      client.close();
      if (!error) resolve(undefined);
      else if (error.code === grpc.status.UNAVAILABLE && /No connection|ECONNREFUSED/.test(error.details)) reject(new TensorwireError('UNAVAILABLE', `cannot reach the gRPC server at ${address}: ${error.details}`));
      else if (error.code === grpc.status.INVALID_ARGUMENT || error.code === grpc.status.NOT_FOUND) reject(new TensorwireError('INVALID_INPUT', `the first request was refused with ${grpc.status[error.code]}: ${error.details.slice(0, 300)}`));
      else resolve(`the first request failed with ${grpc.status[error.code]}: ${error.details.slice(0, 300)}`);
    });
  });
}
