/**
 * number-scanner.ts must turn every JSON number into the very double JSON.parse makes of it
 * (bit for bit, -0 included), and refuse exactly what JSON.parse refuses.
 */
import { describe, expect, it } from 'vitest';
import { beginNumbers, endNumbers, numbers, readRun } from '../lib/protocol/number-scanner';
import { seededRandom } from './fixtures/random';

/** Reads `texts` as one run through the scanner; returns the doubles and where the run ended. */
function scan(texts: string[], separator: string, padding: string): { values: number[]; end: number; expectedEnd: number } {
  const body = texts.join(separator) + ']';
  const b = Buffer.from(body + padding);
  beginNumbers(b);
  try {
    const end = readRun(0);
    return { values: Array.from(numbers.values.subarray(0, numbers.count)), end, expectedEnd: body.length - 1 };
  } finally {
    endNumbers();
  }
}

/** Asserts the scanner agrees with JSON.parse on each text, with short and long bodies (the latter read eight digits at a time). */
function expectExact(texts: string[]): void {
  const expected = JSON.parse('[' + texts.join(',') + ']') as number[];
  for (const padding of ['', ' '.repeat(600)]) {
    for (const separator of [',', ' , ', ',\n\t']) {
      const { values, end, expectedEnd } = scan(texts, separator, padding);
      expect(end).toBe(expectedEnd);
      for (let i = 0; i < texts.length; i++) {
        if (!Object.is(values[i], expected[i])) throw new Error(`${texts[i]}: scanned ${values[i]}, JSON.parse gives ${expected[i]}`);
      }
    }
  }
}

/** The exact decimal expansion of the midpoint between the double `x` (positive, finite) and the next one up. */
function midpointAbove(x: number): string {
  const f = new Float64Array([x]);
  const bits = new BigUint64Array(f.buffer)[0];
  const exponent = Number((bits >> 52n) & 0x7ffn);
  const mantissa = (bits & ((1n << 52n) - 1n)) | (exponent === 0 ? 0n : 1n << 52n);
  // x = mantissa · 2^e; the midpoint is (2·mantissa + 1) · 2^(e - 1).
  const e = (exponent === 0 ? 1 : exponent) - 1075;
  const twice = 2n * mantissa + 1n;
  const shift = e - 1;
  if (shift >= 0) return (twice << BigInt(shift)).toString();
  const k = -shift; // twice / 2^k = twice · 5^k / 10^k
  const digits = (twice * 5n ** BigInt(k)).toString().padStart(k + 1, '0');
  return digits.slice(0, digits.length - k) + '.' + digits.slice(digits.length - k);
}

/** `text` (a plain decimal) cut to `digits` significant digits, the last one moved by `delta` (-1, 0, +1). */
function nearby(text: string, digits: number, delta: number): string {
  const point = text.indexOf('.');
  const all = text.replace('.', '');
  const lead = all.search(/[1-9]/);
  const intDigits = point < 0 ? all.length : point;
  let mantissa = BigInt(all.slice(0, lead + digits).padEnd(lead + digits, '0')) + BigInt(delta);
  if (mantissa < 0n) mantissa = 0n;
  // The value is mantissa · 10^(intDigits - lead - digits)... written in exponent form.
  return `${mantissa}e${intDigits - (lead + digits)}`;
}

describe('number-scanner: JSON numbers -> the doubles JSON.parse makes', () => {
  it('edge values: zeros, signs, exponents, extremes, ties', () => {
    expectExact([
      '0', '-0', '0.0', '-0.0', '0e0', '-0e-5', '0.000e400', '1', '-1', '10', '0.5', '-0.25', '1e0', '1E+2', '1e-2', '2.5E-3',
      '123456789', '9007199254740991', '9007199254740992', '9007199254740993', '9007199254740995', '18446744073709551615',
      '12345678901234567890123', '0.1', '0.2', '0.3', '0.30000000000000004', '0.1000000000000000055511151231257827',
      '1.7976931348623157e308', '1.7976931348623159e308', '1e309', '-1e400', '5e-324', '2.4703282292062327e-324', '2.4703282292062328e-324',
      '1e-400', '2.2250738585072014e-308', '2.2250738585072011e-308', '4503599627370496.5', '4503599627370497.5',
      '0.000001', '1e-7', '1.2345678901234567e-7', '123.456', '1.5e22', '1.5e23', '1e22', '1e23', '8.589973e9',
      '0.10000000149011612', '3.4028234663852886e+38', '1.401298464324817e-45', '-3.0000000054977558e+38',
      '100000000000000000000', '1.00000000000000000000000001', '1e64', '1e65', '1e-64', '1e-65', '9.999999999999999e63', '1.2345678901234567e-64',
      '1.2345678901234567e-65', '1.2345678901234567e+47', '-7.0e-46', '4.9406564584124654e-324', '1.1754942106924411e-38', '0.0000000000000000000000000000001234567890123456789',
    ]);
  });

  it('float32 values printed shortest (16-17 digits) and with 17 digits, in every magnitude', () => {
    const rand = seededRandom(1);
    const f = new Float32Array(1);
    const texts: string[] = [];
    for (let i = 0; i < 40000; i++) {
      f[0] = (rand() - 0.5) * 10 ** Math.floor(rand() < 0.8 ? rand() * 16 - 8 : rand() * 84 - 45);
      const x = f[0];
      texts.push(String(x), x.toPrecision(17), x.toExponential(8));
    }
    for (let i = 0; i < texts.length; i += 3000) expectExact(texts.slice(i, i + 3000));
  });

  it('random doubles of every exponent, shortest and with 17 digits', () => {
    const rand = seededRandom(2);
    const f = new Float64Array(1);
    const words = new Uint32Array(f.buffer);
    const texts: string[] = [];
    while (texts.length < 60000) {
      words[0] = (rand() * 2 ** 32) >>> 0;
      words[1] = (rand() * 2 ** 32) >>> 0;
      const x = f[0];
      if (!Number.isFinite(x)) continue;
      texts.push(String(x), x.toPrecision(17));
    }
    for (let i = 0; i < texts.length; i += 3000) expectExact(texts.slice(i, i + 3000));
  });

  it('random digit strings: up to 25 digits, leading zeros in fractions, every exponent form', () => {
    const rand = seededRandom(3);
    const digit = () => String(Math.floor(rand() * 10));
    const texts: string[] = [];
    for (let i = 0; i < 60000; i++) {
      let s = rand() < 0.5 ? '-' : '';
      if (rand() < 0.3) s += '0';
      else {
        s += String(1 + Math.floor(rand() * 9));
        for (let n = Math.floor(rand() * 22); n > 0; n--) s += digit();
      }
      if (rand() < 0.7) {
        s += '.';
        if (rand() < 0.3) s += '0'.repeat(Math.floor(rand() * 8));
        for (let n = 1 + Math.floor(rand() * 24); n > 0; n--) s += digit();
      }
      if (rand() < 0.4) s += (rand() < 0.5 ? 'e' : 'E') + ['', '-', '+'][Math.floor(rand() * 3)] + Math.floor(rand() * (rand() < 0.8 ? 90 : 400));
      texts.push(s);
    }
    for (let i = 0; i < texts.length; i += 3000) expectExact(texts.slice(i, i + 3000));
  });

  it('exact halfway points between doubles, and 17- to 19-digit decimals a hair either side of them', () => {
    const rand = seededRandom(4);
    const texts: string[] = [];
    for (let i = 0; i < 6000; i++) {
      // Doubles from 2^-230 to 2^230 (decimal exponents beyond ±64 included).
      const x = (1 + rand()) * 2 ** Math.floor(rand() * 460 - 230);
      const mid = midpointAbove(x);
      if (mid.replace('.', '').replace(/^0+/, '').length <= 25) texts.push(mid);
      for (const digits of [17, 18, 19]) for (const delta of [-1, 0, 1]) texts.push(nearby(mid, digits, delta));
    }
    // Ties written with few digits: integers beyond 2^53 and halves just below it.
    for (let k = 0; k < 2000; k++) {
      texts.push((2n ** 53n + BigInt(2 * Math.floor(rand() * 1e6) + 1)).toString(), (2n ** 52n + BigInt(k)).toString() + '.5');
    }
    for (let i = 0; i < texts.length; i += 3000) expectExact(texts.slice(i, i + 3000));
  });

  it('refuses what JSON.parse refuses', () => {
    for (const text of ['01', '-01', '00', '1.', '.5', '-', '+1', '1e', '1e+', '1.e5', '-.5', 'Infinity', 'NaN', '0x10', 'tru', 'nul', '1 2']) {
      expect(() => JSON.parse('[' + text + ']')).toThrow();
      const b = Buffer.from(text + ']');
      beginNumbers(b);
      const end = readRun(0);
      endNumbers();
      // Either refused outright, or stopped short of the ']' (the caller then refuses).
      expect(end === -1 || end !== text.length).toBe(true);
    }
  });

  it('reads true and false as 1 and 0 and says it did; stops before an array or a string', () => {
    const b = Buffer.from('1, true,false , 2,[3],"x"');
    beginNumbers(b);
    numbers.booleans = false;
    expect(readRun(0)).toBe(17); // at the ',' before '['
    expect(Array.from(numbers.values.subarray(0, numbers.count))).toEqual([1, 1, 0, 2]);
    expect(numbers.booleans).toBe(true);
    expect(readRun(19)).toBe(20); // "3", stopped at the ']'
    endNumbers();
  });
});
