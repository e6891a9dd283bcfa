/**
 * KServe v2 JSON inference requests and responses (no binary tensor data), and the
 * response text shared with the binary extension and the WebSocket frames.
 *
 * Responses are written as Triton writes them: compact, keys in Triton's order
 * (`id`, `model_name`, `model_version`, `outputs`; per output `name`, `datatype`, `shape`,
 * then `parameters` or `data`), `id` only when the request had one.
 */
import type { Datatype } from '../engine/types';
import type { JsonDecodeState } from './tensor-data';
import { TensorwireError } from '../errors';
import { clip, MAX_JSON_OUTPUT_ELEMENTS } from './request-limits';
import { elementCount } from './tensor-data';
import { checkOutputBytes, tensorBytesToJsonText } from './tensor-json';
import { decodeJsonRequestFast } from './fast-json-request';
import { parseJsonText, parseJsonTextExact } from './json-text';
import { requestFromJson, type BinarySection, type RequestDecodeOptions } from './request-object';
import type { InferRequest, InferResponse } from './types';

/** Body bytes [start, end) as UTF-8 text. */
export function bodyText(body: Uint8Array | string, start = 0, end?: number): string {
  if (typeof body === 'string') return body;
  const stop = end ?? body.byteLength;
  if (Buffer.isBuffer(body)) return body.toString('utf8', start, stop);
  // A Buffer view over the same memory: decodes without copying the bytes.
  return Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8', start, stop);
}

/**
 * Decodes a JSON inference request body (`Content-Type: application/json`, no
 * Inference-Header-Content-Length). Throws INVALID_INPUT: `malformed JSON: ...` or a message
 * naming the field or tensor at fault.
 */
export function decodeJsonRequest(body: Uint8Array | string, options?: RequestDecodeOptions): InferRequest {
  if (typeof body !== 'string') {
    // Numbers straight from the bytes for the usual request; anything else declines.
    const request = decodeJsonRequestFast(body, options);
    if (request !== undefined) return request;
  }
  return decodeJsonRequestGeneral(body, options);
}

/**
 * decodeJsonRequest without its fast path: JSON.parse of the whole body. This defines the
 * result and every error message; fast-json-request.ts returns the same or declines.
 */
export function decodeJsonRequestGeneral(body: Uint8Array | string, options?: RequestDecodeOptions): InferRequest {
  const text = bodyText(body);
  return decodeRequestRoot(parseJsonText(text), text, undefined, options);
}

/**
 * Decodes a request already parsed from `text` (the caller parsed it to read other fields,
 * e.g. a stream frame's `id`). `text` is needed again only in the rare case of INT64/UINT64
 * numbers beyond 2^53, which are then re-read exactly.
 */
export function decodeRequestRoot(root: unknown, text: string, binary: BinarySection | undefined, options?: RequestDecodeOptions): InferRequest {
  const state: JsonDecodeState = { lossyIntegers: false };
  const request = requestFromJson(root, binary, options, state);
  if (!state.lossyIntegers) return request;
  return requestFromJson(parseJsonTextExact(text), binary, options, undefined);
}

/** The JSON text of a response's header, and what must follow it as binary data. */
export interface ResponseHeader {
  /** The JSON object, complete (binary outputs carry parameters.binary_data_size instead of data). */
  json: string;
  /** Sum of the byte sizes of the outputs sent as binary data (0 when none). */
  binaryBytes: number;
  /** Number of outputs sent as binary data. */
  binaryOutputs: number;
}

/**
 * Writes the response JSON. With `allowBinary`, outputs whose `binary` flag is set get
 * `"parameters":{"binary_data_size":N}` and no data; the caller appends their bytes in
 * output order. `idJson` is the id already as JSON (a string literal, or a number for stream
 * frames); undefined leaves `id` out. Throws INTERNAL when an output's bytes do not match
 * its shape (a bug upstream, never the client's fault), and PAYLOAD_TOO_LARGE, before
 * writing anything, when the outputs to write as JSON hold more than 4M elements.
 */
export function buildResponseHeader(resp: InferResponse, idJson: string | undefined, allowBinary: boolean): ResponseHeader {
  checkJsonOutputSize(resp.outputs, allowBinary);
  let json = idJson === undefined ? '{' : '{"id":' + idJson + ',';
  json += '"model_name":' + JSON.stringify(resp.modelName) + ',"model_version":' + JSON.stringify(resp.modelVersion) + ',"outputs":[';
  let binaryBytes = 0;
  let binaryOutputs = 0;
  const outputs = resp.outputs;
  for (let i = 0; i < outputs.length; i++) {
    const out = outputs[i];
    if (out.sharedMemory === undefined) checkOutputBytes(out.name, out.datatype, out.shape, out.data);
    json += (i === 0 ? '{"name":' : ',{"name":') + JSON.stringify(out.name) + ',"datatype":"' + out.datatype + '","shape":[' + out.shape.join(',') + ']';
    if (out.sharedMemory !== undefined) {
      // Written into the client's region already (lib/shm): Triton answers with where, no data.
      const shm = out.sharedMemory;
      json += ',"parameters":{"shared_memory_region":' + JSON.stringify(shm.region) + (shm.offset !== 0 ? ',"shared_memory_offset":' + shm.offset : '') + ',"shared_memory_byte_size":' + shm.byteSize + '}}';
    } else if (allowBinary && out.binary) {
      json += ',"parameters":{"binary_data_size":' + out.data.byteLength + '}}';
      binaryBytes += out.data.byteLength;
      binaryOutputs++;
    } else {
      json += ',"data":[' + tensorBytesToJsonText(out.datatype, out.data, out.name) + ']}';
    }
  }
  json += ']}';
  return { json, binaryBytes, binaryOutputs };
}

/**
 * Refuses a response whose JSON `data` would hold more than MAX_JSON_OUTPUT_ELEMENTS values in
 * all: writing them would hold the event loop for hundreds of milliseconds and the text
 * would be ~12 bytes a value. A BYTES output weighs JSON_WEIGHT_PER_STRING values per
 * string or one per JSON_BYTES_PER_ELEMENT bytes of strings, whichever is more: a string
 * costs ~16 numbers' time to check and quote (~0.6 µs), and one string can hold megabytes.
 * Names the largest such output and the way out.
 */
/** Bytes of BYTES data that weigh as much as one numeric element written as JSON. */
export const JSON_BYTES_PER_ELEMENT = 12;
/** Numeric elements one BYTES element weighs against the JSON output limit. */
export const JSON_WEIGHT_PER_STRING = 16;

function checkJsonOutputSize(outputs: InferResponse['outputs'], allowBinary: boolean): void {
  let total = 0;
  let largest = -1;
  let largestCount = -1;
  for (let i = 0; i < outputs.length; i++) {
    const out = outputs[i];
    if ((allowBinary && out.binary) || out.sharedMemory !== undefined) continue;
    let count = elementCount(out.shape);
    if (out.datatype === 'BYTES') count = Math.max(count * JSON_WEIGHT_PER_STRING, Math.ceil(out.data.byteLength / JSON_BYTES_PER_ELEMENT));
    total += count;
    if (count > largestCount) {
      largest = i;
      largestCount = count;
    }
  }
  if (total <= MAX_JSON_OUTPUT_ELEMENTS) return;
  const name = clip(outputs[largest].name);
  const how = allowBinary
    ? `ask for binary outputs: "parameters":{"binary_data_output":true} on the request, or "parameters":{"binary_data":true} on output '${name}'`
    : 'use binary data: a binary stream frame (its outputs are binary by default), or over HTTP "parameters":{"binary_data_output":true}';
  throw new TensorwireError(
    'PAYLOAD_TOO_LARGE',
    `output '${name}' has ${largestCount} elements and the outputs to send as JSON ${total} in all, over the limit of ${MAX_JSON_OUTPUT_ELEMENTS} for JSON data; ${how}`,
  );
}

/**
 * Tensors as a JSON array with every tensor's data inline: `[{"name","datatype","shape","data"}]`,
 * written as buildResponseHeader writes a JSON output (the feed frames of the stream use it
 * for outputs and inputs alike).
 */
export function tensorListJson(tensors: readonly { name: string; datatype: Datatype; shape: readonly number[]; data: Uint8Array }[]): string {
  let json = '[';
  for (let i = 0; i < tensors.length; i++) {
    const t = tensors[i];
    json += (i === 0 ? '{"name":' : ',{"name":') + JSON.stringify(t.name) + ',"datatype":"' + t.datatype + '","shape":[' + t.shape.join(',') + '],"data":[' + tensorBytesToJsonText(t.datatype, t.data, t.name) + ']}';
  }
  return json + ']';
}

/** The response as JSON text with every output's data inline, whatever its `binary` flag. */
export function encodeJsonResponse(resp: InferResponse): string {
  return buildResponseHeader(resp, resp.id === undefined ? undefined : JSON.stringify(resp.id), false).json;
}
