/**
 * answer-writer.ts: the answers of one tick leave a ModelStreamInfer-like bidi stream in one
 * HTTP/2 write. grpc-js's ServerDuplexStream writes one message per socket write (each waits
 * for the previous one's write to finish), so a client saw one DATA frame per answer; the
 * writer hands them to the Http2Stream together. Checked on a real grpc-js server and a real
 * node:http2 client counting the DATA frames (chunks) that carry the answers.
 */
import * as http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { grpcFrame } from '../lib/bench/grpc-connection';
import { answerWriter, grpcJsCallOf } from '../lib/grpc/answer-writer';

const identity = (b: Buffer): Buffer => b;
const ANSWERS = 16;

interface Served {
  port: number;
  /** Whether the writer found grpc-js's call (not the fallback) on the last stream. */
  foundCall: boolean;
  close(): void;
}

/** A bidi method that, on each request, writes ANSWERS answers in one tick, batched or (batched false) through the duplex's write(). */
async function serve(batched: boolean): Promise<Served> {
  const server = new grpc.Server();
  const served: Served = { port: 0, foundCall: false, close: () => server.forceShutdown() };
  server.addService(
    { Echo: { path: '/t.T/Echo', requestStream: true, responseStream: true, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity } },
    {
      Echo: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
        served.foundCall = grpcJsCallOf(call) !== undefined;
        const write = batched ? answerWriter<Buffer>(call) : (answer: Buffer, done: () => void) => void call.write(answer, done);
        let left = ANSWERS;
        call.on('data', (request: Buffer) => {
          for (let i = 0; i < ANSWERS; i++) write(Buffer.concat([request, Buffer.from([i])]), () => --left === 0 && call.end());
        });
      },
    },
  );
  served.port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  return served;
}

/** Sends one request on a stream and collects the answers' bytes and how many DATA chunks carried them. */
async function call(port: number): Promise<{ answers: Buffer[]; chunks: number; status: string | undefined }> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  try {
    const stream = session.request({ ':method': 'POST', ':path': '/t.T/Echo', 'content-type': 'application/grpc', te: 'trailers' });
    let status: string | undefined;
    stream.on('trailers', (t) => (status = String(t['grpc-status'])));
    const parts: Buffer[] = [];
    stream.on('data', (c: Buffer) => parts.push(c));
    stream.end(grpcFrame(Buffer.from('req')));
    await new Promise((resolve) => stream.on('close', resolve));
    const all = Buffer.concat(parts);
    const answers: Buffer[] = [];
    for (let at = 0; at < all.length; ) {
      const length = all.readUInt32BE(at + 1);
      answers.push(all.subarray(at + 5, at + 5 + length));
      at += 5 + length;
    }
    return { answers, chunks: parts.length, status };
  } finally {
    session.close();
  }
}

describe('answerWriter', () => {
  let served: Served | undefined;
  afterEach(() => served?.close());

  it('finds grpc-js call internals it relies on (fails if a grpc-js upgrade changed them)', async () => {
    served = await serve(true);
    const { answers, status } = await call(served.port);
    expect(served.foundCall).toBe(true);
    expect(status).toBe('0');
    expect(answers.map((a) => a.toString('latin1'))).toEqual(Array.from({ length: ANSWERS }, (_, i) => `req${String.fromCharCode(i)}`));
  });

  it('writes the answers of one tick in one go, where the duplex wrote one per DATA frame', async () => {
    const unbatched = await serve(false);
    try {
      const before = await call(unbatched.port);
      expect(before.answers).toHaveLength(ANSWERS);
      expect(before.chunks).toBe(ANSWERS);
    } finally {
      unbatched.close();
    }
    served = await serve(true);
    const after = await call(served.port);
    expect(after.answers).toHaveLength(ANSWERS);
    expect(after.chunks).toBeLessThanOrEqual(2);
  });
});
