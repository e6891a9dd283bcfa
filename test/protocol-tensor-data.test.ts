import { describe, expect, it } from 'vitest';
import type { Datatype } from '../lib/engine/types';
import { jsonToTensorBytes, type JsonDecodeState } from '../lib/protocol/tensor-data';
import { checkOutputBytes, tensorBytesToJsonText, tensorBytesToValues } from '../lib/protocol/tensor-json';
import { thrownError } from './helpers/expect-error';

const bytesOf = (view: ArrayBufferView): number[] => Array.from(new Uint8Array(view.buffer, view.byteOffset, view.byteLength));
const decode = (datatype: Datatype, shape: number[], data: unknown, state?: JsonDecodeState): Uint8Array => jsonToTensorBytes("input 'x'", datatype, shape, data, state);
/** JSON text -> bytes -> JSON text, as a client would see the round trip. */
const roundTrip = (datatype: Datatype, values: unknown[]): string => tensorBytesToJsonText(datatype, decode(datatype, [values.length], values));

const errorOf = (fn: () => unknown) => thrownError(fn);

describe('JSON data -> bytes -> JSON, per datatype', () => {
  it('FP32: exact float bits, Triton formatting, NaN/Infinity as strings, -0 kept', () => {
    const bytes = decode('FP32', [2, 3], [1.5, -2.25, 0.1, 'NaN', 'Infinity', '-Infinity']);
    expect(bytesOf(bytes)).toEqual(bytesOf(new Float32Array([1.5, -2.25, 0.1, NaN, Infinity, -Infinity])));
    expect(tensorBytesToJsonText('FP32', bytes)).toBe('1.5,-2.25,0.10000000149011612,"NaN","Infinity","-Infinity"');
    expect(roundTrip('FP32', [-0, 0, 3e38, 1e-45])).toBe('-0,0,3.0000000054977558e+38,1.401298464324817e-45');
    expect(JSON.parse('[' + roundTrip('FP32', [-0]) + ']')[0]).toBe(-0);
  });

  it('FP64: full double precision', () => {
    const bytes = decode('FP64', [3], [0.1, -1e300, 5e-324]);
    expect(bytesOf(bytes)).toEqual(bytesOf(new Float64Array([0.1, -1e300, 5e-324])));
    expect(tensorBytesToJsonText('FP64', bytes)).toBe('0.1,-1e+300,5e-324');
    expect(roundTrip('FP64', ['2.5', '-3e2'])).toBe('2.5,-300');
  });

  it('FP16: rounds to nearest even, writes the exact half values', () => {
    const bytes = decode('FP16', [5], [1, 0.1, 65520, -2, 2 ** -25]);
    expect(Array.from(new Uint16Array(bytes.buffer))).toEqual([0x3c00, 0x2e66, 0x7c00, 0xc000, 0x0000]);
    expect(tensorBytesToJsonText('FP16', bytes)).toBe('1,0.0999755859375,"Infinity",-2,0');
    expect(roundTrip('FP16', [0.0999755859375, 'NaN'])).toBe('0.0999755859375,"NaN"');
  });

  it('BF16: rounds to nearest even, writes the exact bfloat16 values', () => {
    const bytes = decode('BF16', [3], [1, 0.1, -3.0e38]);
    expect(Array.from(new Uint16Array(bytes.buffer))).toEqual([0x3f80, 0x3dcd, 0xff62]);
    expect(tensorBytesToJsonText('BF16', bytes)).toBe('1,0.10009765625,-3.00405527047391e+38');
  });

  it('BOOL: true/false (and 0/1) as single bytes', () => {
    const bytes = decode('BOOL', [2, 2], [[true, false], [1, 0]]);
    expect(Array.from(bytes)).toEqual([1, 0, 1, 0]);
    expect(tensorBytesToJsonText('BOOL', new Uint8Array([1, 0, 7]))).toBe('true,false,true');
    expect(tensorBytesToValues('BOOL', new Uint8Array([0, 1]))).toEqual([false, true]);
  });

  it('8, 16 and 32-bit integers at the edges of their ranges', () => {
    const cases: [Datatype, number[], ArrayBufferView][] = [
      ['INT8', [-128, 127, 0], new Int8Array([-128, 127, 0])],
      ['UINT8', [0, 255, 7], new Uint8Array([0, 255, 7])],
      ['INT16', [-32768, 32767, -1], new Int16Array([-32768, 32767, -1])],
      ['UINT16', [0, 65535, 1], new Uint16Array([0, 65535, 1])],
      ['INT32', [-2147483648, 2147483647, -5], new Int32Array([-2147483648, 2147483647, -5])],
      ['UINT32', [0, 4294967295, 2147483648], new Uint32Array([0, 4294967295, 2147483648])],
    ];
    for (const [datatype, values, expected] of cases) {
      const bytes = decode(datatype, [3], values);
      expect(bytesOf(bytes), datatype).toEqual(bytesOf(expected));
      expect(tensorBytesToJsonText(datatype, bytes), datatype).toBe(values.join(','));
      expect(tensorBytesToValues(datatype, bytes), datatype).toEqual(values);
    }
    expect(roundTrip('INT32', ['-7', '12'])).toBe('-7,12');
  });

  it('INT64 and UINT64: beyond 2^31 and 2^53, exact through strings, written with every digit', () => {
    const values = [2 ** 31, -(2 ** 31) - 1, 2 ** 53 - 1, -(2 ** 53 - 1), '9223372036854775807', '-9223372036854775808', -1, 4294967296];
    const bytes = decode('INT64', [values.length], values);
    const expected = new BigInt64Array([2n ** 31n, -(2n ** 31n) - 1n, 2n ** 53n - 1n, -(2n ** 53n - 1n), 2n ** 63n - 1n, -(2n ** 63n), -1n, 2n ** 32n]);
    expect(bytesOf(bytes)).toEqual(bytesOf(expected));
    expect(tensorBytesToJsonText('INT64', bytes)).toBe('2147483648,-2147483649,9007199254740991,-9007199254740991,9223372036854775807,-9223372036854775808,-1,4294967296');
    expect(tensorBytesToValues('INT64', bytes).slice(0, 4)).toEqual([2 ** 31, -(2 ** 31) - 1, 2 ** 53 - 1, -(2 ** 53 - 1)]);

    const unsigned = decode('UINT64', [3], ['18446744073709551615', 2 ** 40, 0]);
    expect(bytesOf(unsigned)).toEqual(bytesOf(new BigUint64Array([2n ** 64n - 1n, 2n ** 40n, 0n])));
    expect(tensorBytesToJsonText('UINT64', unsigned)).toBe('18446744073709551615,1099511627776,0');
  });

  it('flags INT64 numbers beyond 2^53 as possibly rounded instead of trusting them', () => {
    const state: JsonDecodeState = { lossyIntegers: false };
    decode('INT64', [2], [1, JSON.parse('9007199254740993')], state);
    expect(state.lossyIntegers).toBe(true);
    // Without a state the double JSON.parse produced is taken as is.
    expect(tensorBytesToJsonText('INT64', decode('INT64', [1], [2 ** 60]))).toBe('1152921504606846976');
  });

  it('flattens nested arrays row-major', () => {
    const bytes = decode('INT32', [2, 2, 2], [[[1, 2], [3, 4]], [[5, 6], [7, 8]]]);
    expect(Array.from(new Int32Array(bytes.buffer))).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(Array.from(new Float32Array(decode('FP32', [], [4.5]).buffer))).toEqual([4.5]);
    expect(decode('FP32', [0, 3], []).byteLength).toBe(0);
    expect(tensorBytesToJsonText('FP32', new Uint8Array(0))).toBe('');
  });

  it('reads unaligned output bytes through an aligned copy', () => {
    const backing = new Uint8Array(9);
    backing.set(new Uint8Array(new Float64Array([2.5]).buffer), 1);
    expect(tensorBytesToJsonText('FP64', backing.subarray(1))).toBe('2.5');
    // Buffer#slice does not copy: the aligned copy must not rely on it.
    const buffer = Buffer.alloc(9);
    buffer.set(new Uint8Array(new Float32Array([1.25, -3]).buffer), 1);
    expect(tensorBytesToJsonText('FP32', buffer.subarray(1))).toBe('1.25,-3');
    expect(tensorBytesToValues('FP32', buffer.subarray(1))).toEqual([1.25, -3]);
  });
});

describe('JSON data errors name the tensor, the index and the value', () => {
  it('counts', () => {
    expect(errorOf(() => decode('FP32', [2, 4], [1, 2, 3, 4, 5, 6])).message).toBe("input 'x': expected 8 FP32 values for shape [2,4], got 6");
    expect(errorOf(() => decode('INT8', [2, 2], [[1, 2], [3]])).message).toBe("input 'x': expected 4 INT8 values for shape [2,2], got 3");
    const e = errorOf(() => decode('FP32', [1], 5));
    expect(e.message).toBe("input 'x': 'data' must be an array, got 5");
    expect(e.code).toBe('INVALID_INPUT');
    expect(e.status).toBe(400);
  });

  it('values', () => {
    expect(errorOf(() => decode('FP32', [4], [1, 2, 3, 'a'])).message).toBe(`input 'x': value at index 3 is not a number (got "a")`);
    expect(errorOf(() => decode('FP64', [2], [1, null])).message).toBe("input 'x': value at index 1 is not a number (got null)");
    expect(errorOf(() => decode('FP16', [2], [[1], [{}]])).message).toBe("input 'x': value at index 1 is not a number (got {})");
    expect(errorOf(() => decode('INT32', [2], [1, 2.5])).message).toBe("input 'x': value at index 1 is not an integer (got 2.5)");
    expect(errorOf(() => decode('INT8', [2], [0, 128])).message).toBe("input 'x': value at index 1 (128) is out of range for INT8 [-128, 127]");
    expect(errorOf(() => decode('UINT8', [1], [-1])).message).toBe("input 'x': value at index 0 (-1) is out of range for UINT8 [0, 255]");
    expect(errorOf(() => decode('UINT32', [1], [true])).message).toBe("input 'x': value at index 0 is not a number (got true)");
    expect(errorOf(() => decode('INT64', [1], ['9223372036854775808'])).message).toBe(
      `input 'x': value at index 0 ("9223372036854775808") is out of range for INT64 [-9223372036854775808, 9223372036854775807]`,
    );
    expect(errorOf(() => decode('UINT64', [2], [1, -1])).message).toBe("input 'x': value at index 1 (-1) is out of range for UINT64 [0, 18446744073709551615]");
    expect(errorOf(() => decode('INT64', [1], [1.5])).message).toBe("input 'x': value at index 0 is not an integer (got 1.5)");
    expect(errorOf(() => decode('INT64', [1], ['12x'])).message).toBe(`input 'x': value at index 0 is not an integer (got "12x")`);
    expect(errorOf(() => decode('BOOL', [1], ['yes'])).message).toBe(`input 'x': value at index 0 is not a boolean (got "yes")`);
  });

  it('reports output bytes that do not match their shape as an internal error', () => {
    const e = errorOf(() => checkOutputBytes('y', 'FP32', [2, 3], new Uint8Array(20)));
    expect(e.message).toBe("output 'y': shape [2,3] of FP32 needs 24 bytes, got 20");
    expect(e.status).toBe(500);
  });
});
