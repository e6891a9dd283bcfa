/**
 * Issue 13: bounds on client JSON in the codecs. Nesting depth (a 500 "Maximum call stack
 * size exceeded" before), sizes a few bytes can claim (id, names, counts, rank, shape
 * product, parameters), JSON outputs too large to write, and echoed client text clipped.
 */
import { describe, expect, it } from 'vitest';
import { decodeBinaryRequest } from '../lib/protocol/binary-codec';
import { buildResponseHeader, decodeJsonRequest, decodeJsonRequestGeneral } from '../lib/protocol/json-codec';
import { assertJsonDepth, MAX_JSON_DEPTH } from '../lib/protocol/json-depth';
import { MAX_JSON_OUTPUT_ELEMENTS } from '../lib/protocol/request-limits';
import { decodeStreamFrame, encodeStreamResponse } from '../lib/protocol/stream-frame';
import type { InferResponse } from '../lib/protocol/types';
import { invalidInputMessage, thrownError } from './helpers/expect-error';

const x = { name: 'x', datatype: 'FP32', shape: [1], data: [1] };
const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));
const nested = (depth: number, inner = '1'): string => '['.repeat(depth) + inner + ']'.repeat(depth);

/** Both decoding paths give the same 400 message for `body`; returns it. */
function refused(body: Buffer | string): string {
  const message = invalidInputMessage(() => decodeJsonRequest(body));
  expect(invalidInputMessage(() => decodeJsonRequestGeneral(body))).toBe(message);
  return message;
}

describe('JSON nesting depth', () => {
  it('refuses 100,000 levels anywhere in a request with a 400 naming the limit, not a stack overflow', () => {
    const deep = nested(100_000);
    expect(refused(`{"inputs":${deep}}`)).toBe(`request: JSON nested deeper than ${MAX_JSON_DEPTH} levels (arrays and objects inside one another); the limit is ${MAX_JSON_DEPTH}`);
    expect(refused(deep)).toMatch(/nested deeper than 64/);
    expect(refused(`{"inputs":[${JSON.stringify(x)}],"parameters":{"a":${deep}}}`)).toMatch(/nested deeper than 64/);
    expect(refused(`{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":${nested(100_000, '1')}}]}`)).toMatch(/nested deeper than 64/);
    // The binary extension's header and both stream frame kinds are held to the same bound.
    const header = Buffer.from(`{"inputs":[],"parameters":{"a":${deep}}}`);
    expect(invalidInputMessage(() => decodeBinaryRequest(Buffer.concat([header, Buffer.alloc(4)]), header.length))).toMatch(/nested deeper than 64/);
    const text = decodeStreamFrame(Buffer.from(`{"model_name":"m","inputs":${deep}}`), false);
    expect(text.ok ? undefined : [text.error.status, text.error.message]).toEqual([400, expect.stringMatching(/^text frame: JSON nested deeper than 64/)]);
    const prefix = Buffer.alloc(4);
    prefix.writeUInt32LE(header.length);
    const binary = decodeStreamFrame(Buffer.concat([prefix, header]), true);
    expect(binary.ok ? undefined : binary.error.status).toBe(400);
  });

  it('accepts exactly 64 levels; counts brackets outside strings only', () => {
    expect(() => assertJsonDepth(nested(64), 'x')).not.toThrow();
    expect(() => assertJsonDepth(Buffer.from(nested(64)), 'x')).not.toThrow();
    expect(invalidInputMessage(() => assertJsonDepth(nested(65), 'body'))).toMatch(/^body: JSON nested deeper than 64/);
    expect(invalidInputMessage(() => assertJsonDepth(Buffer.from(nested(65)), 'body'))).toMatch(/^body: /);
    const inString = JSON.stringify({ s: '['.repeat(1000) + '\\"[[' + '{'.repeat(1000) });
    expect(() => assertJsonDepth(inString, 'x')).not.toThrow();
    expect(() => assertJsonDepth(Buffer.from(inString), 'x')).not.toThrow();
    expect(() => assertJsonDepth(nested(3), 'x', 2)).toThrow(/deeper than 2 levels/);
    // The bound counts from the root, in the fast path as in the general one: a data array
    // is the 4th level, so its own nesting may add 60 more.
    const deepData = (levels: number) => `{"inputs":[{"name":"x","datatype":"FP32","shape":[${Array(levels).fill(1).join(',')}],"data":${nested(levels)}}]}`;
    expect(decodeJsonRequest(Buffer.from(deepData(61))).inputs[0].shape).toHaveLength(61);
    expect(decodeJsonRequestGeneral(Buffer.from(deepData(61))).inputs[0].shape).toHaveLength(61);
    expect(refused(Buffer.from(deepData(62)))).toMatch(/^request: JSON nested deeper than 64 levels/);
    expect(refused(`{"inputs":[],"parameters":{"a":${nested(62, '{}')}}}`)).toMatch(/nested deeper than 64/);
    expect(decodeJsonRequest(`{"inputs":[],"parameters":{"a":${JSON.stringify(JSON.parse(nested(61, '{}')))}}}`).parameters).toBeDefined();
    // A nested data array within the bound still decodes (the fast path reads it).
    const request = decodeJsonRequest(json({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 1, 1, 2], data: [[[[1, 2]]]] }] }));
    expect(Array.from(new Float32Array(request.inputs[0].data.buffer))).toEqual([1, 2]);
  });
});

describe('sizes a request can claim', () => {
  it('bounds the id (256), names (512), inputs and outputs (1024 each), rank (64) and the shape product', () => {
    expect(refused(json({ id: 'i'.repeat(257), inputs: [x] }))).toBe("'id' is 257 characters long; the limit is 256");
    expect(decodeJsonRequest(json({ id: 'i'.repeat(256), inputs: [x] })).id).toHaveLength(256);
    expect(refused(json({ inputs: [{ ...x, name: 'n'.repeat(600) }] }))).toBe("input 0: 'name' is 600 characters long; the limit is 512");
    expect(refused(json({ inputs: [x], outputs: [{ name: 'n'.repeat(600) }] }))).toBe("output 0: 'name' is 600 characters long; the limit is 512");
    expect(refused(json({ inputs: Array.from({ length: 1025 }, () => x) }))).toBe("'inputs' has 1025 entries; the limit is 1024");
    expect(refused(json({ inputs: [x], outputs: Array.from({ length: 100_000 }, (_, i) => ({ name: `o${i}` })) }))).toBe("'outputs' has 100000 entries; the limit is 1024");
    expect(refused(json({ inputs: [{ ...x, shape: Array(65).fill(1) }] }))).toBe("input 'x': 'shape' has 65 dimensions; the limit is 64");
    expect(refused(json({ inputs: [{ ...x, shape: [1e9, 1e9] }] }))).toBe("input 'x': shape [1000000000,1000000000] has too many elements (1000000000000000000)");
    const header = Buffer.from(JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1e9, 1e9], parameters: { binary_data_size: 4 } }] }));
    expect(invalidInputMessage(() => decodeBinaryRequest(Buffer.concat([header, Buffer.alloc(4)]), header.length))).toMatch(/too many elements/);
    // binary_data_size beyond the body: refused before any view is made.
    const past = Buffer.from(JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1000], parameters: { binary_data_size: 4000 } }] }));
    expect(invalidInputMessage(() => decodeBinaryRequest(Buffer.concat([past, Buffer.alloc(4)]), past.length))).toMatch(/runs past the end of the body/);
  });

  it('bounds request parameters: 64 others, names and strings of 1024 characters, objects by their JSON', () => {
    const many = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`p${i}`, i]));
    expect(refused(json({ inputs: [x], parameters: many }))).toMatch(/^'parameters' has more than 64 entries/);
    expect(refused(json({ inputs: [x], parameters: { note: 's'.repeat(1025) } }))).toBe("request parameter 'note' is 1025 characters long; the limit is 1024");
    expect(refused(json({ inputs: [x], parameters: { ['k'.repeat(1025)]: 1 } }))).toBe('a request parameter name is 1025 characters long; the limit is 1024');
    expect(refused(json({ inputs: [x], parameters: { blob: { a: Array(1000).fill(123) } } }))).toMatch(/^request parameter 'blob' as JSON is \d+ characters long; the limit is 1024$/);
    const ok = decodeJsonRequest(json({ inputs: [x], parameters: { ...Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`p${i}`, 's'.repeat(1024)])), priority: 1 } }));
    expect(Object.keys(ok.parameters)).toHaveLength(64);
  });

  it('clips client text it echoes to 64 characters', () => {
    const long = 'N'.repeat(500);
    const message = refused(json({ inputs: [{ ...x, name: long, datatype: 'FP99' }] }));
    expect(message).toBe(`input '${'N'.repeat(61)}...': unknown datatype "FP99"; expected one of BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BF16, BYTES`);
    const frame = decodeStreamFrame(Buffer.from(JSON.stringify({ id: 'i'.repeat(10_000_000), model_name: 'm', inputs: [x] })), false);
    expect(frame.ok ? undefined : [frame.id, frame.error.message]).toEqual([undefined, "'id' is 10000000 characters long; the limit is 256"]);
  });
});

describe('JSON outputs', () => {
  const big = MAX_JSON_OUTPUT_ELEMENTS + 1;
  const response = (binary: boolean): InferResponse => ({
    modelName: 'm',
    modelVersion: '1',
    outputs: [
      { name: 'small', datatype: 'FP32', shape: [1], data: new Uint8Array(4), binary: false },
      { name: 'logits', datatype: 'FP32', shape: [1, big], data: new Uint8Array(4 * big), binary },
    ],
  });

  it('refuses more than 4M elements written as JSON with a 413 naming the output and the binary extension', () => {
    const error = thrownError(() => buildResponseHeader(response(false), undefined, true), { code: 'PAYLOAD_TOO_LARGE', status: 413 });
    expect(error.message).toBe(
      `output 'logits' has ${big} elements and the outputs to send as JSON ${big + 1} in all, over the limit of ${MAX_JSON_OUTPUT_ELEMENTS} for JSON data; ask for binary outputs: "parameters":{"binary_data_output":true} on the request, or "parameters":{"binary_data":true} on output 'logits'`,
    );
    // The same outputs as binary data are fine; a text stream frame cannot carry binary data.
    expect(buildResponseHeader(response(true), undefined, true).binaryBytes).toBe(4 * big);
    expect(thrownError(() => encodeStreamResponse(response(true), false), { status: 413 }).message).toMatch(/a binary stream frame/);
    expect((encodeStreamResponse(response(true), true) as Uint8Array).byteLength).toBeGreaterThan(4 * big);
  });

  it('counts every JSON output of the response together, each under the limit', () => {
    const half = MAX_JSON_OUTPUT_ELEMENTS / 2;
    const two = (n: number): InferResponse => ({
      modelName: 'm',
      modelVersion: '1',
      outputs: ['a', 'b'].map((name) => ({ name, datatype: 'UINT8' as const, shape: [n], data: new Uint8Array(n), binary: false })),
    });
    expect(thrownError(() => buildResponseHeader(two(half + 1), undefined, true), { status: 413 }).message).toMatch(/^output 'a' has 2097153 elements/);
  });
});
