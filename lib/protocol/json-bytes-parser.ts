/**
 * A strict JSON parser over body bytes, for the small part of a KServe request around its
 * data arrays (names, datatypes, shapes, parameters, outputs), where JSON.parse's fixed cost
 * is most of the work. fast-json-request.ts drives it and reads the data arrays itself.
 *
 * It produces exactly the values JSON.parse produces for the same text, or gives up by
 * throwing DECLINE (then the caller uses JSON.parse): on any syntax JSON.parse would refuse,
 * and on the few things not worth doing by hand (a "__proto__" key, nesting deeper than 64).
 * Strings with escapes are decoded by JSON.parse itself, one string at a time.
 */
import { MAX_JSON_DEPTH } from './json-depth';
import { numbers, readRun, skipWhitespace } from './number-scanner';

/** Thrown to give up on the fast path; never escapes fast-json-request.ts. */
export const DECLINE: unique symbol = Symbol('decline the fast JSON path');

// Deeper JSON is refused by the general path (json-depth.ts); declining hands it over.
const MAX_DEPTH = MAX_JSON_DEPTH;

/** The body being parsed and the parse position, shared by the functions below (one body at a time). */
export const cursor: { bytes: Buffer; at: number } = { bytes: Buffer.alloc(0), at: 0 };

/** Skips whitespace at the cursor and returns the byte there (undefined at the end). */
export function peek(): number | undefined {
  cursor.at = skipWhitespace(cursor.bytes, cursor.at);
  return cursor.at < cursor.bytes.length ? cursor.bytes[cursor.at] : undefined;
}

/** Expects byte `c` at the cursor (after whitespace) and moves past it. */
export function expect(c: number): void {
  if (peek() !== c) throw DECLINE;
  cursor.at++;
}

// Where the string scanned last by scanString ends (its closing quote), and what it holds.
let stringEnd = 0;
let stringEscaped = false;
let stringAscii = true;

/** Finds the end of the string at the cursor (a '"') without moving the cursor. */
function scanString(): void {
  const b = cursor.bytes;
  const end = b.length;
  let i = cursor.at + 1;
  let ascii = true;
  let escaped = false;
  for (;;) {
    if (i >= end) throw DECLINE;
    const c = b[i];
    if (c === 0x22) break;
    if (c < 0x20) throw DECLINE; // JSON.parse refuses raw control characters
    if (c === 0x5c) {
      escaped = true;
      i += 2;
    } else {
      if (c >= 0x80) ascii = false;
      i++;
    }
  }
  stringEnd = i;
  stringEscaped = escaped;
  stringAscii = ascii;
}

/** The string scanned last, decoded as JSON.parse decodes it; moves the cursor past it. */
function decodeScanned(): string {
  const b = cursor.bytes;
  const start = cursor.at;
  cursor.at = stringEnd + 1;
  if (stringEscaped) {
    // Only JSON.parse knows every escape exactly as JSON.parse does.
    try {
      return JSON.parse(b.toString('utf8', start, stringEnd + 1)) as string;
    } catch {
      throw DECLINE;
    }
  }
  // The quotes are ASCII, so decoding just the string decodes its bytes as the whole body's
  // decoding would (an invalid sequence becomes U+FFFD either way).
  return b.toString(stringAscii ? 'latin1' : 'utf8', start + 1, stringEnd);
}

/** The string at the cursor (a '"'), decoded as JSON.parse decodes it. */
export function parseString(): string {
  scanString();
  return decodeScanned();
}

/**
 * The string at the cursor (a '"') as one of `known` (spelled without escapes, ASCII), the
 * same string object each time, or a new string when it is none of them.
 */
export function parseKnownString(known: readonly string[]): string {
  scanString();
  if (!stringEscaped) {
    const b = cursor.bytes;
    const start = cursor.at + 1;
    const length = stringEnd - start;
    for (let k = 0; k < known.length; k++) {
      const candidate = known[k];
      if (candidate.length !== length) continue;
      let same = true;
      for (let j = 0; j < length; j++) {
        if (b[start + j] !== candidate.charCodeAt(j)) {
          same = false;
          break;
        }
      }
      if (same) {
        cursor.at = stringEnd + 1;
        return candidate;
      }
    }
  }
  return decodeScanned();
}

/**
 * Reads a member's key (the cursor at its '"') and the ':' after it, leaving the cursor at
 * the value. Returns the key's index in `known`, or -1 for any other key.
 */
export function parseKey(known: readonly string[]): number {
  const key = parseKnownString(known);
  expect(0x3a);
  peek();
  return known.indexOf(key);
}

/**
 * The number at the cursor, or a run of numbers separated by commas appended to `into`.
 * Integers come back as small integers where V8 would make them so, like JSON.parse.
 */
function parseNumbers(into: unknown[] | undefined): number {
  const first = numbers.count;
  numbers.booleans = false;
  const end = readRun(cursor.at);
  if (end < 0 || numbers.booleans) throw DECLINE; // a run went on into true/false: not here
  const values = numbers.values;
  const count = numbers.count;
  numbers.count = first; // header numbers are not tensor data
  cursor.at = end;
  if (into === undefined) {
    if (count !== first + 1) throw DECLINE;
    return asNumber(values[first]);
  }
  for (let k = first; k < count; k++) into.push(asNumber(values[k]));
  return count - first;
}

function startsNumber(c: number | undefined): boolean {
  return c !== undefined && ((c >= 0x30 && c <= 0x39) || c === 0x2d);
}

function asNumber(v: number): number {
  return (v | 0) === v && (v !== 0 || 1 / v > 0) ? v | 0 : v;
}

function literal(text: string, value: boolean | null): boolean | null {
  const b = cursor.bytes;
  const at = cursor.at;
  for (let k = 1; k < text.length; k++) if (b[at + k] !== text.charCodeAt(k)) throw DECLINE;
  cursor.at = at + text.length;
  return value;
}

/** The JSON value at the cursor (after whitespace). */
export function parseValue(depth: number): unknown {
  const c = peek();
  if (c === 0x22) return parseString();
  if (c === 0x7b) return parseObject(depth + 1);
  if (c === 0x5b) return parseArray(depth + 1);
  if (startsNumber(c)) return parseNumbers(undefined);
  if (c === 0x74) return literal('true', true);
  if (c === 0x66) return literal('false', false);
  if (c === 0x6e) return literal('null', null);
  throw DECLINE;
}

/** The array at the cursor (a '['). */
function parseArray(depth: number): unknown[] {
  if (depth > MAX_DEPTH) throw DECLINE;
  cursor.at++;
  const result: unknown[] = [];
  if (peek() === 0x5d) {
    cursor.at++;
    return result;
  }
  for (;;) {
    if (startsNumber(peek())) parseNumbers(result);
    else result.push(parseValue(depth));
    const next = peek();
    cursor.at++;
    if (next === 0x5d) return result;
    if (next !== 0x2c) throw DECLINE;
  }
}

/** The object at the cursor (a '{'). */
function parseObject(depth: number): Record<string, unknown> {
  if (depth > MAX_DEPTH) throw DECLINE;
  cursor.at++;
  const result: Record<string, unknown> = {};
  if (peek() === 0x7d) {
    cursor.at++;
    return result;
  }
  for (;;) {
    if (peek() !== 0x22) throw DECLINE;
    const key = parseString();
    // Assigning "__proto__" would set the prototype where JSON.parse makes a property.
    if (key === '__proto__') throw DECLINE;
    expect(0x3a);
    result[key] = parseValue(depth);
    const next = peek();
    cursor.at++;
    if (next === 0x7d) return result;
    if (next !== 0x2c) throw DECLINE;
  }
}
