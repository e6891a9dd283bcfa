/**
 * BYTES tensors (KServe v2 `BYTES`, ONNX `string`) as tensorwire carries them between
 * layers: one buffer holding every element, each a 4-byte little-endian length followed by
 * that many bytes, in row-major order. This is exactly the binary-extension and gRPC
 * `raw_*_contents` form Triton uses, so those bodies pass through without conversion, and
 * concatenating the buffers of several requests concatenates their tensors along the batch
 * dimension. Unlike fixed-size datatypes, the byte length says nothing about the element
 * count: every reader here walks the prefixes and checks them against the count the shape
 * gives, before anything is allocated from them.
 */
import { isUtf8 } from 'node:buffer';
import { TensorwireError, type ErrorCode } from '../errors';

/** Bytes of one element's length prefix. */
export const BYTES_PREFIX = 4;

function invalid(label: string, detail: string, code: ErrorCode = 'INVALID_INPUT'): TensorwireError {
  return new TensorwireError(code, `${label}: ${detail}`);
}

/** The serialized form of `elements` (strings are written as UTF-8). */
export function serializeBytesElements(elements: readonly (string | Uint8Array)[]): Buffer {
  const parts: Uint8Array[] = new Array(elements.length);
  let total = 0;
  for (let i = 0; i < elements.length; i++) {
    const e = elements[i];
    const bytes = typeof e === 'string' ? Buffer.from(e, 'utf8') : e;
    parts[i] = bytes;
    total += BYTES_PREFIX + bytes.byteLength;
  }
  // Its own ArrayBuffer, not a slice of Node's shared pool: request decoding hands tensor buffers between threads.
  const out = Buffer.allocUnsafeSlow(total);
  let at = 0;
  for (const bytes of parts) {
    out.writeUInt32LE(bytes.byteLength, at);
    at += BYTES_PREFIX;
    out.set(bytes, at);
    at += bytes.byteLength;
  }
  return out;
}

/**
 * Byte offset of each element's prefix, plus the end as a last entry (`count + 1` entries),
 * after checking that `data` holds exactly `count` well-formed elements. `label` names the
 * tensor in messages ("input 'text'").
 */
export function bytesElementOffsets(label: string, data: Uint8Array, count: number, code: ErrorCode = 'INVALID_INPUT'): Uint32Array {
  const offsets = new Uint32Array(count + 1);
  let at = 0;
  for (let i = 0; i < count; i++) {
    if (at + BYTES_PREFIX > data.byteLength) {
      throw invalid(label, `the shape says ${count} BYTES elements but the data ends after ${i} (element ${i} has no 4-byte length prefix)`, code);
    }
    offsets[i] = at;
    const length = lengthAt(data, at);
    if (length > data.byteLength - at - BYTES_PREFIX) {
      throw invalid(label, `BYTES element ${i} declares ${length} bytes but only ${data.byteLength - at - BYTES_PREFIX} remain in the data`, code);
    }
    at += BYTES_PREFIX + length;
  }
  if (at !== data.byteLength) {
    throw invalid(label, `the shape says ${count} BYTES elements but the data holds ${data.byteLength - at} more bytes after them`, code);
  }
  offsets[count] = at;
  return offsets;
}

/** The elements of a checked BYTES buffer, as views into `data` (no copies). */
export function bytesElements(label: string, data: Uint8Array, count: number): Uint8Array[] {
  const offsets = bytesElementOffsets(label, data, count);
  const out: Uint8Array[] = new Array(count);
  for (let i = 0; i < count; i++) out[i] = data.subarray(offsets[i] + BYTES_PREFIX, offsets[i + 1]);
  return out;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** The elements as strings; invalid UTF-8 is a 400 naming the tensor and the element. */
export function bytesElementsAsText(label: string, data: Uint8Array, count: number): string[] {
  const elements = bytesElements(label, data, count);
  const out: string[] = new Array(count);
  for (let i = 0; i < count; i++) {
    try {
      out[i] = strictUtf8.decode(elements[i]);
    } catch {
      throw invalid(label, `BYTES element ${i} is not valid UTF-8 text`);
    }
  }
  return out;
}

/** The little-endian length prefix at `at` (plain byte reads: no DataView per call). */
function lengthAt(data: Uint8Array, at: number): number {
  return (data[at]! | (data[at + 1]! << 8) | (data[at + 2]! << 16)) + data[at + 3]! * 0x1000000;
}

/** Elements this long or longer are checked by Node's native isUtf8; shorter ones by utf8Range (no call or view per element). */
const NATIVE_UTF8_BYTES = 64;

/**
 * Checks that `data` holds exactly `count` well-formed elements (what bytesElementOffsets
 * checks, with the same messages) without allocating anything; with `text`, also that each
 * is valid UTF-8. About 10-30 ns an element for short strings.
 */
function walkElements(label: string, data: Uint8Array, count: number, code: ErrorCode, text: boolean): void {
  const size = data.byteLength;
  let at = 0;
  for (let i = 0; i < count; i++) {
    if (at + BYTES_PREFIX > size) {
      throw invalid(label, `the shape says ${count} BYTES elements but the data ends after ${i} (element ${i} has no 4-byte length prefix)`, code);
    }
    const length = lengthAt(data, at);
    const start = at + BYTES_PREFIX;
    if (length > size - start) throw invalid(label, `BYTES element ${i} declares ${length} bytes but only ${size - start} remain in the data`, code);
    const end = start + length;
    if (text && !(length >= NATIVE_UTF8_BYTES ? isUtf8(data.subarray(start, end)) : utf8Range(data, start, end))) {
      throw invalid(label, `BYTES element ${i} is not valid UTF-8 text`);
    }
    at = end;
  }
  if (at !== size) throw invalid(label, `the shape says ${count} BYTES elements but the data holds ${size - at} more bytes after them`, code);
}

/**
 * Most elements a BYTES tensor of a request may hold. Checking a BYTES tensor walks its
 * length prefixes on the event loop (5-15 ns an element, at decode and again against the
 * model), so the count is what bounds that time: 256Ki elements is at most a few
 * milliseconds. A 64 MiB body could otherwise carry 16M empty strings (150-250 ms). The same
 * bound as the JSON output limit's 256K strings per response.
 */
export const MAX_BYTES_INPUT_ELEMENTS = 256 * 1024;

/** Refuses a request's BYTES tensor of more than MAX_BYTES_INPUT_ELEMENTS elements, before any walk. */
export function checkBytesInputCount(label: string, count: number): void {
  if (count > MAX_BYTES_INPUT_ELEMENTS) {
    throw invalid(label, `a BYTES tensor holds at most ${MAX_BYTES_INPUT_ELEMENTS} elements per request, got ${count}; split the request`, 'INVALID_INPUT');
  }
}

/** Checks that `data` holds exactly `count` well-formed elements; throws `code` naming `label` and the element. */
export function checkBytesElements(label: string, data: Uint8Array, count: number, code: ErrorCode = 'INVALID_INPUT'): void {
  walkElements(label, data, count, code, false);
}

/**
 * Checks that `data` holds exactly `count` well-formed elements, each valid UTF-8: what an
 * ONNX `string` input needs (ONNX strings are UTF-8). Validates in place, building no strings.
 */
export function checkBytesText(label: string, data: Uint8Array, count: number): void {
  walkElements(label, data, count, 'INVALID_INPUT', true);
}

/** True when data[start, end) is well-formed UTF-8 (RFC 3629: no overlong forms, surrogates or values past U+10FFFF). */
function utf8Range(data: Uint8Array, start: number, end: number): boolean {
  let i = start;
  while (i < end) {
    const b = data[i]!;
    if (b < 0x80) {
      i++;
      continue;
    }
    // Continuation bytes after the lead; the allowed range of the first one (the rest are 80..BF).
    let need: number;
    let min = 0x80;
    let max = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) need = 1;
    else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      if (b === 0xe0) min = 0xa0; // overlong
      else if (b === 0xed) max = 0x9f; // surrogates
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      if (b === 0xf0) min = 0x90; // overlong
      else if (b === 0xf4) max = 0x8f; // past U+10FFFF
    } else return false;
    if (i + need >= end) return false;
    const second = data[i + 1]!;
    if (second < min || second > max) return false;
    for (let j = 2; j <= need; j++) {
      const c = data[i + j]!;
      if (c < 0x80 || c > 0xbf) return false;
    }
    i += need + 1;
  }
  return true;
}

/**
 * The elements of a checked BYTES buffer (see bytesElementOffsets) as the inside of a JSON
 * array of strings (`"a","b"`, no brackets). JSON text cannot carry arbitrary bytes, so an
 * element that is not valid UTF-8 is an INVALID_INPUT naming the tensor and the element: the
 * client asks for that output as binary data instead (Triton would write the raw bytes into
 * the JSON string, which makes the whole body invalid JSON).
 */
export function bytesToJsonText(label: string, data: Uint8Array): string {
  const buffer = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  let text = '';
  let at = 0;
  for (let i = 0; at < data.byteLength; i++) {
    const start = at + BYTES_PREFIX;
    const end = start + lengthAt(data, at);
    const length = end - start;
    if (!(length >= NATIVE_UTF8_BYTES ? isUtf8(data.subarray(start, end)) : utf8Range(data, start, end))) {
      throw invalid(label, `BYTES element ${i} is not valid UTF-8 and cannot be sent as JSON; request this output with "binary_data": true`);
    }
    // Most strings need no escaping: quote them directly rather than through JSON.stringify.
    const s = buffer.toString('utf8', start, end);
    text += (i === 0 ? '"' : ',"') + (needsEscape(data, start, end) ? JSON.stringify(s).slice(1, -1) : s) + '"';
    at = end;
  }
  return text;
}

/** True when data[start, end) holds a byte JSON must escape in a string: a control character, `"` or `\`. */
function needsEscape(data: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const b = data[i]!;
    if (b < 0x20 || b === 0x22 || b === 0x5c) return true;
  }
  return false;
}

/** A UTF-16 surrogate not part of a pair (in `u` mode a valid pair is one code point, not matched). */
const LONE_SURROGATE = /\p{Cs}/u;

/** The serialized form of JSON `data` elements (strings, or raw bytes from a gRPC client); INVALID_INPUT naming any other value. */
export function jsonToBytesTensor(label: string, elements: readonly unknown[]): Buffer {
  for (let i = 0; i < elements.length; i++) {
    const e = elements[i];
    if (typeof e !== 'string' && !(e instanceof Uint8Array)) {
      const shown = typeof e === 'object' ? (e === null ? 'null' : Array.isArray(e) ? 'an array' : 'an object') : `${typeof e} ${String(e).slice(0, 40)}`;
      throw invalid(label, `BYTES element ${i} must be a string, got ${shown}`);
    }
    // JSON can spell a lone surrogate ("\ud800"), which has no UTF-8 form: Buffer.from would put U+FFFD in silently.
    if (typeof e === 'string' && LONE_SURROGATE.test(e)) throw invalid(label, `BYTES element ${i} is not valid Unicode text (a lone surrogate)`);
  }
  return serializeBytesElements(elements as (string | Uint8Array)[]);
}
