/**
 * Flow control of the WebSocket stream (/v2/stream) against the real server core and engine
 * on 127.0.0.1: past the per-connection in-flight limit every request gets a 429 error frame
 * (never a silent drop); a client that stops reading costs the server a bounded amount of
 * memory while other clients keep being served; closing a socket cancels its queued requests
 * before they waste engine runs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StreamClient } from '../lib/client/stream-client';
import { slowModel, versionedModel } from './fixtures/models';
import { initializer, node, writeModel } from './fixtures/onnx-builder';
import { binaryFrame, decodeAnswer, RawStream } from './helpers/raw-stream';
import { call, metricValue, postJson, scrape, startHarness, waitFor, type Harness } from './helpers/server-harness';
import { join } from 'node:path';

/** Floats per row of the fanout model's answer: 128 KiB per row. */
const FANOUT = 32 * 1024;
const SLOW = { layers: 2000, width: 512 };
const LIMIT = 256; // the server's default per-connection in-flight limit
let h: Harness;

/** "x" FP32 [-1,1] -> "y" FP32 [-1,FANOUT], x repeated: tiny requests, 128 KiB answers. */
function fanoutModel(dir: string): Promise<string> {
  return Promise.resolve(
    writeModel(join(dir, 'model.onnx'), {
      name: 'fanout',
      inputs: [{ name: 'x', type: 'FP32', dims: [-1, 1] }],
      outputs: [{ name: 'y', type: 'FP32', dims: [-1, FANOUT] }],
      initializers: [initializer('shape', 'INT64', [2], new BigInt64Array([1n, BigInt(FANOUT)]))],
      nodes: [node('Expand', ['x', 'shape'], ['y'])],
    }),
  );
}

beforeAll(async () => {
  h = await startHarness({
    models: [
      { name: 'fanout', versions: { 1: fanoutModel } },
      { name: 'versioned', versions: { 1: (d) => versionedModel(d, 1) } },
      {
        name: 'slow',
        versions: { 1: (d) => slowModel(d, { ...SLOW, file: 'model.onnx' }) },
        config: { max_batch_size: 4, instance_group: [{ count: 1, kind: 'KIND_CPU' }] },
      },
    ],
  });
}, 120_000);
afterAll(async () => {
  await h?.close();
});

async function stats(model: string) {
  const r = await call(h.base, `/v2/models/${model}/stats`);
  expect(r.status).toBe(200);
  return r.json.model_stats[0] as { inference_count: number; execution_count: number; inference_stats: { success: { count: number }; fail: { count: number } } };
}

function fanoutRequest(id: string, value: number): Buffer {
  const x = Float32Array.of(value);
  return binaryFrame({ id, model_name: 'fanout', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 1], parameters: { binary_data_size: 4 } }] }, new Uint8Array(x.buffer));
}

function versionedText(id: string | number, n: number): string {
  return JSON.stringify({ id, model_name: 'versioned', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: [n, n + 1, n + 2, n + 3] }] });
}

/** Other clients' round trips while something else is going on: all must be right, and the slowest fast. */
async function otherClientsServed(rounds: number): Promise<number> {
  const client = await StreamClient.connect(h.base);
  let slowest = 0;
  try {
    for (let i = 0; i < rounds; i++) {
      const t0 = performance.now();
      const [viaWs, viaHttp] = await Promise.all([
        client.infer('versioned', { x: { shape: [1, 4], data: Float32Array.of(i, 0, 0, 0) } }),
        postJson(h.base, '/v2/models/versioned/infer', { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: [i, 1, 2, 3] }] }),
      ]);
      slowest = Math.max(slowest, performance.now() - t0);
      expect(Array.from(viaWs.outputs.y!.data as Float32Array)).toEqual([i + 1, 1, 1, 1]);
      expect(viaHttp.status).toBe(200);
      expect(viaHttp.json.outputs[0].data).toEqual([i + 1, 2, 3, 4]);
    }
  } finally {
    await client.close();
  }
  return slowest;
}

describe('stream flow control', () => {
  it('answers every request past the in-flight limit with a 429 frame, never drops one', async () => {
    const N = 1500;
    const before = await stats('versioned');
    const client = await RawStream.open(h.base);
    // All sent in one go: the server reads them in a few chunks, long before any batch is answered.
    for (let i = 0; i < N; i++) client.sendText(versionedText(i, i * 4));
    await client.count(N);
    await new Promise((r) => setTimeout(r, 100));
    expect(client.received).toBe(N);
    expect(client.isOpen).toBe(true);

    const answers = client.byId(); // throws on a repeated id
    expect(answers.size).toBe(N);
    let ok = 0;
    let tooMany = 0;
    for (let i = 0; i < N; i++) {
      const a = answers.get(String(i))!;
      expect(a, `answer to ${i}`).toBeDefined();
      if (a.json.error === undefined) {
        ok++;
        expect(a.json.outputs[0].data).toEqual([i * 4 + 1, i * 4 + 2, i * 4 + 3, i * 4 + 4]);
      } else {
        tooMany++;
        expect(a.json).toEqual({ id: i, code: 'TOO_MANY_REQUESTS', status: 429, error: expect.stringContaining(`${LIMIT} requests are already in flight on this connection`) });
      }
    }
    expect(tooMany).toBeGreaterThan(0);
    expect(ok).toBeGreaterThanOrEqual(LIMIT);
    // Refused requests never reached the model.
    const after = await stats('versioned');
    expect(after.inference_stats.success.count - before.inference_stats.success.count).toBe(ok);
    expect(after.inference_stats.fail.count - before.inference_stats.fail.count).toBe(0);
    client.close();
  });
});

/** RSS growth allowed on top of the answers a slow reader may hold (engine slots, heap, garbage not yet collected). */
const SLACK = 64 << 20;
/** A fanout answer frame: header plus 128 KiB. */
const ANSWER_BYTES = FANOUT * 4 + 200;

/** Checks a fanout answer: binary, 128 KiB, every value the request's. */
function fanoutProblem(a: ReturnType<typeof decodeAnswer>, value: number): string | undefined {
  if (!a.binary) return `text answer ${JSON.stringify(a.json).slice(0, 200)}`;
  const y = a.tensors.y!;
  if (y.length !== FANOUT * 4) return `${y.length} bytes`;
  const values = new Float32Array(y.buffer.slice(y.byteOffset, y.byteOffset + y.length));
  for (let i = 0; i < values.length; i++) if (values[i] !== value) return `value ${i} is ${values[i]}, expected ${value}`;
  return undefined;
}

describe('StreamClient stays within the limit', () => {
  it('sends 3000 inferences started at once 256 at a time: no 429, a withdrawn one never sent', async () => {
    const N = 3000;
    const before = await stats('versioned');
    const client = await StreamClient.connect(h.base);
    let mostInflight = 0;
    const withdraw = new AbortController();
    const results = Array.from({ length: N }, (_, i) =>
      client.infer('versioned', { x: { shape: [1, 4], data: Float32Array.of(i, i, i, -i) } }, i === N - 1 ? { signal: withdraw.signal } : {}).then((r) => {
        mostInflight = Math.max(mostInflight, client.inflight);
        return Array.from(r.outputs.y!.data as Float32Array);
      }),
    );
    expect(client.inflight).toBe(LIMIT);
    expect(client.queued).toBe(N - LIMIT);
    withdraw.abort(); // still waiting in the client: it must reject and never reach the server
    const settled = await Promise.allSettled(results);
    await client.close();
    for (let i = 0; i < N - 1; i++) expect(settled[i]).toEqual({ status: 'fulfilled', value: [i + 1, i + 1, i + 1, -i + 1] });
    expect(settled[N - 1]).toMatchObject({ status: 'rejected', reason: { code: 'CANCELLED' } });
    expect(mostInflight).toBeLessThanOrEqual(LIMIT);
    const after = await stats('versioned');
    expect(after.inference_stats.success.count - before.inference_stats.success.count).toBe(N - 1);
    expect(after.inference_stats.fail.count - before.inference_stats.fail.count).toBe(0);
  });
});

describe('a client that stops reading', () => {
  it('holds at most the in-flight limit of answers for it, serves others meanwhile, and delivers them all when it reads again', async () => {
    const before = await stats('fanout');
    const computed = async () => (await stats('fanout')).inference_stats.success.count - before.inference_stats.success.count;
    const rss0 = process.memoryUsage().rss;
    const client = await RawStream.open(h.base);
    client.pause();

    // 256 tiny requests, 32 MiB of answers: the socket takes a few MiB, the rest waits in the server.
    for (let i = 0; i < LIMIT; i++) client.sendBinary(fanoutRequest(`a${i}`, i + 0.5));
    await waitFor(async () => (await computed()) >= LIMIT, `${LIMIT} answers computed`, 20_000);
    await new Promise((r) => setTimeout(r, 200));
    const rssHeld = process.memoryUsage().rss - rss0;
    expect(rssHeld).toBeLessThan(LIMIT * ANSWER_BYTES + SLACK);

    // 200 more: only as many are admitted as answers left for the socket; the others get 429s
    // (queued as small text frames), and none of them grows what the server holds.
    const MORE = 200;
    for (let i = 0; i < MORE; i++) client.sendBinary(fanoutRequest(`b${i}`, i + 0.25));
    await new Promise((r) => setTimeout(r, 300));
    const admitted = await computed();
    expect(admitted).toBeLessThan(LIMIT + MORE);
    expect(process.memoryUsage().rss - rss0).toBeLessThan(rssHeld + 16 * (1 << 20));

    // Other clients are served while the slow one is stuck.
    expect(await otherClientsServed(20)).toBeLessThan(2000);

    // Reading again: every request has exactly one answer, none was dropped.
    client.resume();
    // Within seconds, although most of the 32 MiB were still in the server: the answers that
    // uWS held must keep moving once the socket drains (stream-connection.ts, rule 4).
    await client.count(LIMIT + MORE, 10_000);
    await new Promise((r) => setTimeout(r, 50));
    expect(client.received).toBe(LIMIT + MORE);
    expect(client.isOpen).toBe(true);
    const answers = client.byId();
    const problems: string[] = [];
    let ok = 0;
    let refused = 0;
    for (let i = 0; i < LIMIT; i++) {
      const p = fanoutProblem(answers.get(`a${i}`)!, i + 0.5);
      if (p !== undefined) problems.push(`a${i}: ${p}`);
    }
    for (let i = 0; i < MORE; i++) {
      const a = answers.get(`b${i}`)!;
      if (a.json.code === 'TOO_MANY_REQUESTS' && a.json.status === 429) refused++;
      else {
        ok++;
        const p = fanoutProblem(a, i + 0.25);
        if (p !== undefined) problems.push(`b${i}: ${p}`);
      }
    }
    expect(problems).toEqual([]);
    expect(LIMIT + ok).toBe(admitted);
    expect(refused).toBe(MORE - ok);
    expect(refused).toBeGreaterThan(0);
    client.close();
  });

  it('is disconnected once it also leaves its 429s unread, and never costs more than the bound', async () => {
    const before = await stats('fanout');
    const computed = async () => (await stats('fanout')).inference_stats.success.count - before.inference_stats.success.count;
    const rss0 = process.memoryUsage().rss;
    const client = await RawStream.open(h.base, { keepFrames: false });
    client.pause();
    // Its answers back the socket up first...
    for (let i = 0; i < LIMIT; i++) client.sendBinary(fanoutRequest(`c${i}`, i));
    await waitFor(async () => (await computed()) >= LIMIT, `${LIMIT} answers computed`, 20_000);
    await new Promise((r) => setTimeout(r, 200));
    // ...then 3000 more, which would be 375 MiB of answers if the server ran and kept them:
    // each is refused with a 429 that queues behind the unread answers, until more than the
    // limit of them wait and the server drops the connection.
    const N = 3000;
    for (let i = 0; i < N; i++) client.sendBinary(fanoutRequest(`d${i}`, i));
    await new Promise((r) => setTimeout(r, 300));
    expect(process.memoryUsage().rss - rss0).toBeLessThan(LIMIT * ANSWER_BYTES + SLACK);
    expect(await computed()).toBeLessThan(2 * LIMIT);
    expect(await otherClientsServed(5)).toBeLessThan(2000);

    client.resume();
    // The server dropped the TCP connection: a close frame cannot get through a full buffer.
    expect(await client.closed()).toBe(1006);
    expect(client.received).toBeLessThan(LIMIT + N);
    await waitFor(() => h.server.inflight === 0, 'nothing in flight');
  });
});

describe('closing a socket', () => {
  it('cancels its queued requests at once: no engine runs for them, the queue back to 0', async () => {
    const N = 200; // 50 batches of 4 at ~50-100 ms each: seconds of work
    const before = await stats('slow');
    const failedBefore = metricValue(await scrape(h.base), 'tensorwire_inference_requests_total', { model: 'slow', reason: 'CANCELLED' });
    const client = await RawStream.open(h.base);
    const x = new Uint8Array(Float32Array.from({ length: SLOW.width }, (_, i) => i - 100.5).buffer);
    for (let i = 0; i < N; i++) {
      client.sendBinary(binaryFrame({ id: i, model_name: 'slow', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, SLOW.width], parameters: { binary_data_size: x.byteLength } }] }, x));
    }
    await client.count(1, 20_000); // the first batch is done: the rest are queued or running
    client.close();
    const answeredBeforeClose = client.received;
    const closedAt = performance.now();
    await waitFor(() => h.server.inflight === 0, 'the connection\'s requests to settle', 5000);
    const settleMs = performance.now() - closedAt;
    await new Promise((r) => setTimeout(r, 500)); // a batch still running for them would show up now
    const after = await stats('slow');
    const exposition = await scrape(h.base);

    const ran = after.inference_stats.success.count - before.inference_stats.success.count;
    const cancelled = metricValue(exposition, 'tensorwire_inference_requests_total', { model: 'slow', reason: 'CANCELLED' }) - failedBefore;
    expect(ran + cancelled).toBe(N);
    expect(after.inference_stats.fail.count - before.inference_stats.fail.count).toBe(cancelled);
    expect(cancelled).toBeGreaterThan(N / 2);
    // At most the batch running and the one staged beside it (two staging slots) finished after the close.
    const batches = after.execution_count - before.execution_count;
    expect(batches).toBeLessThanOrEqual(Math.ceil(answeredBeforeClose / 4) + 2);
    expect(metricValue(exposition, 'tensorwire_queue_depth', { model: 'slow' })).toBe(0);
    expect(settleMs).toBeLessThan(1000);
    // The model serves the next client at once.
    const next = await postJson(h.base, '/v2/models/slow/infer', { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, SLOW.width], data: Array.from({ length: SLOW.width }, () => 0.5) }] });
    expect(next.status).toBe(200);
  });
});
