/**
 * The parameters of a repository load request (Triton's model repository extension):
 *
 *   {"parameters": {"config": "<model config as a JSON string>",
 *                   "file:1/model.onnx": "<the file, base64>"}}
 *
 * Pure and synchronous: it runs on the JS thread for small bodies and in the upload worker
 * for large ones (upload-worker.ts), so both apply the same checks. Each `file:` key must be
 * `<version>/<file name>`: a version number, one plain file name, nothing else (no `..`, no
 * absolute path, no deeper directory), so a file can only land in its version directory.
 */
import { TensorwireError } from '../errors';
import { previewValue, truncateForMessage } from '../util/message-text';
import { checkConfigSize } from './config';
import { checkNesting } from './field-reader';

/** Most `file:` parameters one load may carry. */
export const MAX_UPLOAD_FILES = 64;

/** `<version>/<name>`: a version 1..999999999 and a plain file name (no separator, no leading dot). */
const UPLOAD_PATH = /^([1-9][0-9]{0,8})\/([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})$/;
/** Standard base64 with padding (Triton's encoding); anything else would decode silently wrong. */
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** One file of an upload, still base64. */
export interface UploadFile {
  /** Version directory name, e.g. "1". */
  readonly version: string;
  /** File name inside it, e.g. "model.onnx". */
  readonly name: string;
  readonly base64: string;
}

/** What a load request asks for. */
export interface LoadParameters {
  config: Record<string, unknown> | undefined;
  files: UploadFile[];
}

/** Parses `parameters.config` (the model configuration as a JSON string). */
export function parseConfigParameter(value: unknown, where: string): Record<string, unknown> {
  if (typeof value !== 'string') {
    throw new TensorwireError('INVALID_INPUT', `${where}: parameters.config must be the model configuration as a JSON string, got ${typeof value}`);
  }
  checkConfigSize(value, `${where}: parameters.config`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch (e) {
    throw new TensorwireError('INVALID_INPUT', `${where}: parameters.config is not valid JSON (${truncateForMessage((e as Error).message)})`);
  }
  checkNesting(parsed, `${where}: parameters.config`);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new TensorwireError('INVALID_INPUT', `${where}: parameters.config must be a JSON object, got ${truncateForMessage(value)}`);
  }
  return parsed as Record<string, unknown>;
}

/**
 * Whether a load may carry `file:` parameters: 'allowed' (--allow-model-upload), 'forbidden'
 * (a transport that could take them, on a server without the flag: 403 naming the flag) or
 * 'unsupported' (a transport that takes none: 400).
 */
export type UploadPolicy = 'allowed' | 'forbidden' | 'unsupported';

/** Reads a load request body (parsed JSON, or undefined for an empty body). */
export function readLoadParameters(model: string, body: unknown, uploads: UploadPolicy): LoadParameters {
  const result: LoadParameters = { config: undefined, files: [] };
  if (body === undefined) return result;
  const where = `load request for model '${truncateForMessage(model)}'`;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new TensorwireError('INVALID_INPUT', `${where}: expected a JSON object, got ${previewValue(body)}`);
  }
  const parameters = (body as { parameters?: unknown }).parameters;
  if (parameters === undefined) return result;
  if (typeof parameters !== 'object' || parameters === null || Array.isArray(parameters)) {
    throw new TensorwireError('INVALID_INPUT', `${where}: "parameters" must be an object, got ${previewValue(parameters)}`);
  }
  const seen = new Set<string>();
  for (const [key, value] of Object.entries(parameters)) {
    if (key === 'config') {
      result.config = parseConfigParameter(value, where);
      continue;
    }
    if (!key.startsWith('file:') || uploads === 'unsupported') {
      const known = uploads === 'unsupported' ? '"config" is' : '"config" and "file:<version>/<file name>" are';
      throw new TensorwireError('INVALID_INPUT', `${where}: parameter '${truncateForMessage(key)}' is not supported (only ${known})`);
    }
    if (uploads === 'forbidden') {
      throw new TensorwireError('FORBIDDEN', `${where}: loading a model from bytes ("file:" parameters) is off on this server; start it with --allow-model-upload to allow it`);
    }
    const m = UPLOAD_PATH.exec(key.slice(5));
    if (m === null) {
      throw new TensorwireError('INVALID_INPUT', `${where}: parameter '${truncateForMessage(key)}' must be "file:<version>/<file name>" (a version number and a plain file name, e.g. "file:1/model.onnx"; no "..", no absolute path, no subdirectory)`);
    }
    if (result.files.length >= MAX_UPLOAD_FILES) throw new TensorwireError('INVALID_INPUT', `${where}: more than ${MAX_UPLOAD_FILES} "file:" parameters`);
    const path = `${m[1]}/${m[2]}`;
    // JSON objects may repeat a key; the last would win silently.
    if (seen.has(path)) throw new TensorwireError('INVALID_INPUT', `${where}: "file:${path}" is given twice`);
    seen.add(path);
    if (typeof value !== 'string' || value.length % 4 !== 0 || !BASE64.test(value)) {
      throw new TensorwireError('INVALID_INPUT', `${where}: parameter 'file:${path}' must be the file's bytes in base64 (standard alphabet, padded)`);
    }
    result.files.push({ version: m[1]!, name: m[2]!, base64: value });
  }
  if (result.files.length > 0 && result.config === undefined) {
    throw new TensorwireError('INVALID_INPUT', `${where}: "file:" parameters need a "config" parameter too (the model configuration of the uploaded files, as Triton requires)`);
  }
  return result;
}
