/**
 * The cache key of a request: a SHA-256 over the model, the version and its load generation
 * (a version reloaded from new files is a new generation, so an old answer is never served),
 * every input's name, datatype, shape and bytes, the requested outputs and their binary
 * flags. Hashing costs time in proportion to the input bytes, on the event loop, so requests
 * over MAX_CACHEABLE_INPUT_BYTES are not cached at all (about a millisecond of hashing at
 * most).
 */
import { createHash } from 'node:crypto';
import type { InferRequest } from '../protocol/types';

/** Requests with more input bytes than this are neither looked up nor stored: 1 MiB. */
export const MAX_CACHEABLE_INPUT_BYTES = 1024 * 1024;

/** The key, or undefined when the request is too large to cache. */
export function requestKey(model: string, version: number, generation: number, request: InferRequest): string | undefined {
  let total = 0;
  for (const input of request.inputs) total += input.data.byteLength;
  if (total > MAX_CACHEABLE_INPUT_BYTES) return undefined;
  // Every variable-length part is preceded by its length, so no two requests share a byte
  // stream. The descriptive parts go in as one string (one update), then the bytes.
  let head = `${model.length}:${model}|${version}|${generation}|${request.binaryDataOutput ? 1 : 0}|${request.inputs.length}`;
  for (const input of request.inputs) head += `|${input.name.length}:${input.name}|${input.datatype}|${input.shape.join(',')}|${input.data.byteLength}`;
  if (request.outputs === undefined) head += '|all';
  else for (const o of request.outputs) head += `|${o.name.length}:${o.name}|${o.binary ? 1 : 0}|${o.classification ?? 0}`;
  const h = createHash('sha256').update(head);
  for (const input of request.inputs) h.update(input.data);
  return h.digest('base64');
}
