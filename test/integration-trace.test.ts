/**
 * Triton's trace extension against a real server: settings round trip in Triton's shape,
 * sampled requests (and only those) written as JSON lines with stage timestamps in order, the
 * count limit, model overrides and their removal with null, and the file rules (a plain
 * name inside --trace-dir; no --trace-dir, no trace file).
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mlpModel } from './fixtures/models';
import { call, postJson, startHarness, type Harness } from './helpers/server-harness';
import { tempDir } from './helpers/engine-run';
import { StreamClient } from '../lib/client/stream-client';

const MLP = { inputDim: 4, hidden: 8, outputDim: 2 };
const model = { name: 'mlp', versions: { 1: (d: string) => mlpModel(d, { ...MLP, file: 'model.onnx' }) } };

function infer(h: Harness, id: string) {
  return postJson(h.base, '/v2/models/mlp/infer', { id, inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [0.1, 0.2, 0.3, 0.4] }] });
}

/** The file's lines once it has `n` of them (traces are written after the answer, asynchronously). */
async function linesOf(file: string, n: number): Promise<string[]> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const lines = existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter((l) => l !== '') : [];
    if (lines.length >= n || Date.now() > deadline) return lines;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Stage names and exact nanosecond stamps of a trace line (ns are past 2^53: read as BigInt). */
function stampsOf(line: string): { name: string; ns: bigint }[] {
  return [...line.matchAll(/\{"name":"([A-Z_]+)","ns":(\d+)\}/g)].map((m) => ({ name: m[1]!, ns: BigInt(m[2]!) }));
}

describe('trace extension', () => {
  let h: Harness;
  const dir = tempDir('tw-trace-dir-');

  beforeAll(async () => {
    h = await startHarness({ models: [model], traceDir: dir.dir, security: {} });
  }, 60_000);
  afterAll(async () => {
    await h?.close();
    dir.cleanup();
  });

  it('answers the global settings in Triton\'s shape, OFF by default', async () => {
    const r = await call(h.base, '/v2/trace/setting');
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ trace_level: ['OFF'], trace_rate: '1000', trace_count: '-1', log_frequency: '0', trace_file: '', trace_mode: 'triton' });
    expect((await call(h.base, '/v2')).json.extensions).toEqual(expect.arrayContaining(['trace', 'logging']));
  });

  it('refuses trace files outside the trace directory and levels without a file', async () => {
    for (const file of ['../escape.jsonl', '/etc/passwd', 'a/b.jsonl', '..', '.hidden', 'x'.repeat(200)]) {
      const r = await postJson(h.base, '/v2/trace/setting', { trace_file: file });
      expect(r.status, file).toBe(400);
      expect(r.json.error).toMatch(/trace_file .* must be a plain file name inside --trace-dir/);
    }
    const noFile = await postJson(h.base, '/v2/trace/setting', { trace_level: ['TIMESTAMPS'] });
    expect(noFile.status).toBe(400);
    expect(noFile.json.error).toMatch(/trace_level TIMESTAMPS needs a trace_file/);
    for (const [body, what] of [
      [{ trace_rate: '0' }, /trace_rate must be an integer from 1 to 2147483647/],
      [{ trace_rate: '99999999999' }, /trace_rate must be an integer/],
      [{ trace_count: '-2' }, /trace_count must be an integer from -1/],
      [{ log_frequency: 'often' }, /log_frequency must be an integer/],
      [{ trace_level: ['TENSORS'] }, /TENSORS" is not supported/],
      [{ trace_level: ['OFF', 'TIMESTAMPS'] }, /"OFF" must be the only level/],
      [{ trace_sampling: '1' }, /unknown trace setting 'trace_sampling'/],
      [{ trace_rate: null }, /null removes a model's override/],
    ] as const) {
      const r = await postJson(h.base, '/v2/trace/setting', body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.json.error).toMatch(what);
    }
    // A state-changing control route takes JSON only (the browser-checks rule).
    const form = await call(h.base, '/v2/trace/setting', { method: 'POST', body: '{"trace_rate":"5"}', headers: { 'content-type': 'text/plain' } });
    expect(form.status).toBe(400);
    expect(readdirSync(dir.dir)).toEqual([]);
    expect((await call(h.base, '/v2/trace/setting')).json.trace_rate).toBe('1000');
  });

  it('writes every rate-th request, up to the count, with stage timestamps in order', async () => {
    const set = await postJson(h.base, '/v2/trace/setting', { trace_file: 'global.jsonl', trace_level: ['TIMESTAMPS'], trace_rate: '3', trace_count: '2' });
    expect(set.status).toBe(200);
    expect(set.json).toEqual({ trace_level: ['TIMESTAMPS'], trace_rate: '3', trace_count: '2', log_frequency: '0', trace_file: 'global.jsonl', trace_mode: 'triton' });
    for (let i = 1; i <= 9; i++) expect((await infer(h, `r${i}`)).status).toBe(200);
    const lines = await linesOf(join(dir.dir, 'global.jsonl'), 2);
    // Requests 3 and 6 were sampled; the count (2) then ran out, so 9 was not.
    expect(lines.map((l) => JSON.parse(l).request_id)).toEqual(['r3', 'r6']);
    const first = JSON.parse(lines[0]!);
    expect(first).toMatchObject({ model_name: 'mlp', model_version: '1' });
    const stamps = stampsOf(lines[0]!);
    expect(stamps.map((s) => s.name)).toEqual(['REQUEST_START', 'QUEUE_START', 'COMPUTE_START', 'COMPUTE_INPUT_END', 'COMPUTE_OUTPUT_START', 'COMPUTE_END', 'REQUEST_END', 'HTTP_SEND_END']);
    for (let i = 1; i < stamps.length; i++) expect(stamps[i]!.ns >= stamps[i - 1]!.ns, stamps[i]!.name).toBe(true);
    // Nanoseconds since the epoch, within the last minute.
    const nowNs = BigInt(Date.now()) * 1_000_000n;
    expect(nowNs - stamps[0]!.ns < 60_000_000_000n && stamps[0]!.ns <= nowNs + 1_000_000_000n).toBe(true);
    expect((await call(h.base, '/v2/trace/setting')).json.trace_count).toBe('0');
    // Nothing more is written once the count is spent.
    await infer(h, 'r10');
    await new Promise((r) => setTimeout(r, 200));
    expect(await linesOf(join(dir.dir, 'global.jsonl'), 0)).toHaveLength(2);
  });

  it('a model override takes precedence and null removes it', async () => {
    expect((await postJson(h.base, '/v2/trace/setting', { trace_count: '-1', trace_rate: '1000' })).status).toBe(200);
    const set = await postJson(h.base, '/v2/models/mlp/trace/setting', { trace_file: 'mlp.jsonl', trace_rate: '1', trace_count: '2' });
    expect(set.status).toBe(200);
    expect(set.json).toMatchObject({ trace_level: ['TIMESTAMPS'], trace_rate: '1', trace_count: '2', trace_file: 'mlp.jsonl' });
    expect((await call(h.base, '/v2/trace/setting')).json).toMatchObject({ trace_rate: '1000', trace_file: 'global.jsonl' });
    for (let i = 1; i <= 3; i++) await infer(h, `m${i}`);
    expect((await linesOf(join(dir.dir, 'mlp.jsonl'), 2)).map((l) => JSON.parse(l).request_id)).toEqual(['m1', 'm2']);
    const cleared = await postJson(h.base, '/v2/models/mlp/trace/setting', { trace_file: null, trace_rate: null, trace_count: null });
    expect(cleared.status).toBe(200);
    expect(cleared.json).toEqual((await call(h.base, '/v2/trace/setting')).json);
    expect((await call(h.base, '/v2/models/ghost/trace/setting')).status).toBe(404);
    expect((await postJson(h.base, '/v2/models/ghost/trace/setting', { trace_rate: '1' })).status).toBe(404);
    expect((await postJson(h.base, '/v2/trace/setting', { trace_level: ['OFF'] })).json.trace_level).toEqual(['OFF']);
  });

  it('traces failed requests and stream requests too', async () => {
    expect((await postJson(h.base, '/v2/trace/setting', { trace_file: 'more.jsonl', trace_level: ['TIMESTAMPS'], trace_rate: '1', trace_count: '2', log_frequency: '0' })).status).toBe(200);
    const bad = await postJson(h.base, '/v2/models/mlp/infer', { id: 'bad', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 3], data: [1, 2, 3] }] });
    expect(bad.status).toBe(400);
    const client = await StreamClient.connect(h.base);
    try {
      await client.infer('mlp', { input: { shape: [1, 4], data: new Float32Array([0.1, 0.2, 0.3, 0.4]) } });
    } finally {
      await client.close();
    }
    const lines = await linesOf(join(dir.dir, 'more.jsonl'), 2);
    expect(JSON.parse(lines[0]!)).toMatchObject({ request_id: 'bad', error: 'INVALID_INPUT' });
    expect(stampsOf(lines[0]!).map((s) => s.name)).toEqual(['REQUEST_START', 'REQUEST_END', 'HTTP_SEND_END']);
    expect(stampsOf(lines[1]!).map((s) => s.name).at(-1)).toBe('STREAM_SEND_END');
  });

  it('rotates files every log_frequency traces', async () => {
    expect((await postJson(h.base, '/v2/trace/setting', { trace_file: 'rot.jsonl', trace_level: ['TIMESTAMPS'], trace_rate: '1', trace_count: '3', log_frequency: '2' })).status).toBe(200);
    for (let i = 1; i <= 3; i++) await infer(h, `f${i}`);
    expect((await linesOf(join(dir.dir, 'rot.jsonl.0'), 2)).map((l) => JSON.parse(l).request_id)).toEqual(['f1', 'f2']);
    expect((await linesOf(join(dir.dir, 'rot.jsonl.1'), 1)).map((l) => JSON.parse(l).request_id)).toEqual(['f3']);
    expect(existsSync(join(dir.dir, 'rot.jsonl'))).toBe(false);
  });
});

describe('trace extension without --trace-dir', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ models: [model] });
  }, 60_000);
  afterAll(() => h?.close());

  it('refuses trace_file with a 400 naming the flag', async () => {
    const r = await postJson(h.base, '/v2/trace/setting', { trace_file: 'trace.jsonl', trace_level: ['TIMESTAMPS'] });
    expect(r.status).toBe(400);
    expect(r.json.error).toMatch(/started without --trace-dir DIR/);
    expect((await call(h.base, '/v2/trace/setting')).json.trace_level).toEqual(['OFF']);
    // The rest of the settings still round-trip.
    expect((await postJson(h.base, '/v2/trace/setting', { trace_rate: '10' })).json.trace_rate).toBe('10');
  });
});

describe('serve flags', () => {
  it('reads --trace-dir and --allow-model-upload, and refuses a trace directory that does not exist', async () => {
    const { parseServeArgs } = await import('../lib/cli');
    expect(parseServeArgs(['--repo', 'r', '--trace-dir', 'traces', '--allow-model-upload'])).toMatchObject({ traceDir: 'traces', allowModelUpload: true });
    expect(parseServeArgs(['--repo', 'r'])).not.toHaveProperty('allowModelUpload');
    const { startServer } = await import('../lib/server/server');
    const { FakeService } = await import('./server-fixture');
    const gone = tempDir('tw-gone-');
    try {
      expect(() => startServer(new FakeService(), { port: 0, traceDir: join(gone.dir, 'missing') })).toThrow(/traceDir must be an existing directory/);
    } finally {
      gone.cleanup();
    }
  });
});
