/**
 * GET /v2 lists the extensions the server serves, no more and no fewer: Triton's clients read
 * the list to decide what to call. One row per extension of Triton's protocol, with a probe
 * that answers whether the server serves it (its route answers, or its request parameter does
 * what the extension says); the test checks listed ⇔ served for every row, against a real
 * server. A helper adding an extension adds (or fixes) its row and its name in server-info.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SERVER_EXTENSIONS } from '../lib/server/server-info';
import { mlpModel } from './fixtures/models';
import { binaryRequest, call, postBinary, postJson, startHarness, type Harness } from './helpers/server-harness';

let h: Harness;

beforeAll(async () => {
  h = await startHarness({ models: [{ name: 'mlp', versions: { 1: (d) => mlpModel(d, { file: 'model.onnx' }) } }] });
});
afterAll(async () => {
  await h?.close();
});

const ROW = Array.from({ length: 256 }, (_, i) => (i % 7) / 7);
const input = { name: 'input', datatype: 'FP32', shape: [1, 256], data: ROW };

/** True when a GET of `path` is answered by a route (anything but 404). */
async function routeAnswers(path: string, method = 'GET'): Promise<boolean> {
  return (await call(h.base, path, { method })).status !== 404;
}

/** Each row: Triton's extension name, and whether this server serves it. */
const EXTENSIONS: { name: string; served: () => Promise<boolean> }[] = [
  {
    name: 'binary_tensor_data',
    served: async () => {
      const { body, headerLength } = binaryRequest([{ name: 'input', datatype: 'FP32', shape: [1, 256], bytes: new Uint8Array(new Float32Array(ROW).buffer) }], { parameters: { binary_data_output: true } });
      const r = await postBinary(h.base, '/v2/models/mlp/infer', body, headerLength);
      return r.status === 200 && r.headers.get('inference-header-content-length') !== null;
    },
  },
  { name: 'model_repository', served: async () => (await postJson(h.base, '/v2/repository/index', {})).status === 200 },
  { name: 'statistics', served: async () => (await call(h.base, '/v2/models/stats')).status === 200 },
  {
    name: 'schedule_policy',
    served: async () => (await postJson(h.base, '/v2/models/mlp/infer', { inputs: [input], parameters: { priority: 1, timeout: 10_000_000 } })).status === 200,
  },
  { name: 'model_configuration', served: async () => (await call(h.base, '/v2/models/mlp/config')).status === 200 },
  {
    name: 'classification',
    served: async () => {
      const r = await postJson(h.base, '/v2/models/mlp/infer', { inputs: [input], outputs: [{ name: 'output', parameters: { classification: 2 } }] });
      return r.status === 200 && r.json.outputs?.[0]?.datatype === 'BYTES';
    },
  },
  { name: 'system_shared_memory', served: () => routeAnswers('/v2/systemsharedmemory/status') },
  {
    // Status answers [] and unregister succeeds (Triton's example clients call both to clean
    // up), but registering is refused until the GPU path supports it: not served.
    name: 'cuda_shared_memory',
    served: async () => (await postJson(h.base, '/v2/cudasharedmemory/region/r/register', { raw_handle: { b64: 'AA==' }, device_id: 0, byte_size: 4 })).status === 200,
  },
  { name: 'trace', served: () => routeAnswers('/v2/trace/setting') },
  { name: 'logging', served: () => routeAnswers('/v2/logging') },
];

describe('GET /v2 extensions', () => {
  it('names the server tensorwire and lists what server-info.ts declares', async () => {
    const r = await call(h.base, '/v2');
    expect(r.status).toBe(200);
    expect(r.json.name).toBe('tensorwire');
    expect(r.json.extensions).toEqual([...SERVER_EXTENSIONS]);
  });

  it('every listed extension has a row here (a new one needs its probe)', () => {
    const rows = new Set(EXTENSIONS.map((e) => e.name));
    expect(SERVER_EXTENSIONS.filter((e) => !rows.has(e))).toEqual([]);
  });

  for (const extension of EXTENSIONS) {
    it(`${extension.name}: listed exactly when served`, async () => {
      const listed = ((await call(h.base, '/v2')).json.extensions as string[]).includes(extension.name);
      expect(await extension.served(), listed ? 'listed but not served' : 'served but not listed').toBe(listed);
    });
  }
});
