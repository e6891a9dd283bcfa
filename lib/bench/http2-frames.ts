/**
 * The bytes of the HTTP/2 frames the load generator's raw gRPC client (grpc-raw.ts) writes:
 * frame headers, a static HPACK request header block, WINDOW_UPDATE, and a gRPC stream's
 * messages packed into DATA frames. Pure functions over Buffers; the connection logic
 * (flow control, answers, reconnects) is grpc-raw.ts's.
 */
export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
export const DATA = 0;
export const HEADERS = 1;
export const RST_STREAM = 3;
export const SETTINGS = 4;
export const PING = 6;
export const GOAWAY = 7;
export const WINDOW_UPDATE = 8;
export const END_STREAM = 0x1;
export const ACK = 0x1;
export const END_HEADERS = 0x4;
export const MAX_WINDOW = 0x7fffffff;
export const DEFAULT_WINDOW = 65_535;
/** HTTP/2's default largest frame payload (SETTINGS_MAX_FRAME_SIZE), which grpc-js's server keeps. */
export const MAX_FRAME = 16_384;
/** HTTP/2's default largest frame: a request whose framed message is larger goes through node:http2 (GrpcMux) instead. */
export const RAW_MAX_MESSAGE = MAX_FRAME - 5;

export function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(9 + payload.length);
  out.writeUIntBE(payload.length, 0, 3);
  out[3] = type;
  out[4] = flags;
  out.writeUInt32BE(streamId, 5);
  payload.copy(out, 9);
  return out;
}

/** An HPACK string literal, not Huffman-coded (lengths below 127). */
export function literal(text: string): Buffer {
  const bytes = Buffer.from(text, 'latin1');
  if (bytes.length >= 127) throw new RangeError('header value too long for this encoder');
  return Buffer.concat([Buffer.from([bytes.length]), bytes]);
}

/** The request headers of a call to `path`, as a static HPACK block. */
export function headerBlock(path: string, authority: string): Buffer {
  return Buffer.concat([
    Buffer.from([0x83, 0x86]), // :method POST, :scheme http (static table 3, 6)
    Buffer.from([0x04]), literal(path), // :path, literal without indexing, name index 4
    Buffer.from([0x01]), literal(authority), // :authority, name index 1
    Buffer.from([0x0f, 0x10]), literal('application/grpc'), // content-type, name index 31
    Buffer.from([0x00]), literal('te'), literal('trailers'), // te: trailers, new name
  ]);
}

export function windowUpdate(streamId: number, increment: number): Buffer {
  const payload = Buffer.allocUnsafe(4);
  payload.writeUInt32BE(increment, 0);
  return frame(WINDOW_UPDATE, 0, streamId, payload);
}

/**
 * `messages` (gRPC-framed, `total` bytes together, each at most MAX_FRAME) as DATA frames of
 * stream `streamId`, as many messages per frame as fit in HTTP/2's default largest frame
 * (a DATA frame may carry several gRPC messages, as gRPC's C++ and Go clients send them): the
 * server's HTTP/2 layer then handles one frame, and grpc-js one chunk, per ~14 small requests
 * instead of one per request. A message never straddles two frames.
 */
export function dataFrames(streamId: number, messages: readonly Buffer[], total: number): Buffer {
  // At worst a frame header per message.
  const out = Buffer.allocUnsafe(total + 9 * messages.length);
  let at = 0;
  let frameStart = -1;
  for (const message of messages) {
    if (message.length > MAX_FRAME) throw new RangeError(`a ${message.length}-byte message does not fit one ${MAX_FRAME}-byte DATA frame`);
    if (frameStart < 0 || at - frameStart - 9 + message.length > MAX_FRAME) {
      if (frameStart >= 0) out.writeUIntBE(at - frameStart - 9, frameStart, 3);
      frameStart = at;
      out[at + 3] = DATA;
      out[at + 4] = 0;
      out.writeUInt32BE(streamId, at + 5);
      at += 9;
    }
    at += message.copy(out, at);
  }
  if (frameStart >= 0) out.writeUIntBE(at - frameStart - 9, frameStart, 3);
  return out.subarray(0, at);
}
