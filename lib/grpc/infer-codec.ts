/**
 * ModelInferRequest -> InferRequest and InferResponse -> ModelInferResponse: the gRPC wire
 * form of the same decoded request the HTTP codecs produce (lib/protocol/types.ts), so
 * everything past the transport is shared.
 *
 * BYTES tensors travel in the one form of lib/protocol/bytes-tensor.ts (4-byte LE length +
 * bytes per element): raw_input_contents already is that form (checked, passed through),
 * typed `bytes_contents` are serialized into it, and BYTES outputs leave as raw bytes as they
 * are.
 *
 * Tensor data comes either as `raw_input_contents` (one entry per input, little-endian, the
 * fast path: the entry, a view of the received message, becomes the tensor's `data` without a
 * copy, exactly as an HTTP binary input is a view of the body) or as typed `contents`,
 * converted by the same routine as HTTP's JSON `data` (lib/protocol/tensor-data.ts), with the
 * same range checks. Answers always carry every output in `raw_output_contents`, as Triton
 * sends them.
 *
 * Checks here are about the protocol (fields, sizes); whether the request fits the model is
 * the core's job (lib/protocol/validate.ts), with messages naming the tensor.
 */
import type { Datatype } from '../engine/types';
import { DATATYPE_SIZE } from '../engine/types';
import { TensorwireError } from '../errors';
import { BYTES_PREFIX, checkBytesElements, checkBytesInputCount, serializeBytesElements } from '../protocol/bytes-tensor';
import { DATATYPES, describeValue, elementCount, formatShape, isDatatype, jsonToTensorBytes } from '../protocol/tensor-data';
import { sharedMemoryInput } from '../protocol/request-object';
import { readSharedMemoryRef } from '../protocol/shared-memory-parameters';
import type { InferInputTensor, InferOutputTensor, InferRequest, InferResponse, RequestedOutput, SharedMemoryRef } from '../protocol/types';
import { checkDecoded } from './malformed';
import type { WireContents, WireInferInput, WireInferRequest, WireInferResponse, WireParameter, WireRequestedOutput } from './wire-types';

/** A request as the transport hands it to the front door. */
export interface DecodedInfer {
  model: string;
  version: string | undefined;
  request: InferRequest;
}

/** Longest client-given name echoed in a message (names are client text). */
const MAX_ECHOED_NAME = 64;

/** Client text, cut short for an error message. */
export function clip(text: string): string {
  return text.length > MAX_ECHOED_NAME ? `${text.slice(0, MAX_ECHOED_NAME - 3)}...` : text;
}

function invalid(message: string): TensorwireError {
  return new TensorwireError('INVALID_INPUT', message);
}

/** The contents field that carries each datatype. FP16/BF16 have none in the protocol; tensorwire reads fp32_contents (rounded to nearest even), as HTTP reads JSON numbers. */
const CONTENTS_FIELD: Readonly<Record<Datatype, keyof WireContents>> = {
  BYTES: 'bytes_contents',
  BOOL: 'bool_contents',
  INT8: 'int_contents',
  INT16: 'int_contents',
  INT32: 'int_contents',
  INT64: 'int64_contents',
  UINT8: 'uint_contents',
  UINT16: 'uint_contents',
  UINT32: 'uint_contents',
  UINT64: 'uint64_contents',
  FP16: 'fp32_contents',
  BF16: 'fp32_contents',
  FP32: 'fp32_contents',
  FP64: 'fp64_contents',
};

const CONTENTS_FIELDS: readonly (keyof WireContents)[] = [
  'bool_contents', 'int_contents', 'int64_contents', 'uint_contents', 'uint64_contents', 'fp32_contents', 'fp64_contents', 'bytes_contents',
];

/** BYTES, which this layer reads and writes whether or not the engine's Datatype lists it yet (the model's checks refuse it where no model input has it). */
const BYTES = 'BYTES' as unknown as Datatype;

const EMPTY_PARAMETERS: Record<string, unknown> = Object.freeze({}) as Record<string, unknown>;
const DIGITS = /^\d+$/;

/**
 * Decodes one ModelInferRequest. Throws INVALID_INPUT naming the field or tensor at fault:
 * no model name, unknown or unsupported datatype, bad shape, raw bytes that do not match
 * shape × datatype, typed contents in the wrong field or of the wrong count, both raw and
 * typed data, unsupported parameters.
 */
export function decodeInferRequest(msg: WireInferRequest): DecodedInfer {
  checkDecoded(msg);
  const model = msg.model_name ?? '';
  if (model === '') throw invalid("'model_name' is required");
  const version = msg.model_version === undefined || msg.model_version === '' ? undefined : msg.model_version;
  const id = msg.id === undefined || msg.id === '' ? undefined : msg.id;

  const request: InferRequest = {
    id,
    inputs: [],
    outputs: undefined,
    // gRPC answers always carry raw bytes.
    binaryDataOutput: true,
    priority: undefined,
    timeoutUs: undefined,
    parameters: EMPTY_PARAMETERS,
  };
  readRequestParameters(msg.parameters, request);

  const inputs = msg.inputs;
  const raw = msg.raw_input_contents;
  // Inputs in shared memory take no raw_input_contents entry (Triton's clients send none for them).
  const shm = inputs.map(sharedMemoryOf);
  let carried = 0;
  for (const ref of shm) if (ref === undefined) carried++;
  if (raw.length > 0 && raw.length !== carried) {
    const without = carried === inputs.length ? '' : ` not in shared memory`;
    throw invalid(`the request has ${carried} input(s)${without} but ${raw.length} raw_input_contents entries; give one per input${without}, in the order of 'inputs'`);
  }
  let next = 0;
  for (let i = 0; i < inputs.length; i++) {
    const ref = shm[i];
    request.inputs.push(ref !== undefined ? readSharedMemoryInput(inputs[i]!, i, ref) : readInput(inputs[i]!, i, raw.length > 0 ? raw[next++] : undefined));
  }
  if (msg.outputs.length > 0) request.outputs = readOutputs(msg.outputs);
  return { model, version, request };
}

/** The value of an InferParameter as a JS value: 64-bit integers as numbers when exact, else their decimal string. */
export function parameterValue(p: WireParameter): unknown {
  switch (p.parameter_choice) {
    case 'bool_param':
      return p.bool_param ?? false;
    case 'int64_param':
    case 'uint64_param': {
      const text = String(p[p.parameter_choice] ?? '0');
      const n = Number(text);
      return Number.isSafeInteger(n) ? n : text;
    }
    case 'double_param':
      return p.double_param ?? 0;
    case 'string_param':
      return p.string_param ?? '';
    default:
      return undefined;
  }
}

/** `priority` and `timeout` as HTTP reads them: non-negative integers (int64 or uint64 parameters). */
function countParameter(key: string, p: WireParameter, unit: string): number {
  const value = parameterValue(p);
  if (typeof value !== 'number' || value < 0 || (p.parameter_choice !== 'int64_param' && p.parameter_choice !== 'uint64_param')) {
    throw invalid(`request parameter '${clip(key)}' must be a non-negative int64_param or uint64_param${unit}, got ${describeValue(value)}`);
  }
  return value;
}

function readRequestParameters(parameters: Record<string, WireParameter>, request: InferRequest): void {
  let others: Record<string, unknown> | undefined;
  for (const key in parameters) {
    const p = parameters[key];
    switch (key) {
      case 'priority':
        request.priority = countParameter(key, p, '');
        break;
      case 'timeout':
        request.timeoutUs = countParameter(key, p, ' (microseconds)');
        break;
      case 'binary_data_output':
        // Meaningful for HTTP only: gRPC answers always carry raw bytes.
        break;
      default:
        if (key.startsWith('triton_')) throw invalid(`request parameter '${clip(key)}': names starting with 'triton_' are reserved`);
        others ??= {};
        // A plain assignment of "__proto__" would replace the object's prototype.
        if (key === '__proto__') Object.defineProperty(others, key, { value: parameterValue(p), enumerable: true, writable: true, configurable: true });
        else others[key] = parameterValue(p);
    }
  }
  if (others !== undefined) request.parameters = others;
}

/** The names of the shared memory parameters (lib/protocol/shared-memory-parameters.ts reads their values). */
const SHM_PARAMETERS = ['shared_memory_region', 'shared_memory_offset', 'shared_memory_byte_size'] as const;

/** A tensor's label for messages, as HTTP's decoder writes it. */
function tensorLabel(kind: 'input' | 'output', name: string | undefined, index: number): string {
  if (name === undefined || name === '') throw invalid(`${kind} ${index}: 'name' is required`);
  return `${kind} '${clip(name)}'`;
}

/**
 * The shared memory reference of a tensor's parameters (InferParameter string_param /
 * int64_param, as Triton's gRPC clients send them), read by HTTP's reader so both transports
 * accept and refuse the same; undefined when the tensor names no region.
 */
function readWireSharedMemory(label: string, parameters: Record<string, WireParameter>): SharedMemoryRef | undefined {
  if (parameters.shared_memory_region === undefined && parameters.shared_memory_offset === undefined && parameters.shared_memory_byte_size === undefined) return undefined;
  const values: Record<string, unknown> = {};
  // A parameter sent without a value is refused as null is over HTTP, naming it.
  for (const key of SHM_PARAMETERS) if (parameters[key] !== undefined) values[key] = parameterValue(parameters[key]) ?? null;
  return readSharedMemoryRef(label, values);
}

function sharedMemoryOf(input: WireInferInput, index: number): SharedMemoryRef | undefined {
  const p = input.parameters;
  if (p.shared_memory_region === undefined && p.shared_memory_offset === undefined && p.shared_memory_byte_size === undefined) return undefined;
  return readWireSharedMemory(tensorLabel('input', input.name, index), p);
}

/** An input whose bytes are in a region: the same tensor HTTP's decoder makes (resolved by lib/shm/shared-memory-stage.ts). */
function readSharedMemoryInput(input: WireInferInput, index: number, ref: SharedMemoryRef): InferInputTensor {
  const label = tensorLabel('input', input.name, index);
  const shape = readShape(label, input.shape);
  const datatype = input.datatype === 'BYTES' ? BYTES : readDatatype(label, input.datatype);
  if (input.contents !== undefined && hasContents(input.contents)) throw invalid(`${label}: has both typed 'contents' and shared memory parameters`);
  return sharedMemoryInput(label, input.name!, datatype, shape, undefined, ref).tensor;
}

function readInput(input: WireInferInput, index: number, raw: Buffer | undefined): InferInputTensor {
  const label = tensorLabel('input', input.name, index);
  const name = input.name!;
  const shape = readShape(label, input.shape);
  const contents = input.contents;
  if (input.datatype === 'BYTES') return { name, datatype: BYTES, shape, data: readBytesData(label, shape, raw, contents) };
  const datatype = readDatatype(label, input.datatype);

  if (raw !== undefined) {
    if (contents !== undefined && hasContents(contents)) {
      throw invalid(`${label}: has both typed 'contents' and raw_input_contents; use one or the other for every input`);
    }
    const expected = elementCount(shape) * DATATYPE_SIZE[datatype];
    if (raw.byteLength !== expected) {
      throw invalid(`${label}: raw_input_contents holds ${raw.byteLength} bytes but ${datatype} shape ${formatShape(shape)} needs ${expected}`);
    }
    return { name, datatype, shape, data: raw };
  }

  const field = CONTENTS_FIELD[datatype];
  if (contents !== undefined) {
    for (const other of CONTENTS_FIELDS) {
      if (other !== field && contents[other].length > 0) throw invalid(`${label}: ${datatype} data belongs in contents.${field}, got contents.${other}`);
    }
  }
  const values = contents?.[field] ?? [];
  if (values.length === 0 && elementCount(shape) !== 0) throw invalid(`${label}: no data (give contents.${field} or raw_input_contents)`);
  // The same conversion and range checks as HTTP's JSON data (int_contents carries INT8..INT32 as int32).
  return { name, datatype, shape, data: jsonToTensorBytes(label, datatype, shape, values) };
}

/**
 * A BYTES tensor's data in the one form every layer carries (lib/protocol/bytes-tensor.ts):
 * raw_input_contents already is that form and is checked and passed through as it is;
 * typed `bytes_contents` (one entry per element) are serialized into it.
 */
function readBytesData(label: string, shape: number[], raw: Buffer | undefined, contents: WireContents | undefined): Buffer {
  const count = elementCount(shape);
  if (raw !== undefined) {
    if (contents !== undefined && hasContents(contents)) {
      throw invalid(`${label}: has both typed 'contents' and raw_input_contents; use one or the other for every input`);
    }
    // Each element takes at least its length prefix: checked before sizing anything by the shape.
    if (count > raw.byteLength / BYTES_PREFIX) {
      throw invalid(`${label}: BYTES shape ${formatShape(shape)} has ${count} elements but raw_input_contents holds only ${raw.byteLength} bytes (each element takes a 4-byte length and its bytes)`);
    }
    checkBytesInputCount(label, count);
    checkBytesElements(label, raw, count);
    return raw;
  }
  checkBytesInputCount(label, count);
  if (contents !== undefined) {
    for (const other of CONTENTS_FIELDS) {
      if (other !== 'bytes_contents' && contents[other].length > 0) throw invalid(`${label}: BYTES data belongs in contents.bytes_contents, got contents.${other}`);
    }
  }
  const values = contents?.bytes_contents ?? [];
  if (values.length !== count) {
    throw invalid(`${label}: contents.bytes_contents holds ${values.length} elements but BYTES shape ${formatShape(shape)} needs ${count}`);
  }
  return serializeBytesElements(values);
}

function hasContents(contents: WireContents): boolean {
  for (const field of CONTENTS_FIELDS) if (contents[field].length > 0) return true;
  return false;
}

function readDatatype(label: string, datatype: string | undefined): Datatype {
  if (isDatatype(datatype)) return datatype;
  throw invalid(`${label}: unknown datatype ${describeValue(datatype ?? '')}; expected one of ${DATATYPES.join(', ')}`);
}

function readShape(label: string, shape: string[]): number[] {
  const out: number[] = new Array(shape.length);
  for (let i = 0; i < shape.length; i++) {
    const text = shape[i];
    const n = DIGITS.test(text) ? Number(text) : NaN;
    if (!Number.isSafeInteger(n)) throw invalid(`${label}: 'shape' must hold non-negative integers, got ${describeValue(shape.join(','))}`);
    out[i] = n;
  }
  return out;
}

function readOutputs(outputs: WireRequestedOutput[]): RequestedOutput[] {
  const result: RequestedOutput[] = new Array(outputs.length);
  for (let i = 0; i < outputs.length; i++) {
    const output = outputs[i]!;
    const label = tensorLabel('output', output.name, i);
    const name = output.name!;
    const parameters = output.parameters;
    if (parameters.classification !== undefined) throw invalid(`${label}: the classification extension is not supported`);
    const shm = readWireSharedMemory(label, parameters);
    result[i] = shm === undefined ? { name, binary: true } : { name, binary: true, sharedMemory: shm };
  }
  return result;
}

/** Where an output written into shared memory went, as Triton answers it (parameters, no data). */
function sharedMemoryParameters(ref: SharedMemoryRef): Record<string, WireParameter> {
  const parameters: Record<string, WireParameter> = {
    shared_memory_region: { parameter_choice: 'string_param', string_param: ref.region },
    shared_memory_byte_size: { parameter_choice: 'int64_param', int64_param: ref.byteSize },
  };
  if (ref.offset !== 0) parameters.shared_memory_offset = { parameter_choice: 'int64_param', int64_param: ref.offset };
  return parameters;
}

/**
 * The answer as Triton sends it: output descriptions, and their bytes in raw_output_contents,
 * in the same order. An output written into a shared memory region carries its parameters
 * and an empty raw_output_contents entry (its data is in the region; the empty entry keeps
 * the entries in step with `outputs`).
 */
export function encodeInferResponse(response: InferResponse): WireInferResponse {
  const outputs = response.outputs;
  const described = new Array<WireInferResponse['outputs'][number]>(outputs.length);
  const raw = new Array<Uint8Array>(outputs.length);
  for (let i = 0; i < outputs.length; i++) {
    const o: InferOutputTensor = outputs[i]!;
    described[i] = o.sharedMemory === undefined ? { name: o.name, datatype: o.datatype, shape: o.shape } : { name: o.name, datatype: o.datatype, shape: o.shape, parameters: sharedMemoryParameters(o.sharedMemory) };
    raw[i] = o.data;
  }
  return { model_name: response.modelName, model_version: response.modelVersion, id: response.id ?? '', outputs: described, raw_output_contents: raw };
}
