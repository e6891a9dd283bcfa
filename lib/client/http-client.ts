/**
 * KServe v2 REST client for tensorwire (and any Triton-compatible server): inference with
 * typed arrays in and out, health, metadata and the repository extension.
 *
 * Transport: node:http with a keep-alive Agent. It is faster than the global fetch on Node
 * 20 (undici's fetch allocates a Request/Response/stream per call) and lets a process reuse
 * a bounded pool of connections. Every failure rejects with a TensorwireError: the server's
 * `{"error"}` with the code its status maps to, or UNAVAILABLE when the server cannot be
 * reached, DEADLINE_EXCEEDED on a client timeout, CANCELLED when the signal aborts.
 */
import { Agent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import type { ModelMetadataResponse, RepositoryIndexEntry } from '../core/types';
import { TensorwireError } from '../errors';
import { toWireTensors, type Tensor, type TensorInput } from './tensor';
import { decodeHttpResponse, encodeBinaryRequest, encodeJsonRequest, errorFromResponse } from './wire';

/** Options of an HttpClient. */
export interface HttpClientOptions {
  /** Server base URL. Default http://127.0.0.1:8000. */
  url?: string;
  /** Most connections kept to the server. Default 64. */
  maxSockets?: number;
  /** Client-side timeout of every call, ms (0 = none). Default 0. */
  timeoutMs?: number;
  /** Extra headers on every request (e.g. authorization). */
  headers?: Record<string, string>;
}

/** Options of one inference call. */
export interface InferOptions {
  /** Model version; the server's default policy picks one when left out. */
  version?: string;
  /** Binary tensor extension for inputs and outputs (default true); false sends and receives JSON. */
  binary?: boolean;
  /** Outputs to return (default: all). */
  outputs?: readonly string[];
  /** Scheduling priority (1 is highest). */
  priority?: number;
  /** Server-side queue timeout, microseconds. */
  timeoutUs?: number;
  /** Request id, echoed in the response. */
  id?: string;
  /** Other request parameters. */
  parameters?: Record<string, unknown>;
  /** Aborting rejects the call with CANCELLED and closes its connection (the server drops the request). */
  signal?: AbortSignal;
}

/** What an inference returns. */
export interface InferResult {
  outputs: Record<string, Tensor>;
  id?: string;
  modelName: string;
  modelVersion: string;
}

/** Inputs by name, or an array of tensors with names. */
export type InferInputs = Record<string, TensorInput> | ReadonlyArray<TensorInput & { name: string }>;

interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

const enc = encodeURIComponent;

/** A client of one server. Call close() to release its connections. */
export class HttpClient {
  readonly url: URL;
  private readonly agent: Agent;
  private readonly timeoutMs: number;
  private readonly headers: Record<string, string>;

  constructor(options: HttpClientOptions | string = {}) {
    const o = typeof options === 'string' ? { url: options } : options;
    this.url = new URL(o.url ?? 'http://127.0.0.1:8000');
    if (this.url.protocol !== 'http:') throw new TensorwireError('INVALID_INPUT', `HttpClient supports http:// URLs, got ${this.url.href}`);
    this.agent = new Agent({ keepAlive: true, maxSockets: o.maxSockets ?? 64 });
    this.timeoutMs = o.timeoutMs ?? 0;
    this.headers = { ...o.headers };
  }

  /** Runs one inference. Rejects with the server's error (TensorwireError with its code). */
  async infer(model: string, inputs: InferInputs, options: InferOptions = {}): Promise<InferResult> {
    const tensors = toWireTensors(inputs);
    const binary = options.binary ?? true;
    const req = { id: options.id, outputs: options.outputs, binaryOutputs: binary, priority: options.priority, timeoutUs: options.timeoutUs, parameters: options.parameters };
    let body: Buffer;
    const headers: Record<string, string> = {};
    if (binary) {
      const encoded = encodeBinaryRequest(tensors, req);
      body = encoded.body;
      headers['content-type'] = 'application/octet-stream';
      headers['inference-header-content-length'] = String(encoded.headerLength);
    } else {
      body = Buffer.from(encodeJsonRequest(tensors, req));
      headers['content-type'] = 'application/json';
    }
    const res = await this.call('POST', `${this.modelPath(model, options.version)}/infer`, body, headers, options.signal);
    if (res.status !== 200) throw this.errorOf(res);
    const h = res.headers['inference-header-content-length'];
    const decoded = decodeHttpResponse(res.body, typeof h === 'string' ? Number(h) : undefined);
    const result: InferResult = { outputs: decoded.outputs, modelName: decoded.modelName, modelVersion: decoded.modelVersion };
    if (decoded.id !== undefined) result.id = String(decoded.id);
    return result;
  }

  /** Server metadata (no model) or a model's metadata (inputs, outputs, versions). */
  metadata(): Promise<{ name: string; version: string; extensions: string[] }>;
  metadata(model: string, version?: string): Promise<ModelMetadataResponse>;
  async metadata(model?: string, version?: string): Promise<unknown> {
    return this.json('GET', model === undefined ? '/v2' : this.modelPath(model, version));
  }

  /** True when the server answers /v2/health/live with 200; false for any other answer or none. */
  async live(): Promise<boolean> {
    return this.probe('/v2/health/live');
  }

  /** Server readiness, or a model's when `model` is given. */
  async ready(model?: string, version?: string): Promise<boolean> {
    return this.probe(model === undefined ? '/v2/health/ready' : `${this.modelPath(model, version)}/ready`);
  }

  /** The repository index (every model version and its state; only ready ones with `readyOnly`). */
  async repositoryIndex(readyOnly = false): Promise<RepositoryIndexEntry[]> {
    return this.json('POST', '/v2/repository/index', { ready: readyOnly }) as Promise<RepositoryIndexEntry[]>;
  }

  /** Loads (or reloads) a model, optionally with a configuration that overrides its config file. */
  async load(model: string, config?: Record<string, unknown>): Promise<void> {
    await this.json('POST', `/v2/repository/models/${enc(model)}/load`, config === undefined ? {} : { parameters: { config: JSON.stringify(config) } });
  }

  /** Unloads a model. */
  async unload(model: string): Promise<void> {
    await this.json('POST', `/v2/repository/models/${enc(model)}/unload`, {});
  }

  /** Triton-style statistics (`{"model_stats": [...]}`) of one model or all. */
  async statistics(model?: string, version?: string): Promise<{ model_stats: unknown[] }> {
    return this.json('GET', model === undefined ? '/v2/models/stats' : `${this.modelPath(model, version)}/stats`) as Promise<{ model_stats: unknown[] }>;
  }

  /** Closes idle connections; calls in flight finish. */
  close(): void {
    this.agent.destroy();
  }

  private modelPath(model: string, version: string | undefined): string {
    return `/v2/models/${enc(model)}${version === undefined ? '' : `/versions/${enc(version)}`}`;
  }

  private async probe(path: string): Promise<boolean> {
    try {
      return (await this.call('GET', path)).status === 200;
    } catch {
      return false;
    }
  }

  private async json(method: string, path: string, body?: unknown): Promise<unknown> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const res = await this.call(method, path, payload, payload ? { 'content-type': 'application/json' } : {});
    if (res.status !== 200) throw this.errorOf(res);
    if (res.body.length === 0) return undefined;
    try {
      return JSON.parse(res.body.toString('utf8'));
    } catch (e) {
      throw new TensorwireError('INTERNAL', `${method} ${path}: the server answered 200 with malformed JSON (${(e as Error).message})`);
    }
  }

  private errorOf(res: RawResponse): TensorwireError {
    let body: unknown = res.body.toString('utf8');
    try {
      body = JSON.parse(body as string);
    } catch {
      // not JSON: keep the text
    }
    const retry = Number(res.headers['retry-after']);
    return errorFromResponse(res.status, body, Number.isFinite(retry) && res.headers['retry-after'] !== undefined ? retry : undefined);
  }

  private call(method: string, path: string, body?: Buffer, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<RawResponse> {
    return new Promise<RawResponse>((resolve, reject) => {
      if (signal?.aborted) {
        reject(new TensorwireError('CANCELLED', `${method} ${path}: aborted before it was sent`));
        return;
      }
      const req = httpRequest(
        {
          host: this.url.hostname.replace(/^\[(.*)\]$/, '$1'), // IPv6 literals come bracketed
          port: this.url.port || 80,
          method,
          path,
          agent: this.agent,
          headers: { ...this.headers, ...headers, ...(body ? { 'content-length': String(body.length) } : {}) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            signal?.removeEventListener('abort', onAbort);
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks) });
          });
          res.on('error', fail);
        },
      );
      let settled = false;
      function fail(e: Error): void {
        if (settled) return;
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        reject(e);
      }
      const onAbort = () => {
        req.destroy();
        fail(new TensorwireError('CANCELLED', `${method} ${path}: aborted by the caller`));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      if (this.timeoutMs > 0) {
        req.setTimeout(this.timeoutMs, () => {
          req.destroy();
          fail(new TensorwireError('DEADLINE_EXCEEDED', `${method} ${path}: no answer within ${this.timeoutMs} ms`));
        });
      }
      req.on('error', (e) => fail(e instanceof TensorwireError ? e : new TensorwireError('UNAVAILABLE', `${method} ${this.url.origin}${path}: ${e.message}`, { cause: e })));
      req.end(body);
    });
  }
}
