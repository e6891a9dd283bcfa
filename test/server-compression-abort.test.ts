/**
 * Compressed answers and clients that go away, on the real uWebSockets.js server: an answer
 * is compressed off the event loop, so the client can leave between `send` and the write.
 * Nothing may be written to a response uWS already closed (it would take the process down),
 * the exchange must stop counting as in flight (a graceful drain would wait forever), and the
 * server keeps answering. The big answer is /metrics (any route's answer is compressed).
 */
import net from 'node:net';
import zlib from 'node:zlib';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../lib/server/server';
import { FakeService } from './server-fixture';

/** 4 MB of Prometheus-like text: compressing it takes tens of milliseconds. */
const BIG = Array.from({ length: 80_000 }, (_, i) => `tensorwire_sample{model="m${i % 97}",n="${i}"} ${Math.sin(i)}\n`).join('');
let server: RunningServer;

beforeAll(async () => {
  server = await startServer(new FakeService(), { port: 0, metricsHandler: async () => ({ contentType: 'text/plain; version=0.0.4', body: BIG }) });
});
afterAll(async () => {
  await server.close();
});

function metricsRequest(): string {
  return 'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept-Encoding: gzip\r\n\r\n';
}

/** One GET /metrics over a raw socket; resolves with the whole answer (headers and body). */
function fetchMetrics(): Promise<{ head: string; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(server.port, '127.0.0.1', () => socket.write(metricsRequest()));
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      const all = Buffer.concat(chunks);
      const end = all.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = all.toString('latin1', 0, end);
      const length = Number(/content-length: (\d+)/i.exec(head)?.[1]);
      if (all.length >= end + 4 + length) {
        socket.destroy();
        resolve({ head, body: all.subarray(end + 4, end + 4 + length) });
      }
    });
    socket.on('error', reject);
  });
}

it('a client leaving while its answer is compressed: nothing written, nothing left in flight, the server keeps serving', async () => {
  for (let round = 0; round < 2; round++) {
    await Promise.all(Array.from({ length: 6 }, (_, i) => new Promise<void>((resolve) => {
      const socket = net.connect(server.port, '127.0.0.1', () => {
        socket.write(metricsRequest());
        // Gone after the request was read and before (or while) the answer is compressed.
        setTimeout(() => {
          socket.destroy();
          resolve();
        }, 1 + i * 2);
      });
      socket.on('error', () => resolve());
    })));
  }
  // Every exchange settles: the compressions finish, find their clients gone, write nothing.
  expect(await server.drain(10_000)).toBe(true);
  expect(server.inflight).toBe(0);
  // The abandoned jobs still hold their slots (16 per server) until zlib is done with them:
  // meanwhile answers go out uncompressed. Once they are done, compression is back.
  let answer = await fetchMetrics();
  for (const deadline = Date.now() + 30_000; !/content-encoding/i.test(answer.head) && Date.now() < deadline;) {
    expect(answer.body.toString()).toBe(BIG);
    await new Promise((r) => setTimeout(r, 200));
    answer = await fetchMetrics();
  }
  const { head, body } = answer;
  expect(head).toMatch(/^HTTP\/1\.1 200 OK/);
  expect(head).toMatch(/content-encoding: gzip/i);
  expect(zlib.gunzipSync(body).toString()).toBe(BIG);
  expect(body.length).toBeLessThan(BIG.length / 3);
});

