/**
 * The fast path of decodeJsonRequest for the usual KServe JSON request: inputs whose `data`
 * are arrays of numbers (flat or nested), e.g. 256 floats written with 17 digits. JSON.parse
 * would build a JS array of boxed numbers only for tensor-data.ts to copy it into a typed
 * array; here the numbers go from the body bytes straight to doubles (number-scanner.ts) and
 * then to the tensor's bytes, and the few other values of the request are parsed from the
 * bytes too (json-bytes-parser.ts), which for small requests matters as much.
 *
 * The parsed request object, with each input's data presented as binary data of the decoded
 * size, then goes through the same requestFromJson as the general path, so every field is
 * checked and defaulted by the same code; the decoded bytes then take the place of the views
 * requestFromJson made.
 *
 * The contract is to return exactly what the general path returns, or undefined: anything
 * unusual (strings or null in data, integers beyond 2^53 in INT64 data, a value count that
 * does not match the shape, invalid JSON, any error at all) declines, and the caller runs the
 * general path, which then produces the request or the error message as it always did.
 */
import { readDataArray, spanToTensorBytes, type DataSpan } from './data-array-scanner';
import { cursor, DECLINE, expect, parseKey, parseKnownString, parseString, parseValue, peek } from './json-bytes-parser';
import { beginNumbers, endNumbers } from './number-scanner';
import { requestFromJson, type RequestDecodeOptions } from './request-object';
import { DATATYPES, elementCount, isDatatype } from './tensor-data';
import type { InferRequest } from './types';

const EMPTY = Buffer.alloc(0);

// A zero-filled stand-in for the binary section requestFromJson checks the sizes against;
// it is only sliced, never read, and the slices are replaced.
let standIn = new Uint8Array(1 << 16);
const STAND_IN_KEEP = 1 << 20;

/**
 * Decodes a KServe JSON request body, or returns undefined when the body is not the usual
 * kind (the caller must then decode it with the general path). When it returns a request,
 * it is identical to what decodeJsonRequest's general path returns for the same body and
 * options: same fields, same bytes, each input's data in its own ArrayBuffer. It never throws.
 */
export function decodeJsonRequestFast(body: Uint8Array, options?: RequestDecodeOptions): InferRequest | undefined {
  const b = Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  beginNumbers(b);
  cursor.bytes = b;
  cursor.at = 0;
  try {
    if (peek() !== 0x7b) return undefined;
    const root = parseRoot();
    if (peek() !== undefined) return undefined; // JSON.parse allows only whitespace after the value
    return assemble(root, options);
  } catch {
    return undefined; // DECLINE, or a refusal by requestFromJson: the general path says it
  } finally {
    endNumbers();
    cursor.bytes = EMPTY;
  }
}

/**
 * The members of the request object that requestFromJson reads; it reads no others, so the
 * others are parsed (JSON.parse would refuse invalid ones) and dropped. A member given twice
 * keeps its last value, as with JSON.parse.
 */
interface RootMembers {
  id: unknown;
  parameters: unknown;
  inputs: InputMembers[] | undefined;
  outputs: unknown;
}

/** The members of an input that readInput reads, `data` as the DataSpan of its numbers. */
interface InputMembers {
  name: unknown;
  datatype: unknown;
  shape: unknown;
  parameters: unknown;
  data: DataSpan | undefined;
}

const ROOT_KEYS = ['inputs', 'id', 'parameters', 'outputs'] as const;
const INPUT_KEYS = ['name', 'datatype', 'shape', 'data', 'parameters'] as const;

/** Walks the object at the cursor (a '{'), handing each member's key index to `member`. */
function walkObject(keys: readonly string[], member: (key: number) => void): void {
  cursor.at++;
  if (peek() === 0x7d) {
    cursor.at++;
    return;
  }
  for (;;) {
    if (peek() !== 0x22) throw DECLINE;
    member(parseKey(keys));
    const next = peek();
    cursor.at++;
    if (next === 0x7d) return;
    if (next !== 0x2c) throw DECLINE;
  }
}

function parseRoot(): RootMembers {
  const root: RootMembers = { id: undefined, parameters: undefined, inputs: undefined, outputs: undefined };
  walkObject(ROOT_KEYS, (key) => {
    switch (key) {
      case 0:
        root.inputs = parseInputs();
        break;
      case 1:
        root.id = parseValue(1);
        break;
      case 2:
        root.parameters = parseValue(1);
        break;
      case 3:
        root.outputs = parseValue(1);
        break;
      default:
        parseValue(1);
    }
  });
  return root;
}

/** The inputs array at the cursor: objects only (anything else is the general path's to refuse). */
function parseInputs(): InputMembers[] {
  expect(0x5b);
  const inputs: InputMembers[] = [];
  if (peek() === 0x5d) {
    cursor.at++;
    return inputs;
  }
  for (;;) {
    if (peek() !== 0x7b) throw DECLINE;
    inputs.push(parseInput());
    const next = peek();
    cursor.at++;
    if (next === 0x5d) return inputs;
    if (next !== 0x2c) throw DECLINE;
  }
}

function parseInput(): InputMembers {
  const input: InputMembers = { name: undefined, datatype: undefined, shape: undefined, parameters: undefined, data: undefined };
  walkObject(INPUT_KEYS, (key) => {
    switch (key) {
      case 0:
        input.name = cursor.bytes[cursor.at] === 0x22 ? parseString() : parseValue(3);
        break;
      case 1:
        input.datatype = cursor.bytes[cursor.at] === 0x22 ? parseKnownString(DATATYPES) : parseValue(3);
        break;
      case 2:
        input.shape = parseValue(3);
        break;
      case 3: {
        if (cursor.bytes[cursor.at] !== 0x5b) throw DECLINE;
        const span = readDataArray(cursor.bytes, cursor.at);
        if (span === undefined) throw DECLINE;
        cursor.at = span.end;
        input.data = span;
        break;
      }
      case 4:
        input.parameters = parseValue(3);
        break;
      default:
        parseValue(3);
    }
  });
  return input;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isCountArray(shape: unknown): shape is number[] {
  if (!Array.isArray(shape)) return false;
  for (let i = 0; i < shape.length; i++) {
    const d = shape[i];
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) return false;
  }
  return true;
}

/** Builds the InferRequest from the parsed root; throws (to decline) where the general path would do anything else. */
function assemble(root: RootMembers, options: RequestDecodeOptions | undefined): InferRequest {
  const inputs = root.inputs;
  if (inputs === undefined || inputs.length === 0) throw DECLINE;
  const tensors: Uint8Array[] = [];
  const binaryInputs: unknown[] = [];
  let total = 0;
  for (let i = 0; i < inputs.length; i++) {
    const input = inputs[i];
    const span = input.data;
    const datatype = input.datatype;
    const shape = input.shape;
    if (span === undefined || !isDatatype(datatype) || !isCountArray(shape) || elementCount(shape) !== span.count) throw DECLINE;
    const parameters = input.parameters;
    if (parameters !== undefined && !(isObject(parameters) && parameters.shared_memory_region === undefined && parameters.binary_data_size === undefined)) throw DECLINE;
    const bytes = spanToTensorBytes(datatype, span);
    if (bytes === undefined) throw DECLINE;
    tensors.push(bytes);
    total += bytes.byteLength;
    // The general path checks name, datatype and shape of this stand-in as it would the
    // input; the data is presented as binary data of the decoded size.
    binaryInputs.push({ name: input.name, datatype, shape, parameters: { binary_data_size: bytes.byteLength } });
  }
  const request = { id: root.id, parameters: root.parameters, inputs: binaryInputs, outputs: root.outputs };

  let body: Uint8Array;
  if (total <= standIn.byteLength) body = standIn.subarray(0, total);
  else if (total > STAND_IN_KEEP) body = new Uint8Array(total); // zero pages, never touched
  else {
    standIn = new Uint8Array(STAND_IN_KEEP);
    body = standIn.subarray(0, total);
  }
  const result = requestFromJson(request, { body, start: 0 }, options, undefined);
  const decoded = result.inputs;
  for (let i = 0; i < decoded.length; i++) decoded[i].data = tensors[i];
  return result;
}
