/**
 * HttpClient over a real (trivial) uWS KServe server: typed arrays in and out through JSON
 * and the binary extension, health and metadata, the repository extension, and errors as
 * TensorwireErrors with the right code.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { HttpClient } from '../lib/client/http-client';
import { startTrivialServer, type TrivialServer } from './bench-trivial-server';
import { rejection } from './helpers/expect-error';

let server: TrivialServer;
let client: HttpClient;
beforeAll(async () => {
  server = await startTrivialServer({ failEvery: 0 });
  client = new HttpClient({ url: server.url });
});
afterAll(() => {
  client.close();
  server.close();
});

describe('infer', () => {
  test.each([true, false])('binary=%s: Float32Array in, y = 2x out as a Float32Array', async (binary) => {
    const x = new Float32Array([1, -2.5, 3, 0.125, 10, 20, 30, 40]);
    const r = await client.infer('m', { x: { datatype: 'FP32', shape: [2, 4], data: x } }, { binary, id: 'abc', outputs: ['y'] });
    expect(r.id).toBe('abc');
    expect(r.modelName).toBe('m');
    expect(r.modelVersion).toBe('1');
    const y = r.outputs.y!;
    expect(y.datatype).toBe('FP32');
    expect(y.shape).toEqual([2, 4]);
    expect(y.data).toBeInstanceOf(Float32Array);
    expect(Array.from(y.data as Float32Array)).toEqual(Array.from(x, (v) => v * 2));
  });

  test('inputs as an array, datatype taken from the array type, many calls on the keep-alive pool', async () => {
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => client.infer('m', [{ name: 'x', shape: [1, 4], data: new Float32Array([i, i + 1, i + 2, i + 3]) }])),
    );
    results.forEach((r, i) => expect(Array.from(r.outputs.y!.data as Float32Array)).toEqual([2 * i, 2 * i + 2, 2 * i + 4, 2 * i + 6]));
  });

  test('the server refusing the input: INVALID_INPUT naming the input', async () => {
    const e = await rejection(client.infer('m', { x: { shape: [1, 4], data: new Int32Array(4) } }));
    expect(e.code).toBe('INVALID_INPUT');
    expect(e.status).toBe(400);
    expect(e.message).toContain("input 'x': expected FP32, got INT32");
  });

  test('a bad input is refused before anything is sent', async () => {
    const before = server.inferSeen();
    const e = await rejection(client.infer('m', { x: { datatype: 'FP32', shape: [1, 4], data: new Float32Array(3) } }));
    expect(e.message).toBe("input 'x': shape [1,4] needs 4 elements, got 3");
    expect(server.inferSeen()).toBe(before);
  });

  test('unknown model: NOT_FOUND', async () => {
    const e = await rejection(client.infer('nope', { x: { shape: [1, 4], data: new Float32Array(4) } }));
    expect(e.code).toBe('NOT_FOUND');
  });
});

describe('server calls', () => {
  test('live, ready, metadata', async () => {
    expect(await client.live()).toBe(true);
    expect(await client.ready()).toBe(true);
    const meta = await client.metadata('m');
    expect(meta.inputs).toEqual([{ name: 'x', datatype: 'FP32', shape: [-1, 4] }]);
    expect(meta.versions).toEqual(['1']);
  });

  test('repository index, load with a config, unload, and a failing unload', async () => {
    expect(await client.repositoryIndex(true)).toEqual([{ name: 'm', version: '1', state: 'READY', reason: '' }]);
    await client.load('m', { max_batch_size: 8 });
    await client.unload('m');
    expect(server.repositoryCalls.slice(-2)).toEqual(['load m {"parameters":{"config":"{\\"max_batch_size\\":8}"}}', 'unload m {}']);
    const e = await rejection(client.unload('missing'));
    expect(e.code).toBe('NOT_FOUND');
    expect(e.message).toBe("unknown model 'missing'");
  });
});

describe('failures', () => {
  test('a 500 from the engine: ENGINE_FAILURE', async () => {
    const failing = await startTrivialServer({ failEvery: 1 });
    const c = new HttpClient(failing.url);
    try {
      const e = await rejection(c.infer('m', { x: { shape: [1, 4], data: new Float32Array(4) } }));
      expect(e.code).toBe('ENGINE_FAILURE');
      expect(e.message).toBe('engine failed on purpose');
    } finally {
      c.close();
      failing.close();
    }
  });

  test('client timeout: DEADLINE_EXCEEDED; abort: CANCELLED; nobody listening: UNAVAILABLE', async () => {
    const slow = await startTrivialServer({ delayMs: 300 });
    const c = new HttpClient({ url: slow.url, timeoutMs: 50 });
    try {
      const t = await rejection(c.infer('m', { x: { shape: [1, 4], data: new Float32Array(4) } }));
      expect(t.code).toBe('DEADLINE_EXCEEDED');
      const ac = new AbortController();
      const p = new HttpClient(slow.url).infer('m', { x: { shape: [1, 4], data: new Float32Array(4) } }, { signal: ac.signal });
      setTimeout(() => ac.abort(), 20);
      expect((await rejection(p)).code).toBe('CANCELLED');
    } finally {
      c.close();
      slow.close();
    }
    const nobody = new HttpClient('http://127.0.0.1:9');
    const e = await rejection(nobody.infer('m', { x: { shape: [1, 4], data: new Float32Array(4) } }));
    expect(e.code).toBe('UNAVAILABLE');
    expect(e.message).toContain('http://127.0.0.1:9/v2/models/m/infer');
    expect(await nobody.live()).toBe(false);
    nobody.close();
  });
});
