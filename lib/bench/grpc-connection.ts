/**
 * The load generator's gRPC client (`--protocol grpc` and `grpc-stream`), on @grpc/grpc-js
 * with the protocol's own framing but none of the per-request message work, so a comparison
 * with HTTP measures the server rather than the client library:
 *
 * - The ModelInferRequest is encoded once (raw_input_contents) and sent as bytes through an
 *   identity serializer. Each stream lane appends its own `id` (field 3) to those bytes: in
 *   protobuf the last occurrence of a scalar field wins, so no re-encoding is needed.
 * - Answers are never decoded: a unary answer only counts, a stream answer is walked just far
 *   enough to read its `id` and whether `error_message` is set.
 *
 * One channel (HTTP/2 connection) carries `lanes` requests in flight (`--pipeline N`): unary
 * calls multiplexed on it (grpc), or one ModelStreamInfer stream (grpc-stream). Each lane is
 * a `Connection` to the load runner with one request in flight.
 */
import * as grpc from '@grpc/grpc-js';
import type { WireTensor } from '../client/tensor';
import { TensorwireError } from '../errors';
import { loadProtos } from '../grpc/proto';
import type { Completion, Connection, ConnectionEvents } from './connections';

const INFER_PATH = '/inference.GRPCInferenceService/ModelInfer';
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

class GrpcLane implements Connection {
  startedAt = NaN;
  busy = false;
  wanted = false;
  /** Stream lanes: the id of the request in flight; a timed-out request's id is never reused. */
  id: string;
  request: Buffer;
  call: grpc.ClientUnaryCall | undefined;
  private seq = 0;

  constructor(
    private readonly mux: GrpcMux,
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
    this.call?.cancel();
    this.call = undefined;
    if (this.mux.streaming) {
      this.mux.forget(this);
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
    this.mux.events.onComplete(this, result, startedAt);
  }
}

/** One gRPC channel shared by `lanes` request slots (unary calls, or one stream). */
export class GrpcMux {
  private readonly client: grpc.Client;
  private readonly laneList: GrpcLane[] = [];
  private readonly byId = new Map<string, GrpcLane>();
  private state: 'idle' | 'connecting' | 'open' | 'closed' = 'idle';
  private stream: grpc.ClientDuplexStream<Buffer, Buffer> | undefined;

  constructor(
    address: string,
    private readonly request: Buffer,
    readonly lanes: number,
    readonly streaming: boolean,
    readonly events: ConnectionEvents,
  ) {
    // A local subchannel pool: each mux is its own HTTP/2 connection, as each HTTP connection is.
    this.client = new grpc.Client(address, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1, 'grpc.max_receive_message_length': -1, 'grpc.max_send_message_length': -1 });
  }

  get full(): boolean {
    return this.laneList.length >= this.lanes;
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  addLane(): Connection {
    if (this.full) throw new RangeError(`this gRPC channel already carries ${this.lanes} lanes`);
    const lane = new GrpcLane(this, this.laneList.length);
    this.laneList.push(lane);
    return lane;
  }

  requestFor(id: string): Buffer {
    return this.streaming ? withGrpcId(this.request, id) : this.request;
  }

  connect(lane: GrpcLane): void {
    if (this.state === 'open') {
      queueMicrotask(() => lane.wanted && this.events.onReady(lane));
      return;
    }
    if (this.state !== 'idle') return;
    this.state = 'connecting';
    this.client.waitForReady(Date.now() + 10_000, (error) => {
      if (this.state === 'closed') return;
      if (error) {
        this.state = 'idle';
        for (const l of this.laneList) if (l.wanted) this.events.onConnectError(l, `cannot connect: ${error.message}`);
        return;
      }
      if (this.streaming) this.openStream();
      this.state = 'open';
      for (const l of this.laneList) if (l.wanted) this.events.onReady(l);
    });
  }

  private openStream(): void {
    const stream = this.client.makeBidiStreamRequest(STREAM_PATH, identity, identity);
    this.stream = stream;
    stream.on('data', (answer: Buffer) => {
      const { id, failed } = streamAnswerInfo(answer);
      const lane = this.byId.get(id);
      if (lane === undefined) return; // the answer to a request abandoned on timeout
      this.byId.delete(id);
      lane.finish(failed ? { ok: false, kind: 'stream error' } : { ok: true });
    });
    const lost = (): void => {
      if (this.stream !== stream) return;
      this.stream = undefined;
      if (this.state === 'closed') return;
      // Every request of the stream is lost with it; the next connect opens a new one.
      this.state = 'idle';
      const busy = [...this.byId.values()];
      this.byId.clear();
      for (const lane of busy) lane.finish({ ok: false, kind: 'stream closed' });
      for (const lane of this.laneList) if (lane.wanted) this.connect(lane);
    };
    stream.on('error', lost);
    stream.on('end', lost);
  }

  send(lane: GrpcLane): void {
    if (this.streaming) {
      this.byId.set(lane.id, lane);
      this.stream!.write(lane.request);
      return;
    }
    lane.call = this.client.makeUnaryRequest(INFER_PATH, identity, identity, lane.request, (error) => {
      if (!lane.busy) return;
      lane.finish(error ? { ok: false, kind: `gRPC ${grpc.status[error.code] ?? error.code}` } : { ok: true });
    });
  }

  forget(lane: GrpcLane): void {
    this.byId.delete(lane.id);
  }

  close(): void {
    if (this.state === 'closed') return;
    if (this.laneList.some((l) => l.wanted)) return;
    this.state = 'closed';
    this.stream?.cancel();
    this.client.close();
  }
}

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
