/**
 * The client side of the KServe v2 codecs: encoding requests and decoding responses, the
 * mirror of lib/protocol (which decodes requests and encodes responses for the server).
 * Tensor data conversions are lib/protocol's (tensor-data.ts, tensor-json.ts, half.ts), so
 * client and server agree on every rule (FP16 rounding, NaN as "NaN", 64-bit integers).
 *
 * Wire formats:
 * - JSON: `{"id", "parameters", "inputs": [{name, datatype, shape, data}], "outputs"}`.
 * - HTTP binary extension: JSON header with `parameters.binary_data_size` per input,
 *   followed by the bytes; `Inference-Header-Content-Length` gives the header's length.
 * - Stream binary frame: `[uint32 LE JSON length][JSON header][bytes]`, same header plus
 *   `model_name`, `model_version`, `id`. Errors come back as text `{"id","error","code"}`.
 */
import type { Datatype } from '../engine/types';
import { DATATYPE_SIZE } from '../engine/types';
import { ERROR_CATALOGUE, TensorwireError, type ErrorCode } from '../errors';
import { parseJsonText, parseJsonTextExact } from '../protocol/json-text';
import { describeValue, elementCount, isDatatype, jsonToTensorBytes, type JsonDecodeState } from '../protocol/tensor-data';
import { tensorBytesToJsonText } from '../protocol/tensor-json';
import { fromWireBytes, type Tensor, type WireTensor } from './tensor';

/** Request-level options every encoding understands. */
export interface RequestOptions {
  id?: string | number;
  /** Outputs to return (default: all the model has). */
  outputs?: readonly string[];
  /** Ask for outputs as binary data (binary extension / binary frames). */
  binaryOutputs: boolean;
  /** Schedule policy: priority level (1 is highest). */
  priority?: number;
  /** Schedule policy: timeout in microseconds. */
  timeoutUs?: number;
  /** Other request parameters, sent as they are. */
  parameters?: Record<string, unknown>;
}

/** A decoded inference response. */
export interface DecodedResponse {
  id?: string | number;
  modelName: string;
  modelVersion: string;
  outputs: Record<string, Tensor>;
  parameters?: Record<string, unknown>;
}

/** Builds the request JSON. `prefix` is JSON text of leading members (stream frames: model_name...). */
function requestJson(inputs: readonly WireTensor[], o: RequestOptions, binaryInputs: boolean, prefix: string): string {
  let json = '{' + prefix;
  if (o.id !== undefined) json += '"id":' + JSON.stringify(o.id) + ',';
  const params: Record<string, unknown> = { ...o.parameters };
  if (o.binaryOutputs) params.binary_data_output = true;
  if (o.priority !== undefined) params.priority = o.priority;
  if (o.timeoutUs !== undefined) params.timeout = Math.round(o.timeoutUs);
  if (Object.keys(params).length > 0) json += '"parameters":' + JSON.stringify(params) + ',';
  json += '"inputs":[';
  for (let i = 0; i < inputs.length; i++) {
    const t = inputs[i]!;
    json += (i === 0 ? '{"name":' : ',{"name":') + JSON.stringify(t.name) + ',"datatype":"' + t.datatype + '","shape":[' + t.shape.join(',') + ']';
    json += binaryInputs ? ',"parameters":{"binary_data_size":' + t.data.byteLength + '}}' : ',"data":[' + tensorBytesToJsonText(t.datatype, t.data) + ']}';
  }
  json += ']';
  if (o.outputs !== undefined) {
    json += ',"outputs":[' + o.outputs.map((n) => '{"name":' + JSON.stringify(n) + (o.binaryOutputs ? ',"parameters":{"binary_data":true}}' : '}')).join(',') + ']';
  }
  return json + '}';
}

/** A JSON request body (every input inline). */
export function encodeJsonRequest(inputs: readonly WireTensor[], o: RequestOptions): string {
  return requestJson(inputs, { ...o, binaryOutputs: o.binaryOutputs }, false, '');
}

/** A binary-extension request body and the value of its Inference-Header-Content-Length. */
export function encodeBinaryRequest(inputs: readonly WireTensor[], o: RequestOptions): { body: Buffer; headerLength: number } {
  const json = requestJson(inputs, o, true, '');
  const headerLength = Buffer.byteLength(json);
  let total = headerLength;
  for (const t of inputs) total += t.data.byteLength;
  const body = Buffer.allocUnsafe(total);
  body.write(json, 0, headerLength, 'utf8');
  let off = headerLength;
  for (const t of inputs) {
    body.set(t.data, off);
    off += t.data.byteLength;
  }
  return { body, headerLength };
}

function streamPrefix(modelName: string, modelVersion: string | undefined): string {
  return '"model_name":' + JSON.stringify(modelName) + ',' + (modelVersion === undefined ? '' : '"model_version":' + JSON.stringify(modelVersion) + ',');
}

/** A binary stream frame: `[uint32 LE JSON length][JSON header][tensor bytes]`. */
export function encodeStreamBinaryFrame(modelName: string, modelVersion: string | undefined, inputs: readonly WireTensor[], o: RequestOptions): Buffer {
  const json = requestJson(inputs, o, true, streamPrefix(modelName, modelVersion));
  const jsonLength = Buffer.byteLength(json);
  let total = 4 + jsonLength;
  for (const t of inputs) total += t.data.byteLength;
  const frame = Buffer.allocUnsafe(total);
  frame.writeUInt32LE(jsonLength, 0);
  frame.write(json, 4, jsonLength, 'utf8');
  let off = 4 + jsonLength;
  for (const t of inputs) {
    frame.set(t.data, off);
    off += t.data.byteLength;
  }
  return frame;
}

/** A text stream frame (JSON request with model_name; outputs come back as JSON). */
export function encodeStreamTextFrame(modelName: string, modelVersion: string | undefined, inputs: readonly WireTensor[], o: RequestOptions): string {
  return requestJson(inputs, { ...o, binaryOutputs: false }, false, streamPrefix(modelName, modelVersion));
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function bad(message: string): TensorwireError {
  return new TensorwireError('INTERNAL', `malformed inference response: ${message}`);
}

/**
 * Decodes a parsed response. Outputs with parameters.binary_data_size take their bytes from
 * `binary` (from `start`, in order) as views. Returns undefined in place of the response
 * when a 64-bit integer may have been rounded by JSON.parse (caller re-parses exactly).
 */
function responseFromJson(root: unknown, binary: { body: Uint8Array; start: number } | undefined, state: JsonDecodeState | undefined): DecodedResponse | undefined {
  if (!isObject(root)) throw bad(`expected a JSON object, got ${describeValue(root)}`);
  const outputs = tensorsFromJson(root.outputs, 'output', binary, state);
  if (state?.lossyIntegers) return undefined;
  const id = root.id;
  const resp: DecodedResponse = { modelName: String(root.model_name ?? ''), modelVersion: String(root.model_version ?? ''), outputs };
  if (typeof id === 'string' || typeof id === 'number') resp.id = id;
  if (isObject(root.parameters)) resp.parameters = root.parameters;
  return resp;
}

/**
 * A response's `outputs` (or a feed frame's `inputs`) by name. Tensors with
 * parameters.binary_data_size take their bytes from `binary` (from `start`, in order) as views.
 */
function tensorsFromJson(list: unknown, kind: 'output' | 'input', binary: { body: Uint8Array; start: number } | undefined, state: JsonDecodeState | undefined): Record<string, Tensor> {
  const outputs: Record<string, Tensor> = {};
  if (!Array.isArray(list)) throw bad(`'${kind}s' must be an array, got ${describeValue(list)}`);
  let off = binary?.start ?? 0;
  for (const o of list) {
    if (!isObject(o) || typeof o.name !== 'string') throw bad(`each ${kind} needs a name, got ${describeValue(o)}`);
    const label = `${kind} '${o.name}'`;
    if (!isDatatype(o.datatype)) throw bad(`${label}: unknown datatype ${describeValue(o.datatype)}`);
    const datatype: Datatype = o.datatype;
    if (!Array.isArray(o.shape) || !o.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw bad(`${label}: bad shape ${describeValue(o.shape)}`);
    const shape = o.shape as number[];
    const size = isObject(o.parameters) ? o.parameters.binary_data_size : undefined;
    let bytes: Uint8Array;
    if (size !== undefined) {
      if (binary === undefined) throw bad(`${label} has binary_data_size but the response carries no binary data`);
      // BYTES: binary_data_size is the serialized size; fromWireBytes walks the prefixes.
      const n = datatype === 'BYTES' && typeof size === 'number' && Number.isSafeInteger(size) && size >= 0 ? size : elementCount(shape) * DATATYPE_SIZE[datatype];
      if (size !== n) throw bad(`${label}: binary_data_size ${String(size)} does not match ${datatype} shape [${shape.join(',')}] (${n} bytes)`);
      if (off + n > binary.body.byteLength) throw bad(`${label}: binary data runs past the end of the response`);
      bytes = binary.body.subarray(off, off + n);
      off += n;
    } else {
      bytes = jsonToTensorBytes(label, datatype, shape, o.data, state);
    }
    outputs[o.name] = { datatype, shape, data: fromWireBytes(label, datatype, shape, bytes) };
  }
  return outputs;
}

/** Decodes a response from JSON text (and an optional binary section). */
export function decodeResponseText(text: string, binary?: { body: Uint8Array; start: number }): DecodedResponse {
  const state: JsonDecodeState = { lossyIntegers: false };
  return responseFromJson(parseJsonText(text), binary, state) ?? responseFromJson(parseJsonTextExact(text), binary, undefined)!;
}

/** Decodes an HTTP inference response body; `headerLength` from Inference-Header-Content-Length, if any. */
export function decodeHttpResponse(body: Buffer, headerLength: number | undefined): DecodedResponse {
  if (headerLength === undefined) return decodeResponseText(body.toString('utf8'));
  if (!(headerLength > 0 && headerLength <= body.length)) throw bad(`Inference-Header-Content-Length ${headerLength} does not fit a body of ${body.length} bytes`);
  return decodeResponseText(body.toString('utf8', 0, headerLength), { body, start: headerLength });
}

/** One prediction of a model's live feed (docs/streaming.md, "Live prediction feed"). */
export interface FeedPrediction {
  /** The model subscribed to. */
  model: string;
  /** The version that answered. */
  modelVersion: string;
  /** The request's id, when it had one. */
  requestId?: string | number;
  outputs: Record<string, Tensor>;
  /** The request's inputs, with `includeInputs` only. */
  inputs?: Record<string, Tensor>;
  /** Predictions sampled in but not sent since the previous frame (rate limit or backpressure). */
  dropped: number;
}

/**
 * A decoded stream message: a response, the error of request `id`, a feed prediction, or the
 * answer to a control frame (`subscribed` / `unsubscribed`, as the server wrote it).
 */
export type StreamMessage =
  | { id: string | number | undefined; response: DecodedResponse }
  | { id: string | number | undefined; error: TensorwireError }
  | { id: undefined; feed: FeedPrediction }
  | { id: string | number; control: Record<string, unknown> };

/** A feed frame (`{"feed": ...}`) from its text; 64-bit integers are re-read exactly when needed. */
function feedFromText(text: string, root: Record<string, unknown>): FeedPrediction {
  const read = (r: Record<string, unknown>, state: JsonDecodeState | undefined): FeedPrediction | undefined => {
    const outputs = tensorsFromJson(r.outputs, 'output', undefined, state);
    const inputs = r.inputs === undefined ? undefined : tensorsFromJson(r.inputs, 'input', undefined, state);
    if (state?.lossyIntegers) return undefined;
    const p: FeedPrediction = { model: String(r.feed), modelVersion: String(r.model_version ?? ''), outputs, dropped: typeof r.dropped === 'number' ? r.dropped : 0 };
    if (typeof r.request_id === 'string' || typeof r.request_id === 'number') p.requestId = r.request_id;
    if (inputs !== undefined) p.inputs = inputs;
    return p;
  };
  return read(root, { lossyIntegers: false }) ?? read(parseJsonTextExact(text) as Record<string, unknown>, undefined)!;
}

/** Decodes one message of the stream (binary frame, or text response / error). */
export function decodeStreamMessage(data: Buffer, isBinary: boolean): StreamMessage {
  if (isBinary) {
    if (data.length < 4) throw bad(`binary frame of ${data.length} bytes`);
    const len = data.readUInt32LE(0);
    if (4 + len > data.length) throw bad(`binary frame JSON length ${len} runs past the frame (${data.length} bytes)`);
    const response = decodeResponseText(data.toString('utf8', 4, 4 + len), { body: data, start: 4 + len });
    return { id: response.id, response };
  }
  const text = data.toString('utf8');
  const root = parseJsonText(text);
  if (isObject(root) && root.error !== undefined) {
    const id = typeof root.id === 'string' || typeof root.id === 'number' ? root.id : undefined;
    return { id, error: errorFromResponse(typeof root.status === 'number' ? root.status : 500, root) };
  }
  if (isObject(root) && typeof root.feed === 'string') return { id: undefined, feed: feedFromText(text, root) };
  if (isObject(root) && (typeof root.id === 'string' || typeof root.id === 'number') && (root.subscribed !== undefined || root.unsubscribed !== undefined)) {
    return { id: root.id, control: root };
  }
  const response = decodeResponseText(text);
  return { id: response.id, response };
}

/** Statuses shared by several codes: the generic one. */
const GENERIC_CODES: Partial<Record<number, ErrorCode>> = { 400: 'INVALID_INPUT', 413: 'PAYLOAD_TOO_LARGE', 500: 'INTERNAL', 503: 'UNAVAILABLE' };

/**
 * The code of an error that names none (a server other than tensorwire, e.g. Triton): the
 * catalogue's first entry with that status. Never guessed from the message.
 */
function codeForStatus(status: number): ErrorCode {
  const generic = GENERIC_CODES[status];
  if (generic !== undefined) return generic;
  for (const [code, entry] of Object.entries(ERROR_CATALOGUE)) if (entry.status === status) return code as ErrorCode;
  return status >= 500 ? 'INTERNAL' : 'INVALID_INPUT';
}

/**
 * The TensorwireError of an error response: `{"error": "..."}` with its HTTP status (and
 * `code`, when the server names a catalogue code as a string).
 */
export function errorFromResponse(status: number, body: unknown, retryAfterSeconds?: number): TensorwireError {
  const message = isObject(body) && typeof body.error === 'string' ? body.error : `HTTP ${status}${body === undefined ? '' : ': ' + describeValue(body)}`;
  const named = isObject(body) && typeof body.code === 'string' && body.code in ERROR_CATALOGUE ? (body.code as ErrorCode) : undefined;
  return new TensorwireError(named ?? codeForStatus(status), message, retryAfterSeconds === undefined ? undefined : { retryAfterSeconds });
}
