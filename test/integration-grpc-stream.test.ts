/**
 * ModelStreamInfer and the lifecycle of gRPC calls against the real core and engine:
 * 10,000 pipelined requests answered correctly under the per-stream limit (backpressure, no
 * refusal), answers out of order matched by id, per-request errors that leave the stream
 * open, cancellation and deadlines that withdraw queued requests (they never run), a client
 * that disconnects mid-stream, the message limit, and a graceful shutdown that loses nothing.
 */
import * as http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { datatypeModel } from './fixtures/datatypes';
import { mlpModel, slowModel } from './fixtures/models';
import { sleep, waitFor } from './helpers/hotswap';
import { failure, floatsOf, openStream, rawFp32Request, rawOf, startGrpcHarness, startUnary, unary, type GrpcHarness, type StreamAnswer } from './helpers/grpc-harness';
import type { HarnessModel } from './helpers/server-harness';
import { loadProtos } from '../lib/grpc/proto';

/** slowModel depth: ~6.5 us per layer per row on an idle box, so a 16-row batch takes ~0.3 s (more on a loaded one). */
const SLOW_LAYERS = 3000;
const SLOW_WIDTH = 512;
const SLOW_ROWS = 16;

const MODELS: HarnessModel[] = [
  { name: 'double', versions: { 1: (d) => datatypeModel(d, 'FP32', { file: 'model.onnx' }) } },
  // One instance, batches of at most SLOW_ROWS: a full batch runs alone, the next waits.
  { name: 'slow', versions: { 1: (d) => slowModel(d, { file: 'model.onnx', layers: SLOW_LAYERS, width: SLOW_WIDTH }) }, config: { max_batch_size: SLOW_ROWS, instance_group: [{ count: 1, kind: 'KIND_CPU' }] } },
];

const STREAM_LIMIT = 64;
let h: GrpcHarness;

beforeAll(async () => {
  h = await startGrpcHarness({ models: MODELS, streamMaxInflight: STREAM_LIMIT });
}, 120_000);
afterAll(async () => {
  await h?.close();
});

function doubleRequest(i: number): Record<string, unknown> {
  return { model_name: 'double', id: `r${i}`, inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4] }], raw_input_contents: [rawOf(new Float32Array([i, i + 0.5, -i, 1]))] };
}

function slowRequest(id: string, rows = SLOW_ROWS): Record<string, unknown> {
  return rawFp32Request('slow', 'x', [rows, SLOW_WIDTH], new Float32Array(rows * SLOW_WIDTH).fill(1), { id });
}

async function slowStats(): Promise<{ executions: number; inferences: number }> {
  const s = (await unary(h.client, 'ModelStatistics', { name: 'slow' })).model_stats[0];
  return { executions: Number(s.execution_count), inferences: Number(s.inference_count) };
}

/** Collects a stream's answers by id until `count` arrived. */
function collect(stream: grpc.ClientDuplexStream<unknown, StreamAnswer>, count: number): Promise<Map<string, StreamAnswer>> {
  const answers = new Map<string, StreamAnswer>();
  return new Promise((resolve, reject) => {
    stream.on('data', (a: StreamAnswer) => {
      if (answers.has(a.infer_response.id)) reject(new Error(`two answers for ${a.infer_response.id}`));
      answers.set(a.infer_response.id, a);
      if (answers.size === count) resolve(answers);
    });
    stream.on('error', reject);
  });
}

describe('ModelStreamInfer', () => {
  it('10,000 pipelined requests: every one answered with its own values, never more than the limit in flight', async () => {
    const N = 10_000;
    const stream = openStream(h.client);
    let maxInflight = 0;
    const sampler = setInterval(() => (maxInflight = Math.max(maxInflight, h.tw.grpc!.inflight)), 1);
    const answers = collect(stream, N);
    for (let i = 0; i < N; i++) stream.write(doubleRequest(i));
    const got = await answers;
    clearInterval(sampler);
    stream.end();
    for (let i = 0; i < N; i++) {
      const a = got.get(`r${i}`)!;
      expect(a.error_message, `r${i}`).toBe('');
      expect(Array.from(floatsOf(a.infer_response.raw_output_contents[0]))).toEqual([2 * i, 2 * i + 1, -2 * i, 2]);
    }
    expect(maxInflight).toBeGreaterThan(0);
    expect(maxInflight).toBeLessThanOrEqual(STREAM_LIMIT);
    await waitFor(() => h.tw.grpc!.streams === 0, 5000, 'the stream to end');
  }, 120_000);

  it('a client that stops reading its answers stops the server from reading its requests (bounded, not refused)', async () => {
    // A raw HTTP/2 client: grpc-js's own client keeps draining the socket into an unbounded
    // buffer when its stream is paused before the first read, which would hide the server's
    // behaviour. This one really stops reading, so HTTP/2 flow control reaches the server.
    const N = 10_000;
    const { inference } = loadProtos();
    const frames = Array.from({ length: N }, (_, i) => {
      const message = inference.ModelStreamInfer!.requestSerialize(doubleRequest(i));
      const frame = Buffer.allocUnsafe(5 + message.length);
      frame[0] = 0;
      frame.writeUInt32BE(message.length, 1);
      message.copy(frame, 5);
      return frame;
    });
    const session = http2.connect(`http://${h.address}`);
    const before = Number((await unary(h.client, 'ModelStatistics', { name: 'double' })).model_stats[0].inference_count);
    const stream = session.request({ ':method': 'POST', ':path': '/inference.GRPCInferenceService/ModelStreamInfer', 'content-type': 'application/grpc', te: 'trailers' });
    stream.pause();
    stream.write(Buffer.concat(frames));
    const ran = async () => Number((await unary(h.client, 'ModelStatistics', { name: 'double' })).model_stats[0].inference_count) - before;
    await sleep(1000);
    const first = await ran();
    await sleep(1000);
    const second = await ran();
    // What ran fills the flow-control windows (64 KiB each way) plus the stream's limit, and then nothing more.
    expect(first).toBeGreaterThan(0);
    expect(second).toBe(first);
    expect(second).toBeLessThan(N / 4);
    expect(h.tw.grpc!.inflight).toBeLessThanOrEqual(STREAM_LIMIT);
    // Reading again lets every request through, none refused.
    let answered = 0;
    let failed = 0;
    let pending = Buffer.alloc(0);
    const done = new Promise<void>((resolve) => {
      stream.on('data', (chunk: Buffer) => {
        pending = Buffer.concat([pending, chunk]);
        while (pending.length >= 5 && pending.length >= 5 + pending.readUInt32BE(1)) {
          const length = pending.readUInt32BE(1);
          const answer = inference.ModelStreamInfer!.responseDeserialize(pending.subarray(5, 5 + length)) as StreamAnswer;
          if (answer.error_message !== '') failed++;
          pending = pending.subarray(5 + length);
          if (++answered === N) resolve();
        }
      });
    });
    stream.resume();
    await done;
    expect(failed).toBe(0);
    stream.end();
    session.close();
  }, 120_000);

  it('answers out of order, matched by id; a bad request gets an error naming its id and the stream goes on', async () => {
    const stream = openStream(h.client);
    const order: string[] = [];
    const answers = collect(stream, 3);
    stream.on('data', (a: StreamAnswer) => order.push(a.infer_response.id));
    stream.write(slowRequest('slow-1', 1));
    stream.write({ model_name: 'double', id: 'bad', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4] }], raw_input_contents: [Buffer.alloc(15)] });
    stream.write(doubleRequest(7));
    const got = await answers;
    // Bytes that do not decode at all get an error answer too, and the stream still answers after them.
    const raw = h.client.makeBidiStreamRequest('/inference.GRPCInferenceService/ModelStreamInfer', (b: unknown) => b as Buffer, (b: Buffer) => loadProtos().inference.ModelStreamInfer!.responseDeserialize(b) as StreamAnswer);
    const rawAnswers = collect(raw, 2);
    raw.write(Buffer.from([0x7f, 0x01, 0x02])); // field 15 with wire type 7, which does not exist
    raw.write(loadProtos().inference.ModelStreamInfer!.requestSerialize(doubleRequest(8)));
    const both = await rawAnswers;
    raw.end();
    expect(both.get('')!.error_message).toMatch(/^the 3-byte message is not a valid ModelStreamInfer request/);
    expect(Array.from(floatsOf(both.get('r8')!.infer_response.raw_output_contents[0]!))).toEqual([16, 17, -16, 2]);
    stream.end();
    expect(order.indexOf('r7')).toBeLessThan(order.indexOf('slow-1'));
    expect(got.get('bad')!.error_message).toBe("input 'x': raw_input_contents holds 15 bytes but FP32 shape [1,4] needs 16");
    expect(got.get('bad')!.infer_response.parameters.error_code).toMatchObject({ string_param: 'INVALID_INPUT' });
    expect(got.get('slow-1')!.error_message).toBe('');
    expect(got.get('slow-1')!.infer_response.outputs[0].shape).toEqual(['1', String(SLOW_WIDTH)]);
  }, 60_000);

  it('a client that disconnects mid-stream: its queued requests never run, the server serves on', async () => {
    const client = h.newClient();
    const stream = openStream(client);
    stream.on('error', () => undefined); // the cancel
    const before = await slowStats();
    for (let i = 0; i < 4; i++) stream.write(slowRequest(`d${i}`));
    await waitFor(() => h.tw.grpc!.inflight === 4, 10_000, 'the requests to be in flight');
    await sleep(50);
    client.close();
    stream.cancel();
    await waitFor(() => h.tw.grpc!.inflight === 0 && h.tw.grpc!.streams === 0, 20_000, 'the stream to be cleaned up');
    const after = await slowStats();
    // At most the batch that was running and the one staged beside it completed; the others were withdrawn.
    expect(after.executions - before.executions).toBeLessThanOrEqual(2);
    const r = await unary(h.client, 'ModelInfer', doubleRequest(3));
    expect(Array.from(floatsOf(r.raw_output_contents[0]))).toEqual([6, 7, -6, 2]);
  }, 60_000);
});

describe('unary lifecycle', () => {
  it('a cancelled queued call never runs', async () => {
    const before = await slowStats();
    const a = startUnary(h.client, 'ModelInfer', slowRequest('a'));
    const b = startUnary(h.client, 'ModelInfer', slowRequest('b'));
    const c = startUnary(h.client, 'ModelInfer', slowRequest('c'));
    await waitFor(() => h.tw.grpc!.inflight === 3, 10_000, 'three calls in flight');
    c.call.cancel();
    await expect(c.done).rejects.toMatchObject({ code: grpc.status.CANCELLED });
    await Promise.all([a.done, b.done]);
    const after = await slowStats();
    expect(after.executions - before.executions).toBe(2);
    expect(after.inferences - before.inferences).toBe(2 * SLOW_ROWS);
  }, 60_000);

  it('a deadline that passes while queued: DEADLINE_EXCEEDED, and the request never runs', async () => {
    const before = await slowStats();
    const a = startUnary(h.client, 'ModelInfer', slowRequest('a'));
    const b = startUnary(h.client, 'ModelInfer', slowRequest('b'));
    await waitFor(() => h.tw.grpc!.inflight === 2, 10_000, 'two calls in flight');
    const late = await failure(h.client, 'ModelInfer', slowRequest('late'), { deadline: Date.now() + 100 });
    expect(late.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    await Promise.all([a.done, b.done]);
    await waitFor(() => h.tw.grpc!.inflight === 0, 10_000, 'nothing in flight');
    const after = await slowStats();
    expect(after.executions - before.executions).toBe(2);
  }, 60_000);
});

describe('limits and shutdown', () => {
  it('a message over the body limit: RESOURCE_EXHAUSTED, the server serves on', async () => {
    const small = await startGrpcHarness({ models: [{ name: 'mlp', versions: { 1: (d) => mlpModel(d, { file: 'model.onnx' }) } }], maxBodyBytes: 64 * 1024 });
    try {
      const big = await failure(small.client, 'ModelInfer', rawFp32Request('mlp', 'input', [64, 256], new Float32Array(64 * 256)));
      expect(big.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      const ok = await unary(small.client, 'ModelInfer', rawFp32Request('mlp', 'input', [8, 256], new Float32Array(8 * 256)));
      expect(ok.outputs[0].shape).toEqual(['8', '16']);
    } finally {
      await small.close();
    }
  }, 60_000);

  it('graceful shutdown: calls in flight (unary and stream) all answered, new calls UNAVAILABLE', async () => {
    const g = await startGrpcHarness({ models: MODELS, drainTimeoutMs: 30_000 });
    try {
      const unaryCalls = [0, 1].map((i) => startUnary(g.client, 'ModelInfer', slowRequest(`u${i}`)));
      const stream = openStream(g.client);
      const streamed = collect(stream, 2);
      stream.write(slowRequest('s0'));
      stream.write(slowRequest('s1'));
      await waitFor(() => g.tw.grpc!.inflight === 4, 10_000, 'four requests in flight');
      const closing = g.tw.close();
      await sleep(20);
      const refused = await failure(g.client, 'ModelInfer', doubleRequest(1));
      expect(refused).toMatchObject({ code: grpc.status.UNAVAILABLE, errorCode: 'UNAVAILABLE' });
      expect(await unary(g.client, 'ServerReady', {})).toEqual({ ready: false });
      for (const u of unaryCalls) expect(((await u.done) as { outputs: unknown[] }).outputs).toHaveLength(1);
      const answers = await streamed;
      for (const id of ['s0', 's1']) expect(answers.get(id)!.error_message).toBe('');
      expect(await closing).toBe(true);
    } finally {
      await g.close();
    }
  }, 90_000);
});
