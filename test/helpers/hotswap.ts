/**
 * Helpers of the hot-swap tests (test/core-*.test.ts, test/integration-hotswap*.test.ts):
 * publishing versions into a repository the way docs/repository.md tells users to (write a
 * dot-directory, rename it into place), models whose answer names the version that computed
 * it, and small waits.
 */
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { InferRequest } from '../../lib/protocol/types';
import { initializer, node, writeModel } from '../fixtures/onnx-builder';
import { versionedModel } from '../fixtures/models';

/**
 * Publishes `<repo>/<model>/<version>/` atomically: `write` fills a hidden directory (the
 * scanner skips dot-names), which is then renamed into place in one step.
 */
export async function publishVersion(repo: string, model: string, version: number, write: (dir: string) => unknown | Promise<unknown>): Promise<void> {
  const modelDir = join(repo, model);
  const tmp = join(modelDir, `.tmp-${version}-${process.pid}-${Math.random().toString(36).slice(2)}`);
  mkdirSync(tmp, { recursive: true });
  await write(tmp);
  const target = join(modelDir, String(version));
  rmSync(target, { recursive: true, force: true });
  renameSync(tmp, target);
}

/** Publishes versionedModel(v) (y = x + v) as `<repo>/<model>/<v>/model.onnx`. */
export function publishVersioned(repo: string, model: string, version: number): Promise<void> {
  return publishVersion(repo, model, version, (dir) => versionedModel(dir, version));
}

/** Writes `<repo>/<model>/config.json`, atomically (temp file + rename). */
export function writeConfig(repo: string, model: string, config: Record<string, unknown>): void {
  mkdirSync(join(repo, model), { recursive: true });
  const tmp = join(repo, model, `.config-${process.pid}.json`);
  writeFileSync(tmp, JSON.stringify(config, null, 2));
  renameSync(tmp, join(repo, model, 'config.json'));
}

/** Options of slowVersionedModel. */
export interface SlowVersionedOptions {
  /** MatMul layers before the Add; each costs ~25 us per row at width 256 on this box. Default 400. */
  layers?: number;
  /** Default 64. */
  width?: number;
}

/**
 * "x" FP32 [-1,width] -> `layers` MatMuls with the identity -> + version -> "y": as slow as
 * asked and exact, and its answer still names the version (y = x + version).
 */
export function slowVersionedModel(dir: string, version: number, opts: SlowVersionedOptions = {}): string {
  const { layers = 400, width = 64 } = opts;
  const eye = new Float32Array(width * width);
  for (let i = 0; i < width; i++) eye[i * width + i] = 1;
  const nodes = [];
  for (let k = 0; k < layers; k++) nodes.push(node('MatMul', [k === 0 ? 'x' : `h${k - 1}`, 'eye'], [`h${k}`]));
  nodes.push(node('Add', [`h${layers - 1}`, 'version'], ['y']));
  return writeModel(join(dir, 'model.onnx'), {
    name: `slow_versioned_v${version}`,
    inputs: [{ name: 'x', type: 'FP32', dims: [-1, width] }],
    outputs: [{ name: 'y', type: 'FP32', dims: [-1, width] }],
    initializers: [initializer('eye', 'FP32', [width, width], eye), initializer('version', 'FP32', [], new Float32Array([version]))],
    nodes,
  });
}

/**
 * A model that loads (its shapes are dynamic, so nothing is checked at load time) but fails
 * every run: it reshapes [N,4] into [3]. Its warm-up therefore fails.
 */
export function failsToRunModel(dir: string): string {
  return writeModel(join(dir, 'model.onnx'), {
    name: 'fails_to_run',
    inputs: [{ name: 'x', type: 'FP32', dims: [-1, 4] }],
    outputs: [{ name: 'y', type: 'FP32', dims: [-1, 4] }],
    initializers: [initializer('shape', 'INT64', [1], new BigInt64Array([3n]))],
    nodes: [node('Reshape', ['x', 'shape'], ['y'])],
  });
}

/** A request of `rows` rows of width `width`, row r filled with `base + r`. */
export function rowsRequest(rows: number, base: number, width = 4): InferRequest {
  const x = new Float32Array(rows * width);
  for (let r = 0; r < rows; r++) x.fill(base + r, r * width, (r + 1) * width);
  return { inputs: [{ name: 'x', datatype: 'FP32', shape: [rows, width], data: new Uint8Array(x.buffer) }], binaryDataOutput: true, parameters: {} };
}

/** Float32 values of little-endian bytes (copied, so alignment does not matter). */
export function float32(bytes: Uint8Array): Float32Array {
  return new Float32Array(bytes.slice().buffer);
}

/** Resolves once `condition()` is true, polling every 10 ms; rejects after `ms` naming `what`. */
export async function waitFor(condition: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Sleeps `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
