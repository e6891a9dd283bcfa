/**
 * Bounds on what one inference request may ask the codecs to hold or to echo, checked before
 * the allocation or the copy they would size. The body limit (--max-body-bytes) bounds the
 * total; these bound the parts a few bytes of JSON can blow up: a 60 MB id echoed into every
 * log line and response, a million `outputs`, a shape whose product overflows, a parameters
 * object carried through the scheduler. Triton has no such limits written down; the values
 * are far above anything a real model or client uses (docs/protocol.md, "Limits").
 */
import { TensorwireError } from '../errors';

/** Longest request `id`, in UTF-16 units (a UUID is 36). Triton echoes the id; so do we, hence the bound. */
export const MAX_ID_CHARS = 256;
/** Longest tensor or model name in a request. */
export const MAX_NAME_CHARS = 512;
/**
 * Longest model name or version a stream frame may carry (they are echoed in answers, errors
 * and feed frames; a model name is a directory name, at most 255 bytes on our file systems).
 */
export const MAX_MODEL_NAME_CHARS = 256;
/** Most entries in `inputs`, and in `outputs`. */
export const MAX_TENSORS = 1024;
/** Highest rank of a shape (numpy's own limit). */
export const MAX_RANK = 64;
/** Most request-level parameters kept beyond the ones tensorwire reads. */
export const MAX_PARAMETERS = 64;
/** Longest request parameter name, and longest string value. */
export const MAX_PARAMETER_CHARS = 1024;
/**
 * Most output elements one response writes as JSON text (every output sent as `data`,
 * added up). Writing text costs ~40 ns and ~12 bytes an element on the event loop: 4M
 * elements is ~160 ms and ~50 MB; beyond, the binary extension is the way.
 */
export const MAX_JSON_OUTPUT_ELEMENTS = 4 * 1024 * 1024;

/** Client text put in a message is cut to this many characters. */
const ECHO_CHARS = 64;

/** `text` as a message may quote it: at most 64 characters, '...' marking a cut. */
export function clip(text: string): string {
  return text.length > ECHO_CHARS ? text.slice(0, ECHO_CHARS - 3) + '...' : text;
}

/** Throws INVALID_INPUT `<what> is N characters long; the limit is <max>` for a longer string. */
export function checkLength(what: string, text: string, max: number): void {
  if (text.length > max) throw new TensorwireError('INVALID_INPUT', `${what} is ${text.length} characters long; the limit is ${max}`);
}

/** Throws INVALID_INPUT when `count` entries of `what` exceed `max`. */
export function checkCount(what: string, count: number, max: number): void {
  if (count > max) throw new TensorwireError('INVALID_INPUT', `${what} has ${count} entries; the limit is ${max}`);
}
