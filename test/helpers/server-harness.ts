/**
 * A real tensorwire server for integration tests: a temporary model repository written from
 * fixtures, started by createTensorwire (the real core, engine, schedulers and uWebSockets.js
 * front end, wired as `tensorwire serve` wires them) on 127.0.0.1 with an ephemeral port.
 * Nothing is mocked.
 *
 * Also the small HTTP helpers the integration tests share: JSON calls that return status,
 * headers and the parsed body, the binary tensor extension in both directions, and a
 * Prometheus text reader for /metrics.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelControl, TensorwireService } from '../../lib/core/service';
import type { RunningServer } from '../../lib/server/server';
import { createTensorwire } from '../../lib/tensorwire';
import { createSecurity, type SecurityOptions, type SecuritySetup } from '../../lib/auth/serve-flags';
import { tempDir } from './engine-run';

/** One model version to write into the repository. */
export interface HarnessModel {
  /** Model (directory) name. */
  name: string;
  /** Version directories and the fixture writing each one's `model.onnx` (given the version directory). */
  versions: Record<number, (versionDir: string) => Promise<unknown>>;
  /** Written as `<name>/config.json`. */
  config?: Record<string, unknown>;
  /** Written as `<name>/config.pbtxt` (Triton's text format). */
  pbtxt?: string;
}

/** Options of startHarness. */
export interface HarnessOptions {
  models: HarnessModel[];
  /** Default 'none'. */
  modelControl?: ModelControl;
  /** Models to load at start in explicit mode. */
  loadModels?: string[];
  /** Server body limit (bytes); default the server's (64 MiB). */
  maxBodyBytes?: number;
  /** Drain time of retired versions (ms). Default 2000. */
  drainMs?: number;
  /** The stream's live prediction feed; default the server's (off). */
  streamFeed?: boolean;
  /** Access control, browser checks, TLS (`tensorwire serve`'s security flags, or a built setup); default none. */
  security?: SecurityOptions | SecuritySetup;
  /** Serve /metrics on its own port (0: any free one). */
  metricsPort?: number;
  /** `--trace-dir`: where trace files may be written. */
  traceDir?: string;
  /** `--allow-model-upload`: repository loads may carry model files. */
  allowModelUpload?: boolean;
}

/** A running server over a temporary repository. */
export interface Harness {
  /** `http://127.0.0.1:<port>` */
  readonly base: string;
  readonly port: number;
  /** The repository directory (models can be added to it for explicit loads). */
  readonly repo: string;
  readonly service: TensorwireService;
  readonly server: RunningServer;
  /** Where /metrics is served. */
  readonly metricsUrl: string;
  /** State-change lines the core logged. */
  readonly log: string[];
  /** Closes the server, shuts the core down (frees every model) and removes the repository. */
  close(): Promise<void>;
}

/** Writes `model` into `repo` (directories, model files, config). */
export async function writeHarnessModel(repo: string, model: HarnessModel): Promise<void> {
  const dir = join(repo, model.name);
  mkdirSync(dir, { recursive: true });
  for (const [version, write] of Object.entries(model.versions)) {
    const versionDir = join(dir, version);
    mkdirSync(versionDir, { recursive: true });
    await write(versionDir);
  }
  if (model.config) writeFileSync(join(dir, 'config.json'), JSON.stringify(model.config, null, 2));
  if (model.pbtxt) writeFileSync(join(dir, 'config.pbtxt'), model.pbtxt);
}

/**
 * Writes the repository, starts the core and the server, and waits for the models loaded
 * at start (they are ready, or failed, when this resolves).
 */
export async function startHarness(options: HarnessOptions): Promise<Harness> {
  const { dir: repo, cleanup } = tempDir('tw-integration-');
  const log: string[] = [];
  let security: SecuritySetup | undefined;
  try {
    for (const model of options.models) await writeHarnessModel(repo, model);
    // Built here (as `tensorwire serve` does) so the harness closes its auth-file watcher.
    const given = options.security;
    security = given === undefined || 'access' in given ? given : createSecurity(given, '127.0.0.1', process.env);
    // The same wiring as `tensorwire serve` (lib/tensorwire.ts); resolves once the start-up models loaded.
    const tw = await createTensorwire({
      repository: repo,
      host: '127.0.0.1',
      port: 0,
      modelControl: options.modelControl ?? 'none',
      loadModels: options.loadModels ?? [],
      versionDrainMs: options.drainMs ?? 2000,
      ...(options.maxBodyBytes !== undefined ? { maxBodyBytes: options.maxBodyBytes } : {}),
      log: (line) => log.push(line),
      ...(options.streamFeed !== undefined ? { streamFeed: options.streamFeed } : {}),
      ...(security !== undefined ? { security } : {}),
      ...(options.metricsPort !== undefined ? { metricsPort: options.metricsPort } : {}),
      ...(options.traceDir !== undefined ? { traceDir: options.traceDir } : {}),
      ...(options.allowModelUpload !== undefined ? { allowModelUpload: options.allowModelUpload } : {}),
    });
    let closed: Promise<void> | undefined;
    return {
      base: tw.url,
      port: tw.server.port,
      repo,
      service: tw.service,
      server: tw.server,
      metricsUrl: tw.metricsUrl,
      log,
      close() {
        // Not tw.close(): tests end with requests still queued on purpose, and the harness
        // cancels them at once (sockets first, then the core) instead of draining them.
        closed ??= (async () => {
          await tw.server.close();
          await tw.service.shutdown();
          security?.close();
          cleanup();
        })();
        return closed;
      },
    };
  } catch (e) {
    if (options.security !== undefined && !('access' in options.security)) security?.close();
    cleanup();
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP helpers.

/** A response with its body read: `json` is the parsed body when it is JSON, else undefined. */
export interface Reply {
  status: number;
  headers: Headers;
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- a parsed reply of any shape; each test asserts the fields it reads
  json: any;
}

/** Sends a request and reads the whole body as text (parsed as JSON when it is). */
export async function call(base: string, path: string, init?: RequestInit): Promise<Reply> {
  const res = await fetch(base + path, init);
  const text = await res.text();
  let json: unknown;
  if (text !== '' && (res.headers.get('content-type') ?? '').includes('json')) json = JSON.parse(text);
  return { status: res.status, headers: res.headers, text, json };
}

/** POSTs `body` as JSON (a string is sent as it is, for malformed bodies). */
export function postJson(base: string, path: string, body: unknown): Promise<Reply> {
  return call(base, path, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'content-type': 'application/json' } });
}

/** A binary-extension tensor: JSON description plus its raw little-endian bytes. */
export interface BinaryTensor {
  name: string;
  datatype: string;
  shape: number[];
  bytes: Uint8Array;
}

/**
 * Builds a binary-extension request body: the JSON header (`extra` merged into it, inputs
 * with parameters.binary_data_size) followed by every input's bytes in order.
 */
export function binaryRequest(inputs: BinaryTensor[], extra: Record<string, unknown> = {}): { body: Buffer; headerLength: number } {
  const header = {
    ...extra,
    inputs: inputs.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape, parameters: { binary_data_size: t.bytes.byteLength } })),
  };
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  return { body: Buffer.concat([json, ...inputs.map((t) => Buffer.from(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength))]), headerLength: json.length };
}

/** POSTs a binary-extension request to `path`. */
export async function postBinary(base: string, path: string, body: Uint8Array, headerLength: number): Promise<BinaryReply> {
  const res = await fetch(base + path, {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(headerLength) },
  });
  return readBinaryReply(res);
}

/** A response that may use the binary extension: the JSON header and, per binary output, its bytes. */
export interface BinaryReply {
  status: number;
  headers: Headers;
  /** The raw body. */
  body: Buffer;
  /** The JSON part (the whole body when there is no Inference-Header-Content-Length). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- a parsed reply of any shape; each test asserts the fields it reads
  json: any;
  /** Bytes of each output sent as binary data, by name. */
  binary: Record<string, Buffer>;
}

/** Splits a response body per the binary extension (Inference-Header-Content-Length). */
export async function readBinaryReply(res: Response): Promise<BinaryReply> {
  const body = Buffer.from(await res.arrayBuffer());
  const lengthHeader = res.headers.get('inference-header-content-length');
  const headerLength = lengthHeader === null ? body.length : Number(lengthHeader);
  const json = JSON.parse(body.toString('utf8', 0, headerLength));
  const binary: Record<string, Buffer> = {};
  let offset = headerLength;
  for (const out of (json.outputs ?? []) as { name: string; parameters?: { binary_data_size?: number } }[]) {
    const size = out.parameters?.binary_data_size;
    if (size === undefined) continue;
    binary[out.name] = body.subarray(offset, offset + size);
    offset += size;
  }
  if (offset !== body.length) throw new Error(`binary response: ${body.length - offset} bytes left after the outputs' binary_data_size`);
  return { status: res.status, headers: res.headers, body, json, binary };
}

/** Little-endian bytes of a typed array (a copy that owns its buffer). */
export function bytes(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength));
}

/** Float32 values of little-endian bytes. */
export function f32(b: Uint8Array): Float32Array {
  return new Float32Array(new Uint8Array(b).buffer);
}

// ---------------------------------------------------------------------------------------------
// /metrics.

/** Sum of the samples of `metric` whose labels include every pair of `labels` (0 when none). */
export function metricValue(exposition: string, metric: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of exposition.split('\n')) {
    if (!line.startsWith(metric)) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== metric) continue;
    const have: Record<string, string> = {};
    for (const pair of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) have[pair[1]!] = pair[2]!;
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[3]);
  }
  return sum;
}

/** GET /metrics as text. */
export async function scrape(base: string): Promise<string> {
  return (await call(base, '/metrics')).text;
}

/** Polls `probe` until it returns true, or throws after `ms` naming `what`. */
export async function waitFor(probe: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
