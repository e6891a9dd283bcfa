/**
 * The WebSocket stream (/v2/stream) against the real server core and engine on 127.0.0.1:
 * 10,000 pipelined requests on one socket, text and binary frames and three models mixed,
 * every answer checked against its own request; per-request errors that leave the socket
 * open; stream and HTTP requests sharing the same dynamic batches. Flow control (429s, slow
 * readers, cancellation on close) is integration-stream-flow.test.ts's.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StreamClient } from '../lib/client/stream-client';
import { mlpModel, mlpReference, mlpWeights, multiIoModel, slowModel, slowReference, versionedModel } from './fixtures/models';
import { binaryFrame, decodeAnswer, RawStream, type RawAnswer } from './helpers/raw-stream';
import { binaryRequest, bytes, call, f32, postBinary, postJson, startHarness, type Harness } from './helpers/server-harness';

const W = mlpWeights();
/** The pair model: slow enough (~0.1 s a batch) that requests sent while it runs queue up together. */
const PAIR = { layers: 4000, width: 512 };
let h: Harness;

beforeAll(async () => {
  h = await startHarness({
    models: [
      { name: 'mlp', versions: { 1: (d) => mlpModel(d, { file: 'model.onnx' }) } },
      { name: 'versioned', versions: { 1: (d) => versionedModel(d, 1), 2: (d) => versionedModel(d, 2) }, config: { version_policy: { all: {} } } },
      { name: 'multi_io', versions: { 1: (d) => multiIoModel(d, { file: 'model.onnx' }) } },
      {
        name: 'pair',
        versions: { 1: (d) => slowModel(d, { ...PAIR, file: 'model.onnx' }) },
        config: { max_batch_size: 4, dynamic_batching: { preferred_batch_size: [2] }, instance_group: [{ count: 1, kind: 'KIND_CPU' }] },
      },
    ],
  });
}, 120_000);
afterAll(async () => {
  await h?.close();
});

/** Distinct MLP input for request n (256 values per row). */
function mlpInput(n: number, rows = 1): Float32Array {
  return Float32Array.from({ length: rows * 256 }, (_, i) => Math.sin(n * 0.731 + i * 0.013) * (1 + (n % 7) / 7));
}

/** Distinct, exactly representable input of the versioned model (4 values per row). */
function versionedInput(n: number, rows: number): Float32Array {
  return Float32Array.from({ length: rows * 4 }, (_, i) => n * 16 + i + 0.5);
}

async function stats(model: string, version?: string) {
  const path = version === undefined ? `/v2/models/${model}/stats` : `/v2/models/${model}/versions/${version}/stats`;
  const r = await call(h.base, path);
  expect(r.status).toBe(200);
  return r.json.model_stats[0];
}

/** One request of the 10,000: its frame and the check of its answer (returns a problem, or undefined). */
interface Planned {
  frame: string | Buffer;
  check(a: RawAnswer): string | undefined;
}

function close(got: ArrayLike<number>, want: ArrayLike<number>, tol: number): string | undefined {
  if (got.length !== want.length) return `${got.length} values, expected ${want.length}`;
  for (let i = 0; i < want.length; i++) if (!(Math.abs(got[i]! - want[i]!) <= tol)) return `value ${i}: got ${got[i]}, expected ${want[i]}`;
  return undefined;
}

/**
 * Request n: one in ten goes to the MLP (binary), one in ten to multi_io (text), the rest to
 * the versioned model, alternating text and binary, 1..3 rows, version 1, 2 or unnamed
 * (the latest, 2). Even n get numeric ids, odd n string ids: each must come back as sent.
 */
function plan(n: number): Planned {
  const id: string | number = n % 2 === 0 ? n : `s${n}`;
  if (n % 10 === 0) {
    const x = mlpInput(n);
    const header = { id, model_name: 'mlp', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 256], parameters: { binary_data_size: x.byteLength } }] };
    return {
      frame: binaryFrame(header, bytes(x)),
      check: (a) => {
        if (!a.binary) return 'text answer to a binary frame';
        if (a.json.model_name !== 'mlp' || JSON.stringify(a.json.outputs[0].shape) !== '[1,16]') return `header ${JSON.stringify(a.json)}`;
        return close(f32(a.tensors.output!), mlpReference(W, x), 1e-4);
      },
    };
  }
  if (n % 10 === 5) {
    const av = [n, -n, 3 * n];
    const bv = [0.5, -0.25, n / 4];
    const frame = JSON.stringify({ id, model_name: 'multi_io', inputs: [{ name: 'a', datatype: 'INT64', shape: [1, 3], data: av }, { name: 'b', datatype: 'FP32', shape: [1, 3], data: bv }] });
    return {
      frame,
      check: (a) => {
        if (a.binary) return 'binary answer to a text frame';
        const out = Object.fromEntries(a.json.outputs.map((o: { name: string }) => [o.name, o]));
        if (JSON.stringify(out.scaled.data) !== JSON.stringify(av.map((v) => v * 2))) return `scaled ${JSON.stringify(out.scaled.data)}`;
        return close(out.sum.data, av.map((v, i) => Math.fround(Math.fround(v) + Math.fround(bv[i]!))), 0);
      },
    };
  }
  const rows = 1 + (n % 3);
  const named = n % 4 === 0 ? '1' : n % 4 === 1 ? 2 : undefined; // a string, a number, or no version
  const version = named === undefined ? 2 : Number(named);
  const x = versionedInput(n, rows);
  const want = x.map((v) => v + version);
  const head = { id, model_name: 'versioned', ...(named !== undefined ? { model_version: named } : {}) };
  const check = (a: RawAnswer, values: ArrayLike<number>): string | undefined => {
    if (a.json.model_version !== String(version)) return `answered by version ${a.json.model_version}, asked ${named ?? 'latest'}`;
    if (JSON.stringify(a.json.outputs[0].shape) !== `[${rows},4]`) return `shape ${JSON.stringify(a.json.outputs[0].shape)}`;
    return close(values, want, 0);
  };
  if (n % 2 === 1) {
    return {
      frame: JSON.stringify({ ...head, inputs: [{ name: 'x', datatype: 'FP32', shape: [rows, 4], data: Array.from(x) }] }),
      check: (a) => (a.binary ? 'binary answer to a text frame' : check(a, a.json.outputs[0].data)),
    };
  }
  return {
    frame: binaryFrame({ ...head, inputs: [{ name: 'x', datatype: 'FP32', shape: [rows, 4], parameters: { binary_data_size: x.byteLength } }] }, bytes(x)),
    check: (a) => (!a.binary ? 'text answer to a binary frame' : check(a, f32(a.tensors.y!))),
  };
}

describe('stream: many requests on one socket', () => {
  it('10,000 pipelined requests, text and binary, three models: each answer is its own request\'s', async () => {
    const TOTAL = 10_000;
    const WINDOW = 256; // the server's per-connection in-flight limit
    const client = await RawStream.open(h.base, { keepFrames: false });
    const expected = new Map<string, Planned>();
    const problems: string[] = [];
    let answered = 0;
    let sent = 0;
    const before = { mlp: await stats('mlp'), v1: await stats('versioned', '1'), v2: await stats('versioned', '2'), multi: await stats('multi_io') };

    const fill = (): void => {
      while (sent < TOTAL && sent - answered < WINDOW) {
        const n = sent++;
        const p = plan(n);
        expected.set(String(n % 2 === 0 ? n : `s${n}`), p);
        if (typeof p.frame === 'string') client.sendText(p.frame);
        else client.sendBinary(p.frame);
      }
    };
    client.onFrame = (frame) => {
      answered++;
      try {
        const a = decodeAnswer(frame);
        const key = String(a.json.id);
        const p = expected.get(key);
        if (p === undefined) problems.push(`answer for unknown or repeated id ${key}: ${JSON.stringify(a.json).slice(0, 200)}`);
        else {
          expected.delete(key);
          const n = Number(key.replace('s', ''));
          if (typeof a.json.id !== (n % 2 === 0 ? 'number' : 'string')) problems.push(`id ${key} came back as a ${typeof a.json.id}`);
          const problem = a.json.error !== undefined ? `error ${a.json.code}: ${a.json.error}` : p.check(a);
          if (problem !== undefined) problems.push(`request ${key}: ${problem}`);
        }
      } catch (e) {
        problems.push(`undecodable answer: ${(e as Error).message}`);
      }
      fill();
    };
    fill();
    await client.count(TOTAL, 45_000);
    await new Promise((r) => setTimeout(r, 50)); // nothing more may arrive

    expect(problems.slice(0, 10)).toEqual([]);
    expect(client.received).toBe(TOTAL);
    expect(expected.size).toBe(0);
    expect(client.isOpen).toBe(true);
    client.close();

    // The server really ran them: every request counted once on the version that answered it.
    const after = { mlp: await stats('mlp'), v1: await stats('versioned', '1'), v2: await stats('versioned', '2'), multi: await stats('multi_io') };
    const delta = (k: keyof typeof after) => after[k].inference_stats.success.count - before[k].inference_stats.success.count;
    let v1 = 0;
    for (let n = 0; n < TOTAL; n++) if (n % 10 !== 0 && n % 10 !== 5 && n % 4 === 0) v1++;
    expect(delta('mlp')).toBe(TOTAL / 10);
    expect(delta('multi')).toBe(TOTAL / 10);
    expect(delta('v1')).toBe(v1);
    expect(delta('v2')).toBe(TOTAL - TOTAL / 5 - v1);
    // Batching packed them: far fewer engine runs than requests.
    expect(after.v2.execution_count - before.v2.execution_count).toBeLessThan(delta('v2') / 2);
  });
});

describe('stream: errors are answers, not closes', () => {
  it('answers every bad frame with an error frame {id, error, code, status} and keeps serving', async () => {
    const client = await RawStream.open(h.base);
    const good = (id: string) => ({ id, model_name: 'versioned', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] }] });
    const x = bytes(Float32Array.of(1, 2, 3, 4));
    const sends: (() => void)[] = [
      () => client.sendText({ ...good('unknown-model'), model_name: 'nope' }),
      () => client.sendText({ ...good('unknown-version'), model_version: '9' }),
      () => client.sendText({ ...good('bad-shape'), inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 5], data: [1, 2, 3, 4, 5] }] }),
      () => client.sendText({ ...good('bad-type'), inputs: [{ name: 'x', datatype: 'INT32', shape: [1, 4], data: [1, 2, 3, 4] }] }),
      () => client.sendText({ ...good('x'), id: undefined }), // no id
      () => client.sendText('{"model_name": "versioned", "inputs": [garbage'), // not JSON
      () => client.sendText('[1, 2, 3]'), // JSON, not a request
      () => client.sendText({ id: 'not-a-request', hello: 'world' }),
      () => client.sendBinary(Buffer.from([7, 0])), // shorter than the length prefix
      () => client.sendBinary(binaryFrame(good('cut-json')).subarray(0, 30)), // JSON cut short
      () => client.sendBinary(binaryFrame({ ...good('cut-tensor'), inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], parameters: { binary_data_size: 16 } }] }, x).subarray(0, -6)),
      () => client.sendBinary(Buffer.concat([binaryFrame({ ...good('extra-bytes'), inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], parameters: { binary_data_size: 16 } }] }, x), Buffer.alloc(4)])),
      () => client.sendText(good('ok-text')),
      () => client.sendBinary(binaryFrame({ ...good('ok-binary'), inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], parameters: { binary_data_size: 16 } }] }, x)),
    ];
    for (const send of sends) send();
    await client.count(sends.length);
    await new Promise((r) => setTimeout(r, 50));
    expect(client.received).toBe(sends.length);
    expect(client.isOpen).toBe(true);

    const answers = client.frames.map(decodeAnswer);
    const withId = new Map(answers.filter((a) => a.json.id !== undefined).map((a) => [a.json.id, a]));
    const noId = answers.filter((a) => a.json.id === undefined).map((a) => a.json);
    const error = (id: string) => {
      const a = withId.get(id);
      expect(a, `an answer for ${id}`).toBeDefined();
      expect(a!.binary).toBe(false); // errors are text frames, even for binary requests
      expect(Object.keys(a!.json).sort()).toEqual(['code', 'error', 'id', 'status']);
      return a!.json as { code: string; status: number; error: string };
    };
    expect(error('unknown-model')).toMatchObject({ code: 'NOT_FOUND', status: 404, error: expect.stringContaining('nope') });
    expect(error('unknown-version')).toMatchObject({ code: 'NOT_FOUND', status: 404, error: expect.stringContaining('9') });
    expect(error('bad-shape')).toEqual({ id: 'bad-shape', code: 'INVALID_INPUT', status: 400, error: "input 'x': expected shape [-1,4], got [1,5]" });
    expect(error('bad-type')).toEqual({ id: 'bad-type', code: 'INVALID_INPUT', status: 400, error: "input 'x': expected datatype FP32, got INT32" });
    expect(error('not-a-request')).toMatchObject({ code: 'INVALID_INPUT', status: 400, error: expect.stringContaining("'model_name' must be a non-empty string") });
    expect(error('extra-bytes')).toMatchObject({ code: 'INVALID_INPUT', status: 400, error: expect.stringContaining('20 bytes of binary data but the inputs\' binary_data_size add up to 16') });
    expect(error('cut-tensor')).toMatchObject({ code: 'INVALID_INPUT', status: 400, error: expect.stringContaining("input 'x': binary_data_size 16 runs past the end") });
    // Frames whose id could not be read get error frames without one, each naming the problem.
    expect(noId.map((e) => [e.code, e.status])).toEqual(Array(5).fill(['INVALID_INPUT', 400]));
    expect(noId.map((e) => e.error)).toEqual([
      expect.stringContaining("every stream request needs an 'id'"),
      expect.stringContaining('malformed JSON'),
      expect.stringContaining('must be a JSON object, got [1,2,3]'),
      expect.stringContaining('binary frame of 2 bytes is too short'),
      expect.stringMatching(/^binary frame JSON length \d+ is beyond the end of the frame/),
    ]);
    // The good requests sent after all of that were answered, in their own frame types.
    expect(withId.get('ok-text')!.binary).toBe(false);
    expect(withId.get('ok-text')!.json.outputs[0].data).toEqual([3, 4, 5, 6]);
    expect(withId.get('ok-binary')!.binary).toBe(true);
    expect(Array.from(f32(withId.get('ok-binary')!.tensors.y!))).toEqual([3, 4, 5, 6]);
    client.close();
  });
});

describe('stream and HTTP share dynamic batches', () => {
  it('under concurrent load: fewer engine runs than inferences, every answer right', async () => {
    const before = await stats('mlp');
    const client = await StreamClient.connect(h.base); // binary frames; queues past 256 itself
    const WS = 1500;
    const HTTP = 300;
    const ws = Promise.all(
      Array.from({ length: WS }, (_, n) =>
        client.infer('mlp', { input: { shape: [1, 256], data: mlpInput(20_000 + n) } }).then((r) => close(r.outputs.output!.data as Float32Array, mlpReference(W, mlpInput(20_000 + n)), 1e-4)),
      ),
    );
    expect(client.inflight).toBe(256);
    expect(client.queued).toBe(WS - 256);
    let next = 0;
    const httpWorker = async (): Promise<(string | undefined)[]> => {
      const out: (string | undefined)[] = [];
      while (next < HTTP) {
        const n = 30_000 + next++;
        const { body, headerLength } = binaryRequest([{ name: 'input', datatype: 'FP32', shape: [1, 256], bytes: bytes(mlpInput(n)) }], { parameters: { binary_data_output: true } });
        const r = await postBinary(h.base, '/v2/models/mlp/infer', body, headerLength);
        out.push(r.status !== 200 ? `HTTP ${r.status}` : close(f32(r.binary.output!), mlpReference(W, mlpInput(n)), 1e-4));
      }
      return out;
    };
    const [wsProblems, ...httpProblems] = await Promise.all([ws, ...Array.from({ length: 16 }, httpWorker)]);
    await client.close();
    expect(wsProblems.filter((p) => p !== undefined)).toEqual([]);
    expect(httpProblems.flat().filter((p) => p !== undefined)).toEqual([]);

    const after = await stats('mlp');
    const inferences = after.inference_count - before.inference_count;
    const runs = after.execution_count - before.execution_count;
    expect(inferences).toBe(WS + HTTP);
    expect(runs).toBeLessThan(inferences);
  });

  it('one HTTP and one stream request sent while the model is busy run as one batch of 2', async () => {
    const x = (n: number) => Float32Array.from({ length: PAIR.width }, (_, i) => ((i * 7 + n * 13) % 17) - 8 + 0.5);
    const before = await stats('pair');
    expect(before.execution_count).toBe(0);
    const client = await StreamClient.connect(h.base);
    // A 3-row batch occupies the only instance (~0.1 s or more)...
    const blockerInput = Float32Array.from({ length: 3 * PAIR.width }, (_, i) => (i % 5) - 2 + 0.5);
    const blocker = client.infer('pair', { x: { shape: [3, PAIR.width], data: blockerInput } });
    await new Promise((r) => setTimeout(r, 20));
    // ...so these two queue together and go as the preferred batch size, 2. Had either joined
    // the blocker's batch, the stats would show batches of 4 and 1 instead of 3 and 2.
    const [viaWs, viaHttp] = await Promise.all([
      client.infer('pair', { x: { shape: [1, PAIR.width], data: x(1) } }, { binary: false }),
      postJson(h.base, '/v2/models/pair/infer', { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, PAIR.width], data: Array.from(x(2)) }] }),
    ]);
    const b = await blocker;
    await client.close();
    expect(Array.from(b.outputs.y!.data as Float32Array)).toEqual(Array.from(slowReference(blockerInput, PAIR)));
    expect(Array.from(viaWs.outputs.y!.data as Float32Array)).toEqual(Array.from(slowReference(x(1), PAIR)));
    expect(viaHttp.status).toBe(200);
    expect(viaHttp.json.outputs[0].data).toEqual(Array.from(slowReference(x(2), PAIR)));

    const after = await stats('pair');
    expect(after.inference_count).toBe(5);
    expect(after.execution_count).toBe(2);
    const batches = Object.fromEntries(after.batch_stats.map((s: { batch_size: number; compute_infer: { count: number } }) => [s.batch_size, s.compute_infer.count]));
    expect(batches).toEqual({ 2: 1, 3: 1 });
  });
});
