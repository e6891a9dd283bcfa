/**
 * Worker thread entry of request-decode-pool.ts: decodes inference request bodies (JSON, or
 * the binary extension with a large JSON header) off the event loop. Each job's body comes
 * in transferred; the decoded request goes back with its tensors' buffers transferred (for a
 * binary request that is the body's buffer, of which the inputs are views), so nothing large
 * is copied either way.
 */
import { parentPort } from 'node:worker_threads';
import { TensorwireError, toTensorwireError } from '../errors';
import { decodeInferRequest } from './binary-codec';
import type { DecodeJob, DecodeReply } from './request-decode-pool';

if (parentPort === null) throw new TensorwireError('INTERNAL', 'lib/protocol/request-decode-worker is a worker_threads entry point');
const port = parentPort;

port.on('message', (job: DecodeJob) => {
  let reply: DecodeReply;
  const transfer: ArrayBuffer[] = [];
  try {
    const request = decodeInferRequest(job.body, job.headerLength, job.options);
    for (const input of request.inputs) {
      const buffer = input.data.buffer as ArrayBuffer;
      if (!transfer.includes(buffer)) transfer.push(buffer);
    }
    reply = { seq: job.seq, request };
  } catch (e) {
    const error = toTensorwireError(e);
    reply = { seq: job.seq, error: { code: error.code, message: error.message } };
  }
  port.postMessage(reply, transfer);
});
