/**
 * WebSocket stream client (`/v2/stream`): many inferences in flight on one connection, one
 * promise each, matched to their responses by id (responses may come out of order).
 *
 * Requests go as binary frames by default (`[uint32 LE JSON length][JSON][tensor bytes]`,
 * outputs come back as bytes); `binary: false` sends JSON text frames. A failed request's
 * promise rejects with a TensorwireError carrying the server's code; close() rejects every
 * pending request with CANCELLED; a connection that drops rejects them with UNAVAILABLE.
 */
import { TensorwireError } from '../errors';
import type { InferInputs, InferOptions, InferResult } from './http-client';
import { toWireTensors } from './tensor';
import { decodeStreamMessage, encodeStreamBinaryFrame, encodeStreamTextFrame, type RequestOptions } from './wire';
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
}

/** Options of one stream inference (`signal` withdraws the promise; the server still answers). */
export type StreamInferOptions = Omit<InferOptions, 'id'> & { binary?: boolean };

interface Pending {
  resolve: (r: InferResult) => void;
  reject: (e: TensorwireError) => void;
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

  /** Requests waiting for their response. */
  get inflight(): number {
    return this.pending.size;
  }

  /**
   * Runs one inference over the stream. Once the connection is open the request is sent
   * (and counted in `inflight`) before this returns; before that it waits for `opened`.
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
      const p: Pending = { resolve, reject };
      if (this.timeoutMs > 0) {
        p.timer = setTimeout(() => this.settle(key)?.reject(new TensorwireError('DEADLINE_EXCEEDED', `request ${id} to '${model}': no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
      }
      if (signal) {
        p.signal = signal;
        p.onAbort = () => this.settle(key)?.reject(new TensorwireError('CANCELLED', `request ${id} to '${model}' aborted by the caller`));
        signal.addEventListener('abort', p.onAbort, { once: true });
      }
      this.pending.set(key, p);
      this.ws.send(frame, { binary }, (err) => {
        if (err) this.settle(key)?.reject(new TensorwireError('UNAVAILABLE', `request ${id} to '${model}' could not be sent: ${err.message}`));
      });
    });
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

  /** Removes request `key` from the pending set and clears its timer and listener. */
  private settle(key: string): Pending | undefined {
    const p = this.pending.get(key);
    if (!p) return undefined;
    this.pending.delete(key);
    if (p.timer) clearTimeout(p.timer);
    if (p.signal && p.onAbort) p.signal.removeEventListener('abort', p.onAbort);
    return p;
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    let msg;
    try {
      msg = decodeStreamMessage(data, isBinary);
    } catch (e) {
      // A frame we cannot read: with one request in flight it must be that one's answer.
      if (this.pending.size === 1) this.settle(this.pending.keys().next().value!)?.reject(e as TensorwireError);
      return;
    }
    let key = msg.id === undefined ? undefined : String(msg.id);
    if (key === undefined && this.pending.size === 1) key = this.pending.keys().next().value!;
    if (key === undefined) return;
    const p = this.settle(key);
    if (!p) return; // timed out or aborted earlier: the late answer is dropped
    if ('error' in msg) p.reject(msg.error);
    else {
      const r = msg.response;
      p.resolve({ outputs: r.outputs, id: key, modelName: r.modelName, modelVersion: r.modelVersion });
    }
  }

  private shutdown(error: TensorwireError): void {
    if (!this.closedError) this.closedError = error;
    for (const key of [...this.pending.keys()]) this.settle(key)?.reject(error);
  }
}
