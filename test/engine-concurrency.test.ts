/**
 * Instances run batches at once, the event loop never waits on inference or loading, and a
 * queued or running batch can be cancelled.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, type LoadedModel } from '../lib/engine';
import { isTensorwireError } from '../lib/errors';
import { largeModel, slowModel, slowReference } from './fixtures/models';
import { uniformFloats } from './fixtures/random';
import { bytesOf, floats, tempDir } from './helpers/engine-run';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

/** Counts timer ticks while `work` runs: a blocked event loop would count ~none. */
async function ticksDuring<T>(work: () => Promise<T>, everyMs = 5): Promise<{ value: T; ticks: number; ms: number; maxGapMs: number }> {
  let ticks = 0;
  let last = performance.now();
  let maxGapMs = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    maxGapMs = Math.max(maxGapMs, now - last);
    last = now;
    ticks++;
  }, everyMs);
  const start = performance.now();
  try {
    const value = await work();
    return { value, ticks, ms: performance.now() - start, maxGapMs };
  } finally {
    clearInterval(timer);
  }
}

const LAYERS = 1500;
const WIDTH = 512;

describe('slow model', () => {
  let model: LoadedModel;
  beforeAll(async () => {
    model = await loadModel(await slowModel(tmp.dir, { layers: LAYERS }), { instances: 2, maxBatchSize: 64 });
  });
  afterAll(() => model.unload());

  function start(slotRows: number, seed: number) {
    const slot = model.acquireSlot()!;
    const x = uniformFloats(seed, slotRows * WIDTH, 1);
    slot.inputView(0, x.byteLength).set(bytesOf(x));
    return { slot, x, run: slot.run([[slotRows, WIDTH]]) };
  }

  it('keeps the event loop responsive during a long run, and computes it exactly', async () => {
    const { value, ticks, ms, maxGapMs } = await ticksDuring(async () => {
      const job = start(64, 1);
      const r = await job.run;
      const out = floats(r.outputs[0].data);
      job.slot.release();
      return { out, x: job.x };
    });
    expect(ms).toBeGreaterThan(100); // the run is long enough to matter
    // A loop blocked by the run would tick about once and show one gap as long as the run;
    // the bounds leave room for a loaded 2-core CI box descheduling the process.
    expect(ticks).toBeGreaterThan((ms / 5) * 0.2);
    expect(maxGapMs).toBeLessThan(Math.max(100, ms * 0.4));
    expect(Array.from(value.out.subarray(0, 512))).toEqual(Array.from(slowReference(value.x.subarray(0, 512), { layers: LAYERS })));
  });

  it('runs two instances at once: a short batch on the second instance finishes before a long one started first', async () => {
    // On one instance batches run in submission order, so the short one would finish last.
    const long = start(64, 2);
    const short = start(1, 3);
    expect(short.slot.instance).not.toBe(long.slot.instance);
    const order: string[] = [];
    await Promise.all([long.run.then(() => order.push('long')), short.run.then(() => order.push('short'))]);
    expect(order).toEqual(['short', 'long']);
    long.slot.release();
    short.slot.release();
  });

  it('withdraws a queued batch: it rejects CANCELLED and the batch ahead still completes', async () => {
    const first = model.acquireSlot()!;
    const second = model.acquireSlot()!;
    const third = model.acquireSlot()!; // same instance as one of the first two: queued behind it
    const x = uniformFloats(8, 64 * WIDTH, 1);
    for (const s of [first, second, third]) s.inputView(0, x.byteLength).set(bytesOf(x));
    const runs = [first.run([[64, WIDTH]]), second.run([[64, WIDTH]]), third.run([[64, WIDTH]])];
    expect(third.cancel()).toBe(true);
    const settled = await Promise.allSettled(runs);
    expect(settled[0].status).toBe('fulfilled');
    expect(settled[1].status).toBe('fulfilled');
    expect(settled[2].status).toBe('rejected');
    const reason = (settled[2] as PromiseRejectedResult).reason;
    expect(isTensorwireError(reason) && reason.code).toBe('CANCELLED');
    for (const s of [first, second, third]) s.release();
  });

  it('terminates a running batch: it rejects CANCELLED well before it would finish', async () => {
    const full = start(64, 8);
    const f0 = performance.now();
    await full.run;
    const fullMs = performance.now() - f0;
    full.slot.release();
    const job = start(64, 9);
    const t0 = performance.now();
    setTimeout(() => job.slot.cancel(), 20);
    await expect(job.run).rejects.toMatchObject({ code: 'CANCELLED' });
    const ms = performance.now() - t0;
    job.slot.release();
    // Terminate takes effect at the next kernel boundary, long before the batch would end.
    expect(ms).toBeLessThan(fullMs * 0.6);
    // The slot works again afterwards.
    const again = start(1, 10);
    const r = await again.run;
    expect(r.outputs[0].shape).toEqual([1, WIDTH]);
    again.slot.release();
  });
});

describe('loading', () => {
  it('keeps the event loop responsive while a large model loads', async () => {
    const path = await largeModel(tmp.dir, {});
    const { value: model, ticks, ms, maxGapMs } = await ticksDuring(() => loadModel(path));
    try {
      expect(ticks).toBeGreaterThan((ms / 5) * 0.2);
      expect(maxGapMs).toBeLessThan(Math.max(100, ms * 0.4));
    } finally {
      await model.unload();
    }
  });
});
