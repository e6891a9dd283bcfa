/**
 * WebSocket stream frames (`GET /v2/stream`), see docs in design.md "Interfaces others rely on".
 *
 * - Text frame: one KServe v2 inference request as JSON, plus `"model_name"`, optional
 *   `"model_version"` and `"id"` (a string, or a number that is echoed back as a number).
 *   Its response is a text frame with every output as JSON data.
 * - Binary frame: `[uint32 LE length of JSON][JSON header][tensor bytes]`, the bytes laid
 *   out as in the HTTP binary tensor extension (`binary_data_size` per input, in order).
 *   Its response is a binary frame of the same layout; outputs default to binary data
 *   (`binary_data_output` true) unless the request says otherwise.
 * - Failure: a text frame `{"id":...,"error":"...","code":<HTTP status>}`.
 * - Control frame (text): `{"id", "subscribe": model, ...}` or `{"id", "unsubscribe": model}`,
 *   the live prediction feed (docs/streaming.md). Recognised by the `subscribe` or
 *   `unsubscribe` member, so it is never read as an inference request. Feed frames are text
 *   `{"feed": model, "model_version", "request_id", "outputs", "inputs", "dropped"}`.
 */
import { TensorwireError, toTensorwireError } from '../errors';
import { copyBinaryOutputs } from './binary-codec';
import { bodyText, buildResponseHeader, decodeRequestRoot, tensorListJson } from './json-codec';
import { parseJsonText } from './json-text';
import { checkLength, MAX_ID_CHARS, MAX_MODEL_NAME_CHARS } from './request-limits';
import { describeValue } from './tensor-data';
import type { InferInputTensor, InferRequest, InferResponse } from './types';

/** A stream request's id: a string, or a number (echoed back as the same number). */
export type StreamId = string | number;

/**
 * A decoded frame, or why it could not be decoded. A failure carries the frame's `id`
 * whenever the JSON could be read far enough to find it, so the error frame can name it.
 */
export type StreamFrame =
  | { ok: true; kind: 'infer'; id: StreamId | undefined; modelName: string; modelVersion: string | undefined; request: InferRequest; binary: boolean }
  | { ok: true; kind: 'control'; id: StreamId; control: StreamControl; binary: false }
  | { ok: false; id: StreamId | undefined; binary: boolean; error: TensorwireError; /** The model (and version) the frame named, when it got that far (for counting refusals). */ modelName?: string; modelVersion?: string };

/** Settings of a feed subscription, defaults applied. */
export interface FeedSettings {
  /** Fraction of the model's predictions sampled in, in (0, 1]. */
  sampleRate: number;
  /** Feed frames per second at most (a token bucket of this many tokens). */
  maxPerSecond: number;
  /** Whether feed frames carry the request's inputs. */
  includeInputs: boolean;
}

/** A control frame: subscribe to or unsubscribe from a model's live prediction feed. */
export type StreamControl = ({ op: 'subscribe'; model: string } & FeedSettings) | { op: 'unsubscribe'; model: string };

/** Defaults of a subscribe frame's optional fields. */
export const FEED_DEFAULTS: Readonly<FeedSettings> = Object.freeze({ sampleRate: 1, maxPerSecond: 10, includeInputs: false });

/** Bytes before the JSON header of a binary frame. */
const LENGTH_PREFIX = 4;

/**
 * Decodes one stream frame. Never throws: a bad frame comes back as `{ ok: false }`.
 * For a binary frame, input tensors are views of `data`; a server that gets `data` from
 * uWebSockets.js must copy them before its message handler returns (uWS reuses the memory).
 */
export function decodeStreamFrame(data: ArrayBuffer | Uint8Array, isBinary: boolean): StreamFrame {
  const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
  let id: StreamId | undefined;
  let named: string | undefined;
  let namedVersion: string | undefined;
  try {
    let text: string;
    let jsonEnd = bytes.byteLength;
    if (isBinary) {
      if (bytes.byteLength < LENGTH_PREFIX) {
        throw new TensorwireError('INVALID_INPUT', `binary frame of ${bytes.byteLength} bytes is too short: it must start with a 4-byte JSON length`);
      }
      const length = (bytes[0] | (bytes[1] << 8) | (bytes[2] << 16) | (bytes[3] << 24)) >>> 0;
      jsonEnd = LENGTH_PREFIX + length;
      if (jsonEnd > bytes.byteLength) {
        throw new TensorwireError('INVALID_INPUT', `binary frame JSON length ${length} is beyond the end of the frame (${bytes.byteLength - LENGTH_PREFIX} bytes after the length)`);
      }
      text = bodyText(bytes, LENGTH_PREFIX, jsonEnd);
    } else {
      text = bodyText(bytes);
    }

    const root = parseJsonText(text, `${isBinary ? 'binary' : 'text'} frame`);
    if (typeof root !== 'object' || root === null || Array.isArray(root)) {
      throw new TensorwireError('INVALID_INPUT', `the request must be a JSON object, got ${describeValue(root)}`);
    }
    const fields = root as Record<string, unknown>;
    const rawId = fields.id;
    // A longer id is refused before it is kept: the error frame would echo it.
    if (typeof rawId === 'string') checkLength("'id'", rawId, MAX_ID_CHARS);
    if (typeof rawId === 'string' || (typeof rawId === 'number' && Number.isFinite(rawId))) id = rawId;
    else if (rawId !== undefined) throw new TensorwireError('INVALID_INPUT', `'id' must be a string or a number, got ${describeValue(rawId)}`);

    if (fields.subscribe !== undefined || fields.unsubscribe !== undefined) {
      if (isBinary) throw new TensorwireError('INVALID_INPUT', `a ${fields.subscribe !== undefined ? 'subscribe' : 'unsubscribe'} frame must be a text frame, got a binary frame`);
      const control = decodeControl(fields);
      if (id === undefined) throw new TensorwireError('INVALID_INPUT', `every ${control.op} frame needs an 'id' (a string or a number) to match its answer; this one for model '${control.model}' has none`);
      return { ok: true, kind: 'control', id, control, binary: false };
    }

    const modelName = fields.model_name;
    if (typeof modelName !== 'string' || modelName.length === 0) {
      throw new TensorwireError('INVALID_INPUT', `'model_name' must be a non-empty string, got ${describeValue(modelName)}`);
    }
    checkLength("'model_name'", modelName, MAX_MODEL_NAME_CHARS);
    named = modelName;
    const version = fields.model_version;
    let modelVersion: string | undefined;
    if (typeof version === 'string') {
      checkLength("'model_version'", version, MAX_MODEL_NAME_CHARS);
      modelVersion = version;
    }
    else if (typeof version === 'number' && Number.isSafeInteger(version) && version >= 0) modelVersion = String(version);
    else if (version !== undefined) {
      throw new TensorwireError('INVALID_INPUT', `'model_version' must be a string or a non-negative integer, got ${describeValue(version)}`);
    }

    namedVersion = modelVersion;
    const request = isBinary
      ? decodeRequestRoot(root, text, { body: bytes, start: jsonEnd }, { defaultBinaryOutput: true, numericId: true })
      : decodeRequestRoot(root, text, undefined, { allowBinaryOutput: false, numericId: true });
    return { ok: true, kind: 'infer', id, modelName, modelVersion, request, binary: isBinary };
  } catch (e) {
    return { ok: false, id, binary: isBinary, error: toTensorwireError(e), ...(named !== undefined ? { modelName: named } : {}), ...(namedVersion !== undefined ? { modelVersion: namedVersion } : {}) };
  }
}

function invalidField(field: string, expected: string, value: unknown): TensorwireError {
  return new TensorwireError('INVALID_INPUT', `'${field}' must be ${expected}, got ${describeValue(value)}`);
}

/** The control part of a frame that has `subscribe` or `unsubscribe`; throws INVALID_INPUT naming the field. */
function decodeControl(fields: Record<string, unknown>): StreamControl {
  if (fields.subscribe !== undefined && fields.unsubscribe !== undefined) {
    throw new TensorwireError('INVALID_INPUT', `a control frame has either 'subscribe' or 'unsubscribe', got both (${describeValue(fields.subscribe)} and ${describeValue(fields.unsubscribe)})`);
  }
  const op = fields.subscribe !== undefined ? 'subscribe' : 'unsubscribe';
  const model = fields[op];
  if (typeof model !== 'string' || model.length === 0) throw invalidField(op, 'a non-empty model name (a string)', model);
  checkLength(`'${op}'`, model, MAX_MODEL_NAME_CHARS);
  if (op === 'unsubscribe') return { op, model };
  const { sample_rate: sampleRate = FEED_DEFAULTS.sampleRate, max_per_second: maxPerSecond = FEED_DEFAULTS.maxPerSecond, include_inputs: includeInputs = FEED_DEFAULTS.includeInputs } = fields;
  if (typeof sampleRate !== 'number' || !(sampleRate > 0 && sampleRate <= 1)) throw invalidField('sample_rate', 'a number in (0, 1]', sampleRate);
  if (typeof maxPerSecond !== 'number' || !(maxPerSecond > 0 && Number.isFinite(maxPerSecond))) throw invalidField('max_per_second', 'a positive number', maxPerSecond);
  if (typeof includeInputs !== 'boolean') throw invalidField('include_inputs', 'true or false', includeInputs);
  return { op, model, sampleRate, maxPerSecond, includeInputs };
}

function idToJson(id: StreamId | undefined): string | undefined {
  return id === undefined ? undefined : JSON.stringify(id);
}

/**
 * Encodes the response to a stream request. `binary` is the request frame's kind: a text
 * frame gets a JSON string with every output inline; a binary frame gets
 * `[uint32 LE JSON length][JSON][bytes of the outputs marked binary, in order]` in one
 * allocation. `id` defaults to the response's id; pass the frame's id to echo a number.
 */
export function encodeStreamResponse(resp: InferResponse, binary: boolean, id: StreamId | undefined = resp.id): string | Uint8Array {
  if (!binary) return buildResponseHeader(resp, idToJson(id), false).json;
  const header = buildResponseHeader(resp, idToJson(id), true);
  const jsonLength = Buffer.byteLength(header.json, 'utf8');
  const frame = Buffer.allocUnsafe(LENGTH_PREFIX + jsonLength + header.binaryBytes);
  frame.writeUInt32LE(jsonLength, 0);
  frame.write(header.json, LENGTH_PREFIX, jsonLength, 'utf8');
  copyBinaryOutputs(resp, frame, LENGTH_PREFIX + jsonLength);
  return frame;
}

/**
 * The text frame reporting a failed stream request:
 * `{"id":...,"error":"...","code":"INVALID_INPUT","status":400}` (`id` left out when
 * unknown): the catalogue's code, as HTTP bodies carry it, and the HTTP status it maps to.
 */
export function encodeStreamError(id: StreamId | undefined, error: TensorwireError): string {
  const head = id === undefined ? '{' : '{"id":' + JSON.stringify(id) + ',';
  return head + '"error":' + JSON.stringify(error.message) + ',"code":"' + error.code + '","status":' + error.status + '}';
}

/**
 * The part of a feed frame that every subscriber of one prediction shares:
 * `{"feed":model,"model_version":v[,"request_id":id],"outputs":[...]` (not closed), every
 * output as JSON data whatever its `binary` flag. `encodeFeedFrame` completes it.
 */
export function encodeFeedHead(model: string, resp: InferResponse, requestId: StreamId | undefined): string {
  let json = '{"feed":' + JSON.stringify(model) + ',"model_version":' + JSON.stringify(resp.modelVersion);
  if (requestId !== undefined) json += ',"request_id":' + JSON.stringify(requestId);
  return json + ',"outputs":' + tensorListJson(resp.outputs);
}

/** The JSON of a feed frame's `inputs` (the request's tensors as JSON data). */
export function encodeFeedInputs(inputs: readonly InferInputTensor[]): string {
  return tensorListJson(inputs);
}

/** A complete feed frame: `head` from encodeFeedHead, `inputs` from encodeFeedInputs (or none), `dropped` left out when 0. */
export function encodeFeedFrame(head: string, inputs: string | undefined, dropped: number): string {
  return head + (inputs === undefined ? '' : ',"inputs":' + inputs) + (dropped > 0 ? ',"dropped":' + dropped : '') + '}';
}
