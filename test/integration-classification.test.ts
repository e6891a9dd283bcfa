/**
 * Triton's classification extension against the real server: top-k per batch row as BYTES
 * "<value>:<index>[:<label>]" over JSON and binary, labels from label_filename, integer
 * outputs, the bounds on k, and GET /v2 listing the extension.
 */
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bytesElementsAsText } from '../lib/protocol/bytes-tensor';
import { formatClassValue } from '../lib/protocol/classification';
import { MAX_LABEL_FILE_BYTES } from '../lib/repository/output-labels';
import { node, writeModel } from './fixtures/onnx-builder';
import { call, postJson, startHarness, type Harness } from './helpers/server-harness';
import { RawStream } from './helpers/raw-stream';

const LABELS = ['cat', 'dog', 'bird', 'fish', 'ünïcørn'];

/** `x` FP32 [-1, 5] -> `scores` FP32 (the same values) and `counts` INT32 (truncated). */
function scoresModel(versionDir: string): string {
  return writeModel(join(versionDir, 'model.onnx'), {
    inputs: [{ name: 'x', type: 'FP32', dims: [-1, 5] }],
    outputs: [
      { name: 'scores', type: 'FP32', dims: [-1, 5] },
      { name: 'counts', type: 'INT32', dims: [-1, 5] },
    ],
    nodes: [node('Identity', ['x'], ['scores']), node('Cast', ['x'], ['counts'], { to: 6 /* INT32 */ })],
  });
}

let h: Harness;
beforeAll(async () => {
  h = await startHarness({
    models: [
      {
        name: 'classes',
        versions: {
          1: async (d) => {
            writeFileSync(join(dirname(d), 'labels.txt'), LABELS.join('\n') + '\n');
            return scoresModel(d);
          },
        },
        config: {
          max_batch_size: 8,
          input: [{ name: 'x', data_type: 'TYPE_FP32', dims: [5] }],
          output: [
            { name: 'scores', data_type: 'TYPE_FP32', dims: [5], label_filename: 'labels.txt' },
            { name: 'counts', data_type: 'TYPE_INT32', dims: [5] },
          ],
        },
      },
      {
        name: 'missing_labels',
        versions: { 1: async (d) => scoresModel(d) },
        config: { max_batch_size: 8, output: [{ name: 'scores', data_type: 'TYPE_FP32', dims: [5], label_filename: 'missing.txt' }, { name: 'counts', data_type: 'TYPE_INT32', dims: [5] }] },
      },
      {
        name: 'huge_labels',
        versions: {
          1: async (d) => {
            writeFileSync(join(dirname(d), 'labels.txt'), Buffer.alloc(MAX_LABEL_FILE_BYTES + 1, 0x61));
            return scoresModel(d);
          },
        },
        config: { max_batch_size: 8, output: [{ name: 'scores', data_type: 'TYPE_FP32', dims: [5], label_filename: 'labels.txt' }, { name: 'counts', data_type: 'TYPE_INT32', dims: [5] }] },
      },
    ],
  });
});
afterAll(async () => {
  await h?.close();
});

const rows = [
  [0.1, 0.9, 0.25, 0.9, -3],
  [7.5, -1, 100.25, 0, 2],
];
const infer = (outputs: unknown[], parameters?: Record<string, unknown>) =>
  postJson(h.base, '/v2/models/classes/infer', { inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 5], data: rows }], outputs, ...(parameters ? { parameters } : {}) });

describe('classification', () => {
  it('formats values as C++ std::to_string does (printf %f)', () => {
    expect(formatClassValue(0.9)).toBe('0.900000');
    expect(formatClassValue(Math.fround(0.9))).toBe('0.900000');
    expect(formatClassValue(100.25)).toBe('100.250000');
    expect(formatClassValue(-3)).toBe('-3.000000');
    expect(formatClassValue(-1e-9)).toBe('-0.000000');
    expect(formatClassValue(NaN)).toBe('nan');
    expect(formatClassValue(-Infinity)).toBe('-inf');
    expect(formatClassValue(1e22)).toBe('10000000000000000000000.000000');
  });

  it('JSON: top-k per row with labels, highest first, ties by index', async () => {
    const r = await infer([{ name: 'scores', parameters: { classification: 3 } }]);
    expect(r.status).toBe(200);
    expect(r.json.outputs).toEqual([
      {
        name: 'scores',
        datatype: 'BYTES',
        shape: [2, 3],
        data: ['0.900000:1:dog', '0.900000:3:fish', '0.250000:2:bird', '100.250000:2:bird', '7.500000:0:cat', '2.000000:4:ünïcørn'],
      },
    ]);
  });

  it('an integer output without labels: "<value>:<index>"; other outputs answer as usual', async () => {
    const r = await infer([{ name: 'counts', parameters: { classification: 2 } }, { name: 'scores' }]);
    expect(r.status).toBe(200);
    const counts = r.json.outputs.find((o: { name: string }) => o.name === 'counts');
    expect(counts).toEqual({ name: 'counts', datatype: 'BYTES', shape: [2, 2], data: ['0:0', '0:1', '100:2', '7:0'] });
    const scores = r.json.outputs.find((o: { name: string }) => o.name === 'scores');
    expect(scores.datatype).toBe('FP32');
    expect(scores.data).toHaveLength(10);
  });

  it('binary output: the serialized BYTES form', async () => {
    const res = await fetch(h.base + '/v2/models/classes/infer', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 5], data: rows }], outputs: [{ name: 'scores', parameters: { classification: 1, binary_data: true } }] }),
    });
    expect(res.status).toBe(200);
    const body = Buffer.from(await res.arrayBuffer());
    const headerLength = Number(res.headers.get('inference-header-content-length'));
    const header = JSON.parse(body.toString('utf8', 0, headerLength));
    expect(header.outputs[0]).toMatchObject({ name: 'scores', datatype: 'BYTES', shape: [2, 1] });
    const bytes = body.subarray(headerLength);
    expect(header.outputs[0].parameters.binary_data_size).toBe(bytes.byteLength);
    expect(bytesElementsAsText('scores', bytes, 2)).toEqual(['0.900000:1:dog', '100.250000:2:bird']);
  });

  it('k outside 1..classes is a 400 naming the output', async () => {
    const tooMany = await infer([{ name: 'scores', parameters: { classification: 6 } }]);
    expect(tooMany.status).toBe(400);
    expect(tooMany.json.error).toContain("output 'scores': classification asks for 6 classes but the output has 5 per row");
    for (const k of [0, -1, 1.5, 'three', 1e9]) {
      const r = await infer([{ name: 'scores', parameters: { classification: k } }]);
      expect(r.status).toBe(400);
      expect(r.json.error).toContain("output 'scores': parameters.classification must be an integer from 1 to 4096");
    }
    const ok = await infer([{ name: 'scores', parameters: { classification: 5 } }]);
    expect(ok.json.outputs[0].shape).toEqual([2, 5]);
  });

  it('a label file that is missing or over 4 MiB fails the load, named relative to the repository', async () => {
    const index = await call(h.base, '/v2/repository/index', { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
    const byName = Object.fromEntries(index.json.map((m: { name: string; reason: string; state: string }) => [m.name, m]));
    expect(byName.missing_labels.state).not.toBe('READY');
    expect(byName.missing_labels.reason).toContain("missing_labels/missing.txt (label_filename of output 'scores'): ENOENT");
    expect(byName.huge_labels.reason).toContain(`holds ${MAX_LABEL_FILE_BYTES + 1} bytes; a label file may hold at most ${MAX_LABEL_FILE_BYTES}`);
    expect(byName.missing_labels.reason).not.toContain(h.repo);
    expect(byName.classes.state).toBe('READY');
  });

  it('the stream: a text frame answers the classes as strings', async () => {
    const ws = await RawStream.open(h.base);
    try {
      ws.sendText({ id: 's1', model_name: 'classes', inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 5], data: rows }], outputs: [{ name: 'scores', parameters: { classification: 2 } }] });
      await ws.count(1);
      expect(ws.byId().get('s1')!.json.outputs[0]).toEqual({ name: 'scores', datatype: 'BYTES', shape: [2, 2], data: ['0.900000:1:dog', '0.900000:3:fish', '100.250000:2:bird', '7.500000:0:cat'] });
    } finally {
      ws.ws.close();
    }
  });

  it('GET /v2 lists the classification extension', async () => {
    const r = await call(h.base, '/v2');
    expect(r.json.extensions).toContain('classification');
  });
});
