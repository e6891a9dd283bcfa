/**
 * The WebSocket stream endpoint (/v2/stream) against a real server, with the `ws` client.
 */
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startServer, type RunningServer } from '../lib/server/server';
import { f32Bytes, f32Values, FakeService, until } from './server-fixture';

let server: RunningServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

interface Frame {
  binary: boolean;
  data: Buffer;
}

/** A connected client that records every frame and the close code. */
class Client {
  readonly frames: Frame[] = [];
  closeCode: number | undefined;
  constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, isBinary: boolean) => this.frames.push({ binary: isBinary, data }));
    ws.on('close', (code: number) => (this.closeCode = code));
  }
  static async open(port: number): Promise<Client> {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/v2/stream`);
    const client = new Client(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return client;
  }
  send(value: unknown): void {
    this.ws.send(typeof value === 'string' ? value : JSON.stringify(value));
  }
  sendBinary(header: unknown, ...tensors: Buffer[]): void {
    const json = Buffer.from(JSON.stringify(header));
    const prefix = Buffer.alloc(4);
    prefix.writeUInt32LE(json.length);
    this.ws.send(Buffer.concat([prefix, json, ...tensors]), { binary: true });
  }
  /** Text frames parsed as JSON. */
  texts(): any[] {
    return this.frames.filter((f) => !f.binary).map((f) => JSON.parse(f.data.toString()));
  }
  async count(n: number, ms = 3000): Promise<void> {
    await until(() => this.frames.length >= n, ms, `${n} frames (have ${this.frames.length})`);
  }
  close(): void {
    this.ws.close();
  }
}

function gate(id: string | number, x: number): unknown {
  return { id, model_name: 'gate', inputs: [{ name: 'X', datatype: 'INT32', shape: [1], data: [x] }] };
}

/** Splits a binary response frame into its JSON header and tensor bytes. */
function splitBinary(frame: Buffer): { json: any; bytes: Buffer } {
  const length = frame.readUInt32LE(0);
  return { json: JSON.parse(frame.subarray(4, 4 + length).toString()), bytes: frame.subarray(4 + length) };
}

describe('stream requests', () => {
  it('answers a text frame with a text frame carrying the same id', async () => {
    server = await startServer(new FakeService(), { port: 0 });
    const client = await Client.open(server.port);
    client.send({
      id: 'a',
      model_name: 'add',
      model_version: '1',
      inputs: [
        { name: 'INPUT0', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] },
        { name: 'INPUT1', datatype: 'FP32', shape: [1, 4], data: [1, 1, 1, 1] },
      ],
      outputs: [{ name: 'OUTPUT0' }],
    });
    await client.count(1);
    expect(client.frames[0]!.binary).toBe(false);
    expect(client.texts()[0]).toEqual({ id: 'a', model_name: 'add', model_version: '1', outputs: [{ name: 'OUTPUT0', datatype: 'FP32', shape: [1, 4], data: [2, 3, 4, 5] }] });
    client.close();
  });

  it('answers a binary frame with a binary frame, outputs as binary data', async () => {
    server = await startServer(new FakeService(), { port: 0 });
    const client = await Client.open(server.port);
    const header = {
      id: 7,
      model_name: 'add',
      inputs: [
        { name: 'INPUT0', datatype: 'FP32', shape: [1, 4], parameters: { binary_data_size: 16 } },
        { name: 'INPUT1', datatype: 'FP32', shape: [1, 4], parameters: { binary_data_size: 16 } },
      ],
    };
    client.sendBinary(header, f32Bytes([1, 2, 3, 4]), f32Bytes([4, 3, 2, 1]));
    await client.count(1);
    expect(client.frames[0]!.binary).toBe(true);
    const { json, bytes } = splitBinary(client.frames[0]!.data);
    expect(json.id).toBe(7);
    expect(json.outputs.map((o: { parameters: unknown }) => o.parameters)).toEqual([{ binary_data_size: 16 }, { binary_data_size: 16 }]);
    expect(f32Values(bytes.subarray(0, 16))).toEqual([5, 5, 5, 5]);
    expect(f32Values(bytes.subarray(16))).toEqual([-3, -1, 1, 3]);
    client.close();
  });

  it('answers out of order as results complete', async () => {
    const service = new FakeService();
    server = await startServer(service, { port: 0 });
    const client = await Client.open(server.port);
    client.send(gate('slow', 1));
    client.send(gate('fast', 2));
    await until(() => service.waiting().length === 2, 2000, 'both requests');
    service.release(2);
    await client.count(1);
    service.release(1);
    await client.count(2);
    expect(client.texts().map((t) => [t.id, t.outputs[0].data[0]])).toEqual([
      ['fast', 4],
      ['slow', 2],
    ]);
    client.close();
  });

  it('answers bad frames with error frames and keeps the socket open', async () => {
    server = await startServer(new FakeService(), { port: 0 });
    const client = await Client.open(server.port);
    client.send({ model_name: 'gate', inputs: [] });
    client.send('{"id": "x", ');
    client.send({ ...(gate('u', 1) as object), model_name: 'nope' });
    client.send({ id: 'v', model_name: 'add', inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] }] });
    client.sendBinary({ id: 'w' }, Buffer.alloc(0));
    await client.count(5);
    const errors = client.texts();
    expect(errors[0]).toEqual({ error: "every stream request needs an 'id' (a string or a number) to match its answer; this one for model 'gate' has none", code: 'INVALID_INPUT', status: 400 });
    expect(errors[1]).toMatchObject({ code: 'INVALID_INPUT', status: 400 });
    expect(errors[1].error).toMatch(/^malformed JSON/);
    expect(errors[2]).toEqual({ id: 'u', error: "Request for unknown model: 'nope' is not found", code: 'NOT_FOUND', status: 404 });
    expect(errors[3].id).toBe('v');
    expect(errors[3]).toMatchObject({ code: 'INVALID_INPUT', status: 400 });
    expect(errors[3].error).toMatch(/INPUT1/);
    expect(errors[4]).toMatchObject({ id: 'w', code: 'INVALID_INPUT', status: 400 });
    expect(client.frames.every((f) => !f.binary)).toBe(true);
    expect(client.closeCode).toBeUndefined();
    client.close();
  });
});

describe('stream flow control', () => {
  it('answers 429 past the per-connection in-flight limit', async () => {
    const service = new FakeService();
    server = await startServer(service, { port: 0, streamMaxInflight: 2 });
    const client = await Client.open(server.port);
    client.send(gate('a', 1));
    client.send(gate('b', 2));
    client.send(gate('c', 3));
    await client.count(1);
    expect(client.texts()[0]).toEqual({ id: 'c', error: '2 requests are already in flight on this connection (the limit); wait for answers before sending more', code: 'TOO_MANY_REQUESTS', status: 429 });
    service.release(1);
    await client.count(2);
    client.send(gate('d', 4));
    await until(() => service.waiting().includes(4), 2000, 'request d admitted');
    service.release(2);
    service.release(4);
    await client.count(4);
    expect(client.texts().map((t) => t.id)).toEqual(['c', 'a', 'b', 'd']);
    client.close();
  });

  it('cancels a connection\'s requests when it closes', async () => {
    const service = new FakeService();
    server = await startServer(service, { port: 0 });
    const client = await Client.open(server.port);
    client.send(gate('a', 11));
    client.send(gate('b', 12));
    await until(() => service.waiting().length === 2, 2000, 'both requests');
    expect(server.inflight).toBe(2);
    client.close();
    await until(() => service.aborts.length === 2, 2000, 'aborts');
    expect(service.aborts.sort()).toEqual(['gate:11', 'gate:12']);
    await until(() => server!.inflight === 0, 2000, 'in-flight to drop');
  });

  it('queues answers for a slow reader instead of dropping them', async () => {
    const service = new FakeService();
    server = await startServer(service, { port: 0 });
    const client = await Client.open(server.port);
    const socket = (client.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
    socket.pause();
    const n = 24;
    const size = 1 << 20; // 24 MiB of answers, far over the 2 MiB uWS backpressure limit
    for (let i = 0; i < n; i++) client.sendBinary({ id: `b${i}`, model_name: 'big', inputs: [{ name: 'N', datatype: 'INT32', shape: [1], data: [size + i] }] });
    await until(() => service.received.length === n, 3000, 'all requests computed');
    await new Promise((r) => setTimeout(r, 50));
    socket.resume();
    await client.count(n, 10000);
    const got = client.frames.map((f) => splitBinary(f.data));
    expect(got.map((g) => g.json.id)).toEqual(Array.from({ length: n }, (_, i) => `b${i}`));
    got.forEach((g, i) => {
      expect(g.bytes.length).toBe(size + i);
      expect(g.bytes[size + i - 1]).toBe((size + i) % 251);
    });
    client.close();
  });

  it('drops a client that reads neither its answers nor its 429s', async () => {
    const service = new FakeService();
    server = await startServer(service, { port: 0, streamMaxInflight: 2 });
    const client = await Client.open(server.port);
    const socket = (client.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
    socket.pause();
    // x goes to uWS at once (its place frees), its 16 MiB back the socket up; y waits in the outbox.
    for (const id of ['x', 'y']) client.sendBinary({ id, model_name: 'big', inputs: [{ name: 'N', datatype: 'INT32', shape: [1], data: [16 << 20] }] });
    await until(() => service.received.length === 2, 3000, 'two big answers');
    await new Promise((r) => setTimeout(r, 50));
    // g0 takes the free place; g1, g2 are 429s that fill the outbox's error budget (2); g3 overflows it.
    for (let i = 0; i < 5; i++) client.send(gate(`g${i}`, i));
    await until(() => service.aborts.includes('gate:0'), 3000, 'the drop to cancel g0');
    socket.resume();
    await until(() => client.closeCode !== undefined, 5000, 'the close');
    // A backed-up socket cannot carry a close frame: the connection is just dropped.
    expect(client.closeCode).toBe(1006);
    expect(service.received).toHaveLength(3);
    expect(service.waiting()).toEqual([]);
    expect(client.texts()).toEqual([]);
  });

  it('drops the connection on a frame over the body limit (uWS, before buffering it)', async () => {
    server = await startServer(new FakeService(), { port: 0, maxBodyBytes: 1000 });
    const client = await Client.open(server.port);
    client.send({ id: 'huge', model_name: 'add', pad: 'x'.repeat(2000) });
    await until(() => client.closeCode !== undefined, 2000, 'the close');
    expect(client.closeCode).toBe(1006);
  });
});

describe('stream and shutdown', () => {
  it('refuses new requests and connections while draining, then closes with 1001', async () => {
    const service = new FakeService();
    server = await startServer(service, { port: 0 });
    const client = await Client.open(server.port);
    client.send(gate('early', 3));
    await until(() => service.waiting().includes(3), 2000, 'the gate request');
    const drained = server.drain(5000);
    client.send(gate('late', 4));
    await client.count(1);
    expect(client.texts()[0]).toEqual({ id: 'late', error: 'the server is shutting down', code: 'UNAVAILABLE', status: 503 });
    await expect(Client.open(server.port)).rejects.toThrow(/503/);
    service.release(3);
    await client.count(2);
    expect(client.texts()[1].outputs[0].data).toEqual([6]);
    expect(await drained).toBe(true);
    await server.close();
    server = undefined;
    await until(() => client.closeCode !== undefined, 2000, 'the close');
    expect(client.closeCode).toBe(1001);
  });
});
