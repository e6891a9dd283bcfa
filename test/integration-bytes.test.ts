/**
 * BYTES (string) tensors end to end against the real server, engine and ONNX Runtime: an
 * identity model on strings (JSON, binary extension, stream text and binary frames, batched
 * requests of different sizes under the dynamic batcher), a text model whose first node
 * reads strings, a string output that is not UTF-8, every malformed BYTES input, and
 * TYPE_STRING in a Triton config.
 */
import { afterAll, beforeAll, describe, expect, it, test } from 'vitest';
import { bytesTensorStrings, HttpClient, StreamClient } from '../lib/client';
import { MAX_BYTES_INPUT_ELEMENTS, serializeBytesElements } from '../lib/protocol/bytes-tensor';
import { labelModel, NOT_UTF8, stringIdentityModel, textModel, TEXT_VOCABULARY } from './fixtures/string-models';
import { binaryRequest, call, postBinary, postJson, startHarness, type Harness } from './helpers/server-harness';
import { binaryFrame, decodeAnswer, RawStream } from './helpers/raw-stream';

let h: Harness;

beforeAll(async () => {
  h = await startHarness({
    models: [
      {
        name: 'echo',
        versions: { 1: async (d) => stringIdentityModel(d) },
        config: { max_batch_size: 16, dynamic_batching: { max_queue_delay_microseconds: 20000 }, instance_group: [{ count: 1, kind: 'KIND_CPU' }] },
      },
      { name: 'text', versions: { 1: async (d) => textModel(d) } },
      { name: 'wide', versions: { 1: async (d) => stringIdentityModel(d, 'model.onnx', -1) }, config: { max_batch_size: 1 } },
      { name: 'labels', versions: { 1: async (d) => labelModel(d) } },
      {
        name: 'echo_pbtxt',
        versions: { 1: async (d) => stringIdentityModel(d) },
        pbtxt: [
          'max_batch_size: 4',
          'input [ { name: "text" data_type: TYPE_STRING dims: [ 2 ] } ]',
          'output [ { name: "echo" data_type: TYPE_STRING dims: [ 2 ] } ]',
        ].join('\n'),
      },
    ],
  });
});
afterAll(async () => {
  await h?.close();
});

const infer = (model: string, body: unknown) => postJson(h.base, `/v2/models/${model}/infer`, body);

describe('an identity model on strings', () => {
  it('metadata reports BYTES', async () => {
    const r = await call(h.base, '/v2/models/echo');
    expect(r.status).toBe(200);
    expect(r.json.inputs).toEqual([{ name: 'text', datatype: 'BYTES', shape: [-1, 2] }]);
    expect(r.json.outputs).toEqual([{ name: 'echo', datatype: 'BYTES', shape: [-1, 2] }]);
  });

  it('JSON in, JSON out: nested and flat data, empty strings, non-ASCII, embedded NUL', async () => {
    const words = ['hello', '', 'ünïcødé ✓', 'a\u0000b', 'x'.repeat(1000), '"quoted"\n'];
    const r = await infer('echo', { inputs: [{ name: 'text', datatype: 'BYTES', shape: [3, 2], data: [words.slice(0, 2), words.slice(2, 4), words.slice(4)] }] });
    expect(r.status).toBe(200);
    expect(r.json.outputs[0]).toEqual({ name: 'echo', datatype: 'BYTES', shape: [3, 2], data: words });
  });

  it('binary in, binary out: binary_data_size is the serialized size both ways, bytes exact', async () => {
    const elements = [Buffer.from('first'), Buffer.from([0, 1, 2]), Buffer.from('ünï'), Buffer.alloc(0)];
    const serialized = serializeBytesElements(elements.map((e) => e.toString('utf8')));
    const { body, headerLength } = binaryRequest([{ name: 'text', datatype: 'BYTES', shape: [2, 2], bytes: serialized }], { parameters: { binary_data_output: true } });
    const r = await postBinary(h.base, '/v2/models/echo/infer', body, headerLength);
    expect(r.status).toBe(200);
    expect(r.json.outputs[0]).toMatchObject({ name: 'echo', datatype: 'BYTES', shape: [2, 2], parameters: { binary_data_size: serialized.byteLength } });
    expect(Buffer.compare(r.binary.echo!, serialized)).toBe(0);
  });

  it('binary in, JSON out', async () => {
    const serialized = serializeBytesElements(['a', 'bb', 'ccc', 'dddd']);
    const { body, headerLength } = binaryRequest([{ name: 'text', datatype: 'BYTES', shape: [2, 2], bytes: serialized }]);
    const r = await postBinary(h.base, '/v2/models/echo/infer', body, headerLength);
    expect(r.status).toBe(200);
    expect(r.json.outputs[0].data).toEqual(['a', 'bb', 'ccc', 'dddd']);
  });

  it('batched requests of different sizes under the dynamic batcher: each gets its own strings back', async () => {
    const sizes = [1, 3, 2, 5, 1, 4, 2, 3];
    const replies = await Promise.all(
      sizes.map((rows, k) => {
        // Strings of different lengths per request, so a split by fixed row size would mix them.
        const data = Array.from({ length: rows * 2 }, (_, i) => `req${k}-el${i}-${'z'.repeat((k * 7 + i) % 13)}`);
        return infer('echo', { id: `r${k}`, inputs: [{ name: 'text', datatype: 'BYTES', shape: [rows, 2], data }] }).then((r) => ({ r, data, rows, k }));
      }),
    );
    for (const { r, data, rows, k } of replies) {
      expect(r.status).toBe(200);
      expect(r.json.id).toBe(`r${k}`);
      expect(r.json.outputs[0].shape).toEqual([rows, 2]);
      expect(r.json.outputs[0].data).toEqual(data);
    }
    const stats = await call(h.base, '/v2/models/echo/stats');
    const s = stats.json.model_stats[0];
    // Fewer batches than requests: the batcher put several requests into one run.
    expect(s.inference_count).toBeGreaterThanOrEqual(sizes.reduce((a, b) => a + b, 0));
    expect(s.execution_count).toBeLessThan(s.inference_count);
  });

  it('the stream: text frames answer strings, binary frames answer the serialized bytes', async () => {
    const ws = await RawStream.open(h.base);
    try {
      ws.sendText({ id: 't1', model_name: 'echo', inputs: [{ name: 'text', datatype: 'BYTES', shape: [1, 2], data: ['in a', 'text frame'] }] });
      const serialized = serializeBytesElements(['in a', 'binary frame', 'ünï', '']);
      ws.sendBinary(binaryFrame({ id: 'b1', model_name: 'echo', inputs: [{ name: 'text', datatype: 'BYTES', shape: [2, 2], parameters: { binary_data_size: serialized.byteLength } }] }, serialized));
      await ws.count(2);
      const answers = ws.byId();
      expect(answers.get('t1')!.binary).toBe(false);
      expect(answers.get('t1')!.json.outputs[0]).toEqual({ name: 'echo', datatype: 'BYTES', shape: [1, 2], data: ['in a', 'text frame'] });
      const b = answers.get('b1')!;
      expect(b.binary).toBe(true);
      expect(b.json.outputs[0].parameters.binary_data_size).toBe(serialized.byteLength);
      expect(Buffer.compare(b.tensors.echo!, serialized)).toBe(0);
    } finally {
      ws.ws.close();
    }
  });

  it('a JSON body over 64 KiB (decoded off the event loop, in a worker) answers the same strings', async () => {
    const data = Array.from({ length: 16 * 2 }, (_, i) => `${i}:` + 'long text '.repeat(300));
    const r = await infer('echo', { inputs: [{ name: 'text', datatype: 'BYTES', shape: [16, 2], data }] });
    expect(r.status).toBe(200);
    expect(r.json.outputs[0].data).toEqual(data);
  });

  it('TYPE_STRING in config.pbtxt is BYTES', async () => {
    const meta = await call(h.base, '/v2/models/echo_pbtxt');
    expect(meta.status).toBe(200);
    expect(meta.json.inputs[0]).toEqual({ name: 'text', datatype: 'BYTES', shape: [-1, 2] });
    const r = await infer('echo_pbtxt', { inputs: [{ name: 'text', datatype: 'BYTES', shape: [1, 2], data: ['p', 'q'] }] });
    expect(r.json.outputs[0].data).toEqual(['p', 'q']);
  });
});

describe('the clients', () => {
  test.each([true, false])('HttpClient, binary=%s: strings in, the serialized form out, read back as strings', async (binary) => {
    const client = new HttpClient({ url: h.base });
    const r = await client.infer('echo', { text: { datatype: 'BYTES', shape: [2, 2], data: ['a', 'ünï', '', 'zz'] } }, { binary });
    const out = r.outputs.echo!;
    expect(out.datatype).toBe('BYTES');
    expect(out.shape).toEqual([2, 2]);
    expect(bytesTensorStrings(out)).toEqual(['a', 'ünï', '', 'zz']);
  });

  test.each([true, false])('StreamClient, binary=%s', async (binary) => {
    const client = await StreamClient.connect({ url: h.base, binary });
    try {
      const r = await client.infer('echo', { text: { datatype: 'BYTES', shape: [1, 2], data: ['over', 'the stream'] } });
      expect(bytesTensorStrings(r.outputs.echo!)).toEqual(['over', 'the stream']);
    } finally {
      await client.close();
    }
  });
});

describe('a text model whose first node reads strings', () => {
  it('maps words to ids, then computes on them', async () => {
    const words = ['dog', 'unknown', 'ünïcødé', 'cat'];
    const r = await infer('text', { inputs: [{ name: 'word', datatype: 'BYTES', shape: [4, 1], data: words.map((w) => [w]) }] });
    expect(r.status).toBe(200);
    const ids = words.map((w) => TEXT_VOCABULARY.indexOf(w));
    const byName = Object.fromEntries(r.json.outputs.map((o: { name: string; data: number[] }) => [o.name, o.data]));
    expect(byName.id).toEqual(ids);
    expect(byName.score).toEqual(ids.map((i) => (i + 1) * 0.5));
  });
});

describe('a string output that is not UTF-8', () => {
  it('binary output carries the raw bytes', async () => {
    const r = await infer('labels', { inputs: [{ name: 'code', datatype: 'INT64', shape: [3, 1], data: [0, 1, 7] }], parameters: { binary_data_output: true } });
    expect(r.status).toBe(200);
    const { body, headerLength } = binaryRequest([{ name: 'code', datatype: 'INT64', shape: [3, 1], bytes: new Uint8Array(new BigInt64Array([0n, 1n, 7n]).buffer) }], { parameters: { binary_data_output: true } });
    const b = await postBinary(h.base, '/v2/models/labels/infer', body, headerLength);
    expect(b.status).toBe(200);
    const expected = Buffer.concat([serializeBytesElements(['zero']), serializeBytesElements([NOT_UTF8]), serializeBytesElements(['other'])]);
    expect(Buffer.compare(b.binary.label!, expected)).toBe(0);
  });

  it('JSON output is a 400 naming the output and the element (JSON text cannot carry the bytes), and the server keeps serving', async () => {
    const r = await infer('labels', { inputs: [{ name: 'code', datatype: 'INT64', shape: [3, 1], data: [0, 1, 7] }] });
    expect(r.status).toBe(400);
    expect(r.json.code).toBe('INVALID_INPUT');
    expect(r.json.error).toContain("output 'label'");
    expect(r.json.error).toContain('element 1 is not valid UTF-8');
    const ok = await infer('labels', { inputs: [{ name: 'code', datatype: 'INT64', shape: [2, 1], data: [0, 7] }] });
    expect(ok.json.outputs[0].data).toEqual(['zero', 'other']);
  });
});

describe('malformed BYTES inputs get a 400 naming the tensor and the element', () => {
  const bad = async (body: { body: Buffer; headerLength: number }, ...parts: string[]) => {
    const r = await postBinary(h.base, '/v2/models/echo/infer', body.body, body.headerLength);
    expect(r.status).toBe(400);
    expect(r.json.code).toBe('INVALID_INPUT');
    for (const p of parts) expect(r.json.error).toContain(p);
  };

  it('invalid UTF-8 for a string tensor', async () => {
    const serialized = serializeBytesElements(['ok', NOT_UTF8]);
    await bad(binaryRequest([{ name: 'text', datatype: 'BYTES', shape: [1, 2], bytes: serialized }]), "input 'text'", 'element 1 is not valid UTF-8');
  });

  it('a length prefix running past the data', async () => {
    const serialized = serializeBytesElements(['ok', 'fine']);
    serialized.writeUInt32LE(1000, 6); // element 1 declares 1000 bytes
    await bad(binaryRequest([{ name: 'text', datatype: 'BYTES', shape: [1, 2], bytes: serialized }]), "input 'text'", 'element 1 declares 1000 bytes');
  });

  it('a prefix claiming 4 GiB does not allocate anything', async () => {
    const serialized = serializeBytesElements(['ok', 'fine']);
    serialized.writeUInt32LE(0xffffffff, 0);
    await bad(binaryRequest([{ name: 'text', datatype: 'BYTES', shape: [1, 2], bytes: serialized }]), "input 'text'", 'element 0 declares 4294967295 bytes');
  });

  it('more elements than a request may carry: refused before any walk (16M empty strings cost 150-250 ms of event loop)', async () => {
    const count = MAX_BYTES_INPUT_ELEMENTS + 1;
    const serialized = Buffer.alloc(count * 4); // every element an empty string
    await bad(binaryRequest([{ name: 'text', datatype: 'BYTES', shape: [1, count], bytes: serialized }]), "input 'text'", `at most ${MAX_BYTES_INPUT_ELEMENTS} elements per request, got ${count}`);
    // At the bound it is served (the echo model returns every element).
    const ok = binaryRequest([{ name: 'text', datatype: 'BYTES', shape: [1, MAX_BYTES_INPUT_ELEMENTS], bytes: Buffer.alloc(MAX_BYTES_INPUT_ELEMENTS * 4) }], { parameters: { binary_data_output: true } });
    const atBound = await postBinary(h.base, '/v2/models/wide/infer', ok.body, ok.headerLength);
    expect(atBound.status, atBound.body.toString('utf8', 0, 300)).toBe(200);
  });

  it('fewer elements than the shape says', async () => {
    await bad(binaryRequest([{ name: 'text', datatype: 'BYTES', shape: [2, 2], bytes: serializeBytesElements(['a', 'b', 'c']) }]), "input 'text'", 'the shape says 4 BYTES elements but the data ends after 3');
  });

  it('more elements than the shape says', async () => {
    await bad(binaryRequest([{ name: 'text', datatype: 'BYTES', shape: [1, 2], bytes: serializeBytesElements(['a', 'b', 'c']) }]), "input 'text'", 'holds 5 more bytes after them');
  });

  it('JSON: a non-string element, and a count that does not match the shape', async () => {
    const n = await infer('echo', { inputs: [{ name: 'text', datatype: 'BYTES', shape: [1, 2], data: ['a', 7] }] });
    expect(n.status).toBe(400);
    expect(n.json.error).toContain("input 'text'");
    expect(n.json.error).toContain('BYTES element 1 must be a string, got number 7');
    const o = await infer('echo', { inputs: [{ name: 'text', datatype: 'BYTES', shape: [1, 2], data: ['a', { x: 1 }] }] });
    expect(o.json.error).toContain('BYTES element 1 must be a string, got an object');
    const s = await postJson(h.base, '/v2/models/echo/infer', '{"inputs":[{"name":"text","datatype":"BYTES","shape":[1,2],"data":["ok \\ud83d\\ude00","\\ud800"]}]}');
    expect(s.status).toBe(400);
    expect(s.json.error).toContain("input 'text': BYTES element 1 is not valid Unicode text (a lone surrogate)");
    const c = await infer('echo', { inputs: [{ name: 'text', datatype: 'BYTES', shape: [2, 2], data: ['a', 'b', 'c'] }] });
    expect(c.status).toBe(400);
    expect(c.json.error).toContain('expected 4 BYTES values for shape [2,2], got 3');
  });

  it('BYTES given to a numeric input, and numbers to a string input', async () => {
    const r = await infer('text', { inputs: [{ name: 'word', datatype: 'FP32', shape: [1, 1], data: [1] }] });
    expect(r.status).toBe(400);
    expect(r.json.error).toContain("input 'word': expected datatype BYTES, got FP32");
  });

  it('the stream answers a malformed BYTES frame with an error frame and keeps serving', async () => {
    const ws = await RawStream.open(h.base);
    try {
      const broken = serializeBytesElements(['a', 'b']);
      broken.writeUInt32LE(99, 5);
      ws.sendBinary(binaryFrame({ id: 'bad', model_name: 'echo', inputs: [{ name: 'text', datatype: 'BYTES', shape: [1, 2], parameters: { binary_data_size: broken.byteLength } }] }, broken));
      ws.sendText({ id: 'good', model_name: 'echo', inputs: [{ name: 'text', datatype: 'BYTES', shape: [1, 2], data: ['still', 'here'] }] });
      await ws.count(2);
      const answers = new Map(ws.frames.map((f) => decodeAnswer(f)).map((a) => [String(a.json.id), a]));
      expect(answers.get('bad')!.json.code).toBe('INVALID_INPUT');
      expect(answers.get('bad')!.json.error).toContain('BYTES element 1 declares 99 bytes');
      expect(answers.get('good')!.json.outputs[0].data).toEqual(['still', 'here']);
    } finally {
      ws.ws.close();
    }
  });
});
