/**
 * The prediction feed hub (lib/server/prediction-feed.ts) with scripted sinks: nothing is
 * touched when nobody subscribes, sampling, the token bucket, drops under backpressure and
 * their `dropped` count, replacing and ending subscriptions, forgetting a closed connection.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { PredictionFeed, type FeedSink } from '../lib/server/prediction-feed';
import { TensorwireError } from '../lib/errors';
import type { FeedSettings } from '../lib/protocol/stream-frame';
import type { InferRequest, InferResponse } from '../lib/protocol/types';

/** A sink that takes frames while `writable`, and keeps them parsed. */
class Sink implements FeedSink {
  writable = true;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  frames: any[] = [];
  feedWritable(): boolean {
    return this.writable;
  }
  sendFeed(frame: string): void {
    this.frames.push(JSON.parse(frame));
  }
}

function prediction(n: number): { request: InferRequest; response: InferResponse } {
  const x = new Uint8Array(new Float32Array([n, n + 0.5]).buffer);
  const y = new Uint8Array(new Float32Array([2 * n]).buffer);
  return {
    request: { id: `r${n}`, inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2], data: x }], binaryDataOutput: true, parameters: {} },
    response: { modelName: 'm', modelVersion: '3', id: `r${n}`, outputs: [{ name: 'y', datatype: 'FP32', shape: [1, 1], data: y, binary: true }] },
  };
}

const ALL: FeedSettings = { sampleRate: 1, maxPerSecond: 1000, includeInputs: false };

function publish(feed: PredictionFeed, n: number, model = 'm'): void {
  const { request, response } = prediction(n);
  feed.publish(model, request, response, request.id);
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('PredictionFeed', () => {
  it('touches nothing of a prediction when nobody subscribes to its model', () => {
    const feed = new PredictionFeed();
    feed.subscribe(new Sink(), 'other', ALL);
    const untouchable = new Proxy({} as InferResponse, {
      get(_target, key) {
        throw new Error(`read ${String(key)}`);
      },
    });
    const now = vi.spyOn(performance, 'now');
    expect(() => feed.publish('m', untouchable as unknown as InferRequest, untouchable, 'id')).not.toThrow();
    expect(now).not.toHaveBeenCalled();
  });

  it('sends each prediction to every subscriber, with inputs only to those who asked', () => {
    const feed = new PredictionFeed();
    const a = new Sink();
    const b = new Sink();
    feed.subscribe(a, 'm', ALL);
    feed.subscribe(b, 'm', { ...ALL, includeInputs: true });
    publish(feed, 1);
    expect(a.frames).toEqual([{ feed: 'm', model_version: '3', request_id: 'r1', outputs: [{ name: 'y', datatype: 'FP32', shape: [1, 1], data: [2] }] }]);
    expect(b.frames[0].inputs).toEqual([{ name: 'x', datatype: 'FP32', shape: [1, 2], data: [1, 1.5] }]);
    expect(feed.size).toBe(2);
    expect(feed.subscriptions).toBe(2);
  });

  it('rate limits with a token bucket and reports what it dropped in the next frame', () => {
    const feed = new PredictionFeed();
    const sink = new Sink();
    let now = 1000;
    vi.spyOn(performance, 'now').mockImplementation(() => now);
    feed.subscribe(sink, 'm', { ...ALL, maxPerSecond: 2 });
    for (let n = 0; n < 10; n++) publish(feed, n); // a burst: the bucket's 2 tokens, then drops
    expect(sink.frames.map((f) => f.request_id)).toEqual(['r0', 'r1']);
    now += 500; // one token back
    publish(feed, 10);
    expect(sink.frames[2]).toMatchObject({ request_id: 'r10', dropped: 8 });
    publish(feed, 11);
    now += 500;
    publish(feed, 12);
    expect(sink.frames.map((f) => f.dropped)).toEqual([undefined, undefined, 8, 1]);
  });

  it('samples with sample_rate', () => {
    const feed = new PredictionFeed();
    const sink = new Sink();
    feed.subscribe(sink, 'm', { ...ALL, sampleRate: 0.5 });
    const draws = [0.1, 0.7, 0.49, 0.5];
    vi.spyOn(Math, 'random').mockImplementation(() => draws.shift()!);
    for (let n = 0; n < 4; n++) publish(feed, n);
    // Sampled out is not dropped: only predictions sampled in count.
    expect(sink.frames.map((f) => [f.request_id, f.dropped])).toEqual([
      ['r0', undefined],
      ['r2', undefined],
    ]);
  });

  it('drops (and counts) while the connection is backed up, without encoding', () => {
    const feed = new PredictionFeed();
    const sink = new Sink();
    feed.subscribe(sink, 'm', ALL);
    sink.writable = false;
    const send = vi.spyOn(sink, 'sendFeed');
    for (let n = 0; n < 3; n++) publish(feed, n);
    expect(send).not.toHaveBeenCalled();
    sink.writable = true;
    publish(feed, 3);
    expect(sink.frames).toMatchObject([{ request_id: 'r3', dropped: 3 }]);
  });

  it('replaces settings on a second subscribe, ends on unsubscribe, forgets a closed connection', () => {
    const feed = new PredictionFeed();
    const sink = new Sink();
    feed.subscribe(sink, 'm', ALL);
    feed.subscribe(sink, 'm', { ...ALL, includeInputs: true });
    feed.subscribe(sink, 'n', ALL);
    expect(feed.subscriptions).toBe(2);
    publish(feed, 1);
    expect(sink.frames[0].inputs).toBeDefined();
    expect(feed.unsubscribe(sink, 'm')).toBe(true);
    expect(feed.unsubscribe(sink, 'm')).toBe(false);
    publish(feed, 2);
    expect(sink.frames).toHaveLength(1);
    expect(feed.size).toBe(1);
    feed.forget(sink);
    expect(feed.size).toBe(0);
    expect(feed.subscriptions).toBe(0);
    publish(feed, 3, 'n');
    expect(sink.frames).toHaveLength(1);
  });

  it('never throws into the inference that published: a failing sink counts as dropped', () => {
    const feed = new PredictionFeed();
    const sink = new Sink();
    feed.subscribe(sink, 'm', ALL);
    const send = vi.spyOn(sink, 'sendFeed').mockImplementationOnce(() => {
      throw new Error('socket gone');
    });
    expect(() => publish(feed, 1)).not.toThrow();
    send.mockRestore();
    publish(feed, 2);
    expect(sink.frames).toMatchObject([{ request_id: 'r2', dropped: 1 }]);
  });

  it('refuses max_per_second over its limit with an error naming it, not a clamp', () => {
    const feed = new PredictionFeed();
    const sink = new Sink();
    expect(() => feed.subscribe(sink, 'm', { ...ALL, maxPerSecond: 1e9 })).toThrow(new TensorwireError('INVALID_INPUT', "'max_per_second' must be at most 1000 (the limit per subscription), got 1000000000"));
    expect(feed.size).toBe(0);
    feed.subscribe(sink, 'm', { ...ALL, maxPerSecond: 1000 });
    expect(feed.subscriptions).toBe(1);
  });

  it('caps subscriptions per connection (16) and per model (64); replacing one is not a new one', () => {
    const feed = new PredictionFeed();
    const sink = new Sink();
    for (let n = 0; n < 16; n++) feed.subscribe(sink, `m${n}`, ALL);
    expect(() => feed.subscribe(sink, 'm16', ALL)).toThrow(new TensorwireError('TOO_MANY_REQUESTS', "cannot subscribe to 'm16': this connection already subscribes to 16 models (the limit per connection); unsubscribe from one first"));
    feed.subscribe(sink, 'm3', { ...ALL, includeInputs: true }); // a replacement
    feed.unsubscribe(sink, 'm3');
    feed.subscribe(sink, 'm16', ALL);
    expect(feed.subscriptions).toBe(16);

    const sinks = Array.from({ length: 64 }, () => new Sink());
    for (const s of sinks) feed.subscribe(s, 'busy', ALL);
    expect(() => feed.subscribe(new Sink(), 'busy', ALL)).toThrow(new TensorwireError('TOO_MANY_REQUESTS', "cannot subscribe to 'busy': it already has 64 subscribers (the limit per model)"));
    feed.subscribe(sinks[0]!, 'busy', { ...ALL, sampleRate: 0.5 });
    expect(feed.size).toBe(65);
  });

  it('charges every frame against one byte budget and encodes nothing once it is spent', () => {
    // ~150-byte frames at 1000 bytes of overhead each: 8 frames fit in the 10 000-byte bucket.
    let now = 1000;
    vi.spyOn(performance, 'now').mockImplementation(() => now);
    const feed = new PredictionFeed({ bytesPerSecond: 10_000, frameOverheadBytes: 1000 });
    const sinks = Array.from({ length: 5 }, () => new Sink());
    for (const s of sinks) feed.subscribe(s, 'm', ALL);
    let encoded = 0;
    const counting = (n: number): { request: InferRequest; response: InferResponse } => {
      const p = prediction(n);
      // encodeFeedHead is the only reader of modelVersion: one read per encoded prediction.
      const response = new Proxy(p.response, {
        get(target, key, receiver) {
          if (key === 'modelVersion') encoded++;
          return Reflect.get(target, key, receiver);
        },
      });
      return { request: p.request, response };
    };
    for (let n = 0; n < 10; n++) {
      const { request, response } = counting(n);
      feed.publish('m', request, response, request.id);
    }
    const sent = (): number => sinks.reduce((sum, s) => sum + s.frames.length, 0);
    expect(sent()).toBe(8);
    expect(encoded).toBe(2); // the first two predictions; the other eight cost no encoding
    // The two subscribers the budget missed go first once it refills.
    const missed = sinks.filter((s) => s.frames.length === 1);
    expect(missed).toHaveLength(2);
    now += 200; // 2000 bytes more: two frames (with what was left)
    const { request, response } = counting(10);
    feed.publish('m', request, response, request.id);
    expect(missed.map((s) => s.frames.at(-1).request_id)).toEqual(['r10', 'r10']);
    expect(missed.map((s) => s.frames.at(-1).dropped)).toEqual([9, 9]); // r1..r9
    expect(sent()).toBe(10);
  });

  it('never encodes a prediction whose frame would be over the largest frame', () => {
    const feed = new PredictionFeed({ maxFrameBytes: 4096 });
    const sink = new Sink();
    feed.subscribe(sink, 'm', ALL);
    const big = prediction(1);
    big.response.outputs[0]!.data = new Uint8Array(4096);
    big.response.outputs[0]!.shape = [1, 1024];
    let encoded = 0;
    const response = new Proxy(big.response, {
      get(target, key, receiver) {
        if (key === 'modelVersion') encoded++; // read by encodeFeedHead only
        return Reflect.get(target, key, receiver);
      },
    });
    feed.publish('m', big.request, response, 'big');
    expect(encoded).toBe(0);
    expect(sink.frames).toEqual([]);
    publish(feed, 2);
    expect(sink.frames).toMatchObject([{ request_id: 'r2', dropped: 1 }]);
  });
});
