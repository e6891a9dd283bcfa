/**
 * Bounds on the strings of a stream frame that the server echoes back: a request's `id` goes
 * into its answer and into every feed frame of the prediction, a model name or version into
 * the answers of control frames and into errors. The frame limit bounds them already, but a
 * 60 MiB id would cost a 60 MiB JSON.stringify on the event loop per answer and per feed
 * frame, so each is refused, not echoed, past a length no real id or name needs (a model
 * name is a directory name: at most 255 bytes on the file systems we serve from).
 */
import { TensorwireError } from '../errors';
import type { StreamId } from '../protocol/stream-frame';

/** Longest string `id`, model name or model version of a stream frame, in characters. */
export const MAX_STREAM_ECHOED_CHARS = 256;

/** An error for an id longer than MAX_STREAM_ECHOED_CHARS, or undefined (a number id is always fine). */
export function checkStreamId(id: StreamId | undefined): TensorwireError | undefined {
  if (typeof id !== 'string' || id.length <= MAX_STREAM_ECHOED_CHARS) return undefined;
  return new TensorwireError('INVALID_INPUT', `'id' is ${id.length} characters long; at most ${MAX_STREAM_ECHOED_CHARS} are allowed (it is echoed in the answer)`);
}

/** An error for a model name or version (`field`) longer than MAX_STREAM_ECHOED_CHARS, or undefined. */
export function checkStreamName(field: string, value: string | undefined): TensorwireError | undefined {
  if (value === undefined || value.length <= MAX_STREAM_ECHOED_CHARS) return undefined;
  return new TensorwireError('INVALID_INPUT', `'${field}' is ${value.length} characters long; at most ${MAX_STREAM_ECHOED_CHARS} are allowed`);
}
