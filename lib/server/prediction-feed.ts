/**
 * The live prediction feed (docs/streaming.md, "Live prediction feed"): stream connections
 * subscribe to a model, and every successful inference of that model (HTTP JSON or binary,
 * stream, any version) is offered to its subscribers, sampled and rate limited per
 * subscription.
 *
 * The feed must never cost serving anything it does not need:
 * - `publish` is called after every success; with nobody subscribed to the model it is one
 *   Map lookup: no encoding, no allocation, no clock read.
 * - Sampling and the token bucket run before any encoding, and a frame is encoded only when
 *   its connection can take it right now (StreamConnection rule 5): a backed-up dashboard
 *   costs a counter increment, never memory, and never delays an answer.
 * - Every prediction sampled in but not sent is counted and reported in the next frame's
 *   `dropped`, so a dashboard knows how much it did not see.
 * - A failure in here is a bug of the feed and must not fail the inference that called it:
 *   `publish` catches it and counts the frame as dropped.
 */
import { encodeFeedFrame, encodeFeedHead, encodeFeedInputs, type FeedSettings, type StreamId } from '../protocol/stream-frame';
import type { InferRequest, InferResponse } from '../protocol/types';

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

/** The subscriptions of every connection, by model. */
export class PredictionFeed {
  private readonly byModel = new Map<string, Map<FeedSink, Subscription>>();
  /** The models each connection subscribes to, so a closed connection is forgotten in one step. */
  private readonly bySink = new Map<FeedSink, Set<string>>();

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
   * starts full again; predictions dropped so far are still reported).
   */
  subscribe(sink: FeedSink, model: string, settings: FeedSettings): void {
    let subscribers = this.byModel.get(model);
    if (subscribers === undefined) this.byModel.set(model, (subscribers = new Map()));
    let models = this.bySink.get(sink);
    if (models === undefined) this.bySink.set(sink, (models = new Set()));
    models.add(model);
    const previous = subscribers.get(sink);
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
  publish(model: string, request: InferRequest, response: InferResponse, requestId: StreamId | undefined): void {
    const subscribers = this.byModel.get(model);
    if (subscribers === undefined) return;
    deliver(subscribers, model, request, response, requestId);
  }
}

/** Bucket size: one second's worth of frames, and at least one so that a rate under 1/s still sends. */
function capacity(settings: FeedSettings): number {
  return Math.max(1, settings.maxPerSecond);
}

/** The slow path of publish: sample, rate limit, and encode only what goes out (shared by every subscriber). */
function deliver(subscribers: Map<FeedSink, Subscription>, model: string, request: InferRequest, response: InferResponse, requestId: StreamId | undefined): void {
  let head: string | undefined;
  let inputs: string | undefined;
  let now = -1;
  for (const [sink, s] of subscribers) {
    const settings = s.settings;
    if (settings.sampleRate < 1 && Math.random() >= settings.sampleRate) continue;
    if (now < 0) now = performance.now();
    s.tokens = Math.min(capacity(settings), s.tokens + ((now - s.refilledAt) / 1000) * settings.maxPerSecond);
    s.refilledAt = now;
    if (s.tokens < 1 || !sink.feedWritable()) {
      s.dropped++;
      continue;
    }
    try {
      head ??= encodeFeedHead(model, response, requestId);
      if (settings.includeInputs) inputs ??= encodeFeedInputs(request.inputs);
      sink.sendFeed(encodeFeedFrame(head, settings.includeInputs ? inputs : undefined, s.dropped));
    } catch {
      // A bug of the feed (the answer itself went out fine): never fail serving for it.
      s.dropped++;
      continue;
    }
    s.tokens -= 1;
    s.dropped = 0;
  }
}
