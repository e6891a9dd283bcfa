/**
 * The load generator's gRPC message splitter reads from a socket buffer that is reused for the
 * next read (raw-socket.ts): a message split across reads must survive the buffer being
 * overwritten in between (it kept a view of it before, and read the next read's bytes).
 */
import { describe, expect, it } from 'vitest';
import { GrpcFrameReader, grpcFrame } from '../lib/bench/grpc-connection';

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
