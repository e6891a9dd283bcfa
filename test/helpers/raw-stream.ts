/**
 * A raw WebSocket client of `/v2/stream` for integration tests (the `ws` package, no
 * tensorwire client code in between): it sends frames exactly as the test builds them,
 * records every frame that comes back, indexes answers by id, and can stop reading its
 * socket to play a slow reader.
 */
import WebSocket from 'ws';
import { waitFor } from './server-harness';

/** One frame received. */
export interface RawFrame {
  binary: boolean;
  data: Buffer;
}

/** A decoded answer: the JSON (text frame, or a binary frame's header) and, for binary frames, each binary output's bytes. */
export interface RawAnswer {
  binary: boolean;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
  tensors: Record<string, Buffer>;
}

/** `[u32 LE JSON length][JSON][tensor bytes...]`: a binary stream frame. */
export function binaryFrame(header: unknown, ...tensors: Uint8Array[]): Buffer {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32LE(json.length);
  return Buffer.concat([prefix, json, ...tensors.map((t) => Buffer.from(t.buffer, t.byteOffset, t.byteLength))]);
}

/** Decodes a received frame; throws when a binary frame's sizes do not add up. */
export function decodeAnswer(frame: RawFrame): RawAnswer {
  if (!frame.binary) return { binary: false, json: JSON.parse(frame.data.toString('utf8')), tensors: {} };
  const length = frame.data.readUInt32LE(0);
  const json = JSON.parse(frame.data.toString('utf8', 4, 4 + length));
  const tensors: Record<string, Buffer> = {};
  let offset = 4 + length;
  for (const out of (json.outputs ?? []) as { name: string; parameters?: { binary_data_size?: number } }[]) {
    const size = out.parameters?.binary_data_size;
    if (size === undefined) continue;
    tensors[out.name] = frame.data.subarray(offset, offset + size);
    offset += size;
  }
  if (offset !== frame.data.length) throw new Error(`binary answer: ${frame.data.length - offset} bytes left over after the outputs`);
  return { binary: true, json, tensors };
}

/** A connected raw client. */
export class RawStream {
  /** Every frame received, in arrival order (unless `keepFrames` is false). */
  readonly frames: RawFrame[] = [];
  /** Frames received so far (also counted when they are not kept). */
  received = 0;
  /** Close code once closed. */
  closeCode: number | undefined;
  /** Called for each frame as it arrives. */
  onFrame: ((frame: RawFrame) => void) | undefined;

  private constructor(
    readonly ws: WebSocket,
    private readonly keepFrames: boolean,
  ) {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      this.received++;
      const frame = { binary: isBinary, data };
      if (this.keepFrames) this.frames.push(frame);
      this.onFrame?.(frame);
    });
    ws.on('close', (code: number) => (this.closeCode = code));
    ws.on('error', () => {}); // 'close' follows
  }

  /** Opens `/v2/stream` on `base` (http://host:port). */
  static async open(base: string, options: { keepFrames?: boolean } = {}): Promise<RawStream> {
    const ws = new WebSocket(base.replace(/^http/, 'ws') + '/v2/stream', { perMessageDeflate: false, maxPayload: 1 << 30 });
    const client = new RawStream(ws, options.keepFrames ?? true);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return client;
  }

  /** True while the socket is open. */
  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** Sends a text frame: an object as JSON, a string as it is. */
  sendText(value: unknown): void {
    this.ws.send(typeof value === 'string' ? value : JSON.stringify(value));
  }

  /** Sends bytes as one binary frame. */
  sendBinary(frame: Uint8Array): void {
    this.ws.send(frame, { binary: true });
  }

  /** Waits until `n` frames have been received in all. */
  async count(n: number, ms = 10_000): Promise<void> {
    await waitFor(() => this.received >= n, `${n} frames (have ${this.received})`, ms);
  }

  /** Kept frames decoded, keyed by their JSON `id` (String(id)); throws on a repeated id. */
  byId(): Map<string, RawAnswer> {
    const map = new Map<string, RawAnswer>();
    for (const f of this.frames) {
      const a = decodeAnswer(f);
      const key = String(a.json.id);
      if (map.has(key)) throw new Error(`two answers carry id ${key}`);
      map.set(key, a);
    }
    return map;
  }

  /** Stops reading the socket: the server's answers pile up in the kernel and then in the server. */
  pause(): void {
    this.ws.pause();
  }

  /** Reads again. */
  resume(): void {
    this.ws.resume();
  }

  /** Closing handshake (code 1000). */
  close(): void {
    this.ws.close(1000);
  }

  /** Drops the TCP connection without a closing handshake. */
  terminate(): void {
    this.ws.terminate();
  }

  /** Resolves once the socket is closed. */
  async closed(ms = 10_000): Promise<number> {
    await waitFor(() => this.closeCode !== undefined, 'the socket to close', ms);
    return this.closeCode!;
  }
}
