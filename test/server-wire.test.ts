/**
 * The HTTP front end on the wire, with raw node:net sockets so the tests control every byte
 * and the pace of both directions: early answers to clients that keep sending, graceful
 * drains of responses still being written to slow readers.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../lib/server/server';
import { FakeService } from './server-fixture';

let server: RunningServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

/** What a raw client saw: every byte received, and how the connection ended. */
interface Wire {
  received: Buffer;
  /** 'end' (FIN), an error code ('ECONNRESET', 'EPIPE'), or 'open' when the test stopped waiting. */
  ending: string;
}

/**
 * Sends `head`, then keeps writing `body` in 64 KiB pieces as fast as the socket takes them,
 * and reads the answer only once everything was written, as simple clients do. Resolves at
 * the answer's end (its terminating chunk), when the connection ends, or after `waitMs`.
 */
function keepSending(port: number, head: string, body: Buffer, waitMs = 5000): Promise<Wire> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.pause();
    const chunks: Buffer[] = [];
    let ending = 'open';
    const finish = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ received: Buffer.concat(chunks), ending });
    };
    const timer = setTimeout(finish, waitMs);
    socket.on('data', (d) => {
      chunks.push(d);
      if (Buffer.concat(chunks).includes('\r\n0\r\n\r\n')) finish();
    });
    socket.on('end', () => {
      if (ending === 'open') ending = 'end';
    });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      if (ending === 'open') ending = e.code ?? 'error';
    });
    socket.on('close', finish);
    socket.write(head);
    let offset = 0;
    const pump = (): void => {
      while (offset < body.length && !socket.destroyed) {
        const piece = body.subarray(offset, offset + 64 * 1024);
        offset += piece.length;
        if (!socket.write(piece)) {
          socket.once('drain', pump);
          return;
        }
      }
      socket.resume();
    };
    pump();
  });
}

describe('early answers to a client that keeps sending', () => {
  it('delivers the 413 for an oversized Content-Length every time, not a reset', async () => {
    const service = new FakeService();
    server = await startServer(service, { port: 0, maxBodyBytes: 1024 });
    const size = 4 * 1024 * 1024;
    const head = `POST /v2/models/add/infer HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: ${size}\r\n\r\n`;
    for (let i = 0; i < 5; i++) {
      const wire = await keepSending(server.port, head, Buffer.alloc(size, 0x20));
      const text = wire.received.toString('latin1');
      expect(text.startsWith('HTTP/1.1 413 Payload Too Large\r\n'), `attempt ${i}: ${wire.ending} after ${JSON.stringify(text.slice(0, 80))}`).toBe(true);
      expect(text).toContain(`{"error":"request body of ${size} bytes exceeds the limit of 1024 bytes","code":"PAYLOAD_TOO_LARGE"}`);
      expect(wire.ending).not.toBe('ECONNRESET');
    }
    expect(service.received).toHaveLength(0);
  });

  it('delivers the 413 for a chunked body cut off at the limit, not a reset', async () => {
    server = await startServer(new FakeService(), { port: 0, maxBodyBytes: 1024 });
    const head = 'POST /v2/models/add/infer HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n';
    // One 1 MiB chunk (hex 100000) followed by the terminating chunk.
    const chunk = 1024 * 1024;
    const body = `${chunk.toString(16)}\r\n${' '.repeat(chunk)}\r\n0\r\n\r\n`;
    for (let i = 0; i < 3; i++) {
      const wire = await keepSending(server.port, head, Buffer.from(body));
      const text = wire.received.toString('latin1');
      expect(text.startsWith('HTTP/1.1 413 Payload Too Large\r\n'), `attempt ${i}: ${wire.ending}`).toBe(true);
      expect(text).toMatch(/request body of at least \d+ bytes exceeds the limit of 1024 bytes/);
      expect(wire.ending).not.toBe('ECONNRESET');
    }
  });

  it('closes the connection of a client still sending after the linger time', async () => {
    server = await startServer(new FakeService(), { port: 0, maxBodyBytes: 1024 });
    // Announces ~1 GB (uWS's parser refuses 10 digits) and sends it slowly: the server answers, waits LINGER_MS, then hangs up.
    const socket = net.connect(server.port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const started = Date.now();
    const closed = new Promise<number>((resolve) => socket.on('close', () => resolve(Date.now() - started)));
    socket.on('error', () => undefined);
    socket.on('data', (d) => chunks.push(d));
    socket.write(`POST /v2/models/add/infer HTTP/1.1\r\nHost: t\r\nContent-Length: 999999999\r\n\r\n`);
    const trickle = setInterval(() => socket.write(Buffer.alloc(1024, 0x20)), 20);
    const ms = await closed;
    clearInterval(trickle);
    expect(Buffer.concat(chunks).toString('latin1')).toMatch(/^HTTP\/1\.1 413 Payload Too Large\r\n/);
    expect(ms).toBeGreaterThan(1500);
    expect(ms).toBeLessThan(4000);
  });
});

describe('graceful drain', () => {
  it('waits for a large response still being written to a slow reader', async () => {
    server = await startServer(new FakeService(), { port: 0 });
    const n = 24 * 1024 * 1024;
    const body = JSON.stringify({ inputs: [{ name: 'N', datatype: 'INT32', shape: [1], data: [n] }], parameters: { binary_data_output: true } });
    const socket = net.connect(server.port, '127.0.0.1');
    await new Promise((r) => socket.once('connect', r));
    // Read nothing at first: the response backs up in the kernel and in the server.
    socket.pause();
    const chunks: Buffer[] = [];
    let total = 0;
    socket.on('data', (d) => {
      chunks.push(d);
      total += d.length;
    });
    const ended = new Promise<string>((resolve) => {
      socket.on('close', () => resolve('close'));
      socket.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    });
    socket.write(`POST /v2/models/big/infer HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    await new Promise((r) => setTimeout(r, 300));
    // The handler has answered by now; the bytes are still on their way.
    const drainStart = Date.now();
    let drainedAt = 0;
    const drained = server.drain(10_000).then((ok) => {
      drainedAt = Date.now() - drainStart;
      return ok;
    });
    // A slow reader: reads for 10 ms every 100 ms, until the server closed.
    let closing = false;
    const reader = setInterval(() => {
      socket.resume();
      setTimeout(() => closing || socket.pause(), 10);
    }, 100);
    expect(await drained).toBe(true);
    // What the CLI does after a drain: close every connection.
    await server.close();
    server = undefined;
    closing = true;
    clearInterval(reader);
    socket.resume();
    await ended;
    const text = Buffer.concat(chunks);
    const headerEnd = text.indexOf('\r\n\r\n');
    const contentLength = Number(/\r\ncontent-length: (\d+)/i.exec(text.subarray(0, headerEnd).toString('latin1'))![1]);
    expect(contentLength).toBeGreaterThan(n);
    expect(total - headerEnd - 4).toBe(contentLength);
    expect(drainedAt).toBeGreaterThan(100);
  });
});
