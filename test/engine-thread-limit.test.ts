/**
 * A load that needs more threads than the process may create fails with MODEL_LOAD_FAILED;
 * the process lives on and keeps loading and serving (issue 13, finding 1: ONNX Runtime's
 * thread pool used to hit std::terminate under a container-like thread limit).
 */
import { chmodSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { engineLimits, loadModel } from '../lib/engine';
import { mlpModel } from './fixtures/models';
import { rejection } from './helpers/expect-error';
import { canLimitThreads, lastJsonLine, runEngineChild } from './helpers/engine-child';
import { tempDir } from './helpers/engine-run';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

// Loads too much for the limit, then a small model, runs it and unloads both attempts' leftovers.
const childScript = (path: string) => `
const { loadModel } = require('./lib/engine');
(async () => {
  const out = {};
  const threads = () => require('node:fs').readdirSync('/proc/self/task').length;
  await (await loadModel(${JSON.stringify(path)})).unload(); // starts the process-wide loader thread
  out.threadsBefore = threads();
  try { await loadModel(${JSON.stringify(path)}, { instances: 8, intraOpThreads: 8 }); out.big = 'loaded'; }
  catch (e) { out.big = { code: e.code, message: e.message }; }
  out.threadsAfter = threads();
  const m = await loadModel(${JSON.stringify(path)}, { instances: 1 });
  const slot = m.acquireSlot();
  slot.inputView(0, 4 * 256).fill(0);
  const r = await slot.run([[1, 256]]);
  out.small = r.outputs[0].shape;
  slot.release();
  await m.unload();
  console.log(JSON.stringify(out));
})().catch((e) => { console.log(JSON.stringify({ fatal: e.message })); process.exit(3); });
`;

describe('thread limit', () => {
  it.skipIf(!canLimitThreads())('a load over the thread limit fails with MODEL_LOAD_FAILED and the process serves on', { timeout: 60_000 }, async () => {
    const path = await mlpModel(tmp.dir);
    chmodSync(tmp.dir, 0o755);
    const outcome = await runEngineChild(childScript(path), { maxThreads: 60 });
    expect(outcome.signal).toBeNull();
    expect(outcome.code).toBe(0);
    const out = lastJsonLine<{ big: { code: string; message: string } | string; small: number[]; threadsBefore: number; threadsAfter: number }>(outcome);
    expect(out.threadsAfter).toBe(out.threadsBefore); // every thread the failed load created was joined
    expect(out.big).toMatchObject({ code: 'MODEL_LOAD_FAILED' });
    expect((out.big as { message: string }).message).toMatch(/threads/);
    expect((out.big as { message: string }).message).not.toContain(tmp.dir); // no absolute path
    expect(out.small).toEqual([1, 16]);
    expect(outcome.stderr).toBe('');
  });

  it('the addon exports its limits and enforces them', async () => {
    const limits = engineLimits();
    expect(limits).toMatchObject({ maxInstances: 64, maxSlotsPerInstance: 16, maxBatchSize: 1 << 20, defaultMaxOutputBytes: 64 * 1024 * 1024 });
    const path = await mlpModel(tmp.dir, { file: 'limits.onnx' });
    const e = await rejection(loadModel(path, { instances: limits.maxInstances + 1 }));
    expect(e.code).toBe('INVALID_INPUT');
    expect(e.message).toContain('instances');
    expect((await rejection(loadModel(path, { maxBatchSize: limits.maxBatchSize + 1 }))).code).toBe('INVALID_INPUT');
  });
});
