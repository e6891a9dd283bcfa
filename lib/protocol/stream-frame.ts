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
 */
import { TensorwireError, toTensorwireError } from '../errors';
import { copyBinaryOutputs } from './binary-codec';
import { bodyText, buildResponseHeader, decodeRequestRoot } from './json-codec';
import { parseJsonText } from './json-text';
import { describeValue } from './tensor-data';
import type { InferRequest, InferResponse } from './types';

/** A stream request's id: a string, or a number (echoed back as the same number). */
export type StreamId = string | number;

/**
 * A decoded frame, or why it could not be decoded. A failure carries the frame's `id`
 * whenever the JSON could be read far enough to find it, so the error frame can name it.
 */
export type StreamFrame =
  | { ok: true; id: StreamId | undefined; modelName: string; modelVersion: string | undefined; request: InferRequest; binary: boolean }
  | { ok: false; id: StreamId | undefined; binary: boolean; error: TensorwireError };

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

    const root = parseJsonText(text);
    if (typeof root !== 'object' || root === null || Array.isArray(root)) {
      throw new TensorwireError('INVALID_INPUT', `the request must be a JSON object, got ${describeValue(root)}`);
    }
    const fields = root as Record<string, unknown>;
    const rawId = fields.id;
    if (typeof rawId === 'string' || (typeof rawId === 'number' && Number.isFinite(rawId))) id = rawId;
    else if (rawId !== undefined) throw new TensorwireError('INVALID_INPUT', `'id' must be a string or a number, got ${describeValue(rawId)}`);

    const modelName = fields.model_name;
    if (typeof modelName !== 'string' || modelName.length === 0) {
      throw new TensorwireError('INVALID_INPUT', `'model_name' must be a non-empty string, got ${describeValue(modelName)}`);
    }
    const version = fields.model_version;
    let modelVersion: string | undefined;
    if (typeof version === 'string') modelVersion = version;
    else if (typeof version === 'number' && Number.isSafeInteger(version) && version >= 0) modelVersion = String(version);
    else if (version !== undefined) {
      throw new TensorwireError('INVALID_INPUT', `'model_version' must be a string or a non-negative integer, got ${describeValue(version)}`);
    }

    const request = isBinary
      ? decodeRequestRoot(root, text, { body: bytes, start: jsonEnd }, { defaultBinaryOutput: true, numericId: true })
      : decodeRequestRoot(root, text, undefined, { allowBinaryOutput: false, numericId: true });
    return { ok: true, id, modelName, modelVersion, request, binary: isBinary };
  } catch (e) {
    return { ok: false, id, binary: isBinary, error: toTensorwireError(e) };
  }
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

/** The text frame reporting a failed stream request: `{"id":...,"error":"...","code":400}` (`id` left out when unknown). */
export function encodeStreamError(id: StreamId | undefined, error: TensorwireError): string {
  const head = id === undefined ? '{' : '{"id":' + JSON.stringify(id) + ',';
  return head + '"error":' + JSON.stringify(error.message) + ',"code":' + error.status + '}';
}
