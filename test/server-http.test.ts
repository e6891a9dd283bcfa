/**
 * The KServe v2 REST front end against a real uWebSockets.js server on 127.0.0.1 (ephemeral
 * port) and a small computing test service (server-fixture.ts).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TensorwireError } from '../lib/errors';
import { startServer, type RunningServer } from '../lib/server/server';
import { f32Bytes, f32Values, FakeService } from './server-fixture';

let service: FakeService;
let server: RunningServer;
let base: string;

beforeAll(async () => {
  service = new FakeService();
  server = await startServer(service, { port: 0, metricsHandler: async () => ({ contentType: 'text/plain; version=0.0.4', body: 'tensorwire_up 1\n' }) });
  base = `http://127.0.0.1:${server.port}`;
});
afterAll(async () => {
  await server.close();
});
afterEach(() => {
  service.failWith = undefined;
  service.ready = true;
});

async function json(path: string, init?: RequestInit): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(base + path, init);
  const text = await res.text();
  return { status: res.status, body: text === '' ? undefined : JSON.parse(text), headers: res.headers };
}

function post(path: string, body: unknown): Promise<{ status: number; body: any; headers: Headers }> {
  return json(path, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
}

const ADD_REQUEST = {
  id: 'r1',
  inputs: [
    { name: 'INPUT0', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] },
    { name: 'INPUT1', datatype: 'FP32', shape: [1, 4], data: [10, 20, 30, 40] },
  ],
};

describe('health and server metadata', () => {
  it('reports live and ready, and 503 with Retry-After when the core is not ready', async () => {
    expect((await fetch(`${base}/v2/health/live`)).status).toBe(200);
    expect((await fetch(`${base}/v2/health/ready`)).status).toBe(200);
    service.ready = false;
    const notReady = await json('/v2/health/ready');
    expect(notReady.status).toBe(503);
    expect(notReady.headers.get('retry-after')).toBe('1');
    expect(notReady.body.error).toMatch(/not ready/);
  });

  it('GET /v2 names the server, its version and extensions', async () => {
    const { status, body } = await json('/v2');
    expect(status).toBe(200);
    expect(body).toEqual({
      name: 'tensorwire',
      version: require('../package.json').version,
      extensions: ['binary_tensor_data', 'classification', 'model_repository', 'statistics', 'schedule_policy', 'model_configuration', 'system_shared_memory', 'trace', 'logging'],
    });
  });

  it('serves /metrics through the metrics handler', async () => {
    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4');
    expect(await res.text()).toBe('tensorwire_up 1\n');
  });

  it('answers unknown endpoints with 404 and the method and path', async () => {
    const { status, body } = await json('/v2/nothing/here');
    expect(status).toBe(404);
    expect(body).toEqual({ error: 'unknown endpoint: GET /v2/nothing/here', code: 'NOT_FOUND' });
    const wrongMethod = await json('/v2/models/add/infer');
    expect(wrongMethod.status).toBe(404);
    // A long path is repeated only in part.
    const long = await json(`/v2/${'a'.repeat(3000)}`);
    expect(long.status).toBe(404);
    expect(long.body).toEqual({ error: `unknown endpoint: GET /v2/${'a'.repeat(116)}... (3004 characters)`, code: 'NOT_FOUND' });
  });
});

describe('model routes', () => {
  it('returns metadata with and without a version, 404 for unknown ones', async () => {
    const meta = await json('/v2/models/add');
    expect(meta.status).toBe(200);
    expect(meta.body.inputs[0]).toEqual({ name: 'INPUT0', datatype: 'FP32', shape: [-1, 4] });
    expect((await json('/v2/models/add/versions/1')).body.name).toBe('add');
    const missing = await json('/v2/models/nope');
    expect(missing).toMatchObject({ status: 404, body: { error: "Request for unknown model: 'nope' is not found", code: 'NOT_FOUND' } });
    expect((await json('/v2/models/add/versions/7')).body).toEqual({ error: "Request for unknown model: 'add' version 7 is not found", code: 'NOT_FOUND' });
  });

  it('decodes URL-encoded model names', async () => {
    expect((await json('/v2/models/a%64d')).body.name).toBe('add');
  });

  it('reports model readiness, 503 with the reason when not ready', async () => {
    expect((await fetch(`${base}/v2/models/add/ready`)).status).toBe(200);
    expect((await fetch(`${base}/v2/models/add/versions/1/ready`)).status).toBe(200);
    const broken = await json('/v2/models/broken/ready');
    expect(broken.status).toBe(503);
    expect(broken.body.error).toBe("Request for unknown model: 'broken' has no available versions: failed to load: bad file");
  });

  it('returns the config and Triton-shaped statistics', async () => {
    expect((await json('/v2/models/add/config')).body).toEqual({ name: 'add', max_batch_size: 8, backend: 'onnxruntime' });
    const one = await json('/v2/models/add/stats');
    expect(one.body.model_stats).toHaveLength(1);
    expect(one.body.model_stats[0]).toMatchObject({ name: 'add', version: '1' });
    const all = await json('/v2/models/stats');
    expect(all.body.model_stats.map((s: { name: string }) => s.name)).toEqual(['add', 'gate', 'big']);
    expect((await json('/v2/models/add/versions/1/stats')).body.model_stats[0].name).toBe('add');
  });
});

describe('inference', () => {
  it('computes a JSON request and echoes its id', async () => {
    const { status, body, headers } = await post('/v2/models/add/infer', ADD_REQUEST);
    expect(status).toBe(200);
    expect(headers.get('content-type')).toBe('application/json');
    expect(body).toEqual({
      id: 'r1',
      model_name: 'add',
      model_version: '1',
      outputs: [
        { name: 'OUTPUT0', datatype: 'FP32', shape: [1, 4], data: [11, 22, 33, 44] },
        { name: 'OUTPUT1', datatype: 'FP32', shape: [1, 4], data: [-9, -18, -27, -36] },
      ],
    });
  });

  it('passes priority and timeout through to the core', async () => {
    await post('/v2/models/add/versions/1/infer', { ...ADD_REQUEST, parameters: { priority: 2, timeout: 5000 } });
    const last = service.received.at(-1)!;
    expect(last.priority).toBe(2);
    expect(last.timeoutUs).toBe(5000);
  });

  it('handles the binary tensor extension both ways', async () => {
    const header = JSON.stringify({
      inputs: [
        { name: 'INPUT0', datatype: 'FP32', shape: [2, 4], parameters: { binary_data_size: 32 } },
        { name: 'INPUT1', datatype: 'FP32', shape: [2, 4], parameters: { binary_data_size: 32 } },
      ],
      outputs: [{ name: 'OUTPUT0', parameters: { binary_data: true } }, { name: 'OUTPUT1' }],
    });
    const a = [1, 2, 3, 4, 5, 6, 7, 8];
    const b = [0.5, 0.5, 0.5, 0.5, 1, 1, 1, 1];
    const body = Buffer.concat([Buffer.from(header), f32Bytes(a), f32Bytes(b)]);
    const res = await fetch(`${base}/v2/models/add/infer`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(Buffer.byteLength(header)) },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/octet-stream');
    const bytes = Buffer.from(await res.arrayBuffer());
    const headerLength = Number(res.headers.get('inference-header-content-length'));
    const json = JSON.parse(bytes.subarray(0, headerLength).toString());
    expect(json.outputs[0]).toEqual({ name: 'OUTPUT0', datatype: 'FP32', shape: [2, 4], parameters: { binary_data_size: 32 } });
    expect(json.outputs[1].data).toEqual(a.map((v, i) => v - b[i]!));
    expect(bytes.length).toBe(headerLength + 32);
    expect(f32Values(bytes.subarray(headerLength))).toEqual(a.map((v, i) => v + b[i]!));
  });

  it('reads a multi-megabyte body arriving in many chunks', async () => {
    const rows = 8;
    const n = 4 * rows;
    const big = { inputs: ADD_REQUEST.inputs.map((t) => ({ ...t, shape: [rows, 4], data: Array.from({ length: n }, (_, i) => i) })), padding: 'x'.repeat(3_000_000) };
    const { status, body } = await post('/v2/models/add/infer', big);
    expect(status).toBe(200);
    expect(body.outputs[0].data).toEqual(Array.from({ length: n }, (_, i) => 2 * i));
  });

  it('answers malformed and mismatched requests with 400 naming the problem', async () => {
    const bad = await json('/v2/models/add/infer', { method: 'POST', body: '{"inputs": [' });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatch(/^malformed JSON/);
    const wrong = await post('/v2/models/add/infer', { inputs: [{ ...ADD_REQUEST.inputs[0], name: 'NOPE' }, ADD_REQUEST.inputs[1]] });
    expect(wrong.status).toBe(400);
    expect(wrong.body.error).toMatch(/unknown input 'NOPE'/);
    const gzip = await json('/v2/models/add/infer', { method: 'POST', body: JSON.stringify(ADD_REQUEST), headers: { 'content-encoding': 'gzip' } });
    // Not gzip data although the header says so (compressed bodies: integration-compression.test.ts).
    expect(gzip).toMatchObject({ status: 400, body: { code: 'INVALID_INPUT', error: 'request body is not valid gzip data as its Content-Encoding says (incorrect header check)' } });
    const unknown = await post('/v2/models/zzz/infer', ADD_REQUEST);
    expect(unknown).toMatchObject({ status: 404, body: { error: "Request for unknown model: 'zzz' is not found" } });
  });

  it('maps core errors to their status, with Retry-After on 503', async () => {
    service.failWith = new TensorwireError('QUEUE_FULL', "model 'add' queue is full (64 waiting)", { retryAfterSeconds: 2 });
    const full = await post('/v2/models/add/infer', ADD_REQUEST);
    expect(full.status).toBe(503);
    expect(full.headers.get('retry-after')).toBe('2');
    expect(full.body).toEqual({ error: "model 'add' queue is full (64 waiting)", code: 'QUEUE_FULL' });
    service.failWith = new TensorwireError('DEADLINE_EXCEEDED', 'timed out after 5 ms in the queue');
    expect((await post('/v2/models/add/infer', ADD_REQUEST)).status).toBe(504);
    service.failWith = new Error('boom') as TensorwireError;
    expect(await post('/v2/models/add/infer', ADD_REQUEST)).toMatchObject({ status: 500, body: { error: 'boom', code: 'INTERNAL' } });
  });
});

describe('repository extension', () => {
  it('lists the index with Triton state names, optionally only ready ones', async () => {
    const all = await post('/v2/repository/index', {});
    expect(all.status).toBe(200);
    expect(all.body).toContainEqual({ name: 'broken', version: '1', state: 'UNAVAILABLE', reason: 'bad file' });
    expect(all.body).toContainEqual({ name: 'add', version: '1', state: 'READY', reason: '' });
    const empty = await json('/v2/repository/index', { method: 'POST' });
    expect(empty.body).toHaveLength(4);
    const ready = await post('/v2/repository/index', { ready: true });
    expect(ready.body.map((e: { name: string }) => e.name)).toEqual(['add', 'gate', 'big']);
    expect((await post('/v2/repository/index', { ready: 'yes' })).status).toBe(400);
  });

  it('loads with a JSON config string and unloads', async () => {
    const unload = await json('/v2/repository/models/big/unload', { method: 'POST' });
    expect(unload.status).toBe(200);
    expect((await json('/v2/models/big')).status).toBe(404);
    const load = await post('/v2/repository/models/big/load', { parameters: { config: '{"max_batch_size": 4}' } });
    expect(load.status).toBe(200);
    expect(service.loadConfigs.at(-1)).toEqual({ max_batch_size: 4 });
    expect((await json('/v2/models/big')).status).toBe(200);
    const plain = await json('/v2/repository/models/big/load', { method: 'POST' });
    expect(plain.status).toBe(200);
    expect(service.loadConfigs.at(-1)).toBeUndefined();
  });

  it('refuses bad load parameters with 400 and unknown models with 404', async () => {
    const badJson = await post('/v2/repository/models/big/load', { parameters: { config: '{nope' } });
    expect(badJson.status).toBe(400);
    expect(badJson.body.error).toMatch(/^load request for model 'big': parameters.config is not valid JSON/);
    const file = await post('/v2/repository/models/big/load', { parameters: { 'file:1/model.onnx': 'AAAA' } });
    expect(file.status).toBe(403);
    expect(file.body.error).toMatch(/start it with --allow-model-upload/);
    expect((await json('/v2/repository/models/none/load', { method: 'POST' })).status).toBe(404);
  });
});
