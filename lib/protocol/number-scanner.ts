/**
 * Runs of JSON numbers (and true/false) straight from UTF-8 bytes to the doubles JSON.parse
 * would produce, bit for bit, without making a string or a JS array. Used by
 * data-array-scanner.ts for the `data` arrays of KServe JSON requests, where JSON.parse and
 * the array of boxed numbers it builds are most of the cost of a request.
 *
 * Exactness: JSON.parse rounds the decimal to the nearest double (ties to even). Here the
 * mantissa M of a number with at most 19 significant digits is held exactly (as the sum of
 * two doubles). When M < 2^53 and the decimal exponent is within ±22, one IEEE division or
 * multiplication of exact operands rounds correctly (Clinger's fast path). Otherwise, e.g.
 * a float32 printed with 17 digits (the usual case), M is multiplied by 10^e held as a
 * double-double (powers-of-ten.ts, |e| <= 64) with Dekker's exact product; every error in
 * that is below 2^-100 of the value, and the result is taken only when every value within
 * 2^-80 of it rounds to the same double, which is then the correctly rounded one.
 *
 * The rest falls back to Number() on the number's text, which V8 rounds with the same
 * correctly rounded algorithm as JSON.parse: more than 19 significant digits, exponents
 * beyond ±64 (and so overflow and underflow), and decimals within 2^-80 of a halfway point
 * between two doubles (ties such as 9007199254740993, or about one random 17-digit number in
 * 10^8).
 *
 * Speed: the whole run is one loop, with no call per number on the common path, and digits
 * are read eight at a time where they can be (SWAR on two 32-bit words).
 */

import { EXACT_POW10, MAX_POW10, MIN_POW10, POW10_HIGH, POW10_LOW, POW10_SPLIT_HIGH, POW10_SPLIT_LOW, SPLITTER } from './powers-of-ten';

/** Half-width of the uncertainty interval, relative to the value: far above the error of the double-double steps (< 2^-100), far below half an ulp (2^-53). */
const TWO_POW_MINUS_80 = 8.271806125530277e-25;
const TWO_POW_53 = 9007199254740992;

const INITIAL_VALUES = 4096;
// Above this many values the buffer is dropped at endNumbers instead of kept for the next body.
const KEEP_VALUES = 1 << 18; // 2 MiB: a 3x224x224 image still fits
// Below this many bytes a DataView costs more than reading eight digits at a time saves.
const SWAR_MIN_BYTES = 512;
const EMPTY_BYTES = Buffer.alloc(0);
const EMPTY_VIEW = new DataView(new ArrayBuffer(0));

/**
 * What has been read from the current body. Shared by every request: decoding is
 * synchronous, so one body is read at a time.
 */
export const numbers: { values: Float64Array; count: number; booleans: boolean } = {
  /** The values read, [0, count); true and false are stored as 1 and 0. */
  values: new Float64Array(INITIAL_VALUES),
  count: 0,
  /** Set when a true or false was read; the caller clears it. */
  booleans: false,
};

let bytes: Buffer = EMPTY_BYTES;
let view: DataView = EMPTY_VIEW;

/** Starts reading `body` (which must not change until endNumbers); forgets earlier values. */
export function beginNumbers(body: Buffer): void {
  bytes = body;
  view = body.byteLength >= SWAR_MIN_BYTES ? new DataView(body.buffer, body.byteOffset, body.byteLength) : EMPTY_VIEW;
  numbers.count = 0;
}

/** Lets go of the body, and of a value buffer grown unusually large. */
export function endNumbers(): void {
  bytes = EMPTY_BYTES;
  view = EMPTY_VIEW;
  if (numbers.values.length > KEEP_VALUES) numbers.values = new Float64Array(INITIAL_VALUES);
}

/**
 * Reads `element (, element)*` from byte `start` of the body, where each element is a JSON
 * number, true or false (whitespace allowed around commas), appending the values to
 * `numbers`. Stops at the first thing that does not continue the run (e.g. a ']', or a ','
 * followed by a '[' or a '"') and returns its index, or -1 when an element is not a number,
 * true or false, or is not valid JSON (leading zeros, '1.', '-', '1e').
 */
export function readRun(start: number): number {
  const b = bytes;
  const dv = view;
  const swarEnd = dv.byteLength; // eight-digit reads stay inside the view (which may be empty)
  let values = numbers.values;
  let n = numbers.count;
  let i = start;
  for (;;) {
    let c = b[i];
    let value: number;
    if (c === 0x74) {
      if (b[i + 1] !== 0x72 || b[i + 2] !== 0x75 || b[i + 3] !== 0x65) return fail(n);
      value = 1;
      numbers.booleans = true;
      i += 4;
    } else if (c === 0x66) {
      if (b[i + 1] !== 0x61 || b[i + 2] !== 0x6c || b[i + 3] !== 0x73 || b[i + 4] !== 0x65) return fail(n);
      value = 0;
      numbers.booleans = true;
      i += 5;
    } else {
      const negative = c === 0x2d;
      if (negative) c = b[++i];
      const numberStart = i; // the text after the sign, for the fallback
      // Mantissa M = u·10^wd + w: u the first 8 significant digits (u·10^11 stays exact),
      // w the next 11 at most; past 19 digits, tooLong.
      let u = 0;
      let ud = 0;
      let w = 0;
      let wd = 0;
      let tooLong = false;
      let exponent = 0;
      if (c === 0x30) {
        c = b[++i];
        if (c >= 0x30 && c <= 0x39) return fail(n); // JSON forbids leading zeros
      } else if (c >= 0x31 && c <= 0x39) {
        do {
          if (ud < 8) {
            u = u * 10 + (c - 0x30);
            ud++;
          } else if (wd < 11) {
            w = w * 10 + (c - 0x30);
            wd++;
          } else tooLong = true;
          c = b[++i];
        } while (c >= 0x30 && c <= 0x39);
      } else {
        return fail(n);
      }

      if (c === 0x2e) {
        c = b[++i];
        if (!(c >= 0x30 && c <= 0x39)) return fail(n);
        if (ud === 0) {
          // Zeros before the first significant digit only scale.
          while (c === 0x30) {
            exponent--;
            c = b[++i];
          }
        }
        const digitsStart = i;
        if (ud < 8 && i + 8 <= swarEnd) {
          const v = eightDigits(dv, i);
          if (v >= 0) {
            if (ud === 0) {
              u = v;
            } else {
              // u holds the integer part (ud digits): 8 - ud more digits complete it, and
              // the last ud digits start w. v / 10^ud is exact or far from an integer.
              const split = EXACT_POW10[ud];
              const top = Math.floor(v / split);
              u = u * EXACT_POW10[8 - ud] + top;
              w = v - top * split;
              wd = ud;
            }
            ud = 8;
            i += 8;
            c = b[i];
          }
        }
        while (ud < 8 && c >= 0x30 && c <= 0x39) {
          u = u * 10 + (c - 0x30);
          ud++;
          c = b[++i];
        }
        if (wd <= 3 && i + 8 <= swarEnd && c >= 0x30 && c <= 0x39) {
          const v = eightDigits(dv, i);
          if (v >= 0) {
            w = w * 100000000 + v;
            wd += 8;
            i += 8;
            c = b[i];
          }
        }
        while (c >= 0x30 && c <= 0x39) {
          if (wd < 11) {
            w = w * 10 + (c - 0x30);
            wd++;
          } else tooLong = true;
          c = b[++i];
        }
        exponent -= i - digitsStart;
      }

      if (c === 0x65 || c === 0x45) {
        c = b[++i];
        let sign = 1;
        if (c === 0x2d) {
          sign = -1;
          c = b[++i];
        } else if (c === 0x2b) {
          c = b[++i];
        }
        if (!(c >= 0x30 && c <= 0x39)) return fail(n);
        let e = 0;
        do {
          if (e < 100000) e = e * 10 + (c - 0x30);
          c = b[++i];
        } while (c >= 0x30 && c <= 0x39);
        exponent += sign * e;
      }

      if (ud === 0) value = 0;
      else if (tooLong) value = numberFromText(numberStart, i);
      else if (wd === 0 && exponent === 0) value = u;
      else value = scaled(u, w, wd, exponent, numberStart, i);
      if (negative) value = -value;
    }

    if (n === values.length) values = grow(n);
    values[n++] = value;

    c = b[i];
    if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) c = b[(i = skipWhitespace(b, i))];
    if (c !== 0x2c) break;
    let next = i + 1;
    c = b[next];
    if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) c = b[(next = skipWhitespace(b, next))];
    // Anything but a number, true or false after the comma is the caller's to read.
    if (!((c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x74 || c === 0x66)) break;
    i = next;
  }
  numbers.count = n;
  return i;
}

/** Index of the first byte at or after `i` that is not JSON whitespace. */
export function skipWhitespace(b: Uint8Array, i: number): number {
  let c = b[i];
  while (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) c = b[++i];
  return i;
}

function fail(n: number): number {
  numbers.count = n;
  return -1;
}

function grow(n: number): Float64Array {
  const bigger = new Float64Array(n * 2);
  bigger.set(numbers.values);
  numbers.values = bigger;
  return bigger;
}

/** Number() of the text of body bytes [start, end): V8 rounds it exactly as JSON.parse does. */
function numberFromText(start: number, end: number): number {
  return Number(bytes.toString('latin1', start, end));
}

/** The value of the 8 ASCII digits at `dv[i, i + 8)`, or -1 when one of them is not a digit. */
function eightDigits(dv: DataView, i: number): number {
  const a = dv.getInt32(i, true);
  const b = dv.getInt32(i + 4, true);
  // Per byte: the high nibble is 3, and adding 6 keeps it 3 (so the low nibble is 0-9).
  if (((a & 0xf0f0f0f0) | (((a + 0x06060606) & 0xf0f0f0f0) >>> 4)) !== 0x33333333) return -1;
  if (((b & 0xf0f0f0f0) | (((b + 0x06060606) & 0xf0f0f0f0) >>> 4)) !== 0x33333333) return -1;
  // Digit values (first digit in the low byte) -> pairs 10·d0 + d1 in bytes 0 and 2 -> the
  // four-digit number; written out rather than as a helper, which V8 stopped inlining here.
  let x = a - 0x30303030;
  let y = b - 0x30303030;
  x = (x * 10 + (x >>> 8)) & 0x00ff00ff;
  y = (y * 10 + (y >>> 8)) & 0x00ff00ff;
  return ((x * 100 + (x >>> 16)) & 0x3fff) * 10000 + ((y * 100 + (y >>> 16)) & 0x3fff);
}

/** (u·10^wd + w)·10^exponent rounded as JSON.parse rounds it (the text is bytes [start, end)). */
function scaled(u: number, w: number, wd: number, exponent: number, start: number, end: number): number {
  let high = u;
  let low = 0;
  if (wd > 0) {
    // M exactly as high + low (TwoSum of two exact terms: u·10^wd is exact for wd <= 11).
    const x = u * EXACT_POW10[wd];
    high = x + w;
    const bv = high - x;
    low = x - (high - bv) + (w - bv);
    if (exponent === 0) return high; // the correctly rounded M
  }
  if (low === 0 && high <= TWO_POW_53 && exponent >= -22 && exponent <= 22) {
    // Clinger: M and the power of ten are exact, so one IEEE operation rounds correctly.
    return exponent < 0 ? high / EXACT_POW10[-exponent] : high * EXACT_POW10[exponent];
  }
  if (exponent < MIN_POW10 || exponent > MAX_POW10) return numberFromText(start, end);
  // (high + low)·(P + p) with 10^exponent = P + p in double-double: P·high exactly as
  // product + error (Dekker), the other terms rounded. Each error is below 2^-104 of the
  // value, and so is the table's.
  const index = exponent - MIN_POW10;
  const power = POW10_HIGH[index];
  const powerHigh = POW10_SPLIT_HIGH[index];
  const powerLow = POW10_SPLIT_LOW[index];
  const product = high * power;
  const t = high * SPLITTER;
  const hh = t - (t - high);
  const hl = high - hh;
  const error = hh * powerHigh - product + hh * powerLow + hl * powerHigh + hl * powerLow;
  const rest = error + (high * POW10_LOW[index] + low * power);
  const margin = product * TWO_POW_MINUS_80;
  const down = product + (rest - margin);
  // Every value within the margin rounds to `down`: it is the correctly rounded value.
  return down === product + (rest + margin) ? down : numberFromText(start, end);
}
