/**
 * BYTES in the JSON codec and classification's ranking, without a server: strings in and
 * out, the JSON output weight of large strings, and the order of equal and NaN values.
 */
import { describe, expect, it } from 'vitest';
import { isUtf8 } from 'node:buffer';
import { checkBytesText, serializeBytesElements } from '../lib/protocol/bytes-tensor';
import { classifyOutput } from '../lib/protocol/classification';
import { buildResponseHeader, decodeJsonRequest, JSON_BYTES_PER_ELEMENT, JSON_WEIGHT_PER_STRING } from '../lib/protocol/json-codec';
import { MAX_JSON_OUTPUT_ELEMENTS } from '../lib/protocol/request-limits';
import { bytesElementsAsText } from '../lib/protocol/bytes-tensor';
import { thrownError } from './helpers/expect-error';

describe('BYTES in the JSON codec', () => {
  it('decodes strings to the serialized form', () => {
    const r = decodeJsonRequest(JSON.stringify({ inputs: [{ name: 't', datatype: 'BYTES', shape: [2], data: ['é', ''] }] }));
    expect(Buffer.from(r.inputs[0]!.data)).toEqual(serializeBytesElements(['é', '']));
  });

  it('one huge string weighs by its bytes against the JSON output limit (413 before encoding)', () => {
    const huge = serializeBytesElements(['x'.repeat(MAX_JSON_OUTPUT_ELEMENTS * JSON_BYTES_PER_ELEMENT + 1)]);
    const response = (binary: boolean) => ({ modelName: 'm', modelVersion: '1', outputs: [{ name: 'text', datatype: 'BYTES' as const, shape: [1], data: huge, binary }] });
    const e = thrownError(() => buildResponseHeader(response(false), undefined, true), { code: 'PAYLOAD_TOO_LARGE', status: 413 });
    expect(e.message).toContain("output 'text'");
    expect(buildResponseHeader(response(true), undefined, true).binaryBytes).toBe(huge.byteLength);
  });

  it('many short strings weigh 16 elements each against the JSON output limit', () => {
    const strings = (n: number) => ({ modelName: 'm', modelVersion: '1', outputs: [{ name: 'text', datatype: 'BYTES' as const, shape: [n], data: serializeBytesElements(Array.from({ length: n }, () => 'a')), binary: false }] });
    const limit = MAX_JSON_OUTPUT_ELEMENTS / JSON_WEIGHT_PER_STRING;
    expect(buildResponseHeader(strings(limit), undefined, true).json).toContain('"data":["a","a"');
    thrownError(() => buildResponseHeader(strings(limit + 1), undefined, true), { code: 'PAYLOAD_TOO_LARGE', status: 413 });
  });
});

describe('UTF-8 check of BYTES inputs', () => {
  it('agrees with Node on random short byte strings (the JS path) and long ones (the native path)', () => {
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    // Bytes biased towards the interesting ranges: ASCII, continuation bytes, lead bytes.
    const pool = [0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xff];
    let valid = 0;
    for (let n = 0; n < 20000; n++) {
      const length = n % 100 === 0 ? 64 + Math.floor(rand() * 64) : Math.floor(rand() * 6);
      const element = Uint8Array.from({ length }, () => pool[Math.floor(rand() * pool.length)]!);
      const data = serializeBytesElements(['ok', element]);
      let accepted = true;
      try {
        checkBytesText("input 't'", data, 2);
      } catch (e) {
        accepted = false;
        expect((e as Error).message).toBe("input 't': BYTES element 1 is not valid UTF-8 text");
      }
      expect(accepted).toBe(isUtf8(element));
      if (accepted) valid++;
    }
    expect(valid).toBeGreaterThan(1000); // both outcomes were exercised
  });
});

describe('classification ranking', () => {
  const f32 = (values: number[]) => new Uint8Array(new Float32Array(values).buffer);

  it('NaN ranks last, equal values by index, k = all classes', () => {
    const out = classifyOutput({ name: 'p', datatype: 'FP32', shape: [1, 5], data: f32([NaN, 1, 3, 1, -Infinity]) }, 5, true, undefined);
    expect(out.shape).toEqual([1, 5]);
    expect(bytesElementsAsText('p', out.data, 5)).toEqual(['3.000000:2', '1.000000:1', '1.000000:3', '-inf:4', 'nan:0']);
  });

  it('a model that does not batch: one ranking over the whole output, shape [k]; labels past the file get none', () => {
    const out = classifyOutput({ name: 'p', datatype: 'FP32', shape: [4], data: f32([0.1, 0.4, 0.3, 0.2]) }, 3, false, ['a', 'b']);
    expect(out.shape).toEqual([3]);
    expect(bytesElementsAsText('p', out.data, 3)).toEqual(['0.400000:1:b', '0.300000:2', '0.200000:3']);
  });

  it('64-bit integers are written exactly', () => {
    const data = new Uint8Array(new BigInt64Array([2n ** 62n + 1n, -5n]).buffer);
    const out = classifyOutput({ name: 'p', datatype: 'INT64', shape: [1, 2], data }, 2, true, undefined);
    expect(bytesElementsAsText('p', out.data, 2)).toEqual([`${2n ** 62n + 1n}:0`, '-5:1']);
  });

  it('BOOL and BYTES outputs cannot be ranked', () => {
    expect(() => classifyOutput({ name: 'p', datatype: 'BOOL', shape: [1, 2], data: new Uint8Array(2) }, 1, true, undefined)).toThrow(/classification ranks numeric outputs only/);
  });
});
