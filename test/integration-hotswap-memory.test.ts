/**
 * Memory across hot swaps: after each swap completes (the old version drained and freed), the
 * process holds one version's worth again. 50 swaps of a model with 2.6 MB of weights (ORT
 * holds them about twice: initializer and packed copy); a leak of one version per swap would
 * add well over 130 MB to a ~130 MB process.
 *
 * The one-version level is a band, not a number, with glibc's default malloc: its dynamic mmap
 * threshold keeps some freed multi-megabyte blocks (a version's weights) in the heap for
 * reuse, so RSS after a completed swap moves within about two versions' weights (with 9 MB
 * weights: 155-194 MB; with MALLOC_MMAP_THRESHOLD_=131072 it is flat, docs/lifecycle.md). So
 * after ten swaps that let the allocators and V8's heap reach their working size, the level is
 * the top of the next ten, and the checks are: RSS after 50 more swaps within 10% of it, no
 * upward trend (the last ten swaps' mean within 10% of the level window's mean), and the
 * engine's staging accounting exactly flat.
 */
import { copyFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createInferenceService } from '../lib/core/service';
import { engineInfo } from '../lib/engine';
import { largeModel } from './fixtures/models';
import { tempDir } from './helpers/engine-run';
import { float32, publishVersion, rowsRequest, waitFor } from './helpers/hotswap';

const SIZE = 800; // 800 x 800 FP32 weight: 2.6 MB
/** Swaps measured after the warm-up. */
const SWAPS = 50;
/** Swaps before the level is measured (allocators and V8's heap grow to their working size). */
const WARMUP_SWAPS = 10;

const { dir: repo, cleanup } = tempDir('tw-hotswap-mem-');
afterAll(cleanup);

describe('memory across hot swaps', () => {
  it(`RSS after ${SWAPS} more swaps is within 10% of the one-version level`, async () => {
    // Two weight files written once and copied into each new version (no JS garbage per swap).
    const { dir: files, cleanup: cleanFiles } = tempDir('tw-hotswap-mem-files-');
    const sources = [await largeModel(files, { size: SIZE, seed: 1, file: 'a.onnx' }), await largeModel(files, { size: SIZE, seed: 2, file: 'b.onnx' })];
    await publishVersion(repo, 'm', 1, (d) => copyFileSync(sources[0], join(d, 'model.onnx')));
    const service = await createInferenceService({ repository: repo, modelControl: 'explicit', loadModels: ['m'], drainMs: 5000, log: () => undefined });
    await service.initialLoad;
    const x = rowsRequest(1, 0, SIZE);
    x.inputs[0].data = new Uint8Array(new Float32Array(SIZE).fill(1).buffer);

    let pinnedBaseline = 0;
    const samples: number[] = [];
    const last = WARMUP_SWAPS + SWAPS + 1;
    for (let v = 2; v <= last; v++) {
      await publishVersion(repo, 'm', v, (d) => copyFileSync(sources[v % 2], join(d, 'model.onnx')));
      await service.loadModel('m');
      const r = await service.infer('m', undefined, structuredClone(x));
      expect(r.modelVersion).toBe(String(v));
      expect(Number.isFinite(float32(r.outputs[0].data)[0])).toBe(true);
      // The swap is complete once the old version has been freed.
      await waitFor(() => service.repositoryIndex().find((e) => e.version === String(v - 1))?.state === 'unavailable', 10_000, `version ${v - 1} to be freed`);
      rmSync(join(repo, 'm', String(v - 1)), { recursive: true });
      const rss = process.memoryUsage().rss;
      samples.push(rss);
      if (v === WARMUP_SWAPS + 1) pinnedBaseline = engineInfo().alignedBytes + engineInfo().pinnedBytes;
    }
    const mb = (b: number) => (b / 1e6).toFixed(0);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const window = samples.slice(WARMUP_SWAPS, WARMUP_SWAPS + 10);
    const level = Math.max(...window);
    const final = samples[samples.length - 1];
    const early = mean(window);
    const late = mean(samples.slice(-10));
    console.log(`RSS after each swap (MB): ${samples.map(mb).join(' ')}`);
    console.log(`RSS: one-version level (top of swaps ${WARMUP_SWAPS + 1}-${WARMUP_SWAPS + 10}) ${mb(level)} MB, ${SWAPS} swaps later ${mb(final)} MB (${((final / level - 1) * 100).toFixed(1)}%); window mean ${mb(early)} MB, last ten ${mb(late)} MB`);
    expect(final).toBeLessThanOrEqual(level * 1.1);
    expect(late).toBeLessThanOrEqual(early * 1.1);
    expect(engineInfo().alignedBytes + engineInfo().pinnedBytes).toBe(pinnedBaseline);
    expect(service.repositoryIndex(true)).toEqual([{ name: 'm', version: String(last), state: 'ready', reason: '' }]);
    await service.shutdown();
    cleanFiles();
  });
});
