/** Unload frees everything: 200 load/unload cycles leave host RSS where the first cycle left it. */
import { afterAll, describe, expect, it } from 'vitest';
import { engineInfo, loadModel } from '../lib/engine';
import { mlpModel } from './fixtures/models';
import { uniformFloats } from './fixtures/random';
import { bytesOf, runBatch, tempDir } from './helpers/engine-run';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

async function cycle(path: string): Promise<void> {
  const model = await loadModel(path, { instances: 2, maxBatchSize: 64 });
  const x = uniformFloats(1, 8 * 256, 1);
  await runBatch(model, [bytesOf(x)], [[8, 256]]);
  await model.unload();
}

describe('load/unload', () => {
  it('200 cycles keep RSS within 5% (+16 MiB) of the level after the first cycle', { timeout: 180_000 }, async () => {
    const path = await mlpModel(tmp.dir);
    for (let i = 0; i < 5; i++) await cycle(path); // warm allocator pools and code paths
    global.gc?.();
    const baseline = process.memoryUsage().rss;
    for (let i = 0; i < 200; i++) await cycle(path);
    global.gc?.();
    await new Promise((r) => setTimeout(r, 50));
    const after = process.memoryUsage().rss;
    expect(after).toBeLessThan(baseline * 1.05 + 16 * 1024 * 1024);
    expect(engineInfo().alignedBytes).toBe(0); // every staging byte freed
  });
});
