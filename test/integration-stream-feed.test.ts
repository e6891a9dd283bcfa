/**
 * The live prediction feed of /v2/stream against the real server core and engine on
 * 127.0.0.1: feed frames carry exactly the predictions made over HTTP (JSON and binary) and
 * streams, of any version; the token bucket and its `dropped` count; unsubscribe; several
 * subscribers; a closed socket leaves the hub; errors (404, 400, 403); inference answers on a
 * subscribed socket stay exact; the StreamClient's subscribe.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StreamClient, type FeedPrediction } from '../lib/client/stream-client';
import { TensorwireError } from '../lib/errors';
import { startServer } from '../lib/server/server';
import { FEED_LIMITS } from '../lib/server/prediction-feed';
import { versionedModel } from './fixtures/models';
import { binaryFrame, decodeAnswer, RawStream } from './helpers/raw-stream';
import { binaryRequest, bytes, postBinary, postJson, startHarness, waitFor, type Harness } from './helpers/server-harness';

let h: Harness;

beforeAll(async () => {
  h = await startHarness({
    models: [{ name: 'versioned', versions: { 1: (d) => versionedModel(d, 1), 2: (d) => versionedModel(d, 2) }, config: { version_policy: { all: {} } } }],
    streamFeed: true, // off by default
  });
}, 60_000);
afterAll(async () => {
  await h?.close();
});

/** Distinct, exactly representable input n of the versioned model (y = x + version). */
function x(n: number): number[] {
  return [n * 8 + 0.5, n * 8 + 1.5, -n, n / 4];
}
const plus = (values: number[], v: number): number[] => values.map((value) => value + v);

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

/** A raw stream used as a dashboard: control frames with answers, feed frames apart. */
class Dashboard {
  private nextId = 1000;
  private constructor(readonly raw: RawStream) {}

  static async open(base = h.base): Promise<Dashboard> {
    return new Dashboard(await RawStream.open(base));
  }

  /** Text frames parsed, in arrival order. */
  texts(): Json[] {
    return this.raw.frames.filter((f) => !f.binary).map((f) => JSON.parse(f.data.toString('utf8')));
  }

  /** Feed frames received so far. */
  feed(): Json[] {
    return this.texts().filter((j) => j.feed !== undefined);
  }

  /** Sends a control frame (an id is added unless given) and waits for its answer. */
  async control(frame: Record<string, unknown>): Promise<Json> {
    const id = 'id' in frame ? frame.id : this.nextId++;
    this.raw.sendText({ id, ...frame });
    const isAnswer = (j: Json): boolean => j.feed === undefined && j.id === id && (j.subscribed ?? j.unsubscribed ?? j.error) !== undefined;
    await waitFor(() => this.texts().some(isAnswer), `the answer to ${JSON.stringify(frame)}`);
    return this.texts().find(isAnswer);
  }

  /** Waits until feed frames satisfy `done`. */
  async feedUntil(done: (frames: Json[]) => boolean, what: string): Promise<Json[]> {
    await waitFor(() => done(this.feed()), what);
    return this.feed();
  }

  /**
   * A round trip on this socket: every feed frame the server handed over before it has arrived
   * once this returns (frames of one socket arrive in order).
   */
  async sync(): Promise<void> {
    await this.control({ unsubscribe: 'no-such-model-sync' });
  }

  close(): void {
    this.raw.close();
  }
}

async function httpJson(n: number, id: string, version?: number): Promise<void> {
  const path = version === undefined ? '/v2/models/versioned/infer' : `/v2/models/versioned/versions/${version}/infer`;
  const r = await postJson(h.base, path, { id, inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: x(n) }] });
  expect(r.status).toBe(200);
}

describe('live prediction feed', () => {
  it('carries exactly the predictions of HTTP JSON, HTTP binary and stream requests, any version', async () => {
    const d = await Dashboard.open();
    const other = await RawStream.open(h.base);
    try {
      expect(await d.control({ id: 's1', subscribe: 'versioned', include_inputs: true, max_per_second: 1000 })).toEqual({ id: 's1', subscribed: 'versioned' });
      await httpJson(1, 'http-json', 1);
      const bin = binaryRequest([{ name: 'x', datatype: 'FP32', shape: [1, 4], bytes: bytes(new Float32Array(x(2))) }], { id: 'http-bin', parameters: { binary_data_output: true } });
      const binReply = await postBinary(h.base, '/v2/models/versioned/infer', bin.body, bin.headerLength);
      expect(binReply.status).toBe(200);
      expect(binReply.binary.y).toBeDefined(); // the HTTP answer is binary; the feed still has JSON data
      other.sendBinary(binaryFrame({ id: 77, model_name: 'versioned', model_version: 1, inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], parameters: { binary_data_size: 16 } }] }, bytes(new Float32Array(x(3)))));
      // A request on the subscribed socket itself: its answer comes first, then its feed frame.
      d.raw.sendText({ id: 'own', model_name: 'versioned', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: x(4) }] });

      const frames = await d.feedUntil((f) => f.length >= 4, '4 feed frames');
      const byId = new Map(frames.map((f) => [f.request_id, f]));
      const expected: [string | number, number, string][] = [
        ['http-json', 1, '1'],
        ['http-bin', 2, '2'],
        [77, 3, '1'],
        ['own', 4, '2'],
      ];
      for (const [id, n, version] of expected) {
        expect(byId.get(id), String(id)).toEqual({
          feed: 'versioned',
          model_version: version,
          request_id: id,
          outputs: [{ name: 'y', datatype: 'FP32', shape: [1, 4], data: plus(x(n), Number(version)) }],
          inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: x(n) }],
        });
      }
      expect(frames).toHaveLength(4);
      const texts = d.texts();
      const answer = texts.findIndex((j) => j.id === 'own' && j.outputs !== undefined);
      expect(texts[answer].outputs[0].data).toEqual(plus(x(4), 2));
      expect(answer).toBeLessThan(texts.findIndex((j) => j.request_id === 'own'));
      await other.count(1);
      expect(decodeAnswer(other.frames[0]!).json.id).toBe(77);
    } finally {
      d.close();
      other.close();
    }
  });

  it('rate limits with max_per_second, and `dropped` accounts for every prediction not sent', async () => {
    const d = await Dashboard.open();
    const client = await StreamClient.connect(h.base);
    try {
      const start = performance.now();
      await d.control({ subscribe: 'versioned', max_per_second: 5 });
      const answers = await Promise.all(Array.from({ length: 200 }, (_, n) => client.infer('versioned', { x: { shape: [1, 4], data: new Float32Array(x(n)) } })));
      const burstSeconds = (performance.now() - start) / 1000;
      answers.forEach((a, n) => expect(Array.from(a.outputs.y!.data as Float32Array)).toEqual(plus(x(n), 2)));
      await d.sync();
      const burstFrames = d.feed().length;
      // A full bucket (5) plus what refilled during the burst.
      expect(burstFrames).toBeGreaterThanOrEqual(1);
      expect(burstFrames).toBeLessThanOrEqual(5 + Math.ceil(burstSeconds * 5));
      await new Promise((r) => setTimeout(r, 300)); // a token comes back
      await httpJson(0, 'last');
      const frames = await d.feedUntil((f) => f.some((j) => j.request_id === 'last'), 'the last frame');
      const dropped = frames.reduce((sum, f) => sum + (f.dropped ?? 0), 0);
      expect(frames.length + dropped).toBe(201);
      expect(frames.at(-1).dropped).toBeGreaterThan(0);
      expect(frames.every((f) => f.dropped === undefined || f.dropped > 0)).toBe(true);
    } finally {
      d.close();
      await client.close();
    }
  });

  it('unsubscribe stops frames; two subscribers both get them; resubscribing replaces the settings', async () => {
    const a = await Dashboard.open();
    const b = await Dashboard.open();
    try {
      await a.control({ subscribe: 'versioned', max_per_second: 1000 });
      await b.control({ subscribe: 'versioned', max_per_second: 1000 });
      await httpJson(5, 'both');
      await a.feedUntil((f) => f.length === 1, "a's frame");
      await b.feedUntil((f) => f.length === 1, "b's frame");
      expect(a.feed()[0]).toEqual(b.feed()[0]);
      expect(a.feed()[0].inputs).toBeUndefined();

      expect(await b.control({ id: 'r', subscribe: 'versioned', include_inputs: true, max_per_second: 1000 })).toEqual({ id: 'r', subscribed: 'versioned' });
      expect(h.server.feed.subscriptions).toBe(2);
      expect(await a.control({ id: 'u', unsubscribe: 'versioned' })).toEqual({ id: 'u', unsubscribed: 'versioned' });
      await httpJson(6, 'only-b');
      await b.feedUntil((f) => f.length === 2, "b's second frame");
      expect(b.feed()[1].inputs[0].data).toEqual(x(6));
      await a.sync();
      expect(a.feed()).toHaveLength(1);
      expect(await a.control({ id: 'u2', unsubscribe: 'versioned' })).toEqual({ id: 'u2', unsubscribed: 'versioned', was_subscribed: false });
    } finally {
      a.close();
      b.close();
    }
  });

  it('forgets a subscribed socket once it closes, cleanly or not', async () => {
    await waitFor(() => h.server.feed.size === 0, 'earlier sockets to leave the hub');
    const a = await Dashboard.open();
    const b = await Dashboard.open();
    await a.control({ subscribe: 'versioned' });
    await b.control({ subscribe: 'versioned' });
    expect(h.server.feed.size).toBe(2);
    a.close();
    await waitFor(() => h.server.feed.size === 1, 'the closed socket to leave the hub');
    b.raw.terminate();
    await waitFor(() => h.server.feed.size === 0, 'the dropped socket to leave the hub');
    expect(h.server.feed.subscriptions).toBe(0);
    await httpJson(7, 'nobody'); // publishing to nobody is fine
  });

  it('answers errors with their codes and keeps the socket open', async () => {
    const d = await Dashboard.open();
    try {
      expect(await d.control({ id: 1, subscribe: 'nope' })).toEqual({ id: 1, error: "Request for unknown model: 'nope' is not found", code: 'NOT_FOUND', status: 404 });
      expect(await d.control({ id: 2, subscribe: 'versioned', sample_rate: 0 })).toEqual({ id: 2, error: "'sample_rate' must be a number in (0, 1], got 0", code: 'INVALID_INPUT', status: 400 });
      expect(await d.control({ id: 3, subscribe: 'versioned', max_per_second: 'fast' })).toEqual({ id: 3, error: `'max_per_second' must be a positive number, got "fast"`, code: 'INVALID_INPUT', status: 400 });
      expect(await d.control({ id: 4, subscribe: 'versioned', include_inputs: 1 })).toEqual({ id: 4, error: "'include_inputs' must be true or false, got 1", code: 'INVALID_INPUT', status: 400 });
      expect(h.server.feed.size).toBe(0);
      d.raw.sendText({ subscribe: 'versioned' });
      await waitFor(() => d.texts().some((j) => j.id === undefined && j.code === 'INVALID_INPUT' && j.status === 400), 'the error of a subscribe without id');
      expect(d.texts().find((j) => j.id === undefined).error).toMatch(/needs an 'id'/);
      expect(await d.control({ id: 5, subscribe: 'versioned' })).toEqual({ id: 5, subscribed: 'versioned' });
    } finally {
      d.close();
    }
  });

  it('answers 403 when the server has the feed off', async () => {
    const off = await startServer(h.service, { host: '127.0.0.1', port: 0, streamFeed: false });
    const d = await Dashboard.open(`http://127.0.0.1:${off.port}`);
    try {
      expect(await d.control({ id: 1, subscribe: 'versioned' })).toEqual({ id: 1, error: "cannot subscribe to 'versioned': the live prediction feed is off on this server (it is off by default; --stream-feed on enables it)", code: 'FORBIDDEN', status: 403 });
      expect(await d.control({ id: 2, unsubscribe: 'versioned' })).toEqual({ id: 2, unsubscribed: 'versioned', was_subscribed: false });
      expect(off.feed.size).toBe(0);
    } finally {
      d.close();
      await off.close();
    }
  });

  it('is off unless the server enables it', async () => {
    const byDefault = await startServer(h.service, { host: '127.0.0.1', port: 0 });
    const d = await Dashboard.open(`http://127.0.0.1:${byDefault.port}`);
    try {
      expect(await d.control({ id: 1, subscribe: 'versioned' })).toEqual({ id: 1, error: "cannot subscribe to 'versioned': the live prediction feed is off on this server (it is off by default; --stream-feed on enables it)", code: 'FORBIDDEN', status: 403 });
      expect(byDefault.feed.size).toBe(0);
    } finally {
      d.close();
      await byDefault.close();
    }
  });

  it('answers error frames over its caps (max_per_second, subscribers per model), no silent clamp', async () => {
    await waitFor(() => h.server.feed.size === 0, 'earlier sockets to leave the hub');
    const dashboards = await Promise.all(Array.from({ length: 65 }, () => Dashboard.open()));
    try {
      const [first] = dashboards;
      expect(await first!.control({ id: 1, subscribe: 'versioned', max_per_second: 1e9 })).toEqual({ id: 1, error: "'max_per_second' must be at most 1000 (the limit per subscription), got 1000000000", code: 'INVALID_INPUT', status: 400 });
      expect(h.server.feed.size).toBe(0);
      for (const d of dashboards.slice(0, 64)) expect(await d.control({ id: 2, subscribe: 'versioned' })).toEqual({ id: 2, subscribed: 'versioned' });
      expect(await dashboards[64]!.control({ id: 3, subscribe: 'versioned' })).toEqual({ id: 3, error: "cannot subscribe to 'versioned': it already has 64 subscribers (the limit per model)", code: 'TOO_MANY_REQUESTS', status: 429 });
      // A subscriber may still change its settings; the refused socket serves on.
      expect(await first!.control({ id: 4, subscribe: 'versioned', include_inputs: true })).toEqual({ id: 4, subscribed: 'versioned' });
      expect(h.server.feed.subscriptions).toBe(64);
      await httpJson(12, 'capped');
      await first!.feedUntil((f) => f.some((j) => j.request_id === 'capped'), 'a frame under the caps');
    } finally {
      for (const d of dashboards) d.close();
    }
  });

  it('charges every subscriber against one byte budget: 64 dashboards get a bounded number of frames, and `dropped` the rest', async () => {
    await waitFor(() => h.server.feed.size === 0, 'earlier sockets to leave the hub');
    const dashboards = await Promise.all(Array.from({ length: 64 }, () => Dashboard.open()));
    const client = await StreamClient.connect(h.base);
    try {
      for (const d of dashboards) await d.control({ subscribe: 'versioned', max_per_second: 1000 });
      const start = performance.now();
      const N = 300;
      await Promise.all(Array.from({ length: N }, (_, n) => client.infer('versioned', { x: { shape: [1, 4], data: new Float32Array(x(n)) } })));
      for (const d of dashboards) await d.sync();
      const seconds = (performance.now() - start) / 1000;
      const frames = dashboards.reduce((sum, d) => sum + d.feed().length, 0);
      // Without the budget every dashboard would get all N. Each frame costs at least 1 KiB of
      // the 2 MiB/s budget, whose bucket starts full.
      expect(frames).toBeGreaterThan(0);
      expect(frames).toBeLessThan(64 * N);
      const { bytesPerSecond, frameOverheadBytes } = FEED_LIMITS;
      expect(frames).toBeLessThanOrEqual(Math.ceil((bytesPerSecond * (1 + seconds)) / frameOverheadBytes));
      await new Promise((r) => setTimeout(r, 300)); // the budget refills
      await httpJson(13, 'last');
      for (const d of dashboards) await d.feedUntil((f) => f.some((j) => j.request_id === 'last'), 'the last frame');
      for (const d of dashboards) {
        const seen = d.feed();
        expect(seen.length + seen.reduce((sum, f) => sum + (f.dropped ?? 0), 0)).toBe(N + 1);
      }
    } finally {
      for (const d of dashboards) d.close();
      await client.close();
    }
  });

  it('inference answers on a subscribed socket stay exact, and its feed frames match them', async () => {
    const d = await Dashboard.open();
    try {
      await d.control({ subscribe: 'versioned', max_per_second: 1000 });
      // Exactly the server's in-flight limit: feed frames take no place, so none gets a 429.
      const N = 256;
      for (let n = 0; n < N; n++) {
        const id = `q${n}`;
        if (n % 2 === 0) d.raw.sendText({ id, model_name: 'versioned', model_version: 1 + (n % 4 === 0 ? 1 : 0), inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: x(n) }] });
        else d.raw.sendBinary(binaryFrame({ id, model_name: 'versioned', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], parameters: { binary_data_size: 16 } }] }, bytes(new Float32Array(x(n)))));
      }
      const answers = new Map<string, { version: string; y: number[] }>();
      await waitFor(() => {
        for (const f of d.raw.frames) {
          const a = decodeAnswer(f);
          if (a.json.feed !== undefined || a.json.outputs === undefined) continue;
          const y = a.binary ? Array.from(new Float32Array(new Uint8Array(a.tensors.y!).buffer)) : a.json.outputs[0].data;
          answers.set(a.json.id, { version: a.json.model_version, y });
        }
        return answers.size === N;
      }, `${N} answers`);
      for (let n = 0; n < N; n++) {
        const version = n % 2 === 0 ? (n % 4 === 0 ? 2 : 1) : 2;
        expect(answers.get(`q${n}`), `q${n}`).toEqual({ version: String(version), y: plus(x(n), version) });
      }
      expect(d.texts().filter((j) => j.error !== undefined)).toEqual([]);
      for (const f of d.feed()) {
        const answer = answers.get(f.request_id)!;
        expect(f.model_version).toBe(answer.version);
        expect(f.outputs[0].data).toEqual(answer.y);
      }
      expect(d.feed().length).toBeGreaterThan(0);
    } finally {
      d.close();
    }
  });

  it('StreamClient.subscribe delivers typed arrays and unsubscribes', async () => {
    const client = await StreamClient.connect(h.base);
    try {
      const got: FeedPrediction[] = [];
      const unsubscribe = await client.subscribe('versioned', { includeInputs: true, maxPerSecond: 1000 }, (p) => got.push(p));
      const answer = await client.infer('versioned', { x: { shape: [1, 4], data: new Float32Array(x(9)) } }, { version: '1' });
      await waitFor(() => got.length === 1, 'a feed prediction');
      const p = got[0]!;
      expect(p).toMatchObject({ model: 'versioned', modelVersion: '1', requestId: Number(answer.id), dropped: 0 });
      expect(p.outputs.y!.data).toBeInstanceOf(Float32Array);
      expect(Array.from(p.outputs.y!.data as Float32Array)).toEqual(plus(x(9), 1));
      expect(Array.from(p.inputs!.x!.data as Float32Array)).toEqual(x(9));
      expect(client.inflight).toBe(0);

      expect(await unsubscribe()).toBe(true);
      expect(await unsubscribe()).toBe(false);
      await httpJson(10, 'after');
      await client.infer('versioned', { x: { shape: [1, 4], data: new Float32Array(x(11)) } }); // a round trip
      expect(got).toHaveLength(1);

      const notFound = await client.subscribe('nope', {}, () => {}).catch((e: unknown) => e);
      expect(notFound).toBeInstanceOf(TensorwireError);
      expect(notFound).toMatchObject({ code: 'NOT_FOUND' });
      const bad = await client.subscribe('versioned', { sampleRate: 2 }, () => {}).catch((e: unknown) => e);
      expect(bad).toMatchObject({ code: 'INVALID_INPUT', message: "'sample_rate' must be a number in (0, 1], got 2" });
    } finally {
      await client.close();
    }
    const off = await startServer(h.service, { host: '127.0.0.1', port: 0, streamFeed: false });
    const offClient = await StreamClient.connect(`http://127.0.0.1:${off.port}`);
    try {
      await expect(offClient.subscribe('versioned', {}, () => {})).rejects.toMatchObject({ code: 'FORBIDDEN' });
    } finally {
      await offClient.close();
      await off.close();
    }
  });
});
