/**
 * WebSocket stream client (`/v2/stream`): many inferences in flight on one connection, one
 * promise each, matched to their responses by id (responses may come out of order).
 *
 * The server answers 429 past its per-connection in-flight limit (256 by default), so the
 * client keeps at most `maxInflight` requests on the wire (default 256) and holds the rest
 * in order until answers free places: a caller may start 10,000 inferences at once.
 *
 * Requests go as binary frames by default (`[uint32 LE JSON length][JSON][tensor bytes]`,
 * outputs come back as bytes); `binary: false` sends JSON text frames. A failed request's
 * promise rejects with a TensorwireError carrying the server's code; close() rejects every
 * pending request with CANCELLED; a connection that drops rejects them with UNAVAILABLE.
 *
 * `subscribe` receives a model's live (sampled, rate-limited) prediction feed on the same
 * socket, for dashboards; feed frames never count against `maxInflight`.
 */
import { TensorwireError } from '../errors';
import type { InferInputs, InferOptions, InferResult } from './http-client';
import { toWireTensors } from './tensor';
import { decodeStreamMessage, encodeStreamBinaryFrame, encodeStreamTextFrame, type FeedPrediction, type RequestOptions } from './wire';
import { loadWs, type WsSocket } from './ws-types';

/** Options of a StreamClient. */
export interface StreamClientOptions {
  /** Server URL: http(s):// or ws(s)://; `/v2/stream` is appended when the path is empty. Default http://127.0.0.1:8000. */
  url?: string;
  /** Binary frames (default true) or JSON text frames. */
  binary?: boolean;
  /** Client-side timeout per request, ms (0 = none). Default 0. */
  timeoutMs?: number;
  /** Largest response frame accepted, bytes. Default 1 GiB. */
  maxPayload?: number;
  /**
   * Requests on the wire at once; later ones wait in the client until answers come. Keep it
   * at or under the server's `streamMaxInflight` (default 256, the default here too);
   * 0 = no client-side limit (the server's 429s then reach the caller).
   */
  maxInflight?: number;
}

/** Options of one stream inference (`signal` withdraws the promise; the server still answers). */
export type StreamInferOptions = Omit<InferOptions, 'id'> & { binary?: boolean };

export type { FeedPrediction } from './wire';

/** Settings of a feed subscription; left out, the server's defaults apply (1, 10, false). */
export interface SubscribeOptions {
  /** Fraction of the model's predictions sampled in, in (0, 1]. */
  sampleRate?: number;
  /** Feed frames per second at most, up to 1000 (the server refuses more); predictions over it are counted in `dropped`. */
  maxPerSecond?: number;
  /** Also send each prediction's inputs. */
  includeInputs?: boolean;
}

/** A feed callback, with an identity so that an old subscription's unsubscribe cannot end a newer one. */
interface FeedListener {
  onPrediction: (p: FeedPrediction) => void;
}

/** A control frame waiting for its answer. */
interface PendingControl {
  resolve: (answer: Record<string, unknown>) => void;
  reject: (e: TensorwireError) => void;
}

/** A request held in the client until a place on the wire frees up. */
interface Waiting {
  key: string;
  model: string;
  id: number;
  frame: Buffer | string;
  binary: boolean;
}

interface Pending {
  resolve: (r: InferResult) => void;
  reject: (e: TensorwireError) => void;
  /** On the wire (counted in `sent`), or still waiting in the client. */
  sent: boolean;
  timer?: NodeJS.Timeout;
  signal?: AbortSignal;
  onAbort?: () => void;
}

/** The URL of the stream endpoint for a server URL. */
export function streamUrl(url: string): string {
  const u = new URL(url);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  if (u.pathname === '/' || u.pathname === '') u.pathname = '/v2/stream';
  return u.href;
}

/** One WebSocket connection to a server. */
export class StreamClient {
  /** Resolves when the connection is open; rejects with UNAVAILABLE when it cannot be opened. */
  readonly opened: Promise<void>;
  private readonly ws: WsSocket;
  private readonly pending = new Map<string, Pending>();
  /** Requests not sent yet (over maxInflight), oldest first; their promises are in `pending`. */
  private readonly waiting: Waiting[] = [];
  private waitingHead = 0;
  /** Requests on the wire: pending ones sent, plus withdrawn ones whose answer is still due. */
  private sent = 0;
  /** Sent requests the caller gave up on (timeout, abort): the server still counts them until it answers. */
  private readonly withdrawn = new Set<string>();
  /** Feed callbacks by model. */
  private readonly feeds = new Map<string, FeedListener>();
  /** Control frames (subscribe, unsubscribe) waiting for their answer, by id. */
  private readonly controls = new Map<string, PendingControl>();
  private readonly maxInflight: number;
  private nextId = 1;
  private isOpen = false;
  private closedError: TensorwireError | undefined;
  private readonly binary: boolean;
  private readonly timeoutMs: number;

  /** Opens a client and waits for the connection. */
  static async connect(options: StreamClientOptions | string = {}): Promise<StreamClient> {
    const client = new StreamClient(options);
    await client.opened;
    return client;
  }

  constructor(options: StreamClientOptions | string = {}) {
    const o = typeof options === 'string' ? { url: options } : options;
    const url = streamUrl(o.url ?? 'http://127.0.0.1:8000');
    this.binary = o.binary ?? true;
    this.timeoutMs = o.timeoutMs ?? 0;
    this.maxInflight = o.maxInflight ?? 256;
    if (!Number.isSafeInteger(this.maxInflight) || this.maxInflight < 0) throw new RangeError(`maxInflight must be a non-negative integer, got ${o.maxInflight}`);
    const WebSocket = loadWs();
    this.ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: o.maxPayload ?? 1 << 30 });
    this.opened = new Promise<void>((resolve, reject) => {
      this.ws.on('open', () => {
        this.isOpen = true;
        resolve();
      });
      this.ws.on('unexpected-response', (_req, res) => {
        this.shutdown(new TensorwireError('UNAVAILABLE', `${url}: the server refused the WebSocket upgrade (HTTP ${res.statusCode ?? '?'})`));
        reject(this.closedError);
        this.ws.terminate();
      });
      this.ws.on('error', (e) => {
        this.shutdown(new TensorwireError('UNAVAILABLE', `${url}: ${e.message}`, { cause: e }));
        reject(this.closedError);
      });
    });
    this.opened.catch(() => {}); // a caller that never awaits it still sees the error on infer()
    this.ws.on('message', (data, isBinary) => this.onMessage(data, isBinary));
    this.ws.on('close', (code) => this.shutdown(new TensorwireError('UNAVAILABLE', `${url}: the connection closed (code ${code})`)));
  }

  /** Requests sent and waiting for their response (a withdrawn one counts until its late answer comes). */
  get inflight(): number {
    return this.sent;
  }

  /** Requests held in the client because `maxInflight` are already on the wire. */
  get queued(): number {
    return this.pending.size - (this.sent - this.withdrawn.size);
  }

  /**
   * Runs one inference over the stream. Once the connection is open the request is sent
   * (and counted in `inflight`) before this returns, unless `maxInflight` requests are
   * already on the wire: then it waits in the client (counted in `queued`) for a free place.
   * Before the connection is open it waits for `opened`. A client timeout counts from the send.
   */
  infer(model: string, inputs: InferInputs, options: StreamInferOptions = {}): Promise<InferResult> {
    let frame: Buffer | string;
    let id: number;
    let binary: boolean;
    try {
      const tensors = toWireTensors(inputs);
      id = this.nextId++;
      binary = options.binary ?? this.binary;
      const req: RequestOptions = { id, outputs: options.outputs, binaryOutputs: binary, priority: options.priority, timeoutUs: options.timeoutUs, parameters: options.parameters };
      frame = binary ? encodeStreamBinaryFrame(model, options.version, tensors, req) : encodeStreamTextFrame(model, options.version, tensors, req);
    } catch (e) {
      return Promise.reject(e);
    }
    if (!this.isOpen && !this.closedError) return this.opened.then(() => this.send(model, id, frame, binary, options.signal));
    return this.send(model, id, frame, binary, options.signal);
  }

  private send(model: string, id: number, frame: Buffer | string, binary: boolean, signal: AbortSignal | undefined): Promise<InferResult> {
    if (this.closedError) return Promise.reject(this.closedError);
    if (signal?.aborted) return Promise.reject(new TensorwireError('CANCELLED', `inference of '${model}' aborted before it was sent`));
    return new Promise<InferResult>((resolve, reject) => {
      const key = String(id);
      const p: Pending = { resolve, reject, sent: false };
      if (signal) {
        p.signal = signal;
        p.onAbort = () => this.settle(key)?.reject(new TensorwireError('CANCELLED', `request ${id} to '${model}' aborted by the caller`));
        signal.addEventListener('abort', p.onAbort, { once: true });
      }
      this.pending.set(key, p);
      const waiting: Waiting = { key, model, id, frame, binary };
      if (this.maxInflight > 0 && this.sent >= this.maxInflight) this.waiting.push(waiting);
      else this.transmit(waiting, p);
    });
  }

  /** Puts one request on the wire (its promise is already in `pending`). */
  private transmit(w: Waiting, p: Pending): void {
    p.sent = true;
    this.sent++;
    if (this.timeoutMs > 0) {
      p.timer = setTimeout(() => this.settle(w.key)?.reject(new TensorwireError('DEADLINE_EXCEEDED', `request ${w.id} to '${w.model}': no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
    }
    this.ws.send(w.frame, { binary: w.binary }, (err) => {
      if (err) this.settle(w.key, true)?.reject(new TensorwireError('UNAVAILABLE', `request ${w.id} to '${w.model}' could not be sent: ${err.message}`));
    });
  }

  /** Sends waiting requests while places are free (requests withdrawn meanwhile are skipped). */
  private pump(): void {
    while (this.waitingHead < this.waiting.length && this.sent < this.maxInflight && !this.closedError) {
      const w = this.waiting[this.waitingHead++]!;
      const p = this.pending.get(w.key);
      if (p !== undefined && !p.sent) this.transmit(w, p);
    }
    if (this.waitingHead === this.waiting.length) {
      this.waiting.length = 0;
      this.waitingHead = 0;
    } else if (this.waitingHead > 1024 && this.waitingHead * 2 > this.waiting.length) {
      this.waiting.splice(0, this.waitingHead);
      this.waitingHead = 0;
    }
  }

  /**
   * Subscribes to `model`'s live prediction feed: `onPrediction` gets each prediction the
   * server samples in and sends (tensors as typed arrays, as infer results). Resolves once the
   * server accepted, with the function that ends the subscription (it resolves false when
   * there was nothing left to end). Subscribing again to a model replaces the settings and
   * the callback. Rejects with the server's error: NOT_FOUND, INVALID_INPUT, FORBIDDEN when
   * the server has the feed off (its default), TOO_MANY_REQUESTS over a subscription cap
   * (16 per connection, 64 per model).
   */
  async subscribe(model: string, options: SubscribeOptions, onPrediction: (p: FeedPrediction) => void): Promise<() => Promise<boolean>> {
    const frame: Record<string, unknown> = { subscribe: model };
    if (options.sampleRate !== undefined) frame.sample_rate = options.sampleRate;
    if (options.maxPerSecond !== undefined) frame.max_per_second = options.maxPerSecond;
    if (options.includeInputs !== undefined) frame.include_inputs = options.includeInputs;
    await this.control(frame);
    const listener: FeedListener = { onPrediction };
    this.feeds.set(model, listener);
    return async () => {
      if (this.feeds.get(model) !== listener) return false; // ended, or replaced by a later subscribe
      this.feeds.delete(model);
      if (this.closedError) return false;
      const answer = await this.control({ unsubscribe: model });
      return answer.was_subscribed !== false;
    };
  }

  /** Sends a control frame with a fresh id; resolves with the server's answer. */
  private async control(frame: Record<string, unknown>): Promise<Record<string, unknown>> {
    if (!this.isOpen && !this.closedError) await this.opened;
    if (this.closedError) throw this.closedError;
    const id = this.nextId++;
    const key = String(id);
    return new Promise((resolve, reject) => {
      this.controls.set(key, { resolve, reject });
      this.ws.send(JSON.stringify({ id, ...frame }), { binary: false }, (err) => {
        if (!err) return;
        this.controls.delete(key);
        reject(new TensorwireError('UNAVAILABLE', `control frame ${id} could not be sent: ${err.message}`));
      });
    });
  }

  /** Hands a feed prediction to its callback; an exception there is the caller's, not the connection's. */
  private onFeed(p: FeedPrediction): void {
    const listener = this.feeds.get(p.model);
    if (listener === undefined) return; // unsubscribed while frames were on their way
    try {
      listener.onPrediction(p);
    } catch (e) {
      queueMicrotask(() => {
        throw e;
      });
    }
  }

  /** Closes the connection; every pending request rejects with CANCELLED. */
  async close(): Promise<void> {
    this.shutdown(new TensorwireError('CANCELLED', 'the stream client was closed'));
    if (this.ws.readyState === 3 /* CLOSED */) return;
    await new Promise<void>((resolve) => {
      this.ws.on('close', () => resolve());
      this.ws.close(1000);
      // A server that never completes the closing handshake must not hold close() forever.
      setTimeout(() => {
        this.ws.terminate();
        resolve();
      }, 1000).unref();
    });
  }

  /**
   * Removes request `key` from the pending set and clears its timer and listener. A sent
   * request that was not `answered` (timeout, abort) keeps its place on the wire until its
   * late answer arrives: the server counts it against its in-flight limit until then.
   */
  private settle(key: string, answered = false): Pending | undefined {
    const p = this.pending.get(key);
    if (!p) return undefined;
    this.pending.delete(key);
    if (p.timer) clearTimeout(p.timer);
    if (p.signal && p.onAbort) p.signal.removeEventListener('abort', p.onAbort);
    if (p.sent) {
      if (answered || this.closedError) this.freePlace();
      else this.withdrawn.add(key);
    }
    return p;
  }

  /** One request left the wire: send the next waiting one. */
  private freePlace(): void {
    this.sent--;
    if (this.waitingHead < this.waiting.length) this.pump();
  }

  /** The key of the only request on the wire, if exactly one is (to route an answer without id). */
  private onlySent(): string | undefined {
    if (this.sent !== 1 || this.withdrawn.size !== 0) return undefined;
    for (const [key, p] of this.pending) if (p.sent) return key;
    return undefined;
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    let msg;
    try {
      msg = decodeStreamMessage(data, isBinary);
    } catch (e) {
      // A frame we cannot read: with one request in flight it must be that one's answer.
      const only = this.onlySent();
      if (only !== undefined) this.settle(only, true)?.reject(e as TensorwireError);
      return;
    }
    if ('feed' in msg) {
      this.onFeed(msg.feed);
      return;
    }
    if (msg.id !== undefined) {
      const key = String(msg.id);
      const c = this.controls.get(key);
      if (c !== undefined) {
        this.controls.delete(key);
        if ('error' in msg) c.reject(msg.error);
        else if ('control' in msg) c.resolve(msg.control);
        else c.reject(new TensorwireError('INTERNAL', `malformed answer to control frame ${key}: an inference response`));
        return;
      }
    }
    if ('control' in msg) return; // the answer to a control frame nobody waits for
    const key = msg.id === undefined ? this.onlySent() : String(msg.id);
    if (key === undefined) return;
    const p = this.settle(key, true);
    if (!p) {
      // Timed out or aborted earlier: the late answer is dropped, and its place is free now.
      if (this.withdrawn.delete(key)) this.freePlace();
      return;
    }
    if ('error' in msg) p.reject(msg.error);
    else {
      const r = msg.response;
      p.resolve({ outputs: r.outputs, id: key, modelName: r.modelName, modelVersion: r.modelVersion });
    }
  }

  private shutdown(error: TensorwireError): void {
    if (!this.closedError) this.closedError = error;
    this.waiting.length = 0;
    this.waitingHead = 0;
    for (const key of [...this.pending.keys()]) this.settle(key)?.reject(error);
    for (const c of this.controls.values()) c.reject(error);
    this.controls.clear();
    this.feeds.clear();
    this.withdrawn.clear();
    this.sent = 0;
  }
}
