/**
 * Decodes inference request bodies and stream frames without holding the event loop.
 * Decoding JSON costs ~5-25 ns a byte (numbers to doubles, or JSON.parse for unusual bodies):
 * a 45 MB request held the loop for about a second, four of them for 4.8 s, and every other
 * client waited.
 *
 * So a body whose JSON part is at least OFFLOAD_JSON_BYTES goes to a worker thread (a small
 * pool, started on first use, never holding the process open) and comes back as a decoded
 * request; smaller ones, which take well under a millisecond, are decoded in place as before.
 * The worker runs the same decodeInferRequest (decodeStreamFrame), so results and error
 * messages are the same; an HTTP body's memory moves to the worker and the tensors' memory
 * moves back (no copies, see request-decode-worker.ts).
 */
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { TensorwireError, type ErrorCode } from '../errors';
import { spawnScriptWorker } from '../util/script-worker';
import { decodeInferRequest, parseHeaderLength } from './binary-codec';
import type { RequestDecodeOptions } from './request-object';
import { decodeStreamFrame, type StreamFrame } from './stream-frame';
import type { InferRequest } from './types';

/**
 * Bodies (for the binary extension: JSON headers) of this many bytes or more are decoded in a
 * worker. Below it decoding takes < 0.5 ms on a quiet core (~3 ms on a busy one), about the
 * cost of the hop to a worker and back.
 */
export const OFFLOAD_JSON_BYTES = 64 * 1024;

/** One body to decode, as posted to a worker: an HTTP request body, or a stream frame. */
export type DecodeJob =
  | { seq: number; kind: 'infer'; body: Uint8Array; headerLength: number | undefined; options: RequestDecodeOptions | undefined }
  | { seq: number; kind: 'frame'; body: Uint8Array; isBinary: boolean };

/** An error as it crosses threads (a TensorwireError's class does not). */
export interface ErrorData {
  code: ErrorCode;
  message: string;
}

/** A stream frame as it crosses threads: a failure's error as ErrorData. */
export type FrameData = Exclude<StreamFrame, { ok: false }> | (Omit<Extract<StreamFrame, { ok: false }>, 'error'> & { error: ErrorData });

/** A worker's answer: the request or frame, or the error decodeInferRequest threw. */
export type DecodeReply = { seq: number; result: InferRequest | FrameData; error?: undefined } | { seq: number; result?: undefined; error: ErrorData };

interface Pending {
  resolve: (result: InferRequest | FrameData) => void;
  reject: (error: Error) => void;
}

/** One worker and the jobs it has not answered yet. */
class DecodeWorker {
  readonly pending = new Map<number, Pending>();
  private readonly worker: Worker;

  constructor(private readonly onExit: (w: DecodeWorker) => void) {
    this.worker = spawnScriptWorker(__dirname, 'request-decode-worker', 'the request decode worker', 'build with tsc');
    this.worker.on('message', (reply: DecodeReply) => {
      const p = this.pending.get(reply.seq);
      if (p === undefined) return;
      this.pending.delete(reply.seq);
      if (this.pending.size === 0) this.worker.unref();
      if (reply.error === undefined) p.resolve(reply.result);
      else p.reject(new TensorwireError(reply.error.code, reply.error.message));
    });
    const fail = (reason: string) => {
      this.onExit(this);
      for (const p of this.pending.values()) p.reject(new TensorwireError('INTERNAL', `the request decode worker stopped: ${reason}`));
      this.pending.clear();
    };
    this.worker.on('error', (e) => fail(e.message));
    this.worker.on('exit', (code) => fail(`exit code ${code}`));
    // Held only while it has work: an idle pool must not keep the process alive, a busy one
    // must (its answers are awaited). After the listeners: adding one refs the worker again.
    this.worker.unref();
  }

  decode(job: DecodeJob, transfer: ArrayBuffer[]): Promise<InferRequest | FrameData> {
    return new Promise((resolve, reject) => {
      if (this.pending.size === 0) this.worker.ref();
      this.pending.set(job.seq, { resolve, reject });
      this.worker.postMessage(job, transfer);
    });
  }
}

const MAX_WORKERS = Math.max(1, Math.min(4, availableParallelism() - 1));
const workers: DecodeWorker[] = [];
let seq = 0;

/** An idle worker, else a new one while there are fewer than MAX_WORKERS, else the least busy. */
function pickWorker(): DecodeWorker {
  let best: DecodeWorker | undefined;
  for (const w of workers) if (best === undefined || w.pending.size < best.pending.size) best = w;
  if (best !== undefined && (best.pending.size === 0 || workers.length >= MAX_WORKERS)) return best;
  const created = new DecodeWorker((gone) => {
    const at = workers.indexOf(gone);
    if (at >= 0) workers.splice(at, 1);
  });
  workers.push(created);
  return created;
}

/**
 * decodeInferRequest (binary-codec.ts) off the event loop for large bodies: same result,
 * same errors (the promise rejects with them). A large `body` is handed to the worker and
 * is unusable afterwards (its memory is transferred when it owns its whole ArrayBuffer,
 * which a body read by the server does); the request's tensors are new memory.
 */
export async function decodeInferRequestOffLoop(body: Uint8Array, headerLength: string | undefined, options?: RequestDecodeOptions): Promise<InferRequest> {
  const length = headerLength === undefined ? undefined : parseHeaderLength(headerLength, body.byteLength);
  if ((length ?? body.byteLength) < OFFLOAD_JSON_BYTES) return decodeInferRequest(body, length, options);
  const buffer = body.buffer;
  const owned = buffer instanceof ArrayBuffer && body.byteOffset === 0 && body.byteLength === buffer.byteLength;
  // A view into a larger buffer would move the whole buffer: copy just the body then.
  const sent = owned ? new Uint8Array(buffer) : new Uint8Array(body);
  return (await pickWorker().decode({ seq: ++seq, kind: 'infer', body: sent, headerLength: length, options }, [sent.buffer as ArrayBuffer])) as InferRequest;
}

/**
 * decodeStreamFrame (stream-frame.ts) off the event loop for frames whose JSON is at least
 * OFFLOAD_JSON_BYTES: same result (never rejects but for a dead worker). `data` is copied
 * first when the frame goes to a worker (uWS reuses a message's memory), so the request's
 * tensors are then the caller's to keep; below the threshold the result is
 * decodeStreamFrame's, whose binary-frame tensors are views of `data`.
 */
export async function decodeStreamFrameOffLoop(data: ArrayBuffer | Uint8Array, isBinary: boolean): Promise<StreamFrame> {
  const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
  // A binary frame's JSON length is its first four bytes (a short frame is decodeStreamFrame's to refuse).
  const jsonBytes = !isBinary ? bytes.byteLength : bytes.byteLength < 4 ? 0 : (bytes[0] | (bytes[1] << 8) | (bytes[2] << 16) | (bytes[3] << 24)) >>> 0;
  if (jsonBytes < OFFLOAD_JSON_BYTES) return decodeStreamFrame(bytes, isBinary);
  const sent = new Uint8Array(bytes);
  const frame = (await pickWorker().decode({ seq: ++seq, kind: 'frame', body: sent, isBinary }, [sent.buffer as ArrayBuffer])) as FrameData;
  return frame.ok ? frame : { ...frame, error: new TensorwireError(frame.error.code, frame.error.message) };
}
