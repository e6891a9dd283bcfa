/**
 * Powers of ten for number-scanner.ts: 10^k for |k| <= 22 as exact doubles, and 10^k for
 * |k| <= 64 as double-doubles (high + low, within 2^-104 of 10^k) with the high part split
 * for Dekker's exact product. Computed once at load with BigInt (well under a millisecond).
 */

/** 10^k for k = 0..22: each is exact as a double (5^22 < 2^53). */
export const EXACT_POW10: Float64Array = new Float64Array(23);
for (let k = 0; k <= 22; k++) EXACT_POW10[k] = Number('1e' + k);

/** Smallest and largest k in the double-double table. */
export const MIN_POW10 = -64;
export const MAX_POW10 = 64;

/** For k = MIN_POW10..MAX_POW10 at index k - MIN_POW10: the double nearest 10^k... */
export const POW10_HIGH: Float64Array = new Float64Array(MAX_POW10 - MIN_POW10 + 1);
/** ...the rest, 10^k - POW10_HIGH (to 53 bits; 0 where 10^k is exact)... */
export const POW10_LOW: Float64Array = new Float64Array(MAX_POW10 - MIN_POW10 + 1);
/** ...and POW10_HIGH split into 26 high bits and the remaining bits (Veltkamp). */
export const POW10_SPLIT_HIGH: Float64Array = new Float64Array(MAX_POW10 - MIN_POW10 + 1);
export const POW10_SPLIT_LOW: Float64Array = new Float64Array(MAX_POW10 - MIN_POW10 + 1);

/** 2^27 + 1: Veltkamp's constant, splitting a double into two halves that multiply exactly. */
export const SPLITTER = 134217729;

const bits = new Float64Array(1);
const bitsView = new BigUint64Array(bits.buffer);

/** The double `x` (positive, normal) as mantissa · 2^exponent with an integer mantissa. */
function decompose(x: number): { mantissa: bigint; exponent: number } {
  bits[0] = x;
  const word = bitsView[0];
  return { mantissa: (word & ((1n << 52n) - 1n)) | (1n << 52n), exponent: Number((word >> 52n) & 0x7ffn) - 1075 };
}

for (let k = MIN_POW10; k <= MAX_POW10; k++) {
  const index = k - MIN_POW10;
  const high = Number('1e' + k); // correctly rounded by V8
  let low: number;
  const { mantissa, exponent } = decompose(high);
  if (k >= 0) {
    // high is an integer: the difference is exact in BigInt, rounded once by Number().
    const exact = 10n ** BigInt(k);
    low = Number(exact - (exponent >= 0 ? mantissa << BigInt(exponent) : mantissa >> BigInt(-exponent)));
  } else {
    // 10^k - m·2^e = (2^-e - m·10^n) / (10^n · 2^-e), n = -k, e < 0: scaled by 2^80 so the
    // integer quotient keeps more than 53 bits.
    const n = 10n ** BigInt(-k);
    const numerator = (1n << BigInt(-exponent)) - mantissa * n;
    low = (Number((numerator << 80n) / n) * 2 ** exponent) / 2 ** 80;
  }
  POW10_HIGH[index] = high;
  POW10_LOW[index] = low;
  const t = high * SPLITTER;
  POW10_SPLIT_HIGH[index] = t - (t - high);
  POW10_SPLIT_LOW[index] = high - POW10_SPLIT_HIGH[index];
}
