import { describe, expect, it } from 'vitest';
import { bytesElementOffsets, bytesElements, bytesElementsAsText, serializeBytesElements } from '../lib/protocol/bytes-tensor';

describe('BYTES tensor form', () => {
  it('round-trips strings and raw bytes with 4-byte little-endian prefixes', () => {
    const data = serializeBytesElements(['ab', '', new Uint8Array([0, 255]), 'é']);
    expect([...data.subarray(0, 6)]).toEqual([2, 0, 0, 0, 0x61, 0x62]);
    expect(bytesElementOffsets('input x', data, 4)).toEqual(new Uint32Array([0, 6, 10, 16, 22]));
    expect(bytesElements('input x', data, 4).map((e) => [...e])).toEqual([[0x61, 0x62], [], [0, 255], [0xc3, 0xa9]]);
  });

  it('names the tensor and element when a prefix runs past the buffer', () => {
    const data = Buffer.from([9, 0, 0, 0, 1, 2]);
    expect(() => bytesElements("input 'text'", data, 1)).toThrow(/input 'text': BYTES element 0 declares 9 bytes but only 2 remain/);
  });

  it('refuses fewer and more elements than the shape says', () => {
    const data = serializeBytesElements(['a', 'b']);
    expect(() => bytesElements('t', data, 3)).toThrow(/says 3 BYTES elements but the data ends after 2/);
    expect(() => bytesElements('t', data, 1)).toThrow(/says 1 BYTES elements but the data holds 5 more bytes/);
  });

  it('refuses invalid UTF-8 where text is expected, naming the element', () => {
    const data = serializeBytesElements(['ok', new Uint8Array([0xff, 0xfe])]);
    expect(() => bytesElementsAsText("output 'y'", data, 2)).toThrow(/output 'y': BYTES element 1 is not valid UTF-8/);
  });
});
