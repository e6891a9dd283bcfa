/**
 * A parsed KServe v2 inference request object -> InferRequest. Shared by the JSON codec,
 * the binary tensor extension and the WebSocket frames; they differ only in where binary
 * tensor data lives (`BinarySection`) and in how outputs default to binary.
 *
 * Checks here are about the protocol (types of fields, sizes of binary data); whether the
 * request fits the model is validate.ts's job.
 */
import type { Datatype } from '../engine/types';
import { DATATYPE_SIZE, isFixedSize } from '../engine/types';
import { TensorwireError } from '../errors';
import { checkBytesElements, checkBytesInputCount } from './bytes-tensor';
import { MAX_CLASSIFICATION_COUNT } from './classification';
import { checkCount, checkLength, clip, MAX_ID_CHARS, MAX_NAME_CHARS, MAX_PARAMETER_CHARS, MAX_PARAMETERS, MAX_RANK, MAX_TENSORS } from './request-limits';
import { DATATYPES, describeValue, elementCount, formatShape, isDatatype, jsonToTensorBytes, type JsonDecodeState } from './tensor-data';
import type { InferInputTensor, InferRequest, RequestedOutput, SharedMemoryRef } from './types';
import { readSharedMemoryRef, sharedMemorySizeMismatch } from './shared-memory-parameters';

/** The binary tensor data of a request: `body` from byte `start` on, consumed by inputs in order. */
export interface BinarySection {
  body: Uint8Array;
  start: number;
}

/** How outputs default to binary, which differs between HTTP and the two stream frame kinds. */
export interface RequestDecodeOptions {
  /** Value of `binaryDataOutput` when the request has no binary_data_output parameter. Default false. */
  defaultBinaryOutput?: boolean;
  /** False forces every output to JSON (a text stream frame cannot carry bytes). Default true. */
  allowBinaryOutput?: boolean;
  /** Accept a finite number as `id` (stream frames) and keep it as its decimal string. Default false, as in Triton. */
  numericId?: boolean;
}

const EMPTY_PARAMETERS: Record<string, unknown> = Object.freeze({}) as Record<string, unknown>;

function invalid(message: string): TensorwireError {
  return new TensorwireError('INVALID_INPUT', message);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/**
 * Converts the parsed request `root` into an InferRequest. Inputs with
 * parameters.binary_data_size take their bytes from `binary` as views (no copy), in order;
 * the sizes must add up to exactly the bytes `binary` holds. Throws INVALID_INPUT.
 */
export function requestFromJson(root: unknown, binary: BinarySection | undefined, options: RequestDecodeOptions | undefined, state: JsonDecodeState | undefined): InferRequest {
  if (!isObject(root)) throw invalid(`the request must be a JSON object, got ${describeValue(root)}`);
  let id = root.id;
  if (typeof id === 'number' && options?.numericId === true && Number.isFinite(id)) id = String(id);
  if (id !== undefined && typeof id !== 'string') throw invalid(`'id' must be a string, got ${describeValue(id)}`);
  if (id !== undefined) checkLength("'id'", id, MAX_ID_CHARS);

  // Every field present from the start (undefined when absent): one hidden class for all
  // requests keeps the scheduler's property reads monomorphic.
  const request: InferRequest = {
    id,
    inputs: [],
    outputs: undefined,
    binaryDataOutput: options?.defaultBinaryOutput ?? false,
    priority: undefined,
    timeoutUs: undefined,
    parameters: EMPTY_PARAMETERS,
  };
  if (root.parameters !== undefined) readRequestParameters(root.parameters, request);
  const allowBinary = options?.allowBinaryOutput ?? true;
  if (!allowBinary) request.binaryDataOutput = false;

  const inputs = root.inputs;
  if (!Array.isArray(inputs)) throw invalid(`'inputs' must be an array, got ${describeValue(inputs)}`);
  checkCount("'inputs'", inputs.length, MAX_TENSORS);
  let offset = binary?.start ?? 0;
  for (let i = 0; i < inputs.length; i++) {
    const input = readInput(inputs[i], i, binary, offset, state);
    offset += input.binarySize;
    request.inputs.push(input.tensor);
  }
  if (binary !== undefined && offset !== binary.body.byteLength) {
    const available = binary.body.byteLength - binary.start;
    throw invalid(`the request carries ${available} bytes of binary data but the inputs' binary_data_size add up to ${offset - binary.start}`);
  }

  if (root.outputs !== undefined) request.outputs = readOutputs(root.outputs, request.binaryDataOutput, allowBinary);
  return request;
}

function readRequestParameters(parameters: unknown, request: InferRequest): void {
  if (!isObject(parameters)) throw invalid(`'parameters' must be an object, got ${describeValue(parameters)}`);
  let others: Record<string, unknown> | undefined;
  let kept = 0;
  for (const key in parameters) {
    const value = parameters[key];
    switch (key) {
      case 'binary_data_output':
        if (typeof value !== 'boolean') throw invalid(`request parameter 'binary_data_output' must be a boolean, got ${describeValue(value)}`);
        request.binaryDataOutput = value;
        break;
      case 'priority':
        if (!isCount(value)) throw invalid(`request parameter 'priority' must be a non-negative integer, got ${describeValue(value)}`);
        request.priority = value;
        break;
      case 'timeout':
        if (!isCount(value)) throw invalid(`request parameter 'timeout' must be a non-negative integer (microseconds), got ${describeValue(value)}`);
        request.timeoutUs = value;
        break;
      default:
        if (key.startsWith('triton_')) throw invalid(`request parameter '${clip(key)}': names starting with 'triton_' are reserved`);
        checkOtherParameter(key, value, ++kept);
        others ??= {};
        // A plain assignment of "__proto__" would replace the object's prototype.
        if (key === '__proto__') Object.defineProperty(others, key, { value, enumerable: true, writable: true, configurable: true });
        else others[key] = value;
    }
  }
  if (others !== undefined) request.parameters = others;
}

/**
 * A parameter tensorwire does not read is carried with the request (to the scheduler, to
 * other threads, to the feed), so each is bounded: a string by its length, an object or
 * array by the length of its JSON (the body is already parsed, so that text is bounded by the
 * body limit, and large bodies are decoded off the event loop).
 */
function checkOtherParameter(key: string, value: unknown, count: number): void {
  if (count > MAX_PARAMETERS) throw invalid(`'parameters' has more than ${MAX_PARAMETERS} entries besides binary_data_output, priority and timeout; the limit is ${MAX_PARAMETERS}`);
  checkLength('a request parameter name', key, MAX_PARAMETER_CHARS);
  if (typeof value === 'string') checkLength(`request parameter '${clip(key)}'`, value, MAX_PARAMETER_CHARS);
  else if (typeof value === 'object' && value !== null) checkLength(`request parameter '${clip(key)}' as JSON`, JSON.stringify(value), MAX_PARAMETER_CHARS);
}

function readInput(input: unknown, index: number, binary: BinarySection | undefined, offset: number, state: JsonDecodeState | undefined): { tensor: InferInputTensor; binarySize: number } {
  if (!isObject(input)) throw invalid(`input ${index} must be an object, got ${describeValue(input)}`);
  const name = input.name;
  if (typeof name !== 'string' || name.length === 0) throw invalid(`input ${index}: 'name' must be a non-empty string, got ${describeValue(name)}`);
  checkLength(`input ${index}: 'name'`, name, MAX_NAME_CHARS);
  const label = `input '${clip(name)}'`;
  const datatype = readDatatype(label, input.datatype);
  const shape = readShape(label, input.shape);

  let binarySize: number | undefined;
  const parameters = input.parameters;
  if (parameters !== undefined) {
    if (!isObject(parameters)) throw invalid(`${label}: 'parameters' must be an object, got ${describeValue(parameters)}`);
    const shm = readSharedMemoryRef(label, parameters);
    if (shm !== undefined) return sharedMemoryInput(label, name, datatype, shape, input.data, shm);
    const size = parameters.binary_data_size;
    if (size !== undefined) {
      if (!isCount(size)) throw invalid(`${label}: parameters.binary_data_size must be a non-negative integer, got ${describeValue(size)}`);
      binarySize = size;
    }
  }

  if (binarySize === undefined) {
    if (input.data === undefined) throw invalid(`${label}: no 'data' and no parameters.binary_data_size`);
    const data = jsonToTensorBytes(label, datatype, shape, input.data, state);
    return { tensor: { name, datatype, shape, data }, binarySize: 0 };
  }

  if (input.data !== undefined) throw invalid(`${label}: has both 'data' and parameters.binary_data_size`);
  if (binary === undefined) {
    throw invalid(`${label}: parameters.binary_data_size is set but the request carries no binary data (no Inference-Header-Content-Length header, or a text stream frame)`);
  }
  if (isFixedSize(datatype)) {
    const expected = elementCount(shape) * DATATYPE_SIZE[datatype];
    if (binarySize !== expected) {
      throw invalid(`${label}: binary_data_size ${binarySize} does not match ${datatype} shape ${formatShape(shape)} (expected ${expected} bytes)`);
    }
  }
  const left = binary.body.byteLength - offset;
  if (binarySize > left) {
    throw invalid(`${label}: binary_data_size ${binarySize} runs past the end of the body (${left} bytes of binary data left)`);
  }
  const data = binary.body.subarray(offset, offset + binarySize);
  // BYTES: binary_data_size is the serialized size (Triton's); the prefixes must account for exactly those bytes.
  if (!isFixedSize(datatype)) {
    const count = elementCount(shape);
    checkBytesInputCount(label, count);
    checkBytesElements(label, data, count);
  }
  return { tensor: { name, datatype, shape, data }, binarySize };
}

/** An input whose bytes are in a shared memory region: checked against its shape now, resolved by lib/shm later (gRPC's decoder uses it too). */
export function sharedMemoryInput(label: string, name: string, datatype: Datatype, shape: number[], data: unknown, shm: SharedMemoryRef): { tensor: InferInputTensor; binarySize: number } {
  if (data !== undefined) throw invalid(`${label}: has both 'data' and shared memory parameters`);
  const elementSize = DATATYPE_SIZE[datatype] as number | undefined;
  // Variable-size types (BYTES) have no fixed size to compare with.
  if (elementSize !== undefined && shm.byteSize !== elementCount(shape) * elementSize) {
    throw invalid(sharedMemorySizeMismatch(label, shm, datatype, formatShape(shape), elementCount(shape) * elementSize));
  }
  return { tensor: { name, datatype, shape, data: NO_DATA, sharedMemory: shm }, binarySize: 0 };
}

const NO_DATA = new Uint8Array(0);

function readDatatype(label: string, datatype: unknown): Datatype {
  if (isDatatype(datatype)) return datatype;
  throw invalid(`${label}: unknown datatype ${describeValue(datatype)}; expected one of ${DATATYPES.join(', ')}`);
}

function readShape(label: string, shape: unknown): number[] {
  if (Array.isArray(shape)) {
    if (shape.length > MAX_RANK) throw invalid(`${label}: 'shape' has ${shape.length} dimensions; the limit is ${MAX_RANK}`);
    let ok = true;
    for (let i = 0; i < shape.length; i++) if (!isCount(shape[i])) ok = false;
    if (ok) {
      // Checked before anything is sized by it: [1e9,1e9] must not reach an allocation.
      if (!Number.isSafeInteger(elementCount(shape) * 8)) throw invalid(`${label}: shape ${formatShape(shape)} has too many elements (${elementCount(shape)})`);
      return shape as number[];
    }
  }
  throw invalid(`${label}: 'shape' must be an array of non-negative integers, got ${describeValue(shape)}`);
}

function readOutputs(outputs: unknown, binaryDefault: boolean, allowBinary: boolean): RequestedOutput[] {
  if (!Array.isArray(outputs)) throw invalid(`'outputs' must be an array, got ${describeValue(outputs)}`);
  checkCount("'outputs'", outputs.length, MAX_TENSORS);
  const result: RequestedOutput[] = [];
  for (let i = 0; i < outputs.length; i++) {
    const output = outputs[i];
    if (!isObject(output)) throw invalid(`output ${i} must be an object, got ${describeValue(output)}`);
    const name = output.name;
    if (typeof name !== 'string' || name.length === 0) throw invalid(`output ${i}: 'name' must be a non-empty string, got ${describeValue(name)}`);
    checkLength(`output ${i}: 'name'`, name, MAX_NAME_CHARS);
    let binary = binaryDefault;
    let classification: number | undefined;
    const parameters = output.parameters;
    if (parameters !== undefined) {
      if (!isObject(parameters)) throw invalid(`output '${clip(name)}': 'parameters' must be an object, got ${describeValue(parameters)}`);
      const k = parameters.classification;
      if (k !== undefined) {
        if (!isCount(k) || k < 1 || k > MAX_CLASSIFICATION_COUNT) {
          throw invalid(`output '${clip(name)}': parameters.classification must be an integer from 1 to ${MAX_CLASSIFICATION_COUNT}, got ${describeValue(k)}`);
        }
        classification = k;
      }
      const flag = parameters.binary_data;
      if (flag !== undefined) {
        if (typeof flag !== 'boolean') throw invalid(`output '${clip(name)}': parameters.binary_data must be a boolean, got ${describeValue(flag)}`);
        binary = flag;
      }
      const shm = readSharedMemoryRef(`output '${clip(name)}'`, parameters);
      if (shm !== undefined) {
        result.push({ name, binary: false, sharedMemory: shm });
        continue;
      }
    }
    result.push({ name, binary: allowBinary && binary, classification });
  }
  return result;
}
