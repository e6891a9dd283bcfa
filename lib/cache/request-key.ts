/**
 * The cache key of a request: a SHA-256 of its input bytes, followed by everything else that
 * makes an answer differ, in plain text: the model, the version and its load generation (a
 * version reloaded from new files is a new generation, so an old answer is never served),
 * every input's name, datatype, shape and byte length, the requested outputs and their
 * binary flags. Only the bytes are hashed: the descriptive part is short and compared as
 * it is by the Map, so it needs no hashing. Every variable-length part carries its length,
 * so no two different requests give one key.
 *
 * Cost: one one-shot SHA-256 over the single input's bytes where the runtime has
 * `crypto.hash` (no Hash object, no copy of the bytes), else a streaming hash over each
 * input in turn; a few hundred nanoseconds of string building. Hashing costs time in
 * proportion to the input bytes, on the event loop, so requests over
 * MAX_CACHEABLE_INPUT_BYTES are not cached at all (about a millisecond of hashing at most).
 */
import * as crypto from 'node:crypto';
import type { InferRequest } from '../protocol/types';

/** Requests with more input bytes than this are neither looked up nor stored: 1 MiB. */
export const MAX_CACHEABLE_INPUT_BYTES = 1024 * 1024;

type OneShotHash = (algorithm: string, data: Uint8Array, encoding: 'base64') => string;
/** Node ≥ 20.12 / 21.7; older runtimes use createHash. */
const oneShot = (crypto as unknown as { hash?: OneShotHash }).hash;

/** The key, or undefined when the request is too large to cache. */
export function requestKey(model: string, version: number, generation: number, request: InferRequest): string | undefined {
  const inputs = request.inputs;
  let total = 0;
  for (const input of inputs) total += input.data.byteLength;
  if (total > MAX_CACHEABLE_INPUT_BYTES) return undefined;
  let digest: string;
  if (inputs.length === 1 && oneShot !== undefined) digest = oneShot('sha256', inputs[0]!.data, 'base64');
  else {
    const h = crypto.createHash('sha256');
    for (const input of inputs) h.update(input.data);
    digest = h.digest('base64');
  }
  let key = `${digest}|${model.length}:${model}|${version}|${generation}|${request.binaryDataOutput ? 1 : 0}|${inputs.length}`;
  for (const input of inputs) key += `|${input.name.length}:${input.name}|${input.datatype}|${input.shape.join(',')}|${input.data.byteLength}`;
  if (request.outputs === undefined) key += '|all';
  else for (const o of request.outputs) key += `|${o.name.length}:${o.name}|${o.binary ? 1 : 0}|${o.classification ?? 0}`;
  return key;
}
