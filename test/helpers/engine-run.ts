/** Small helpers for engine tests: run one batch through a real slot and copy its outputs out. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LoadedModel } from '../../lib/engine';

/** A temporary directory removed by the returned cleanup. */
export function tempDir(prefix = 'tw-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Writes `inputs` into a free slot, runs it, and returns copies of the outputs. */
export async function runBatch(
  model: LoadedModel,
  inputs: Uint8Array[],
  shapes: number[][],
): Promise<{ name: string; shape: number[]; bytes: Uint8Array }[]> {
  const slot = model.acquireSlot();
  if (!slot) throw new Error('no free slot');
  try {
    inputs.forEach((bytes, i) => slot.inputView(i, bytes.byteLength).set(bytes));
    const result = await slot.run(shapes);
    return result.outputs.map((o) => ({ name: o.name, shape: o.shape, bytes: o.data.slice() }));
  } finally {
    slot.release();
  }
}

/** Little-endian bytes of a typed array (a view, no copy). */
export function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Float32 values of little-endian bytes. */
export function floats(bytes: Uint8Array): Float32Array {
  return new Float32Array(bytes.slice().buffer);
}
