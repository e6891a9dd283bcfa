/**
 * Worker thread entry of request-decode-pool.ts: decodes inference request bodies (JSON, or
 * the binary extension with a large JSON header) and stream frames off the event loop. Each job's body comes
 * in transferred; the decoded request goes back with its tensors' buffers transferred (for a
 * binary request that is the body's buffer, of which the inputs are views), so nothing large
 * is copied either way.
 */
import { parentPort } from 'node:worker_threads';
import { TensorwireError, toTensorwireError } from '../errors';
import { decodeInferRequest } from './binary-codec';
import type { DecodeJob, DecodeReply, ErrorData } from './request-decode-pool';
import { decodeStreamFrame } from './stream-frame';
import type { InferRequest } from './types';

if (parentPort === null) throw new TensorwireError('INTERNAL', 'lib/protocol/request-decode-worker is a worker_threads entry point');
const port = parentPort;

/** The distinct buffers of the request's tensors, to transfer back. */
function tensorBuffers(request: InferRequest): ArrayBuffer[] {
  const buffers: ArrayBuffer[] = [];
  for (const input of request.inputs) {
    const buffer = input.data.buffer as ArrayBuffer;
    if (!buffers.includes(buffer)) buffers.push(buffer);
  }
  return buffers;
}

function errorData(e: unknown): ErrorData {
  const error = toTensorwireError(e);
  return { code: error.code, message: error.message };
}

port.on('message', (job: DecodeJob) => {
  let reply: DecodeReply;
  let transfer: ArrayBuffer[] = [];
  try {
    if (job.kind === 'infer') {
      const request = decodeInferRequest(job.body, job.headerLength, job.options);
      transfer = tensorBuffers(request);
      reply = { seq: job.seq, result: request };
    } else {
      const frame = decodeStreamFrame(job.body, job.isBinary);
      if (frame.ok && frame.kind === 'infer') transfer = tensorBuffers(frame.request);
      reply = { seq: job.seq, result: frame.ok ? frame : { ...frame, error: errorData(frame.error) } };
    }
  } catch (e) {
    reply = { seq: job.seq, error: errorData(e) };
  }
  port.postMessage(reply, transfer);
});
