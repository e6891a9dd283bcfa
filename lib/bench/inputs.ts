/**
 * What the generator sends: input tensors made from the model's metadata (or read from a
 * KServe JSON request file), serialised once into the exact bytes each protocol puts on the
 * wire, and checked with one request before any load is generated.
 */
import { serializeBytesElements } from '../protocol/bytes-tensor';
import { readFileSync } from 'node:fs';
import type { Datatype } from '../engine/types';
import { DATATYPE_SIZE } from '../engine/types';
import { TensorwireError } from '../errors';
import { float32ToBfloat16Bits, float32ToFloat16Bits } from '../protocol/half';
import { elementCount, formatShape, isDatatype, jsonToTensorBytes } from '../protocol/tensor-data';
import { streamUrl } from '../client/stream-client';
import type { WireTensor } from '../client/tensor';
import { decodeStreamMessage, encodeBinaryRequest, encodeJsonRequest, encodeStreamBinaryFrame } from '../client/wire';
import { loadWs } from '../client/ws-types';
import type { BenchOptions, BenchProtocol } from './args';
import { seededRandom as random } from '../util/seeded-random';

/** A tensor as model metadata declares it (-1 = dynamic). */
export interface TensorMeta {
  name: string;
  datatype: string;
  shape: number[];
}

/** The parts of KServe model metadata the bench uses. */
export interface ModelInfo {
  name: string;
  inputs: TensorMeta[];
  outputs: TensorMeta[];
}

/** The request of a run, ready for the wire. */
export interface PreparedRequest {
  tensors: WireTensor[];
  /** Samples per request (the batch dimension, 1 when the model has none). */
  samples: number;
  /** HTTP: whole request (head + body). ws: the binary frame. */
  bytes: Buffer;
  path: string;
}

/** The path of a model (version) under /v2/models. */
export function modelPath(model: string, version?: string): string {
  return `/v2/models/${encodeURIComponent(model)}${version === undefined ? '' : `/versions/${encodeURIComponent(version)}`}`;
}

/** GET the model's metadata; UNAVAILABLE when the server cannot be reached, NOT_FOUND etc. as it answers. */
export async function fetchModelInfo(url: string, model: string, version?: string): Promise<ModelInfo> {
  const target = url + modelPath(model, version);
  let res: Response;
  try {
    res = await fetch(target, { signal: AbortSignal.timeout(10_000) });
  } catch (e) {
    throw new TensorwireError('UNAVAILABLE', `cannot reach ${target}: ${(e as Error).message}`, { cause: e });
  }
  const text = await res.text();
  if (res.status !== 200) {
    throw new TensorwireError(res.status === 404 ? 'NOT_FOUND' : 'UNAVAILABLE', `GET ${target} answered ${res.status}: ${text.slice(0, 200)}`);
  }
  let meta: unknown;
  try {
    meta = JSON.parse(text);
  } catch {
    throw new TensorwireError('INVALID_INPUT', `GET ${target}: model metadata is not JSON: ${text.slice(0, 200)}`);
  }
  const m = meta as Partial<ModelInfo>;
  if (!Array.isArray(m.inputs) || m.inputs.length === 0) throw new TensorwireError('INVALID_INPUT', `GET ${target}: metadata lists no inputs`);
  return { name: String(m.name ?? model), inputs: m.inputs, outputs: Array.isArray(m.outputs) ? m.outputs : [] };
}


/** Random bytes for a tensor: floats in [0, 1), integers in [0, 10), booleans 0/1. */
function randomBytes(datatype: Datatype, count: number, rand: () => number): Uint8Array {
  // BYTES: one random digit per string, in the serialized form.
  if (datatype === 'BYTES') return serializeBytesElements(Array.from({ length: count }, () => String(Math.floor(rand() * 10))));
  const bytes = new Uint8Array(count * DATATYPE_SIZE[datatype]);
  const b = bytes.buffer;
  for (let i = 0; i < count; i++) {
    const r = rand();
    switch (datatype) {
      case 'FP32': new Float32Array(b)[i] = r; break;
      case 'FP64': new Float64Array(b)[i] = r; break;
      case 'FP16': new Uint16Array(b)[i] = float32ToFloat16Bits(r); break;
      case 'BF16': new Uint16Array(b)[i] = float32ToBfloat16Bits(r); break;
      case 'BOOL': bytes[i] = r < 0.5 ? 0 : 1; break;
      case 'INT64': new BigInt64Array(b)[i] = BigInt(Math.floor(r * 10)); break;
      case 'UINT64': new BigUint64Array(b)[i] = BigInt(Math.floor(r * 10)); break;
      case 'INT8': new Int8Array(b)[i] = Math.floor(r * 10); break;
      case 'INT16': new Int16Array(b)[i] = Math.floor(r * 10); break;
      case 'INT32': new Int32Array(b)[i] = Math.floor(r * 10); break;
      case 'UINT8': bytes[i] = Math.floor(r * 10); break;
      case 'UINT16': new Uint16Array(b)[i] = Math.floor(r * 10); break;
      case 'UINT32': new Uint32Array(b)[i] = Math.floor(r * 10); break;
    }
  }
  return bytes;
}

/**
 * Input tensors for `info`: the shape from --shape when given (it must agree with the
 * model's fixed dimensions), else the model's with a dynamic first dimension set to `batch`
 * and other dynamic dimensions set to 1.
 */
export function generateInputs(info: ModelInfo, batch: number, shapes: Record<string, number[]>): { tensors: WireTensor[]; samples: number } {
  const rand = random(0x7e45);
  for (const name of Object.keys(shapes)) {
    if (!info.inputs.some((i) => i.name === name)) throw new TensorwireError('INVALID_INPUT', `--shape names '${name}', which is not an input of ${info.name} (inputs: ${info.inputs.map((i) => i.name).join(', ')})`);
  }
  let samples = 1;
  const tensors = info.inputs.map((spec, index) => {
    const label = `input '${spec.name}'`;
    if (!isDatatype(spec.datatype)) throw new TensorwireError('INVALID_INPUT', `${label}: datatype ${spec.datatype} cannot be generated (use --input-file?)`);
    const given = shapes[spec.name];
    let shape: number[];
    if (given) {
      if (given.length !== spec.shape.length || given.some((d, i) => spec.shape[i]! >= 0 && spec.shape[i] !== d)) {
        throw new TensorwireError('INVALID_INPUT', `--shape ${spec.name}:${given.join('x')} does not fit the model's shape ${formatShape(spec.shape)}`);
      }
      shape = given;
    } else {
      const dynamicBatch = spec.shape.length > 0 && spec.shape[0]! < 0;
      if (batch > 1 && !dynamicBatch) throw new TensorwireError('INVALID_INPUT', `--batch ${batch}: ${label} has shape ${formatShape(spec.shape)}, with no dynamic batch dimension`);
      shape = spec.shape.map((d, i) => (d >= 0 ? d : i === 0 ? batch : 1));
    }
    if (index === 0 && spec.shape.length > 0 && spec.shape[0]! < 0) samples = shape[0]!;
    return { name: spec.name, datatype: spec.datatype, shape, data: randomBytes(spec.datatype, elementCount(shape), rand) };
  });
  return { tensors, samples };
}

/** The inputs of a KServe JSON request file (`{"inputs": [{name, datatype, shape, data}]}`). */
export function readInputFile(file: string): { tensors: WireTensor[]; samples: number } {
  let root: unknown;
  try {
    root = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new TensorwireError('INVALID_INPUT', `--input-file ${file}: ${(e as Error).message}`);
  }
  const inputs = (root as { inputs?: unknown })?.inputs;
  if (!Array.isArray(inputs) || inputs.length === 0) throw new TensorwireError('INVALID_INPUT', `--input-file ${file}: expected a KServe request {"inputs": [...]}`);
  const tensors = inputs.map((t: { name?: unknown; datatype?: unknown; shape?: unknown; data?: unknown }, i) => {
    const label = `--input-file ${file}: input ${typeof t?.name === 'string' ? `'${t.name}'` : i}`;
    if (typeof t?.name !== 'string') throw new TensorwireError('INVALID_INPUT', `${label}: 'name' must be a string`);
    if (!isDatatype(t.datatype)) throw new TensorwireError('INVALID_INPUT', `${label}: unknown datatype ${String(t.datatype)}`);
    if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new TensorwireError('INVALID_INPUT', `${label}: 'shape' must be non-negative integers`);
    return { name: t.name, datatype: t.datatype, shape: t.shape as number[], data: jsonToTensorBytes(label, t.datatype, t.shape as number[], t.data) };
  });
  return { tensors, samples: tensors[0]!.shape[0] ?? 1 };
}

/** The bytes one request puts on the wire for `protocol`. */
export function prepareRequest(o: Pick<BenchOptions, 'url' | 'model' | 'version' | 'protocol'>, tensors: WireTensor[], samples: number): PreparedRequest {
  const path = `${modelPath(o.model, o.version)}/infer`;
  if (o.protocol === 'ws') {
    return { tensors, samples, path: '/v2/stream', bytes: encodeStreamBinaryFrame(o.model, o.version, tensors, { id: 'b', binaryOutputs: true }) };
  }
  const host = new URL(o.url).host;
  let body: Buffer;
  let extra: string;
  if (o.protocol === 'http-binary') {
    const encoded = encodeBinaryRequest(tensors, { binaryOutputs: true });
    body = encoded.body;
    extra = `Content-Type: application/octet-stream\r\nInference-Header-Content-Length: ${encoded.headerLength}\r\n`;
  } else {
    body = Buffer.from(encodeJsonRequest(tensors, { binaryOutputs: false }));
    extra = 'Content-Type: application/json\r\n';
  }
  const head = `POST ${path} HTTP/1.1\r\nHost: ${host}\r\n${extra}Content-Length: ${body.length}\r\n\r\n`;
  return { tensors, samples, path, bytes: Buffer.concat([Buffer.from(head, 'latin1'), body]) };
}

/**
 * Sends the request once before the load. A 4xx (the request does not fit the model) stops
 * the run with the server's message; a 5xx is returned for a warning (the load itself will
 * count such errors).
 */
export async function preflight(o: Pick<BenchOptions, 'url' | 'model' | 'version'>, protocol: BenchProtocol, req: PreparedRequest): Promise<string | undefined> {
  if (protocol === 'ws') return preflightStream(o.url, req.bytes);
  const split = req.bytes.indexOf('\r\n\r\n');
  const headers: Record<string, string> = {};
  for (const line of req.bytes.toString('latin1', 0, split).split('\r\n').slice(1)) {
    const c = line.indexOf(':');
    const name = line.slice(0, c).toLowerCase();
    if (name !== 'host' && name !== 'content-length') headers[name] = line.slice(c + 1).trim();
  }
  let res: Response;
  try {
    res = await fetch(o.url + req.path, { method: 'POST', headers, body: req.bytes.subarray(split + 4), signal: AbortSignal.timeout(30_000) });
  } catch (e) {
    throw new TensorwireError('UNAVAILABLE', `cannot reach ${o.url}${req.path}: ${(e as Error).message}`, { cause: e });
  }
  const text = res.headers.get('content-type')?.includes('json') ? await res.text() : `${(await res.arrayBuffer()).byteLength} bytes`;
  if (res.status >= 200 && res.status < 300) return undefined;
  if (res.status < 500) throw new TensorwireError('INVALID_INPUT', `the first request was refused with ${res.status}: ${text.slice(0, 300)}`);
  return `the first request failed with ${res.status}: ${text.slice(0, 300)}`;
}

/** The stream flavour of preflight: the exact frame the load sends, over a fresh WebSocket. */
async function preflightStream(url: string, frame: Buffer): Promise<string | undefined> {
  const WebSocket = loadWs();
  const target = streamUrl(url);
  const ws = new WebSocket(target, { perMessageDeflate: false, maxPayload: 1 << 30, handshakeTimeout: 10_000 });
  try {
    const [data, isBinary] = await new Promise<[Buffer, boolean]>((resolve, reject) => {
      const timer = setTimeout(() => reject(new TensorwireError('UNAVAILABLE', `${target}: no answer to the first request within 30 s`)), 30_000);
      ws.on('open', () => ws.send(frame, { binary: true }));
      ws.on('message', (d, b) => {
        clearTimeout(timer);
        resolve([d, b]);
      });
      ws.on('unexpected-response', (_q, r) => reject(new TensorwireError('UNAVAILABLE', `${target}: the server refused the WebSocket upgrade (HTTP ${r.statusCode ?? '?'})`)));
      ws.on('error', (e) => reject(new TensorwireError('UNAVAILABLE', `cannot open ${target}: ${e.message}`, { cause: e })));
    });
    const msg = decodeStreamMessage(data, isBinary);
    if (!('error' in msg)) return undefined;
    if (msg.error.status < 500) throw new TensorwireError(msg.error.code, `the first request was refused: ${msg.error.message}`);
    return `the first request failed: ${msg.error.message}`;
  } finally {
    ws.terminate();
  }
}
