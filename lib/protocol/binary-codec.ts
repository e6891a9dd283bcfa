/**
 * Triton's binary tensor data extension over HTTP: the body is a JSON header of
 * `Inference-Header-Content-Length` bytes followed by the raw little-endian bytes of the
 * tensors that carry `parameters.binary_data_size`, in the order they appear in the JSON.
 *
 * Requests: binary inputs become views of the body, never copies, so the scheduler copies
 * each tensor once, straight into a staging slot. Responses: one allocation holds the JSON
 * header and every binary output.
 */
import { TensorwireError } from '../errors';
import { bodyText, buildResponseHeader, decodeJsonRequest, decodeRequestRoot } from './json-codec';
import { parseJsonText } from './json-text';
import type { RequestDecodeOptions } from './request-object';
import type { InferRequest, InferResponse } from './types';

/** Name of the HTTP header giving the JSON header's length in bytes. */
export const INFERENCE_HEADER_CONTENT_LENGTH = 'inference-header-content-length';

/** An encoded response body and what the HTTP layer must say about it. */
export interface EncodedResponse {
  body: Buffer;
  /** Value for Inference-Header-Content-Length; undefined for a plain JSON response (no header then). */
  headerLength: number | undefined;
  contentType: 'application/json' | 'application/octet-stream';
}

const DIGITS = /^\d+$/;

/**
 * Checks an Inference-Header-Content-Length value (the header's text, or a number) against a
 * body of `bodyLength` bytes and returns it. Zero is refused: it means a raw binary request
 * (Triton's "raw_input"), which tensorwire does not support.
 */
export function parseHeaderLength(value: number | string, bodyLength: number): number {
  const length = typeof value === 'number' ? value : DIGITS.test(value.trim()) ? Number(value.trim()) : NaN;
  if (!Number.isSafeInteger(length) || length < 0) {
    throw new TensorwireError('INVALID_INPUT', `Inference-Header-Content-Length must be a non-negative integer, got '${String(value)}'`);
  }
  if (length === 0) throw new TensorwireError('INVALID_INPUT', 'Inference-Header-Content-Length is 0: raw binary requests are not supported');
  if (length > bodyLength) {
    throw new TensorwireError('INVALID_INPUT', `Inference-Header-Content-Length ${length} is beyond the end of the body (${bodyLength} bytes)`);
  }
  return length;
}

/**
 * Decodes a binary-extension request: `body[0, headerLength)` is the JSON header and the
 * rest holds the binary inputs. Inputs with binary_data_size get `data` as a view of `body`
 * (valid as long as `body` is). Throws INVALID_INPUT on a bad header length, binary sizes
 * that do not match their shapes or do not add up to the rest of the body, and everything
 * decodeJsonRequest refuses.
 */
export function decodeBinaryRequest(body: Uint8Array, headerLength: number | string, options?: RequestDecodeOptions): InferRequest {
  const length = parseHeaderLength(headerLength, body.byteLength);
  const text = bodyText(body, 0, length);
  return decodeRequestRoot(parseJsonText(text), text, { body, start: length }, options);
}

/**
 * Decodes an HTTP inference request body either way: with an Inference-Header-Content-Length
 * value it is a binary-extension request, without one a JSON request.
 */
export function decodeInferRequest(body: Uint8Array, headerLength: number | string | undefined, options?: RequestDecodeOptions): InferRequest {
  return headerLength === undefined ? decodeJsonRequest(body, options) : decodeBinaryRequest(body, headerLength, options);
}

/**
 * Encodes an HTTP inference response. When some output is marked `binary`, the body is the
 * JSON header (with binary_data_size for those outputs) followed by their bytes, in output
 * order, with `headerLength` for Inference-Header-Content-Length and content type
 * application/octet-stream (as Triton sends it); otherwise it is plain JSON.
 */
export function encodeResponse(resp: InferResponse): EncodedResponse {
  const header = buildResponseHeader(resp, resp.id === undefined ? undefined : JSON.stringify(resp.id), true);
  if (header.binaryOutputs === 0) return { body: Buffer.from(header.json, 'utf8'), headerLength: undefined, contentType: 'application/json' };
  const headerLength = Buffer.byteLength(header.json, 'utf8');
  const body = Buffer.allocUnsafe(headerLength + header.binaryBytes);
  body.write(header.json, 0, headerLength, 'utf8');
  copyBinaryOutputs(resp, body, headerLength);
  return { body, headerLength, contentType: 'application/octet-stream' };
}

/** Copies the bytes of the outputs marked binary into `target` from `offset` on, in output order. */
export function copyBinaryOutputs(resp: InferResponse, target: Uint8Array, offset: number): number {
  const outputs = resp.outputs;
  for (let i = 0; i < outputs.length; i++) {
    const out = outputs[i];
    if (!out.binary) continue;
    target.set(out.data, offset);
    offset += out.data.byteLength;
  }
  return offset;
}
