/**
 * FP16 (IEEE 754 binary16) and BF16 (bfloat16) conversions to and from float32, used by
 * the JSON codecs: JSON carries plain numbers, the wire and the engine carry 16-bit words.
 * Float32 -> 16-bit rounds to nearest, ties to even, like numpy, PyTorch and CUDA's
 * __float2half_rn / __float2bfloat16_rn, so a client and tensorwire agree bit for bit.
 */

// One scratch word shared by every conversion: reading a float's bits without a DataView
// or an allocation per element. JS is single threaded, so sharing is safe.
const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** The binary16 bits (0..0xffff) of `value`, rounded to nearest even. NaN stays NaN, overflow becomes infinity. */
export function float32ToFloat16Bits(value: number): number {
  scratchF32[0] = value;
  const x = scratchU32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;

  if (exp === 0xff) {
    // Infinity keeps a zero mantissa; NaN keeps its top payload bits and is forced quiet
    // so that it cannot collapse into an infinity.
    return mant === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mant >>> 13);
  }
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half (or zero): value = mant * 2^-24 with the implicit bit made explicit.
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rest > mid || (rest === mid && (half & 1) === 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (up to infinity).
  if (rest > 0x1000 || (rest === 0x1000 && (half & 1) === 1)) half++;
  return sign | half;
}

/** The float value of binary16 bits `bits` (exact: every half is a float32). */
export function float16BitsToFloat32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1024 + mant) * 2 ** (exp - 25);
}

/** The bfloat16 bits (0..0xffff) of `value`, rounded to nearest even. NaN stays a quiet NaN. */
export function float32ToBfloat16Bits(value: number): number {
  scratchF32[0] = value;
  const x = scratchU32[0];
  if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) return ((x >>> 16) | 0x40) & 0xffff;
  // Adding 0x7fff plus the lowest kept bit rounds to nearest even; overflow goes to infinity.
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/** The float value of bfloat16 bits `bits` (exact: a bfloat16 is the top half of a float32). */
export function bfloat16BitsToFloat32(bits: number): number {
  scratchU32[0] = (bits & 0xffff) << 16;
  return scratchF32[0];
}

// Decoding tables, built on first use: a lookup is several times faster than the
// arithmetic above when a whole FP16/BF16 tensor is turned into JSON.
let fp16Table: Float32Array | undefined;

/** Decodes a whole FP16 tensor (16-bit words, host order) into float32 values. */
export function decodeFloat16Array(src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  let table = fp16Table;
  if (table === undefined) {
    table = new Float32Array(0x10000);
    for (let i = 0; i < 0x10000; i++) table[i] = float16BitsToFloat32(i);
    fp16Table = table;
  }
  for (let i = 0; i < src.length; i++) dst[i] = table[src[i]];
  return dst;
}

/** Decodes a whole BF16 tensor (16-bit words, host order) into float32 values. */
export function decodeBfloat16Array(src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  // A bfloat16 is the high half of a float32: widen each word by a shift, no table needed.
  const out = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  for (let i = 0; i < src.length; i++) out[i] = src[i] << 16;
  return dst;
}
