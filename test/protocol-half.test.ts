import { describe, expect, it } from 'vitest';
import {
  bfloat16BitsToFloat32,
  decodeBfloat16Array,
  decodeFloat16Array,
  float16BitsToFloat32,
  float32ToBfloat16Bits,
  float32ToFloat16Bits,
} from '../lib/protocol/half';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function floatFromBits(bits: number): number {
  u32[0] = bits >>> 0;
  return f32[0];
}
function bitsOf(value: number): number {
  f32[0] = value;
  return u32[0];
}

describe('FP16', () => {
  it('converts known values with round to nearest even', () => {
    expect(float32ToFloat16Bits(1)).toBe(0x3c00);
    expect(float32ToFloat16Bits(-2)).toBe(0xc000);
    expect(float32ToFloat16Bits(0.1)).toBe(0x2e66);
    expect(float32ToFloat16Bits(65504)).toBe(0x7bff);
    expect(float32ToFloat16Bits(65519)).toBe(0x7bff); // below the midpoint to 65536
    expect(float32ToFloat16Bits(65520)).toBe(0x7c00); // the midpoint: ties to even = infinity
    expect(float32ToFloat16Bits(1e6)).toBe(0x7c00);
    expect(float32ToFloat16Bits(-Infinity)).toBe(0xfc00);
    expect(float32ToFloat16Bits(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(float32ToFloat16Bits(2 ** -25)).toBe(0x0000); // tie between 0 and 1 ulp: even is 0
    expect(float32ToFloat16Bits(3 * 2 ** -25)).toBe(0x0002); // tie between 1 and 2 ulps: even is 2
    expect(float32ToFloat16Bits(2 ** -26)).toBe(0x0000);
    expect(float32ToFloat16Bits(-0)).toBe(0x8000);
    expect(float32ToFloat16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie: keeps the even 1.0
    expect(float32ToFloat16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie: goes up to the even one
    expect(float32ToFloat16Bits(2 ** -14 - 2 ** -25)).toBe(0x0400); // rounds up into the normals
    const nan = float32ToFloat16Bits(NaN);
    expect(nan & 0x7c00).toBe(0x7c00);
    expect(nan & 0x3ff).not.toBe(0);
  });

  it('round-trips every half exactly and decodes to the exact value', () => {
    for (let h = 0; h < 0x10000; h++) {
      const v = float16BitsToFloat32(h);
      if ((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0) {
        expect(Number.isNaN(v)).toBe(true);
        continue;
      }
      if (float32ToFloat16Bits(v) !== h) throw new Error(`half 0x${h.toString(16)} (${v}) came back as 0x${float32ToFloat16Bits(v).toString(16)}`);
    }
    expect(float16BitsToFloat32(0x3555)).toBe(0.333251953125);
    expect(float16BitsToFloat32(0x0001)).toBe(2 ** -24);
    expect(float16BitsToFloat32(0xfbff)).toBe(-65504);
  });

  it('rounds every midpoint between neighbouring halves to the even one, and off-midpoints to the nearer', () => {
    for (let h = 0; h < 0x7bff; h++) {
      const lo = float16BitsToFloat32(h);
      const hi = float16BitsToFloat32(h + 1);
      const mid = (lo + hi) / 2; // exact in float32: 12 significant bits
      const even = h % 2 === 0 ? h : h + 1;
      const midBits = bitsOf(mid);
      if (float32ToFloat16Bits(mid) !== even) throw new Error(`midpoint after 0x${h.toString(16)} went to 0x${float32ToFloat16Bits(mid).toString(16)}`);
      if (h > 0 && float32ToFloat16Bits(floatFromBits(midBits - 1)) !== h) throw new Error(`below midpoint after 0x${h.toString(16)}`);
      if (float32ToFloat16Bits(floatFromBits(midBits + 1)) !== h + 1) throw new Error(`above midpoint after 0x${h.toString(16)}`);
    }
  });

  it('decodes whole arrays through the table', () => {
    const out = decodeFloat16Array(new Uint16Array([0x3c00, 0xc000, 0x7c00, 0x0001, 0x2e66]));
    expect(Array.from(out)).toEqual([1, -2, Infinity, 2 ** -24, 0.0999755859375]);
  });
});

describe('BF16', () => {
  it('converts known values with round to nearest even', () => {
    expect(float32ToBfloat16Bits(1)).toBe(0x3f80);
    expect(float32ToBfloat16Bits(-2)).toBe(0xc000);
    expect(float32ToBfloat16Bits(0.1)).toBe(0x3dcd); // 0x3dcccccd: low half 0xcccd > 0x8000, rounds up
    expect(float32ToBfloat16Bits(floatFromBits(0x3f808000))).toBe(0x3f80); // tie, even stays
    expect(float32ToBfloat16Bits(floatFromBits(0x3f818000))).toBe(0x3f82); // tie, odd goes up
    expect(float32ToBfloat16Bits(floatFromBits(0x7f7fffff))).toBe(0x7f80); // max float rounds to infinity
    expect(float32ToBfloat16Bits(-Infinity)).toBe(0xff80);
    expect(float32ToBfloat16Bits(NaN) & 0x7fc0).toBe(0x7fc0);
    expect(float32ToBfloat16Bits(floatFromBits(0x7f800001))).toBe(0x7fc0); // signalling NaN stays a NaN
    expect(bfloat16BitsToFloat32(0x3dcd)).toBe(0.10009765625);
  });

  it('round-trips every bfloat16 exactly and rounds every midpoint to even', () => {
    for (let b = 0; b < 0x10000; b++) {
      const v = bfloat16BitsToFloat32(b);
      if (Number.isNaN(v)) continue;
      if (float32ToBfloat16Bits(v) !== b) throw new Error(`bf16 0x${b.toString(16)} came back as 0x${float32ToBfloat16Bits(v).toString(16)}`);
      if ((b & 0x7f80) === 0x7f80 || b === 0x7f7f || b === 0xff7f) continue;
      const mid = floatFromBits(((b << 16) | 0x8000) >>> 0);
      const even = b % 2 === 0 ? b : b + 1;
      if (float32ToBfloat16Bits(mid) !== even) throw new Error(`midpoint after bf16 0x${b.toString(16)}`);
    }
  });

  it('decodes whole arrays', () => {
    expect(Array.from(decodeBfloat16Array(new Uint16Array([0x3f80, 0xc000, 0xff80])))).toEqual([1, -2, -Infinity]);
  });
});
