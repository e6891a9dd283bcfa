/**
 * StreamClient over a real (trivial) uWS /v2/stream: one promise per request matched by id
 * even when answers come out of order, binary and text frames, errors with their codes,
 * close() rejecting what is pending.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { StreamClient, streamUrl } from '../lib/client/stream-client';
import { startTrivialServer, type TrivialServer } from './bench-trivial-server';
import { rejection } from './helpers/expect-error';

const input = (i: number) => ({ x: { shape: [1, 4], data: new Float32Array([i, -i, i / 2, 1]) } });

describe('StreamClient', () => {
  let server: TrivialServer;
  beforeAll(async () => {
    server = await startTrivialServer({ delayMs: 'shuffle' });
  });
  afterAll(() => server.close());

  test('200 requests in flight, answered out of order, each promise gets its own answer', async () => {
    const client = await StreamClient.connect(server.url);
    try {
      const order: number[] = [];
      const all = Array.from({ length: 200 }, (_, i) =>
        client.infer('m', input(i)).then((r) => {
          order.push(i);
          return r;
        }),
      );
      expect(client.inflight).toBe(200);
      const results = await Promise.all(all);
      results.forEach((r, i) => {
        expect(r.outputs.y!.data).toBeInstanceOf(Float32Array);
        expect(Array.from(r.outputs.y!.data as Float32Array)).toEqual([2 * i, -2 * i, i, 2]);
      });
      // The server delays by request number mod 7: the answers really did come out of order.
      expect(order).not.toEqual([...order].sort((a, b) => a - b));
      expect(client.inflight).toBe(0);
    } finally {
      await client.close();
    }
  });

  test('text frames (binary: false) give the same values', async () => {
    const client = await StreamClient.connect({ url: server.url, binary: false });
    try {
      const r = await client.infer('m', input(3), { version: '1' });
      expect(r.modelName).toBe('m');
      expect(Array.from(r.outputs.y!.data as Float32Array)).toEqual([6, -6, 3, 2]);
    } finally {
      await client.close();
    }
  });

  test('errors reject only their own request, with the code', async () => {
    const client = await StreamClient.connect(server.url);
    try {
      const [good, unknown, wrong] = await Promise.allSettled([
        client.infer('m', input(1)),
        client.infer('other', input(1)),
        client.infer('m', { x: { shape: [1, 4], data: new Int8Array(4) } }),
      ]);
      expect(good.status).toBe('fulfilled');
      expect(unknown).toMatchObject({ status: 'rejected', reason: { code: 'NOT_FOUND', message: "unknown model 'other'" } });
      expect(wrong).toMatchObject({ status: 'rejected', reason: { code: 'INVALID_INPUT' } });
      expect((wrong as PromiseRejectedResult).reason.message).toContain("input 'x': expected FP32, got INT8");
    } finally {
      await client.close();
    }
  });

  test('close() rejects every pending request with CANCELLED', async () => {
    const slow = await startTrivialServer({ delayMs: 500 });
    const client = await StreamClient.connect(slow.url);
    try {
      const pending = [1, 2, 3].map((i) => rejection(client.infer('m', input(i))));
      await new Promise((r) => setTimeout(r, 30));
      expect(client.inflight).toBe(3);
      await client.close();
      for (const p of pending) expect((await p).code).toBe('CANCELLED');
      expect((await rejection(client.infer('m', input(4)))).code).toBe('CANCELLED');
    } finally {
      slow.close();
    }
  });

  test('client timeout rejects with DEADLINE_EXCEEDED and a late answer is dropped', async () => {
    const slow = await startTrivialServer({ delayMs: 200 });
    const client = await StreamClient.connect({ url: slow.url, timeoutMs: 50 });
    try {
      expect((await rejection(client.infer('m', input(1)))).code).toBe('DEADLINE_EXCEEDED');
      await new Promise((r) => setTimeout(r, 250)); // the late answer arrives and is ignored
      expect(client.inflight).toBe(0);
    } finally {
      await client.close();
      slow.close();
    }
  });

  test('a 500 from the server is ENGINE_FAILURE', async () => {
    const failing = await startTrivialServer({ failEvery: 1 });
    const client = await StreamClient.connect(failing.url);
    try {
      const e = await rejection(client.infer('m', input(1)));
      expect(e.code).toBe('ENGINE_FAILURE');
      expect(e.message).toBe('engine failed on purpose');
    } finally {
      await client.close();
      failing.close();
    }
  });

  test('no server: connect and infer reject with UNAVAILABLE', async () => {
    expect((await rejection(StreamClient.connect('http://127.0.0.1:9'))).code).toBe('UNAVAILABLE');
    const c = new StreamClient('ws://127.0.0.1:9');
    expect((await rejection(c.infer('m', input(1)))).code).toBe('UNAVAILABLE');
    expect(streamUrl('http://h:1')).toBe('ws://h:1/v2/stream');
    expect(streamUrl('https://h/base/v2/stream')).toBe('wss://h/base/v2/stream');
  });
});
