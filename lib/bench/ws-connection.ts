/**
 * The load generator's WebSocket stream client (`/v2/stream`), written on a raw node:net
 * socket like the HTTP connections, so that the generator's cost per request is the same
 * small one for both protocols and a comparison measures the server, not the client library:
 *
 * - Every request frame is built, masked and framed once per lane, then written as it is.
 *   (RFC 6455 wants a fresh mask per frame to protect proxies from cache poisoning; a load
 *   generator talking to a server it controls does not need that, and reusing the masked
 *   bytes saves a pass over every payload.)
 * - Answers are never copied or decoded: the parser walks the frame headers, keeps the first
 *   bytes of each message to read its `"id"` (and, for a text error frame, its `"code"`),
 *   and skips the tensor bytes.
 * - Writes made in one tick leave in one system call (cork, uncork on the next tick).
 *
 * One socket carries `lanes` requests in flight (`tensorwire bench --pipeline N`). Each lane
 * is a `Connection` to the load runner, with one request in flight, told apart by the
 * numeric id in its frame. A lane whose request times out takes a new id, so the late answer
 * to the old one cannot complete its next request.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { connectReusingBuffer } from './raw-socket';
import type { Completion, Connection, ConnectionEvents } from './connections';

const OP_CONTINUATION = 0x0;
const OP_TEXT = 0x1;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const CRLFCRLF = Buffer.from('\r\n\r\n');
/** Bytes of each message kept to find its id (the JSON header starts there). */
const HEAD_BYTES = 256;
const MAX_HANDSHAKE = 16 * 1024;

/** A client frame: FIN, `opcode`, masked `payload`. */
export function maskedFrame(opcode: number, payload: Uint8Array): Buffer {
  const n = payload.length;
  const lengthBytes = n < 126 ? 0 : n < 65536 ? 2 : 8;
  const frame = Buffer.allocUnsafe(2 + lengthBytes + 4 + n);
  frame[0] = 0x80 | opcode;
  if (lengthBytes === 0) frame[1] = 0x80 | n;
  else if (lengthBytes === 2) {
    frame[1] = 0x80 | 126;
    frame.writeUInt16BE(n, 2);
  } else {
    frame[1] = 0x80 | 127;
    frame.writeBigUInt64BE(BigInt(n), 2);
  }
  const maskAt = 2 + lengthBytes;
  randomBytes(4).copy(frame, maskAt);
  for (let i = 0; i < n; i++) frame[maskAt + 4 + i] = payload[i]! ^ frame[maskAt + (i & 3)]!;
  return frame;
}

/** The stream request `payload` ([u32 LE JSON length][JSON][bytes]) with its JSON `id` set to `id`. */
export function withStreamId(payload: Uint8Array, id: number): Buffer {
  const body = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  const length = body.readUInt32LE(0);
  const header = JSON.parse(body.toString('utf8', 4, 4 + length)) as Record<string, unknown>;
  const json = Buffer.from(JSON.stringify({ ...header, id }), 'utf8');
  const prefix = Buffer.allocUnsafe(4);
  prefix.writeUInt32LE(json.length, 0);
  return Buffer.concat([prefix, json, body.subarray(4 + length)]);
}

/** Reads the integer after `"<key>":` in `bytes` (-1 when absent). */
function intAfter(bytes: Buffer, end: number, key: Buffer): number {
  const at = bytes.indexOf(key);
  if (at < 0 || at >= end) return -1;
  let i = at + key.length;
  let v = 0;
  let digits = 0;
  for (; i < end; i++) {
    const c = bytes[i]!;
    if (c < 48 || c > 57) break;
    v = v * 10 + (c - 48);
    digits++;
  }
  return digits === 0 ? -1 : v;
}
const ID_KEY = Buffer.from('"id":');
const CODE_KEY = Buffer.from('"code":');

/** One request slot on a shared socket. */
class WsLane implements Connection {
  startedAt = NaN;
  busy = false;
  /** The LoadRunner asked this lane to connect and has not closed it. */
  wanted = false;
  id: number;
  frame: Buffer;

  constructor(
    private readonly mux: WsMux,
    readonly index: number,
  ) {
    this.id = index;
    this.frame = mux.frameFor(index);
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
    this.mux.write(this.frame);
  }

  fail(kind: string): void {
    if (!this.busy) return;
    // A new id: the late answer to the abandoned request must not complete the next one.
    this.id += this.mux.lanes;
    this.frame = this.mux.frameFor(this.id);
    this.finish({ ok: false, kind });
  }

  close(): void {
    this.wanted = false;
    this.mux.close();
  }

  finish(result: Completion): void {
    // Clear the state first: the owner may send the next request from onComplete.
    const startedAt = this.startedAt;
    this.busy = false;
    this.startedAt = NaN;
    this.mux.events.onComplete(this, result, startedAt);
  }
}

/**
 * One WebSocket connection shared by `lanes` request slots. Create it, then take its lanes
 * with `addLane()` (at most `lanes`); each is a Connection for the load runner.
 */
export class WsMux {
  private readonly laneList: WsLane[] = [];
  private socket: Socket | undefined;
  private state: 'idle' | 'handshake' | 'open' | 'closed' = 'idle';
  private everOpened = false;
  private handshake: Buffer | undefined;
  private key = '';
  private readonly host: string;
  private readonly port: number;
  private readonly path: string;
  private corked = false;
  // Frame parser state.
  private header = Buffer.alloc(14);
  private headerHave = 0;
  private headerNeed = 2;
  private remaining = 0;
  private inPayload = false;
  private fin = false;
  private opcode = 0;
  private messageOpcode = 0;
  private head = Buffer.alloc(HEAD_BYTES);
  private headLength = 0;
  private control: Buffer[] = [];

  constructor(
    url: string,
    private readonly payload: Uint8Array,
    /** Lanes this socket carries (requests in flight at most). */
    readonly lanes: number,
    readonly events: ConnectionEvents,
    /** Read buffer, shared by the connections of one thread (each read is parsed before the next). */
    private readonly readBuffer: Buffer = Buffer.allocUnsafe(64 * 1024),
  ) {
    const u = new URL(url);
    this.host = u.hostname.replace(/^\[(.*)\]$/, '$1');
    this.port = Number(u.port || 80);
    this.path = u.pathname + u.search;
  }

  /** True once every lane is taken. */
  get full(): boolean {
    return this.laneList.length >= this.lanes;
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  /** A new lane (Connection) on this socket. */
  addLane(): Connection {
    if (this.full) throw new RangeError(`this WebSocket already carries ${this.lanes} lanes`);
    const lane = new WsLane(this, this.laneList.length);
    this.laneList.push(lane);
    return lane;
  }

  /** The masked frame of the request with id `id`. */
  frameFor(id: number): Buffer {
    return maskedFrame(OP_BINARY, withStreamId(this.payload, id));
  }

  /** @internal a lane wants the socket open; it hears onReady when it is. */
  connect(lane: WsLane): void {
    if (this.state === 'open') {
      process.nextTick(() => lane.wanted && this.state === 'open' && !lane.busy && this.events.onReady(lane));
      return;
    }
    if (this.state !== 'idle') return;
    this.open();
  }

  /** @internal queues a frame; the frames of one tick go out in one write. */
  write(frame: Buffer): void {
    const socket = this.socket!;
    if (!this.corked) {
      this.corked = true;
      socket.cork();
      process.nextTick(() => {
        this.corked = false;
        socket.uncork();
      });
    }
    socket.write(frame);
  }

  /** Closes the socket for good. */
  close(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.socket?.destroy();
    this.socket = undefined;
  }

  private open(): void {
    this.state = 'handshake';
    this.handshake = undefined;
    this.resetParser();
    this.key = randomBytes(16).toString('base64');
    const socket = connectReusingBuffer(
      this.host, this.port, this.readBuffer, (s) => s === this.socket,
      (bytes) => this.onBytes(bytes), (message) => this.drop(message),
    );
    this.socket = socket;
    socket.on('connect', () => {
      socket.write(
        `GET ${this.path} HTTP/1.1\r\nHost: ${this.host}:${this.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${this.key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
    socket.on('error', () => {}); // 'close' follows
    socket.on('close', () => {
      if (socket === this.socket) this.drop('connection closed');
    });
  }

  /** The socket is gone: complete the lanes' requests, then reconnect (or report the failure). */
  private drop(kind: string): void {
    const old = this.socket;
    this.socket = undefined;
    old?.destroy();
    const wasOpen = this.state === 'open';
    const closed = this.state === 'closed';
    if (!closed) this.state = 'idle';
    this.corked = false;
    for (const lane of this.laneList) if (lane.busy) lane.finish({ ok: false, kind });
    if (closed || this.state !== 'idle') return; // closed, or a lane's onComplete reopened it
    if (wasOpen || this.everOpened) this.open();
    else for (const lane of this.laneList) if (lane.wanted) this.events.onConnectError(lane, `cannot open ws://${this.host}:${this.port}${this.path}`);
  }

  private onBytes(chunk: Buffer): void {
    if (this.state === 'handshake') {
      const buf = this.handshake === undefined ? chunk : Buffer.concat([this.handshake, chunk]);
      const end = buf.indexOf(CRLFCRLF);
      if (end < 0) {
        if (buf.length > MAX_HANDSHAKE) throw new Error('upgrade response head too long');
        this.handshake = Buffer.from(buf);
        return;
      }
      this.handshake = undefined;
      const head = buf.toString('latin1', 0, end);
      const status = /^HTTP\/1\.1 (\d{3})/.exec(head);
      if (status === null || status[1] !== '101') {
        this.state = 'idle';
        this.everOpened = false;
        throw new Error(`the server refused the WebSocket upgrade (${status ? 'HTTP ' + status[1] : 'not HTTP'})`);
      }
      const accept = createHash('sha1').update(this.key + WS_GUID).digest('base64');
      if (!new RegExp(`\\r\\nsec-websocket-accept:\\s*${accept.replace(/[+/]/g, '\\$&')}`, 'i').test(head)) throw new Error('bad Sec-WebSocket-Accept');
      this.state = 'open';
      this.everOpened = true;
      for (const lane of this.laneList) if (lane.wanted && !lane.busy) this.events.onReady(lane);
      if (end + 4 < buf.length) this.onFrames(buf.subarray(end + 4));
      return;
    }
    if (this.state === 'open') this.onFrames(chunk);
  }

  private resetParser(): void {
    this.headerHave = 0;
    this.headerNeed = 2;
    this.inPayload = false;
    this.headLength = 0;
    this.control = [];
  }

  /** Walks server frames (never masked): headers, then payloads kept only as far as HEAD_BYTES. */
  private onFrames(buf: Buffer): void {
    let off = 0;
    while (off < buf.length) {
      if (!this.inPayload) {
        while (this.headerHave < this.headerNeed && off < buf.length) this.header[this.headerHave++] = buf[off++]!;
        if (this.headerHave < this.headerNeed) return;
        if (this.headerNeed === 2) {
          const len7 = this.header[1]! & 0x7f;
          if (this.header[1]! & 0x80) throw new Error('masked frame from the server');
          this.headerNeed = len7 === 126 ? 4 : len7 === 127 ? 10 : 2;
          if (this.headerNeed > 2) continue;
        }
        const len7 = this.header[1]! & 0x7f;
        this.remaining = len7 === 126 ? this.header.readUInt16BE(2) : len7 === 127 ? Number(this.header.readBigUInt64BE(2)) : len7;
        this.fin = (this.header[0]! & 0x80) !== 0;
        this.opcode = this.header[0]! & 0x0f;
        if (this.opcode !== OP_CONTINUATION && this.opcode < 8) {
          this.messageOpcode = this.opcode;
          this.headLength = 0;
        }
        this.inPayload = true;
        this.headerHave = 0;
        this.headerNeed = 2;
      }
      const take = Math.min(this.remaining, buf.length - off);
      if (this.opcode >= 8) this.control.push(Buffer.from(buf.subarray(off, off + take)));
      else if (this.headLength < HEAD_BYTES && take > 0) {
        const keep = Math.min(take, HEAD_BYTES - this.headLength);
        buf.copy(this.head, this.headLength, off, off + keep);
        this.headLength += keep;
      }
      off += take;
      this.remaining -= take;
      if (this.remaining > 0) return;
      this.inPayload = false;
      if (this.opcode >= 8) this.onControl(this.opcode, Buffer.concat(this.control));
      else if (this.fin) this.onMessage(this.messageOpcode);
      if (this.state !== 'open') return;
    }
  }

  private onControl(opcode: number, payload: Buffer): void {
    this.control = [];
    if (opcode === OP_PING) this.write(maskedFrame(0xa, payload));
    else if (opcode === OP_CLOSE) {
      this.write(maskedFrame(OP_CLOSE, payload.subarray(0, 2)));
      this.socket?.end();
    }
  }

  /** A whole answer: its id says which lane's request it completes. */
  private onMessage(opcode: number): void {
    const head = this.head;
    const end = this.headLength;
    const id = intAfter(head, end, ID_KEY);
    if (id < 0) return; // an answer no lane asked for (error frame without id): nothing to complete
    const lane = this.laneList[id % this.lanes];
    if (lane === undefined || lane.id !== id || !lane.busy) return; // a late answer to an abandoned request
    if (opcode === OP_BINARY) lane.finish({ ok: true });
    else if (opcode === OP_TEXT) {
      const code = intAfter(head, end, CODE_KEY);
      lane.finish({ ok: false, kind: code < 0 ? 'stream error' : `stream error ${code}` });
    }
  }
}
