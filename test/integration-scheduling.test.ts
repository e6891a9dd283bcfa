/**
 * Queue policy and cancellation through HTTP against the real server core and engine, on a
 * slow model (each request is a full batch of 64 rows that takes a few hundred ms):
 * queue full (503 + Retry-After), per-request timeout (504), and a client that goes away
 * while its request is queued or running (removed from the queue / its batch cancelled,
 * counted as CANCELLED, and the server keeps serving).
 *
 * The model has one instance with two staging slots: two requests are in flight at once (one
 * running, one staged), the rest wait in the queue. Tests observe that through /metrics
 * (tensorwire_inflight_requests, tensorwire_queue_depth) instead of sleeping.
 */
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { slowModel, slowReference } from './fixtures/models';
import { binaryRequest, bytes, call, f32, metricValue, postBinary, scrape, startHarness, waitFor, type BinaryReply, type Harness } from './helpers/server-harness';

const LAYERS = 1200; // slow enough that two full batches outlast a 50 ms queue timeout on a quiet box
const WIDTH = 512;
const ROWS = 64;
const SLOW = { layers: LAYERS, width: WIDTH };
const LABELS = { model: 'slow', version: '1' };
let h: Harness;

beforeAll(async () => {
  h = await startHarness({
    models: [
      {
        name: 'slow',
        versions: { 1: (d) => slowModel(d, { ...SLOW, file: 'model.onnx' }) },
        config: {
          max_batch_size: ROWS,
          dynamic_batching: { max_queue_delay_microseconds: 100, default_queue_policy: { max_queue_size: 2, allow_timeout_override: true } },
          instance_group: [{ count: 1, kind: 'KIND_CPU' }],
        },
      },
    ],
  });
});
afterAll(async () => {
  await h?.close();
});

/** A full batch whose values identify request `n`. */
function batchInput(n: number): Float32Array {
  return Float32Array.from({ length: ROWS * WIDTH }, (_, i) => n * 1000 + (i % 997));
}

function send(n: number, extra: Record<string, unknown> = {}): Promise<BinaryReply> {
  const { body, headerLength } = binaryRequest([{ name: 'x', datatype: 'FP32', shape: [ROWS, WIDTH], bytes: bytes(batchInput(n)) }], { id: `r${n}`, ...extra, parameters: { binary_data_output: true, ...((extra.parameters as object) ?? {}) } });
  return postBinary(h.base, '/v2/models/slow/infer', body, headerLength);
}

/** The same request written by hand on a raw socket, so the test can drop the connection. */
function sendRaw(n: number): Socket {
  const { body, headerLength } = binaryRequest([{ name: 'x', datatype: 'FP32', shape: [ROWS, WIDTH], bytes: bytes(batchInput(n)) }], { id: `r${n}` });
  const socket = connect(h.port, '127.0.0.1');
  socket.on('error', () => undefined);
  socket.write(`POST /v2/models/slow/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${body.length}\r\nInference-Header-Content-Length: ${headerLength}\r\n\r\n`);
  socket.write(body);
  return socket;
}

async function gauges(): Promise<{ inflight: number; queued: number; text: string }> {
  const text = await scrape(h.base);
  return { inflight: metricValue(text, 'tensorwire_inflight_requests'), queued: metricValue(text, 'tensorwire_queue_depth', LABELS), text };
}

/** Waits until the core holds `inflight` requests of which `queued` wait in the queue. */
async function waitState(inflight: number, queued: number): Promise<void> {
  let last = { inflight: -1, queued: -1 };
  await waitFor(async () => {
    last = await gauges();
    return last.inflight === inflight && last.queued === queued;
  }, `inflight ${inflight} / queued ${queued} (last seen ${last.inflight} / ${last.queued})`);
}

/** Checks request `n`'s output: rows are independent, so a few rows are checked (exactly) against the reference. */
function expectResult(r: BinaryReply, n: number): void {
  expect(r.status, r.body.toString('utf8', 0, 200)).toBe(200);
  expect(r.json.id).toBe(`r${n}`);
  const got = f32(r.binary.y!);
  expect(got.length).toBe(ROWS * WIDTH);
  const input = batchInput(n);
  for (const row of [0, 31, ROWS - 1]) {
    const expected = slowReference(input.subarray(row * WIDTH, (row + 1) * WIDTH), SLOW);
    // Each output is ± one input: exact.
    expect(Array.from(got.subarray(row * WIDTH, (row + 1) * WIDTH))).toEqual(Array.from(expected));
  }
}

const cancelled = (text: string) => metricValue(text, 'tensorwire_inference_requests_total', { ...LABELS, outcome: 'failure', reason: 'CANCELLED' });
const stats = async () => (await call(h.base, '/v2/models/slow/stats')).json.model_stats[0];

describe('queue policy', () => {
  it('a full queue answers 503 with Retry-After at once; the queued requests still complete', async () => {
    const r1 = send(1);
    await waitState(1, 0);
    const r2 = send(2);
    await waitState(2, 0); // r1 runs, r2 is staged in the second slot
    const r3 = send(3);
    await waitState(3, 1);
    const r4 = send(4);
    await waitState(4, 2); // the queue (max_queue_size 2) is full
    const started = Date.now();
    const r5 = await send(5);
    expect(Date.now() - started).toBeLessThan(250); // refused without waiting for a slot
    expect(r5.status).toBe(503);
    expect(r5.headers.get('retry-after')).toBe('1');
    expect(r5.json.error).toMatch(/queue.*full/i);
    const [a, b, c, d] = await Promise.all([r1, r2, r3, r4]);
    expectResult(a, 1);
    expectResult(b, 2);
    expectResult(c, 3);
    expectResult(d, 4);
    const metrics = await scrape(h.base);
    expect(metricValue(metrics, 'tensorwire_inference_requests_total', { ...LABELS, outcome: 'failure', reason: 'QUEUE_FULL' })).toBe(1);
  });

  it('a request whose timeout passes in the queue gets 504; the others complete', async () => {
    const r1 = send(1);
    await waitState(1, 0);
    const r2 = send(2);
    await waitState(2, 0);
    const started = Date.now();
    const late = await send(3, { parameters: { timeout: 50_000 } }); // 50 ms, behind two long batches
    const waited = Date.now() - started;
    expect(late.status).toBe(504);
    expect(late.headers.get('retry-after')).toBeNull();
    expect(late.json.error).toMatch(/^request timed out after \d+ us in the queue of slow:1$/);
    expect(waited).toBeGreaterThanOrEqual(45);
    expectResult(await r1, 1);
    expectResult(await r2, 2);
    const metrics = await scrape(h.base);
    expect(metricValue(metrics, 'tensorwire_inference_requests_total', { ...LABELS, outcome: 'failure', reason: 'DEADLINE_EXCEEDED' })).toBe(1);
  });
});

describe('a client that goes away', () => {
  it('is removed from the queue while queued: CANCELLED, queue depth back to 0, later requests work', async () => {
    const before = await stats();
    const cancelledBefore = cancelled(await scrape(h.base));
    const r1 = send(1);
    await waitState(1, 0);
    const r2 = send(2);
    await waitState(2, 0);
    const socket = sendRaw(3);
    await waitState(3, 1);
    socket.destroy();
    // Withdrawn while r1 and r2 still run: the queue empties and the failure is recorded.
    await waitState(2, 0);
    const after = await gauges();
    expect(cancelled(after.text) - cancelledBefore).toBe(1);
    expectResult(await r1, 1);
    expectResult(await r2, 2);
    const s = await stats();
    expect(s.inference_stats.fail.count - before.inference_stats.fail.count).toBe(1);
    expect(s.inference_stats.success.count - before.inference_stats.success.count).toBe(2);
    // Two batches ran, not three: the cancelled request never reached the engine.
    expect(s.execution_count - before.execution_count).toBe(2);
    expectResult(await send(4), 4);
  });

  it('is dropped from its batch while running: CANCELLED, the engine finishes cleanly, the server keeps serving', async () => {
    const cancelledBefore = cancelled(await scrape(h.base));
    const socket = sendRaw(1);
    await waitState(1, 0); // running
    socket.destroy();
    await waitState(0, 0);
    expect(cancelled(await scrape(h.base)) - cancelledBefore).toBe(1);
    // The slot is released and reusable: two more full batches in a row.
    const [a, b] = await Promise.all([send(5), send(6)]);
    expectResult(a, 5);
    expectResult(b, 6);
    expect((await call(h.base, '/v2/health/ready')).status).toBe(200);
  });
});
