/**
 * ONNX string tensors in the addon: inputs rebuilt from the serialized BYTES form, outputs
 * serialized back after the run (embedded NULs, long strings that outgrow the slot), the
 * output-size limit applied to string outputs before their buffer is allocated, and the
 * addon's own re-check of length prefixes against the staged bytes.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { loadModel, type LoadedModel } from '../lib/engine';
import { serializeBytesElements } from '../lib/protocol/bytes-tensor';
import { stringIdentityModel, textModel } from './fixtures/string-models';
import { rejection } from './helpers/expect-error';
import { runBatch, tempDir } from './helpers/engine-run';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

async function withModel(path: string, options: Parameters<typeof loadModel>[1], fn: (m: LoadedModel) => Promise<void>): Promise<void> {
  const model = await loadModel(path, options);
  try {
    await fn(model);
  } finally {
    await model.unload();
  }
}

describe('string tensors in the engine', () => {
  it('metadata reports BYTES for string inputs and outputs', async () => {
    await withModel(stringIdentityModel(tmp.dir, 'echo.onnx'), {}, async (model) => {
      expect(model.metadata.inputs).toEqual([{ name: 'text', datatype: 'BYTES', shape: [-1, 2] }]);
      expect(model.metadata.outputs).toEqual([{ name: 'echo', datatype: 'BYTES', shape: [-1, 2] }]);
      expect(model.metadata.batchable).toBe(true);
    });
  });

  it('identity: the serialized bytes come back exactly, embedded NULs and a 200 KB string included', async () => {
    await withModel(stringIdentityModel(tmp.dir, 'echo.onnx'), {}, async (model) => {
      const elements = ['a\u0000b\u0000', '', 'ünïcødé', 'x'.repeat(200_000)];
      const input = serializeBytesElements(elements);
      const [out] = await runBatch(model, [input], [[2, 2]]);
      expect(out!.shape).toEqual([2, 2]);
      expect(Buffer.compare(Buffer.from(out!.bytes), input)).toBe(0);
      // The slot's buffers grew for that batch; a small one afterwards still answers exactly.
      const small = serializeBytesElements(['p', 'q']);
      const [again] = await runBatch(model, [small], [[1, 2]]);
      expect(Buffer.compare(Buffer.from(again!.bytes), small)).toBe(0);
    });
  });

  it('a string-reading first node (LabelEncoder) feeding numeric nodes', async () => {
    await withModel(textModel(tmp.dir, 'text.onnx'), {}, async (model) => {
      const outs = await runBatch(model, [serializeBytesElements(['bird', 'nope'])], [[2, 1]]);
      const id = outs.find((o) => o.name === 'id')!;
      expect(Array.from(new BigInt64Array(id.bytes.slice().buffer))).toEqual([2n, -1n]);
    });
  });

  it('maxOutputBytes holds for string outputs: checked on their serialized size before any copy', async () => {
    await withModel(stringIdentityModel(tmp.dir, 'echo.onnx'), { maxOutputBytes: 1000 }, async (model) => {
      const big = serializeBytesElements(['y'.repeat(600), 'z'.repeat(600)]);
      const e = await rejection(runBatch(model, [big], [[1, 2]]));
      expect(e.code).toBe('OUTPUT_TOO_LARGE');
      expect(e.message).toContain("output 'echo'");
      expect(e.message).toContain('1208 bytes');
      const ok = serializeBytesElements(['y'.repeat(400), 'z'.repeat(400)]);
      const [out] = await runBatch(model, [ok], [[1, 2]]);
      expect(out!.bytes.byteLength).toBe(808);
    });
  });

  it('the addon re-checks length prefixes against the staged bytes (JS checks skipped)', async () => {
    await withModel(stringIdentityModel(tmp.dir, 'echo.onnx'), {}, async (model) => {
      const lying = serializeBytesElements(['ok', 'fine']);
      lying.writeUInt32LE(0x7fffffff, 6); // element 1 claims 2 GiB
      const e = await rejection(runBatch(model, [lying], [[1, 2]]));
      expect(e.code).toBe('INVALID_INPUT');
      expect(e.message).toContain("input 'text'");
      expect(e.message).toContain('BYTES element 1 runs past the staged bytes');
      const [out] = await runBatch(model, [serializeBytesElements(['still', 'fine'])], [[1, 2]]);
      expect(out!.bytes.byteLength).toBe(17);
    });
  });
});
