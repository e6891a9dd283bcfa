/**
 * request-decode-pool.ts: large bodies are decoded in a worker thread with the same result
 * and the same errors as decodeInferRequest in place; small ones in place.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeInferRequest } from '../lib/protocol/binary-codec';
import { decodeInferRequestOffLoop, decodeStreamFrameOffLoop, OFFLOAD_JSON_BYTES } from '../lib/protocol/request-decode-pool';
import { decodeStreamFrame } from '../lib/protocol/stream-frame';
import { rejection } from './helpers/expect-error';

function floats(n: number): number[] {
  return Array.from({ length: n }, (_, i) => Math.fround(Math.sin(i) * 100));
}

describe('decodeInferRequestOffLoop', () => {
  it('decodes a large JSON body off the loop to the same request, and the body is handed over', async () => {
    const data = floats(20_000);
    const body = Buffer.from(JSON.stringify({ id: 'big', parameters: { note: 'n' }, inputs: [{ name: 'x', datatype: 'FP32', shape: [1, data.length], data }], outputs: [{ name: 'y' }] }));
    expect(body.byteLength).toBeGreaterThan(OFFLOAD_JSON_BYTES);
    const expected = decodeInferRequest(Buffer.from(body), undefined);
    const owned = new Uint8Array(body); // owns its whole ArrayBuffer: transferred, not copied
    const request = await decodeInferRequestOffLoop(owned, undefined);
    expect(owned.byteLength).toBe(0); // detached: the worker has it
    expect(request).toEqual(expected);
    expect(Array.from(new Float32Array(request.inputs[0].data.buffer, request.inputs[0].data.byteOffset, data.length))).toEqual(data);
  });

  it('gives the same errors, from the general path too (strings in data)', async () => {
    const data: unknown[] = floats(20_000);
    data[5] = 'oops';
    const body = Buffer.from(JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [data.length], data }] }));
    const error = await rejection(decodeInferRequestOffLoop(body.subarray(0), undefined));
    expect([error.code, error.message]).toEqual(['INVALID_INPUT', 'input \'x\': value at index 5 is not a number (got "oops")']);
    const deep = Buffer.from('{"inputs":' + '['.repeat(OFFLOAD_JSON_BYTES) + ']'.repeat(OFFLOAD_JSON_BYTES) + '}');
    expect((await rejection(decodeInferRequestOffLoop(deep, undefined))).message).toMatch(/nested deeper than 64 levels/);
  });

  it('decodes a binary request with a large JSON header; its inputs view the returned body', async () => {
    const pad = 'p'.repeat(OFFLOAD_JSON_BYTES);
    const header = Buffer.from(JSON.stringify({ id: pad.slice(0, 200), inputs: [{ name: 'x', datatype: 'INT32', shape: [3], parameters: { binary_data_size: 12 } }], padding: pad }));
    const body = Buffer.concat([header, Buffer.from(new Int32Array([7, -8, 9]).buffer)]);
    const outer = Buffer.concat([Buffer.from('xx'), body]);
    const tooLong = String(outer.length + 1);
    const request = await decodeInferRequestOffLoop(body, String(header.length));
    expect(Array.from(new Int32Array(request.inputs[0].data.slice().buffer))).toEqual([7, -8, 9]);
    expect(request.inputs[0].data.byteOffset).toBe(header.length);
    // A view into a larger buffer is copied, so the rest of that buffer stays usable.
    const view = outer.subarray(2);
    expect((await decodeInferRequestOffLoop(view, String(header.length))).id).toBe(pad.slice(0, 200));
    expect(outer.subarray(0, 2).toString()).toBe('xx');
    expect((await rejection(decodeInferRequestOffLoop(outer, tooLong))).message).toMatch(/beyond the end of the body/);
  });

  it('decodes small bodies in place (the body stays usable)', async () => {
    const body = new Uint8Array(Buffer.from(JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [2], data: [1, 2] }] })));
    const request = await decodeInferRequestOffLoop(body, undefined);
    expect(body.byteLength).toBeGreaterThan(0);
    expect(request.inputs[0].shape).toEqual([2]);
  });
});

describe('the decode workers', () => {
  it('hold the process only while they have work: a script that awaits one decode runs it and exits', async () => {
    const script = `
      const { decodeInferRequestOffLoop } = require('./lib/protocol/request-decode-pool.ts');
      const data = Array.from({ length: 20000 }, (_, i) => i / 7);
      const body = Buffer.from(JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP64', shape: [data.length], data }] }));
      decodeInferRequestOffLoop(body).then((r) => console.log('decoded', r.inputs[0].data.byteLength));
    `;
    const root = join(__dirname, '..');
    const out = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
      const child = execFile(process.execPath, ['-r', './test/helpers/ts-require.cjs', '-e', script], { cwd: root, timeout: 50_000 }, (_e, stdout) => resolve({ code: child.exitCode, stdout }));
    });
    expect(out).toEqual({ code: 0, stdout: 'decoded 160000\n' });
  }, 60_000);
});

describe('decodeStreamFrameOffLoop', () => {
  it('decodes large text and binary frames in a worker to what decodeStreamFrame gives, errors included', async () => {
    const data = floats(20_000);
    const text = Buffer.from(JSON.stringify({ id: 7, model_name: 'm', inputs: [{ name: 'x', datatype: 'FP32', shape: [data.length], data }] }));
    const frame = await decodeStreamFrameOffLoop(text, false);
    expect(frame).toEqual(decodeStreamFrame(text, false));
    expect(frame.ok && frame.kind === 'infer' ? Array.from(new Float32Array(frame.request.inputs[0].data.slice().buffer)) : undefined).toEqual(data);
    expect(text.byteLength).toBeGreaterThan(0); // copied, never taken: uWS owns a message's memory

    const header = Buffer.from(JSON.stringify({ id: 'b', model_name: 'm', inputs: [{ name: 'x', datatype: 'INT32', shape: [2], parameters: { binary_data_size: 8 } }], pad: 'p'.repeat(OFFLOAD_JSON_BYTES) }));
    const prefix = Buffer.alloc(4);
    prefix.writeUInt32LE(header.length);
    const binary = Buffer.concat([prefix, header, Buffer.from(new Int32Array([5, -6]).buffer)]);
    const decoded = await decodeStreamFrameOffLoop(binary, true);
    expect(decoded.ok && decoded.kind === 'infer' ? [decoded.id, Array.from(new Int32Array(decoded.request.inputs[0].data.slice().buffer))] : decoded).toEqual(['b', [5, -6]]);

    const bad = Buffer.from(JSON.stringify({ id: 'e', model_name: 'm', inputs: [{ name: 'x', datatype: 'FP99', shape: [1], data: [1] }], pad: 'p'.repeat(OFFLOAD_JSON_BYTES) }));
    const failed = await decodeStreamFrameOffLoop(bad, false);
    expect(failed.ok ? undefined : [failed.id, failed.error.code, failed.error.status, failed.error.message]).toEqual(['e', 'INVALID_INPUT', 400, expect.stringMatching(/^input 'x': unknown datatype "FP99"/)]);
    const deep = await decodeStreamFrameOffLoop(Buffer.from('['.repeat(100_000)), false);
    expect(deep.ok ? undefined : deep.error.message).toMatch(/^text frame: JSON nested deeper than 64 levels/);
  });
});
