/**
 * A bound on how deeply client JSON may nest, checked before JSON.parse sees the text.
 * JSON.parse itself copes with deep nesting, but every recursive walk over its result does
 * not (validation, describeValue, structured clone, the stream's field reads): a body of
 * 100,000 '[' made those fail with "Maximum call stack size exceeded", a 500. A KServe
 * request nests about 5 levels; 64 leaves room for any sane parameters object.
 *
 * The scan is one pass over the text with no allocation (about 1 ns a byte), counting
 * brackets outside strings; it does not check the syntax, JSON.parse does that afterwards.
 * json-text.ts's parseJsonText runs it before every parse of client JSON.
 */
import { TensorwireError } from '../errors';

/** Deepest nesting of arrays and objects accepted in client JSON. */
export const MAX_JSON_DEPTH = 64;

/**
 * Throws INVALID_INPUT `<what>: JSON nested deeper than <max> levels` when `json` (text, or
 * UTF-8 bytes) opens more than `maxDepth` arrays/objects inside one another.
 */
export function assertJsonDepth(json: string | Uint8Array, what: string, maxDepth: number = MAX_JSON_DEPTH): void {
  const deepest = typeof json === 'string' ? textDepth(json, maxDepth) : bytesDepth(json, maxDepth);
  if (deepest > maxDepth) {
    throw new TensorwireError('INVALID_INPUT', `${what}: JSON nested deeper than ${maxDepth} levels (arrays and objects inside one another); the limit is ${maxDepth}`);
  }
}

// Both scans return as soon as the depth passes `max` (the caller only needs to know that).
// '"' toggles string state; inside a string, '\' skips the next unit, so \" and \\ are safe.

function textDepth(s: string, max: number): number {
  let depth = 0;
  const n = s.length;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x22) {
      for (i++; i < n; i++) {
        const d = s.charCodeAt(i);
        if (d === 0x5c) i++;
        else if (d === 0x22) break;
      }
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return depth;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return depth;
}

function bytesDepth(b: Uint8Array, max: number): number {
  let depth = 0;
  const n = b.length;
  for (let i = 0; i < n; i++) {
    const c = b[i];
    if (c === 0x22) {
      for (i++; i < n; i++) {
        const d = b[i];
        if (d === 0x5c) i++;
        else if (d === 0x22) break;
      }
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return depth;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return depth;
}
