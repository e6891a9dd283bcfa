/**
 * Strings of a stream frame that the server echoes (lib/server/stream-bounds.ts): an `id`,
 * model name or version over 256 characters gets an error frame naming the limit, not an
 * answer carrying it back; the socket serves on. Real server and engine on 127.0.0.1.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { versionedModel } from './fixtures/models';
import { RawStream } from './helpers/raw-stream';
import { startHarness, type Harness } from './helpers/server-harness';

let h: Harness;

beforeAll(async () => {
  h = await startHarness({ models: [{ name: 'versioned', versions: { 1: (d) => versionedModel(d, 1) } }], streamFeed: true });
}, 60_000);
afterAll(async () => {
  await h?.close();
});

const request = (fields: Record<string, unknown>) => ({ model_name: 'versioned', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] }], ...fields });
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const texts = (s: RawStream): any[] => s.frames.map((f) => JSON.parse(f.data.toString('utf8')));

describe('echoed strings of a stream frame', () => {
  it('refuses an id, a model name or a version over 256 characters without echoing it', async () => {
    const s = await RawStream.open(h.base);
    try {
      const long = 'x'.repeat(100_000);
      s.sendText(request({ id: long }));
      s.sendText(request({ id: 2, model_name: long }));
      s.sendText(request({ id: 3, model_version: '1'.repeat(300) }));
      s.sendText({ id: 4, subscribe: long });
      s.sendText({ id: 5, unsubscribe: long });
      s.sendText(request({ id: 'k'.repeat(256) })); // at the limit: served
      await s.count(6);
      const got = texts(s);
      expect(got.slice(0, 5)).toEqual([
        { error: "'id' is 100000 characters long; at most 256 are allowed (it is echoed in the answer)", code: 'INVALID_INPUT', status: 400 },
        { id: 2, error: "'model_name' is 100000 characters long; at most 256 are allowed", code: 'INVALID_INPUT', status: 400 },
        { id: 3, error: "'model_version' is 300 characters long; at most 256 are allowed", code: 'INVALID_INPUT', status: 400 },
        { id: 4, error: "'subscribe' is 100000 characters long; at most 256 are allowed", code: 'INVALID_INPUT', status: 400 },
        { id: 5, error: "'unsubscribe' is 100000 characters long; at most 256 are allowed", code: 'INVALID_INPUT', status: 400 },
      ]);
      expect(got[5]).toMatchObject({ id: 'k'.repeat(256), outputs: [{ name: 'y', data: [2, 3, 4, 5] }] });
      expect(s.frames.every((f) => f.data.length < 2000)).toBe(true);
      expect(s.isOpen).toBe(true);
    } finally {
      s.close();
    }
  });
});
