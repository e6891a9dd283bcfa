/**
 * Triton's system shared memory extension against a real server and real POSIX shared
 * memory: the test creates each object as shm_open does on Linux (a file in /dev/shm), the
 * server maps it through the addon, and values are checked on both sides. /proc/self/maps
 * (the server runs in this process) shows whether an object is still mapped.
 */
import { existsSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { multiIoModel, slowModel, slowReference } from './fixtures/models';
import { call, postJson, startHarness, type Harness } from './helpers/server-harness';
import { decodeAnswer, RawStream } from './helpers/raw-stream';

const SHM_DIR = '/dev/shm';
let counter = 0;
const created: string[] = [];

/** A fresh shared memory object holding `bytes` (or `size` zero bytes); returns its key. */
function createShm(contents: Uint8Array | number): string {
  const key = `/tw-test-${process.pid}-${++counter}`;
  const bytes = typeof contents === 'number' ? new Uint8Array(contents) : contents;
  writeFileSync(SHM_DIR + key, bytes);
  created.push(SHM_DIR + key);
  return key;
}

function readShm(key: string): Buffer {
  return readFileSync(SHM_DIR + key);
}

/** True while the object behind `key` is mapped into this process. */
function isMapped(key: string): boolean {
  return readFileSync('/proc/self/maps', 'utf8').includes(SHM_DIR + key);
}

function register(h: Harness, name: string, body: unknown) {
  return postJson(h.base, `/v2/systemsharedmemory/region/${encodeURIComponent(name)}/register`, body);
}

function unregister(h: Harness, name?: string) {
  return postJson(h.base, name === undefined ? '/v2/systemsharedmemory/unregister' : `/v2/systemsharedmemory/region/${encodeURIComponent(name)}/unregister`, {});
}

const A = [1, 2, 3, -4, 5, 6];
const B = [0.5, 1.5, -2.5, 3.25, 4, 0];

function int64Bytes(values: number[]): Uint8Array {
  return new Uint8Array(BigInt64Array.from(values.map(BigInt)).buffer);
}
function f32Bytes(values: number[]): Uint8Array {
  return new Uint8Array(Float32Array.from(values).buffer);
}

const SLOW = { layers: 1500, width: 512 };
const SLOW_ROWS = 48;

describe('system shared memory', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness({
      models: [
        { name: 'multi_io', versions: { 1: (d) => multiIoModel(d, { file: 'model.onnx' }) } },
        { name: 'slow', versions: { 1: (d) => slowModel(d, { file: 'model.onnx', ...SLOW }) } },
      ],
    });
  }, 120_000);

  afterAll(async () => {
    await h?.close();
    for (const path of created) rmSync(path, { force: true });
  });

  it('advertises system_shared_memory and answers the CUDA routes as a server without CUDA regions', async () => {
    const meta = await call(h.base, '/v2');
    expect(meta.json.extensions).toContain('system_shared_memory');
    expect(meta.json.extensions).not.toContain('cuda_shared_memory');
    expect((await call(h.base, '/v2/cudasharedmemory/status')).json).toEqual([]);
    expect((await postJson(h.base, '/v2/cudasharedmemory/unregister', {})).status).toBe(200);
    expect((await postJson(h.base, '/v2/cudasharedmemory/region/x/unregister', {})).status).toBe(200);
    const reg = await postJson(h.base, '/v2/cudasharedmemory/region/x/register', { raw_handle: { b64: 'AA==' }, device_id: 0, byte_size: 4 });
    expect(reg.status).toBe(400);
    expect(reg.json.error).toMatch(/CUDA shared memory is not supported/);
    expect((await call(h.base, '/v2/cudasharedmemory/region/x/status')).status).toBe(404);
  });

  it('registers, reports and unregisters regions (Triton shapes), and maps only while registered', async () => {
    const key = createShm(8192);
    expect((await register(h, 'r1', { key, offset: 0, byte_size: 4096 })).status).toBe(200);
    expect((await register(h, 'r2', { key, offset: 100, byte_size: 50 })).status).toBe(200);
    expect(isMapped(key)).toBe(true);
    const all = await call(h.base, '/v2/systemsharedmemory/status');
    expect(all.status).toBe(200);
    expect(all.json).toEqual([
      { name: 'r1', key, offset: 0, byte_size: 4096 },
      { name: 'r2', key, offset: 100, byte_size: 50 },
    ]);
    const one = await call(h.base, '/v2/systemsharedmemory/region/r2/status');
    expect(one.json).toEqual([{ name: 'r2', key, offset: 100, byte_size: 50 }]);
    const missing = await call(h.base, '/v2/systemsharedmemory/region/nope/status');
    expect(missing.status).toBe(404);
    expect(missing.json.error).toMatch(/nope/);

    expect((await unregister(h, 'r1')).status).toBe(200);
    expect((await call(h.base, '/v2/systemsharedmemory/status')).json).toEqual([{ name: 'r2', key, offset: 100, byte_size: 50 }]);
    // Unknown names unregister fine, as in Triton.
    expect((await unregister(h, 'never-registered')).status).toBe(200);
    expect((await unregister(h)).status).toBe(200);
    expect((await call(h.base, '/v2/systemsharedmemory/status')).json).toEqual([]);
    expect(isMapped(key)).toBe(false);
  });

  it('refuses every bad registration with a 400 naming the field, and keeps serving', async () => {
    const key = createShm(4096);
    const cases: [unknown, RegExp][] = [
      [{ key: '/../etc/passwd', offset: 0, byte_size: 4 }, /"key".*must not contain '\/'/],
      [{ key: '/etc/passwd', offset: 0, byte_size: 4 }, /"key".*must not contain '\/'/],
      [{ key: 'relative', offset: 0, byte_size: 4 }, /"key".*POSIX shared memory name/],
      [{ key: '/..', offset: 0, byte_size: 4 }, /"key".*not '\.' or '\.\.'/],
      [{ key: '/' + 'x'.repeat(300), offset: 0, byte_size: 4 }, /"key".*longer than 255/],
      [{ key: `/tw-test-${process.pid}-absent`, offset: 0, byte_size: 4 }, /does not exist/],
      [{ key, offset: 4096, byte_size: 1 }, /offset 4096 is past the end/],
      [{ key, offset: 0, byte_size: 0 }, /"byte_size" must be a positive integer/],
      [{ key, offset: 4000, byte_size: 97 }, /byte_size 97 from offset 4000 runs past the end/],
      [{ key, offset: -1, byte_size: 4 }, /"offset" must be a non-negative integer/],
      [{ key, offset: 0, byte_size: '4' }, /"byte_size" must be a positive integer/],
      [{ offset: 0, byte_size: 4 }, /"key" is missing/],
      [[1, 2], /expected a JSON object/],
    ];
    for (const [body, message] of cases) {
      const reply = await register(h, 'bad', body);
      expect(reply.status, JSON.stringify(body)).toBe(400);
      expect(reply.json.error, JSON.stringify(body)).toMatch(message);
    }
    expect((await call(h.base, '/v2/systemsharedmemory/status')).json).toEqual([]);
    // The key's error message never carries the absolute path of the object.
    const absent = await register(h, 'bad', { key: `/tw-test-${process.pid}-absent`, offset: 0, byte_size: 4 });
    expect(absent.json.error).not.toMatch(/\/dev\/shm/);
  });

  it('refuses a key that is a symlink in /dev/shm to a file elsewhere', async () => {
    const link = `/tw-test-${process.pid}-link`;
    rmSync(SHM_DIR + link, { force: true });
    symlinkSync('/etc/hostname', SHM_DIR + link);
    created.push(SHM_DIR + link);
    const reply = await register(h, 'link', { key: link, offset: 0, byte_size: 1 });
    expect(reply.status).toBe(400);
    expect((await call(h.base, '/v2/systemsharedmemory/status')).json).toEqual([]);
  });

  it('refuses to register a name twice (400, as Triton) and keeps the first registration', async () => {
    const key = createShm(64);
    expect((await register(h, 'dup', { key, offset: 0, byte_size: 64 })).status).toBe(200);
    const again = await register(h, 'dup', { key, offset: 0, byte_size: 32 });
    expect(again.status).toBe(400);
    expect(again.json.error).toMatch(/'dup' is already registered/);
    expect((await call(h.base, '/v2/systemsharedmemory/region/dup/status')).json).toEqual([{ name: 'dup', key, offset: 0, byte_size: 64 }]);
    await unregister(h, 'dup');
  });

  it('runs inference with inputs read from and outputs written to shared memory; outputs carry no data', async () => {
    const input = new Uint8Array(48 + 24 + 8);
    input.set(int64Bytes(A), 0);
    input.set(f32Bytes(B), 56); // an offset that is not a multiple of 8 after the first tensor
    const inKey = createShm(input);
    const outKey = createShm(4096);
    expect((await register(h, 'in', { key: inKey, offset: 0, byte_size: input.byteLength })).status).toBe(200);
    // A region that starts mid-page: the server maps from the page boundary.
    expect((await register(h, 'out', { key: outKey, offset: 1000, byte_size: 2000 })).status).toBe(200);
    const reply = await postJson(h.base, '/v2/models/multi_io/infer', {
      id: 'shm-1',
      inputs: [
        { name: 'a', datatype: 'INT64', shape: [2, 3], parameters: { shared_memory_region: 'in', shared_memory_byte_size: 48 } },
        { name: 'b', datatype: 'FP32', shape: [2, 3], parameters: { shared_memory_region: 'in', shared_memory_offset: 56, shared_memory_byte_size: 24 } },
      ],
      outputs: [
        { name: 'sum', parameters: { shared_memory_region: 'out', shared_memory_offset: 16, shared_memory_byte_size: 24 } },
        { name: 'scaled', parameters: { shared_memory_region: 'out', shared_memory_offset: 100, shared_memory_byte_size: 64 } },
      ],
    });
    expect(reply.status, reply.text).toBe(200);
    expect(reply.json.id).toBe('shm-1');
    expect(reply.json.outputs).toEqual([
      { name: 'sum', datatype: 'FP32', shape: [2, 3], parameters: { shared_memory_region: 'out', shared_memory_offset: 16, shared_memory_byte_size: 24 } },
      { name: 'scaled', datatype: 'INT64', shape: [2, 3], parameters: { shared_memory_region: 'out', shared_memory_offset: 100, shared_memory_byte_size: 48 } },
    ]);
    const out = readShm(outKey);
    const sum = new Float32Array(out.buffer.slice(out.byteOffset + 1016, out.byteOffset + 1016 + 24));
    expect(Array.from(sum)).toEqual(A.map((a, i) => Math.fround(a + B[i]!)));
    const scaled = new BigInt64Array(out.buffer.slice(out.byteOffset + 1100, out.byteOffset + 1148));
    expect(Array.from(scaled, Number)).toEqual(A.map((a) => a * 2));
    // Bytes around the windows are untouched.
    expect(out[1015]).toBe(0);
    expect(out[1148]).toBe(0);

    // Mixed: an input in shared memory, the other as JSON; one output in shared memory, the other as data.
    const mixed = await postJson(h.base, '/v2/models/multi_io/infer', {
      inputs: [
        { name: 'a', datatype: 'INT64', shape: [2, 3], parameters: { shared_memory_region: 'in', shared_memory_byte_size: 48 } },
        { name: 'b', datatype: 'FP32', shape: [2, 3], data: B },
      ],
      outputs: [{ name: 'sum' }, { name: 'scaled', parameters: { shared_memory_region: 'out', shared_memory_byte_size: 48 } }],
    });
    expect(mixed.status, mixed.text).toBe(200);
    expect(mixed.json.outputs[0].data).toEqual(A.map((a, i) => Math.fround(a + B[i]!)));
    expect(mixed.json.outputs[1].data).toBeUndefined();
    const out2 = readShm(outKey);
    expect(Array.from(new BigInt64Array(out2.buffer.slice(out2.byteOffset + 1000, out2.byteOffset + 1048)), Number)).toEqual(A.map((a) => a * 2));

    // Every input as JSON data (the fast JSON decoder's path), an output into shared memory.
    const jsonIn = await postJson(h.base, '/v2/models/multi_io/infer', {
      inputs: [
        { name: 'a', datatype: 'INT64', shape: [2, 3], data: A.map((x) => x + 1) },
        { name: 'b', datatype: 'FP32', shape: [2, 3], data: B },
      ],
      outputs: [{ name: 'scaled', parameters: { shared_memory_region: 'out', shared_memory_offset: 500, shared_memory_byte_size: 48 } }],
    });
    expect(jsonIn.status, jsonIn.text).toBe(200);
    expect(jsonIn.json.outputs).toEqual([{ name: 'scaled', datatype: 'INT64', shape: [2, 3], parameters: { shared_memory_region: 'out', shared_memory_offset: 500, shared_memory_byte_size: 48 } }]);
    const out3 = readShm(outKey);
    expect(Array.from(new BigInt64Array(out3.buffer.slice(out3.byteOffset + 1500, out3.byteOffset + 1548)), Number)).toEqual(A.map((a) => (a + 1) * 2));

    // The binary extension: 'a' in shared memory, 'b' as binary data after the JSON header.
    const header = Buffer.from(JSON.stringify({
      inputs: [
        { name: 'a', datatype: 'INT64', shape: [2, 3], parameters: { shared_memory_region: 'in', shared_memory_byte_size: 48 } },
        { name: 'b', datatype: 'FP32', shape: [2, 3], parameters: { binary_data_size: 24 } },
      ],
      outputs: [{ name: 'sum', parameters: { binary_data: false } }],
    }));
    const binary = await call(h.base, '/v2/models/multi_io/infer', { method: 'POST', body: Buffer.concat([header, f32Bytes(B)]), headers: { 'inference-header-content-length': String(header.length) } });
    expect(binary.status, binary.text).toBe(200);
    expect(binary.json.outputs[0].data).toEqual(A.map((a, i) => Math.fround(a + B[i]!)));
    await unregister(h);
  });

  it('serves shared memory tensors on the WebSocket stream too (text and binary frames)', async () => {
    const inKey = createShm(int64Bytes(A));
    const outKey = createShm(96);
    await register(h, 'in', { key: inKey, offset: 0, byte_size: 48 });
    await register(h, 'out', { key: outKey, offset: 0, byte_size: 96 });
    const stream = await RawStream.open(h.base);
    try {
      const frame = (id: string, offset: number) => ({
        id,
        model_name: 'multi_io',
        inputs: [
          { name: 'a', datatype: 'INT64', shape: [2, 3], parameters: { shared_memory_region: 'in', shared_memory_byte_size: 48 } },
          { name: 'b', datatype: 'FP32', shape: [2, 3], data: B },
        ],
        outputs: [{ name: 'scaled', parameters: { shared_memory_region: 'out', shared_memory_offset: offset, shared_memory_byte_size: 48 } }],
      });
      stream.sendText(frame('t', 0));
      await stream.count(1);
      const text = stream.byId().get('t')!;
      expect(text.json.outputs).toEqual([{ name: 'scaled', datatype: 'INT64', shape: [2, 3], parameters: { shared_memory_region: 'out', shared_memory_byte_size: 48 } }]);
      const prefix = Buffer.alloc(4);
      const header = Buffer.from(JSON.stringify(frame('b', 48)));
      prefix.writeUInt32LE(header.length);
      stream.sendBinary(Buffer.concat([prefix, header]));
      await stream.count(2);
      const binary = decodeAnswer(stream.frames[1]!);
      expect(binary.json.outputs[0].parameters).toEqual({ shared_memory_region: 'out', shared_memory_offset: 48, shared_memory_byte_size: 48 });
      const out = readShm(outKey);
      const expected = A.map((x) => x * 2);
      expect(Array.from(new BigInt64Array(out.buffer.slice(out.byteOffset, out.byteOffset + 48)), Number)).toEqual(expected);
      expect(Array.from(new BigInt64Array(out.buffer.slice(out.byteOffset + 48, out.byteOffset + 96)), Number)).toEqual(expected);
    } finally {
      stream.close();
      await unregister(h);
    }
  });

  it('answers every bad shared memory tensor with a 400 naming the tensor, and keeps serving', async () => {
    const inKey = createShm(int64Bytes(A));
    const outKey = createShm(16);
    await register(h, 'in', { key: inKey, offset: 0, byte_size: 48 });
    await register(h, 'small', { key: outKey, offset: 0, byte_size: 16 });
    const b = { name: 'b', datatype: 'FP32', shape: [2, 3], data: B };
    const a = (parameters: Record<string, unknown>) => ({ name: 'a', datatype: 'INT64', shape: [2, 3], parameters });
    const cases: [unknown, RegExp][] = [
      [{ inputs: [a({ shared_memory_region: 'ghost', shared_memory_byte_size: 48 }), b] }, /input 'a': unknown shared memory region 'ghost'/],
      [{ inputs: [a({ shared_memory_region: 'in', shared_memory_byte_size: 40 }), b] }, /input 'a': shared_memory_byte_size 40 does not match INT64 shape \[2,3\] \(expected 48 bytes\)/],
      [{ inputs: [a({ shared_memory_region: 'in', shared_memory_offset: 8, shared_memory_byte_size: 48 }), b] }, /input 'a': shared_memory_offset 8 \+ shared_memory_byte_size 48 runs past the end of shared memory region 'in' \(48 bytes\)/],
      [{ inputs: [a({ shared_memory_region: 'in' }), b] }, /input 'a': parameters shared_memory_region and shared_memory_byte_size must be given together/],
      [{ inputs: [a({ shared_memory_region: 'in', shared_memory_byte_size: -1 }), b] }, /input 'a': parameters.shared_memory_byte_size must be a non-negative integer/],
      [{ inputs: [{ ...a({ shared_memory_region: 'in', shared_memory_byte_size: 48 }), data: A }, b] }, /input 'a': has both 'data' and shared memory parameters/],
      [
        { inputs: [a({ shared_memory_region: 'in', shared_memory_byte_size: 48 }), b], outputs: [{ name: 'scaled', parameters: { shared_memory_region: 'small', shared_memory_byte_size: 16 } }] },
        /output 'scaled': shared_memory_byte_size 16 is too small for the result \(48 bytes\)/,
      ],
      [
        { inputs: [a({ shared_memory_region: 'in', shared_memory_byte_size: 48 }), b], outputs: [{ name: 'scaled', parameters: { shared_memory_region: 'small', shared_memory_offset: 8, shared_memory_byte_size: 16 } }] },
        /output 'scaled': shared_memory_offset 8 \+ shared_memory_byte_size 16 runs past the end/,
      ],
    ];
    for (const [body, message] of cases) {
      const reply = await postJson(h.base, '/v2/models/multi_io/infer', body);
      expect(reply.status, JSON.stringify(body)).toBe(400);
      expect(reply.json.error, JSON.stringify(body)).toMatch(message);
    }
    // Nothing was written into the too-small region.
    expect(Array.from(readShm(outKey))).toEqual(new Array(16).fill(0));
    const ok = await postJson(h.base, '/v2/models/multi_io/infer', { inputs: [a({ shared_memory_region: 'in', shared_memory_byte_size: 48 }), b] });
    expect(ok.status).toBe(200);
    expect(ok.json.outputs[1].data).toEqual(A.map((x) => x * 2));
    await unregister(h);
  });

  it('refuses a region whose object the client shrank, instead of faulting on it, and keeps serving', async () => {
    // Without the check the server's first read of the window is a SIGBUS: this process dies.
    const inKey = createShm(new Uint8Array(8192));
    await register(h, 'shrunk', { key: inKey, offset: 4096, byte_size: 48 });
    truncateSync(SHM_DIR + inKey, 100);
    const body = {
      inputs: [
        { name: 'a', datatype: 'INT64', shape: [2, 3], parameters: { shared_memory_region: 'shrunk', shared_memory_byte_size: 48 } },
        { name: 'b', datatype: 'FP32', shape: [2, 3], data: B },
      ],
    };
    const reply = await postJson(h.base, '/v2/models/multi_io/infer', body);
    expect(reply.status).toBe(400);
    expect(reply.json.error).toMatch(/input 'a': shared memory region 'shrunk' is unusable: its object '.*' shrank to 100 bytes, short of the registered offset \+ byte_size 4144/);
    // Grown back, it serves again.
    truncateSync(SHM_DIR + inKey, 8192);
    writeFileSync(SHM_DIR + inKey, Buffer.concat([Buffer.alloc(4096), Buffer.from(int64Bytes(A)), Buffer.alloc(4048)]));
    const again = await postJson(h.base, '/v2/models/multi_io/infer', body);
    expect(again.status, again.text).toBe(200);
    expect(again.json.outputs[1].data).toEqual(A.map((x) => x * 2));
    await unregister(h);
  });

  it('keeps a region mapped for a request in flight when it is unregistered, and lets it go when the request ends', async () => {
    const x = Float32Array.from({ length: SLOW_ROWS * SLOW.width }, (_, i) => ((i * 37) % 101) - 50);
    const bytes = x.byteLength;
    const inKey = createShm(new Uint8Array(x.buffer));
    const outKey = createShm(bytes);
    await register(h, 'slow-in', { key: inKey, offset: 0, byte_size: bytes });
    await register(h, 'slow-out', { key: outKey, offset: 0, byte_size: bytes });
    let settled = false;
    const pending = postJson(h.base, '/v2/models/slow/infer', {
      inputs: [{ name: 'x', datatype: 'FP32', shape: [SLOW_ROWS, SLOW.width], parameters: { shared_memory_region: 'slow-in', shared_memory_byte_size: bytes } }],
      outputs: [{ name: 'y', parameters: { shared_memory_region: 'slow-out', shared_memory_byte_size: bytes } }],
    }).finally(() => {
      settled = true;
    });
    const deadline = Date.now() + 30_000;
    while (h.server.frontDoor.calls.size === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
    expect((await unregister(h, 'slow-in')).status).toBe(200);
    expect((await unregister(h, 'slow-out')).status).toBe(200);
    expect((await call(h.base, '/v2/systemsharedmemory/status')).json).toEqual([]);
    // The run takes hundreds of milliseconds: it must still be going, and its regions mapped.
    expect(settled, 'the slow request ended before the unregister; make SLOW bigger').toBe(false);
    expect(isMapped(inKey)).toBe(true);
    expect(isMapped(outKey)).toBe(true);
    const reply = await pending;
    expect(reply.status, reply.text).toBe(200);
    expect(reply.json.outputs[0].parameters).toEqual({ shared_memory_region: 'slow-out', shared_memory_byte_size: bytes });
    const out = readShm(outKey);
    // (+ 0 turns -0 into 0: a signed permutation of a 0 is either, depending on the kernel.)
    const plain = (v: Float32Array) => Array.from(v, (n) => n + 0);
    expect(plain(new Float32Array(out.buffer.slice(out.byteOffset, out.byteOffset + bytes)))).toEqual(plain(slowReference(x, SLOW)));
    expect(isMapped(inKey)).toBe(false);
    expect(isMapped(outKey)).toBe(false);
  }, 60_000);

  it('lets every mapping go when the server shuts down', async () => {
    const other = await startHarness({ models: [{ name: 'multi_io', versions: { 1: (d) => multiIoModel(d, { file: 'model.onnx' }) } }] });
    const key1 = createShm(4096);
    const key2 = createShm(4096);
    try {
      expect((await register(other, 'a', { key: key1, offset: 0, byte_size: 4096 })).status).toBe(200);
      expect((await register(other, 'b', { key: key2, offset: 0, byte_size: 10 })).status).toBe(200);
      expect(isMapped(key1) && isMapped(key2)).toBe(true);
      // Regions are per server: the other server does not see them.
      expect((await call(h.base, '/v2/systemsharedmemory/status')).json).toEqual([]);
    } finally {
      await other.close();
    }
    expect(isMapped(key1)).toBe(false);
    expect(isMapped(key2)).toBe(false);
    expect(other.server.sharedMemory.size).toBe(0);
    expect(other.server.sharedMemory.mappedBytes).toBe(0);
  }, 120_000);

  it('leaves no object behind in /dev/shm that the test did not create', () => {
    // The server never creates or unlinks objects: only the client does.
    for (const path of created) expect(existsSync(path) || path.endsWith('-link')).toBe(true);
  });
});
