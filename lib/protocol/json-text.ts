/**
 * JSON text -> values for request bodies and frame headers: the one place that turns a
 * JSON.parse failure into the protocol's error, and that can re-read big integers exactly.
 */
import { TensorwireError } from '../errors';
import { assertJsonDepth } from './json-depth';

/**
 * Parses client JSON `text`, or throws INVALID_INPUT `malformed JSON: <reason>`, or, before
 * parsing, `<what>: JSON nested deeper than 64 levels` (json-depth.ts). Any route that parses
 * a client's JSON should call this rather than JSON.parse.
 */
export function parseJsonText(text: string, what = 'request'): unknown {
  assertJsonDepth(text, what);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new TensorwireError('INVALID_INPUT', `malformed JSON: ${(e as Error).message}`);
  }
}

// A JSON string (skipped as a whole, so digits inside strings are never touched) or an
// integer literal of 16 digits or more: the only literals JSON.parse may round (2^53 has
// 16 digits). The look-behind keeps fractions and exponents out; the look-ahead keeps
// decimals out.
const STRING_OR_LONG_INTEGER = /"(?:[^"\\]|\\.)*"|(?<![\w.+-])-?\d{16,}(?![\d.eE])/g;

/**
 * Parses `text` with every integer literal of 16 digits or more turned into a string of
 * its digits, so INT64/UINT64 data keep all 64 bits (tensor-data.ts accepts integer
 * strings). Only used when a first, plain parse saw a number JSON.parse may have rounded.
 */
export function parseJsonTextExact(text: string): unknown {
  return parseJsonText(text.replace(STRING_OR_LONG_INTEGER, quoteLongInteger));
}

function quoteLongInteger(match: string): string {
  return match.charCodeAt(0) === 0x22 /* '"' */ ? match : '"' + match + '"';
}
