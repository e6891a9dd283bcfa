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
      // Frames of 64 KiB or more are decoded off the event loop, so their answers may come
      // after those of smaller frames sent later: answers are matched by id, not by order.
      const got = texts(s);
      const served = got.findIndex((a) => a.id === 'k'.repeat(256));
      expect(served).toBeGreaterThanOrEqual(0);
      const refused = got.filter((_, i) => i !== served);
      expect(refused).toHaveLength(5);
      // Each names the field and its length (lib/protocol/request-limits.ts, the one bound).
      const refusal = (field: string, length: number) => expect.stringMatching(new RegExp(`^'${field}' is ${length} characters long; `));
      expect(refused).toEqual(expect.arrayContaining([
        { error: refusal('id', 100000), code: 'INVALID_INPUT', status: 400 },
        { id: 2, error: refusal('model_name', 100000), code: 'INVALID_INPUT', status: 400 },
        { id: 3, error: refusal('model_version', 300), code: 'INVALID_INPUT', status: 400 },
        { id: 4, error: refusal('subscribe', 100000), code: 'INVALID_INPUT', status: 400 },
        { id: 5, error: refusal('unsubscribe', 100000), code: 'INVALID_INPUT', status: 400 },
      ]));
      expect(got[served]).toMatchObject({ id: 'k'.repeat(256), outputs: [{ name: 'y', data: [2, 3, 4, 5] }] });
      expect(s.frames.every((f) => f.data.length < 2000)).toBe(true);
      expect(s.isOpen).toBe(true);
    } finally {
      s.close();
    }
  });
});
