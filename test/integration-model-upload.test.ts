/**
 * Loading models from bytes (Triton's `file:` load parameters) against a real server: the
 * uploaded ONNX file serves the right numbers (small bodies on the JS thread, large ones
 * through the upload worker), the private temporary directory is removed on replacement,
 * unload and shutdown, traversal keys are refused before anything is written, and the whole
 * feature is a 403 naming --allow-model-upload unless the server was started with it.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mlpModel, mlpReference, mlpWeights, type MlpOptions } from './fixtures/models';
import { tempDir } from './helpers/engine-run';
import { postJson, startHarness, type Harness } from './helpers/server-harness';

const SMALL: MlpOptions = { inputDim: 4, hidden: 8, outputDim: 2, seed: 5 };
/** The benchmark MLP (1.1 MB; its base64 is past the in-thread limit, so the worker decodes it). */
const LARGE: MlpOptions = { seed: 9 };

async function modelBase64(opts: MlpOptions): Promise<string> {
  const t = tempDir('tw-upload-src-');
  try {
    return readFileSync(await mlpModel(t.dir, { ...opts, file: 'model.onnx' })).toString('base64');
  } finally {
    t.cleanup();
  }
}

/** Upload directories of this process's servers (the prefix is ModelUploads'). */
function uploadDirs(): string[] {
  return readdirSync(tmpdir()).filter((n) => n.startsWith('tensorwire-upload-')).map((n) => join(tmpdir(), n));
}

async function inferMatches(h: Harness, name: string, opts: MlpOptions): Promise<void> {
  const dim = opts.inputDim ?? 256;
  const input = Array.from({ length: dim }, (_, i) => ((i % 7) - 3) / 10);
  const r = await postJson(h.base, `/v2/models/${name}/infer`, { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, dim], data: input }] });
  expect(r.status, r.text).toBe(200);
  const expected = mlpReference(mlpWeights(opts), input);
  const got = r.json.outputs[0].data as number[];
  expect(got).toHaveLength(expected.length);
  got.forEach((v, i) => expect(v).toBeCloseTo(expected[i]!, 4));
}

describe('loading models from bytes', () => {
  let h: Harness;
  let small: string;
  let large: string;
  let before: Set<string>;

  beforeAll(async () => {
    before = new Set(uploadDirs());
    [small, large] = await Promise.all([modelBase64(SMALL), modelBase64(LARGE)]);
    h = await startHarness({ models: [], modelControl: 'explicit', allowModelUpload: true });
  }, 60_000);
  afterAll(() => h?.close());

  const mine = (): string[] => uploadDirs().filter((d) => !before.has(d));

  it('serves a model loaded from bytes, from a private directory', async () => {
    const r = await postJson(h.base, '/v2/repository/models/up/load', { parameters: { config: '{}', 'file:1/model.onnx': small } });
    expect(r.status, r.text).toBe(200);
    await inferMatches(h, 'up', SMALL);
    const dirs = mine();
    expect(dirs).toHaveLength(1);
    expect(statSync(dirs[0]!).mode & 0o777).toBe(0o700);
    expect(readdirSync(dirs[0]!)).toEqual(['1']);
  });

  it('a replacement (large body, decoded in the worker) removes the previous directory', async () => {
    const first = mine();
    const r = await postJson(h.base, '/v2/repository/models/up/load', { parameters: { config: '{}', 'file:1/model.onnx': large } });
    expect(r.status, r.text).toBe(200);
    await inferMatches(h, 'up', LARGE);
    const now = mine();
    expect(now).toHaveLength(1);
    expect(now[0]).not.toBe(first[0]);
  });

  it('refuses traversal and malformed keys before writing anything', async () => {
    const dirsBefore = mine();
    for (const key of ['file:../model.onnx', 'file:1/../../escape.onnx', 'file:/etc/passwd', 'file:1//model.onnx', 'file:1/sub/model.onnx', 'file:1/.hidden', 'file:0/model.onnx', 'file:1\\model.onnx', 'file:']) {
      const r = await postJson(h.base, '/v2/repository/models/evil/load', { parameters: { config: '{}', [key]: small } });
      expect(r.status, key).toBe(400);
      expect(r.json.error).toMatch(/must be "file:<version>\/<file name>"/);
    }
    const notBase64 = await postJson(h.base, '/v2/repository/models/evil/load', { parameters: { config: '{}', 'file:1/model.onnx': 'not base64!' } });
    expect(notBase64.status).toBe(400);
    expect(notBase64.json.error).toMatch(/base64/);
    const noConfig = await postJson(h.base, '/v2/repository/models/evil/load', { parameters: { 'file:1/model.onnx': small } });
    expect(noConfig.status).toBe(400);
    expect(noConfig.json.error).toMatch(/need a "config" parameter/);
    // The same checks in the worker (a body past the in-thread limit).
    const bigEvil = await postJson(h.base, '/v2/repository/models/evil/load', { parameters: { config: '{}', 'file:../model.onnx': large } });
    expect(bigEvil.status).toBe(400);
    expect(bigEvil.json.error).toMatch(/must be "file:<version>\/<file name>"/);
    // Garbage bytes: the load fails, its directory is removed, the serving model is untouched.
    const garbage = await postJson(h.base, '/v2/repository/models/up/load', { parameters: { config: '{}', 'file:1/model.onnx': Buffer.from('not an onnx model').toString('base64') } });
    expect(garbage.status).toBe(400);
    expect(mine()).toEqual(dirsBefore);
    await inferMatches(h, 'up', LARGE);
  });

  it('unload removes the directory; shutdown removes the rest', async () => {
    expect((await postJson(h.base, '/v2/repository/models/up/unload', {})).status).toBe(200);
    expect(mine()).toEqual([]);
    expect((await postJson(h.base, '/v2/repository/models/again/load', { parameters: { config: '{}', 'file:1/model.onnx': small } })).status).toBe(200);
    expect(mine()).toHaveLength(1);
    await h.close();
    expect(mine()).toEqual([]);
  });
});

describe('loading models from bytes, not allowed', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ models: [], modelControl: 'explicit' });
  }, 60_000);
  afterAll(() => h?.close());

  it('is a 403 naming --allow-model-upload, and writes nothing', async () => {
    const before = uploadDirs().length;
    const r = await postJson(h.base, '/v2/repository/models/up/load', { parameters: { config: '{}', 'file:1/model.onnx': 'AAAA' } });
    expect(r.status).toBe(403);
    expect(r.json.error).toMatch(/start it with --allow-model-upload/);
    expect(uploadDirs().length).toBe(before);
  });
});
