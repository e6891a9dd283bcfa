/**
 * Body limits, client aborts, keep-alive hygiene and graceful shutdown of the HTTP front
 * end, with raw node:http clients so the tests control the bytes and the socket.
 */
import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../lib/server/server';
import { FakeService, until } from './server-fixture';

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One request; `chunks` are written one by one (no Content-Length unless given in headers). */
function request(port: number, method: string, path: string, chunks: (string | Buffer)[] = [], headers: Record<string, string> = {}, agent?: http.Agent): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent: agent ?? false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    for (const chunk of chunks) req.write(chunk);
    req.end();
  });
}

function gateBody(x: number): string {
  return JSON.stringify({ inputs: [{ name: 'X', datatype: 'INT32', shape: [1], data: [x] }] });
}

let server: RunningServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

describe('request body limit', () => {
  it('refuses a Content-Length over the limit with 413 before reading the body', async () => {
    const service = new FakeService();
    server = await startServer(service, { port: 0, maxBodyBytes: 1024 });
    const body = Buffer.alloc(2048, 0x20);
    const reply = await request(server.port, 'POST', '/v2/models/add/infer', [body], { 'content-length': '2048' });
    expect(reply.status).toBe(413);
    expect(JSON.parse(reply.body)).toEqual({ error: 'request body of 2048 bytes exceeds the limit of 1024 bytes', code: 'PAYLOAD_TOO_LARGE' });
    expect(service.received).toHaveLength(0);
  });

  it('cuts a chunked body off at the limit', async () => {
    const service = new FakeService();
    server = await startServer(service, { port: 0, maxBodyBytes: 1000 });
    const chunk = Buffer.alloc(600, 0x20);
    const reply = await request(server.port, 'POST', '/v2/models/add/infer', [chunk, chunk, chunk]);
    expect(reply.status).toBe(413);
    expect(JSON.parse(reply.body).error).toMatch(/^request body of at least \d+ bytes exceeds the limit of 1000 bytes$/);
    expect(service.received).toHaveLength(0);
  });

  it('accepts a body of exactly the limit', async () => {
    const service = new FakeService();
    const json = JSON.stringify({ inputs: [{ name: 'N', datatype: 'INT32', shape: [1], data: [3] }] });
    const body = json + ' '.repeat(500 - json.length);
    server = await startServer(service, { port: 0, maxBodyBytes: 500 });
    const reply = await request(server.port, 'POST', '/v2/models/big/infer', [body], { 'content-length': '500' });
    expect(reply.status).toBe(200);
    expect(JSON.parse(reply.body).outputs[0].data).toEqual([3, 3, 3]);
  });

  it('keeps a keep-alive connection usable after a 404 with an unread body', async () => {
    server = await startServer(new FakeService(), { port: 0 });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const sockets = new Set<unknown>();
    agent.on('free', (socket) => sockets.add(socket));
    const miss = await request(server.port, 'POST', '/v2/unknown', ['{"a": 1}'], { 'content-length': '8' }, agent);
    expect(miss.status).toBe(404);
    const hit = await request(server.port, 'POST', '/v2/models/big/infer', [gateBody(1).replace('"X"', '"N"')], {}, agent);
    expect(hit.status).toBe(200);
    expect(sockets.size).toBe(1);
    agent.destroy();
  });
});

describe('client aborts', () => {
  it('aborts the core request when the client disconnects', async () => {
    const service = new FakeService();
    server = await startServer(service, { port: 0 });
    const req = http.request({ host: '127.0.0.1', port: server.port, method: 'POST', path: '/v2/models/gate/infer' });
    req.on('error', () => undefined);
    req.end(gateBody(41));
    await until(() => service.waiting().includes(41), 2000, 'the gate request');
    expect(server.inflight).toBe(1);
    req.destroy();
    await until(() => service.aborts.includes('gate:41'), 2000, 'the abort');
    await until(() => server!.inflight === 0, 2000, 'in-flight to drop');
  });
});

describe('graceful shutdown', () => {
  it('drains: not ready and 503 for new work, in-flight requests finish', async () => {
    const service = new FakeService();
    server = await startServer(service, { port: 0 });
    const port = server.port;
    const pending = request(port, 'POST', '/v2/models/gate/infer', [gateBody(5)]);
    await until(() => service.waiting().includes(5), 2000, 'the gate request');
    let drained: boolean | undefined;
    const draining = server.drain(5000).then((d) => (drained = d));

    const ready = await request(port, 'GET', '/v2/health/ready');
    expect(ready.status).toBe(503);
    expect(ready.headers['retry-after']).toBe('1');
    const refused = await request(port, 'POST', '/v2/models/gate/infer', [gateBody(6)]);
    expect(refused.status).toBe(503);
    expect(JSON.parse(refused.body)).toEqual({ error: 'the server is shutting down', code: 'UNAVAILABLE' });
    expect((await request(port, 'GET', '/v2/health/live')).status).toBe(200);
    expect(drained).toBeUndefined();

    service.release(5);
    const done = await pending;
    expect(done.status).toBe(200);
    expect(JSON.parse(done.body).outputs[0].data).toEqual([10]);
    await draining;
    expect(drained).toBe(true);

    await server.close();
    await expect(request(port, 'GET', '/v2/health/live')).rejects.toThrow(/ECONNREFUSED/);
  });

  it('gives up after the drain timeout and close() cancels what is left', async () => {
    const service = new FakeService();
    server = await startServer(service, { port: 0 });
    const pending = request(server.port, 'POST', '/v2/models/gate/infer', [gateBody(8)]);
    await until(() => service.waiting().includes(8), 2000, 'the gate request');
    expect(await server.drain(50)).toBe(false);
    await server.close();
    await expect(pending).rejects.toThrow();
    await until(() => service.aborts.includes('gate:8'), 2000, 'the abort');
  });
});
