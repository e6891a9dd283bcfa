/**
 * How ModelStreamInfer's answers reach the HTTP/2 stream, batched.
 *
 * grpc-js's ServerDuplexStream is a Writable whose _write completes only once Node's HTTP/2
 * layer has written the message to the socket, and it has no _writev: its answers therefore
 * leave strictly one at a time, each waiting for the previous one's socket write, so the 16
 * answers of a dynamic batch cost 16 HTTP/2 writes, DATA frames and socket writes, one per
 * event-loop turn. Handed to grpc-js's call directly (`sendMessage`, what the duplex's
 * _write calls), they reach the Http2Stream in the same tick; corked until the next tick,
 * Node hands them to Http2Stream's _writev together: one write request, one native call, one
 * socket write for the lot.
 *
 * This reaches one level into grpc-js (1.14): with no interceptors (the server installs
 * none) a ServerDuplexStream's `call` is grpc-js's BaseServerInterceptingCall, with
 * `sendMessage(message, callback)` and the call's Http2Stream as `stream`. When that shape is
 * not found (another grpc-js version), answers go through the duplex's write() as before;
 * test/grpc-answer-writer.test.ts fails then, so an upgrade cannot lose this silently.
 */
import { Writable } from 'node:stream';

/** Writes one answer; `written` runs once it left (as the duplex's write callback would). */
export type AnswerWriter<T> = (answer: T, written: () => void) => void;

interface GrpcJsCall<T> {
  sendMessage(message: T, callback: () => void): void;
  stream: Writable;
}

/** grpc-js's call under a ServerDuplexStream, or undefined when its internals differ. */
export function grpcJsCallOf<T>(duplex: object): GrpcJsCall<T> | undefined {
  const inner = (duplex as { call?: Partial<GrpcJsCall<T>> }).call;
  if (inner === undefined || typeof inner.sendMessage !== 'function' || !(inner.stream instanceof Writable)) return undefined;
  return inner as GrpcJsCall<T>;
}

/** The batching writer of a ServerDuplexStream's answers (falls back to `duplex.write`). */
export function answerWriter<T>(duplex: { write(answer: T, callback: () => void): boolean }): AnswerWriter<T> {
  const call = grpcJsCallOf<T>(duplex);
  if (call === undefined) return (answer, written) => void duplex.write(answer, written);
  const stream = call.stream;
  let corked = false;
  const uncork = (): void => {
    corked = false;
    stream.uncork();
  };
  return (answer, written) => {
    if (!corked) {
      corked = true;
      stream.cork();
      process.nextTick(uncork);
    }
    call.sendMessage(answer, written);
  };
}
