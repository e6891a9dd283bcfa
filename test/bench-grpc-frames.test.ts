/**
 * The load generator's gRPC framing. dataFrames packs a tick's stream requests into as few
 * HTTP/2 DATA frames as fit; GrpcFrameReader: the message splitter reads from a socket buffer that is reused for the
 * next read (raw-socket.ts): a message split across reads must survive the buffer being
 * overwritten in between (it kept a view of it before, and read the next read's bytes).
 */
import { describe, expect, it } from 'vitest';
import { GrpcFrameReader, grpcFrame } from '../lib/bench/grpc-connection';
import { DATA, MAX_FRAME, dataFrames } from '../lib/bench/http2-frames';

describe('GrpcFrameReader over a reused read buffer', () => {
  it('copies what it keeps of a read: split messages come out intact', () => {
    const messages: string[] = [];
    const reader = new GrpcFrameReader((m) => messages.push(m.toString('latin1')));
    const bytes = Buffer.concat([grpcFrame(Buffer.from('first message')), grpcFrame(Buffer.from('second message'))]);
    const readBuffer = Buffer.alloc(64);
    // Read 1: the first message and 3 bytes of the second's header; read 2: a part of its body; read 3: the rest.
    const cuts = [bytes.length - 16, bytes.length - 6, bytes.length];
    let from = 0;
    for (const to of cuts) {
      readBuffer.fill(0x58); // what the next read leaves in the bytes the previous one used
      bytes.copy(readBuffer, 0, from, to);
      reader.push(readBuffer.subarray(0, to - from));
      from = to;
    }
    expect(messages).toEqual(['first message', 'second message']);
  });
});

describe('dataFrames', () => {
  /** The frames of `bytes`: [type, flags, stream id, payload]. */
  function frames(bytes: Buffer): [number, number, number, Buffer][] {
    const out: [number, number, number, Buffer][] = [];
    for (let at = 0; at < bytes.length; ) {
      const length = bytes.readUIntBE(at, 3);
      out.push([bytes[at + 3]!, bytes[at + 4]!, bytes.readUInt32BE(at + 5), bytes.subarray(at + 9, at + 9 + length)]);
      at += 9 + length;
    }
    return out;
  }

  it('packs as many whole messages per DATA frame as fit in 16 KiB, in order', () => {
    const messages = Array.from({ length: 20 }, (_, i) => grpcFrame(Buffer.alloc(1095, i)));
    const total = messages.reduce((n, m) => n + m.length, 0);
    const out = frames(dataFrames(1, messages, total));
    // 1100-byte messages: 14 fit one frame (15,400 bytes), the 15th would not.
    expect(out.map(([, , , p]) => p.length)).toEqual([14 * 1100, 6 * 1100]);
    expect(out.every(([type, flags, id]) => type === DATA && flags === 0 && id === 1)).toBe(true);
    const seen: Buffer[] = [];
    const reader = new GrpcFrameReader((m) => seen.push(Buffer.from(m)));
    for (const [, , , payload] of out) reader.push(payload);
    expect(seen.map((m) => m[0])).toEqual(messages.map((_, i) => i));
    expect(seen.every((m) => m.length === 1095)).toBe(true);
  });

  it('refuses a message larger than one frame', () => {
    const big = Buffer.alloc(MAX_FRAME + 1);
    expect(() => dataFrames(1, [big], big.length)).toThrow(/does not fit/);
  });
});
