/**
 * The live prediction feed (docs/streaming.md, "Live prediction feed"): stream connections
 * subscribe to a model, and every successful inference of that model (HTTP JSON or binary,
 * stream, any version) is offered to its subscribers, sampled and rate limited per
 * subscription, and charged against one byte budget shared by every subscriber.
 *
 * The feed is off unless the server enables it (`--stream-feed on`), and bounded when on:
 * - `publish` is called after every success; with nobody subscribed to the model it is one
 *   Map lookup: no encoding, no allocation, no clock read.
 * - Subscriptions are capped per connection and per model, and `max_per_second` per
 *   subscription (FeedLimits): over a cap, subscribe throws, nothing is clamped silently.
 * - Sampling, the subscription's token bucket and the global byte budget run before any
 *   encoding: a prediction whose frame would not fit the budget left (estimated from its
 *   tensor bytes) is never encoded. Encoding and sending are the feed's real cost on the
 *   event loop, so the budget (bytes per second, each frame charged a fixed overhead on top
 *   of its length) is what bounds what subscribers take from serving, however many there are.
 * - A frame is encoded only when its connection can take it right now (StreamConnection
 *   rule 5): a backed-up dashboard costs a counter increment, never memory, and never delays
 *   an answer.
 * - Every prediction sampled in but not sent is counted and reported in the next frame's
 *   `dropped`, so a dashboard knows how much it did not see.
 * - When the budget runs out, the subscribers that were served move behind those that were
 *   not, so a busy model's budget goes round all of them instead of always to the first.
 * - A failure in here is a bug of the feed and must not fail the inference that called it:
 *   `publish` catches it and counts the frame as dropped.
 */
import { TensorwireError } from '../errors';
import { encodeFeedFrame, encodeFeedHead, encodeFeedInputs, type FeedSettings, type StreamId } from '../protocol/stream-frame';
import type { InferRequest, InferResponse } from '../protocol/types';

/** The feed's bounds (FEED_LIMITS by default). */
export interface FeedLimits {
  /** Models one connection may subscribe to. */
  maxPerConnection: number;
  /** Connections that may subscribe to one model. */
  maxPerModel: number;
  /** The highest `max_per_second` of a subscription. */
  maxPerSecond: number;
  /** Bytes of feed frames per second, over every subscriber (the bucket holds one second's worth). */
  bytesPerSecond: number;
  /** What each frame costs the budget on top of its length: sending a small frame is not free. */
  frameOverheadBytes: number;
  /** Frames larger than this (estimated before encoding, or encoded) are never sent. */
  maxFrameBytes: number;
}

/**
 * The defaults. 2 MiB/s at 1 KiB a frame is at most ~2000 frames/s over all subscribers:
 * with 100 dashboards asking for everything, one client's requests/s stayed within the noise
 * of none (bench/stream-feed.ts), where without a budget they fell from 3280 to 175.
 */
export const FEED_LIMITS: Readonly<FeedLimits> = Object.freeze({
  maxPerConnection: 16,
  maxPerModel: 64,
  maxPerSecond: 1000,
  bytesPerSecond: 2 * 1024 * 1024,
  frameOverheadBytes: 1024,
  // Encoding ~256 KiB of JSON takes a few ms; a bigger frame would hold the event loop.
  maxFrameBytes: 256 * 1024,
});

/** Where feed frames go: a stream connection (a fake one makes the hub testable). */
export interface FeedSink {
  /** True when a frame can be sent now without waiting (otherwise it is dropped). */
  feedWritable(): boolean;
  sendFeed(frame: string): void;
}

/** One connection's subscription to one model. */
interface Subscription {
  settings: FeedSettings;
  /** Token bucket: frames that may go out now, refilled at `maxPerSecond` up to `maxPerSecond` (at least 1). */
  tokens: number;
  /** performance.now() of the last refill. */
  refilledAt: number;
  /** Sampled in but not sent since the last frame. */
  dropped: number;
}

/** The global byte budget: a token bucket of bytes, refilled at `bytesPerSecond` up to one second's worth. */
interface Budget {
  bytes: number;
  refilledAt: number;
}

/** The subscriptions of every connection, by model. */
export class PredictionFeed {
  private readonly byModel = new Map<string, Map<FeedSink, Subscription>>();
  /** The models each connection subscribes to, so a closed connection is forgotten in one step. */
  private readonly bySink = new Map<FeedSink, Set<string>>();
  readonly limits: Readonly<FeedLimits>;
  private readonly budget: Budget;

  constructor(limits: Partial<FeedLimits> = {}) {
    this.limits = { ...FEED_LIMITS, ...limits };
    this.budget = { bytes: this.limits.bytesPerSecond, refilledAt: performance.now() };
  }

  /** Connections with at least one subscription. */
  get size(): number {
    return this.bySink.size;
  }

  /** Subscriptions over every connection and model. */
  get subscriptions(): number {
    let n = 0;
    for (const models of this.bySink.values()) n += models.size;
    return n;
  }

  /**
   * Subscribes `sink` to `model`, or replaces the settings of its subscription (the bucket
   * starts full again; predictions dropped so far are still reported). Throws, changing
   * nothing, when `max_per_second` or a subscription cap is over its limit.
   */
  subscribe(sink: FeedSink, model: string, settings: FeedSettings): void {
    const limits = this.limits;
    if (settings.maxPerSecond > limits.maxPerSecond) {
      throw new TensorwireError('INVALID_INPUT', `'max_per_second' must be at most ${limits.maxPerSecond} (the limit per subscription), got ${settings.maxPerSecond}`);
    }
    let subscribers = this.byModel.get(model);
    const previous = subscribers?.get(sink);
    if (previous === undefined) {
      const models = this.bySink.get(sink);
      if (models !== undefined && models.size >= limits.maxPerConnection) {
        throw new TensorwireError('TOO_MANY_REQUESTS', `cannot subscribe to '${model}': this connection already subscribes to ${limits.maxPerConnection} models (the limit per connection); unsubscribe from one first`);
      }
      if (subscribers !== undefined && subscribers.size >= limits.maxPerModel) {
        throw new TensorwireError('TOO_MANY_REQUESTS', `cannot subscribe to '${model}': it already has ${limits.maxPerModel} subscribers (the limit per model)`);
      }
    }
    if (subscribers === undefined) this.byModel.set(model, (subscribers = new Map()));
    let models = this.bySink.get(sink);
    if (models === undefined) this.bySink.set(sink, (models = new Set()));
    models.add(model);
    subscribers.set(sink, { settings: { sampleRate: settings.sampleRate, maxPerSecond: settings.maxPerSecond, includeInputs: settings.includeInputs }, tokens: capacity(settings), refilledAt: performance.now(), dropped: previous?.dropped ?? 0 });
  }

  /** Ends `sink`'s subscription to `model`; false when there was none. */
  unsubscribe(sink: FeedSink, model: string): boolean {
    const subscribers = this.byModel.get(model);
    if (subscribers === undefined || !subscribers.delete(sink)) return false;
    // An empty entry would turn publish's one lookup into work for nobody.
    if (subscribers.size === 0) this.byModel.delete(model);
    const models = this.bySink.get(sink)!;
    models.delete(model);
    if (models.size === 0) this.bySink.delete(sink);
    return true;
  }

  /** Forgets every subscription of `sink` (its socket closed). */
  forget(sink: FeedSink): void {
    const models = this.bySink.get(sink);
    if (models === undefined) return;
    for (const model of [...models]) this.unsubscribe(sink, model);
  }

  /**
   * Offers one successful prediction of `model` to its subscribers. `requestId` is the
   * request's id as the client sent it (a stream id may be a number). Call it synchronously
   * after the answer was encoded: the tensors may be views of buffers reused later.
   */
  /** True when some connection subscribes to `model` (one Map lookup). */
  wants(model: string): boolean {
    return this.byModel.has(model);
  }

  publish(model: string, request: InferRequest, response: InferResponse, requestId: StreamId | undefined): void {
    const subscribers = this.byModel.get(model);
    if (subscribers === undefined) return;
    deliver(subscribers, this.limits, this.budget, model, request, response, requestId);
  }
}

/** Bucket size: one second's worth of frames, and at least one so that a rate under 1/s still sends. */
function capacity(settings: FeedSettings): number {
  return Math.max(1, settings.maxPerSecond);
}

/** A frame's bytes after its head and inputs: `"dropped":N}` at most. */
const FRAME_TAIL_BYTES = 32;

/**
 * About how long a tensor list is as JSON, before paying for encoding it: two characters per
 * byte of data (an FP32 is ~8 characters) plus the names and brackets. Only a guard: the
 * encoded length is what the budget is charged.
 */
function estimateJsonBytes(tensors: readonly { name: string; shape: readonly number[]; data: Uint8Array }[]): number {
  let bytes = 2;
  for (const t of tensors) bytes += 64 + t.name.length + 8 * t.shape.length + 2 * t.data.byteLength;
  return bytes;
}

/**
 * The slow path of publish: sample, rate limit, check the budget, and encode only what goes
 * out (the shared parts once per prediction).
 */
function deliver(subscribers: Map<FeedSink, Subscription>, limits: Readonly<FeedLimits>, budget: Budget, model: string, request: InferRequest, response: InferResponse, requestId: StreamId | undefined): void {
  let head: string | undefined;
  let inputs: string | undefined;
  // Estimates until encoded, then exact lengths (-1: not estimated yet).
  let headBytes = 64 + model.length + (typeof requestId === 'string' ? requestId.length : 24) + estimateJsonBytes(response.outputs);
  let inputBytes = -1;
  const now = performance.now();
  budget.bytes = Math.min(limits.bytesPerSecond, budget.bytes + (Math.max(0, now - budget.refilledAt) / 1000) * limits.bytesPerSecond);
  budget.refilledAt = now;
  const smallest = headBytes + FRAME_TAIL_BYTES;
  if (smallest > limits.maxFrameBytes || smallest + limits.frameOverheadBytes > budget.bytes) {
    // Not even a frame without inputs can go out: count what was sampled in and stop (the
    // token buckets refill from their own refilledAt, so skipping them loses nothing). This is
    // the steady state of a busy model with many subscribers: it must cost next to nothing.
    for (const s of subscribers.values()) if (s.settings.sampleRate >= 1 || Math.random() < s.settings.sampleRate) s.dropped++;
    return;
  }
  let served: FeedSink[] | undefined;
  let starved = false;
  for (const [sink, s] of subscribers) {
    const settings = s.settings;
    if (settings.sampleRate < 1 && Math.random() >= settings.sampleRate) continue;
    s.tokens = Math.min(capacity(settings), s.tokens + ((now - s.refilledAt) / 1000) * settings.maxPerSecond);
    s.refilledAt = now;
    if (s.tokens < 1) {
      s.dropped++;
      continue;
    }
    if (settings.includeInputs && inputBytes < 0) inputBytes = estimateJsonBytes(request.inputs);
    const frameBytes = headBytes + (settings.includeInputs ? inputBytes : 0) + FRAME_TAIL_BYTES;
    if (frameBytes > limits.maxFrameBytes || frameBytes + limits.frameOverheadBytes > budget.bytes) {
      // Out of budget (or never affordable): decided before any encoding.
      s.dropped++;
      if (frameBytes <= limits.maxFrameBytes) starved = true;
      continue;
    }
    if (!sink.feedWritable()) {
      s.dropped++;
      continue;
    }
    let frame: string;
    try {
      if (head === undefined) {
        head = encodeFeedHead(model, response, requestId);
        headBytes = head.length;
      }
      if (settings.includeInputs && inputs === undefined) {
        inputs = encodeFeedInputs(request.inputs);
        inputBytes = inputs.length;
      }
      frame = encodeFeedFrame(head, settings.includeInputs ? inputs : undefined, s.dropped);
      // (string length: UTF-16 units, the bytes of these ASCII frames but for non-ASCII names)
      if (frame.length > limits.maxFrameBytes) {
        s.dropped++;
        continue;
      }
      budget.bytes -= frame.length + limits.frameOverheadBytes;
      sink.sendFeed(frame);
    } catch {
      // A bug of the feed (the answer itself went out fine): never fail serving for it.
      s.dropped++;
      continue;
    }
    s.tokens -= 1;
    s.dropped = 0;
    (served ??= []).push(sink);
  }
  if (starved && served !== undefined) {
    // Round robin: the next predictions go first to those who got nothing from this one.
    for (const sink of served) {
      const s = subscribers.get(sink)!;
      subscribers.delete(sink);
      subscribers.set(sink, s);
    }
  }
}
