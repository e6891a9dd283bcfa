/**
 * ModelInferRequest in and ModelInferResponse / ModelStreamInferResponse out, encoded by hand
 * (Triton's field numbers, proto/grpc_service.proto) and handed to grpc-js as the methods'
 * serialize/deserialize functions in place of proto-loader's.
 *
 * Why: proto-loader decodes through protobufjs into message objects and then converts them
 * to plain objects (every 64-bit integer through Long to a string), and encodes the other
 * way through fromObject: three passes and two object trees per message, on the one thread
 * that also runs every other request. Here a request is read once into the plain form the
 * codec reads (wire-types.ts), raw tensor bytes as views of the received message (no copy);
 * an answer's size is computed first and it is written into one buffer.
 *
 * The objects produced are exactly what proto-loader with PROTO_LOADER_OPTIONS gives (except
 * 64-bit integers: numbers when exact, decimal strings beyond 2^53, which infer-codec.ts
 * reads either way), so the codec above is the same for both; test/grpc-wire.test.ts checks
 * both decoders agree on the same bytes.
 */
import type * as grpc from '@grpc/grpc-js';
import { FIXED32, FIXED64, LENGTH_DELIMITED, ProtobufReader, VARINT, readRepeated } from './protobuf-reader';
import type { WireContents, WireInferInput, WireInferRequest, WireInferResponse, WireParameter, WireRequestedOutput, WireStreamResponse } from './wire-types';

// ---------------------------------------------------------------- reading

function readParameter(r: ProtobufReader): WireParameter {
  const p: WireParameter = {};
  while (!r.done) {
    const at = r.pos;
    const tag = r.uint32();
    const type = tag & 7;
    switch (tag >>> 3) {
      case 1:
        expect(type, VARINT, at);
        p.bool_param = r.bool();
        p.parameter_choice = 'bool_param';
        break;
      case 2:
        expect(type, VARINT, at);
        p.int64_param = String(r.int64());
        p.parameter_choice = 'int64_param';
        break;
      case 3:
        expect(type, LENGTH_DELIMITED, at);
        p.string_param = r.string();
        p.parameter_choice = 'string_param';
        break;
      case 4:
        expect(type, FIXED64, at);
        p.double_param = r.double();
        p.parameter_choice = 'double_param';
        break;
      case 5:
        expect(type, VARINT, at);
        p.uint64_param = String(r.uint64());
        p.parameter_choice = 'uint64_param';
        break;
      default:
        r.skip(type, at);
    }
  }
  return p;
}

/** One entry of a map<string, InferParameter> into `into`. */
function readParameterEntry(r: ProtobufReader, into: Record<string, WireParameter>): void {
  let key = '';
  let value: WireParameter = {};
  while (!r.done) {
    const at = r.pos;
    const tag = r.uint32();
    const type = tag & 7;
    if (tag >>> 3 === 1 && type === LENGTH_DELIMITED) key = r.string();
    else if (tag >>> 3 === 2 && type === LENGTH_DELIMITED) value = readParameter(r.sub());
    else r.skip(type, at);
  }
  // A plain assignment of "__proto__" would replace the object's prototype.
  Object.defineProperty(into, key, { value, enumerable: true, writable: true, configurable: true });
}

function expect(type: number, wanted: number, at: number): void {
  if (type !== wanted) throw new Error(`invalid wire type ${type} at offset ${at}`);
}

const readBool = (r: ProtobufReader): boolean => r.bool();
const readInt32 = (r: ProtobufReader): number => r.int32();
const readUint32 = (r: ProtobufReader): number => r.uint32();
const readInt64 = (r: ProtobufReader): string => String(r.int64());
const readUint64 = (r: ProtobufReader): string => String(r.uint64());
const readFloat = (r: ProtobufReader): number => r.float();
const readDouble = (r: ProtobufReader): number => r.double();
const readBytes = (r: ProtobufReader): Buffer => r.bytes();

function emptyContents(): WireContents {
  return { bool_contents: [], int_contents: [], int64_contents: [], uint_contents: [], uint64_contents: [], fp32_contents: [], fp64_contents: [], bytes_contents: [] };
}

function readContents(r: ProtobufReader): WireContents {
  const c = emptyContents();
  while (!r.done) {
    const at = r.pos;
    const tag = r.uint32();
    const type = tag & 7;
    switch (tag >>> 3) {
      case 1: readRepeated(r, type, VARINT, c.bool_contents, readBool); break;
      case 2: readRepeated(r, type, VARINT, c.int_contents, readInt32); break;
      case 3: readRepeated(r, type, VARINT, c.int64_contents, readInt64); break;
      case 4: readRepeated(r, type, VARINT, c.uint_contents, readUint32); break;
      case 5: readRepeated(r, type, VARINT, c.uint64_contents, readUint64); break;
      case 6: readRepeated(r, type, FIXED32, c.fp32_contents, readFloat); break;
      case 7: readRepeated(r, type, FIXED64, c.fp64_contents, readDouble); break;
      case 8: readRepeated(r, type, LENGTH_DELIMITED, c.bytes_contents, readBytes); break;
      default: r.skip(type, at);
    }
  }
  return c;
}

function readShapeDim(r: ProtobufReader): string {
  return String(r.int64());
}

function readInput(r: ProtobufReader): WireInferInput {
  const input: WireInferInput = { shape: [], parameters: {} };
  while (!r.done) {
    const at = r.pos;
    const tag = r.uint32();
    const type = tag & 7;
    switch (tag >>> 3) {
      case 1: expect(type, LENGTH_DELIMITED, at); input.name = r.string(); break;
      case 2: expect(type, LENGTH_DELIMITED, at); input.datatype = r.string(); break;
      case 3: readRepeated(r, type, VARINT, input.shape, readShapeDim); break;
      case 4: expect(type, LENGTH_DELIMITED, at); readParameterEntry(r.sub(), input.parameters); break;
      case 5: expect(type, LENGTH_DELIMITED, at); input.contents = mergeContents(input.contents, readContents(r.sub())); break;
      default: r.skip(type, at);
    }
  }
  return input;
}

/** A message field given twice is merged (protobuf's rule): repeated fields concatenate. */
function mergeContents(into: WireContents | undefined, more: WireContents): WireContents {
  if (into === undefined) return more;
  for (const key of Object.keys(more) as (keyof WireContents)[]) (into[key] as unknown[]).push(...(more[key] as unknown[]));
  return into;
}

function readOutput(r: ProtobufReader): WireRequestedOutput {
  const output: WireRequestedOutput = { parameters: {} };
  while (!r.done) {
    const at = r.pos;
    const tag = r.uint32();
    const type = tag & 7;
    if (tag >>> 3 === 1 && type === LENGTH_DELIMITED) output.name = r.string();
    else if (tag >>> 3 === 2 && type === LENGTH_DELIMITED) readParameterEntry(r.sub(), output.parameters);
    else if (tag >>> 3 === 1 || tag >>> 3 === 2) throw new Error(`invalid wire type ${type} at offset ${at}`);
    else r.skip(type, at);
  }
  return output;
}

/** Decodes a ModelInferRequest; throws an Error naming the offset of what does not decode. */
export function readInferRequest(bytes: Buffer): WireInferRequest {
  const r = new ProtobufReader(bytes);
  const msg: WireInferRequest = { parameters: {}, inputs: [], outputs: [], raw_input_contents: [] };
  while (!r.done) {
    const at = r.pos;
    const tag = r.uint32();
    const type = tag & 7;
    const field = tag >>> 3;
    if (field >= 1 && field <= 7 && type !== LENGTH_DELIMITED) throw new Error(`invalid wire type ${type} at offset ${at}`);
    switch (field) {
      case 1: msg.model_name = r.string(); break;
      case 2: msg.model_version = r.string(); break;
      case 3: msg.id = r.string(); break;
      case 4: readParameterEntry(r.sub(), msg.parameters); break;
      case 5: msg.inputs.push(readInput(r.sub())); break;
      case 6: msg.outputs.push(readOutput(r.sub())); break;
      case 7: msg.raw_input_contents.push(r.bytes()); break;
      default: r.skip(type, at);
    }
  }
  return msg;
}

// ---------------------------------------------------------------- writing

function varintSize(v: number): number {
  let size = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 128);
    size++;
  }
  return size;
}

/** Bytes of a length-delimited field (tag of one byte: field numbers below 16) with `length` bytes of content. */
function fieldSize(length: number): number {
  return 1 + varintSize(length) + length;
}

class Writer {
  pos = 0;
  constructor(readonly buf: Buffer) {}

  varint(v: number): void {
    const buf = this.buf;
    while (v >= 0x80) {
      buf[this.pos++] = (v % 128) | 0x80;
      v = Math.floor(v / 128);
    }
    buf[this.pos++] = v;
  }

  /** Tag and length of a length-delimited field. */
  head(field: number, length: number): void {
    this.buf[this.pos++] = (field << 3) | LENGTH_DELIMITED;
    this.varint(length);
  }

  string(field: number, text: string, length: number): void {
    this.head(field, length);
    this.pos += this.buf.write(text, this.pos, 'utf8');
  }

  bytes(field: number, data: Uint8Array): void {
    this.head(field, data.byteLength);
    this.buf.set(data, this.pos);
    this.pos += data.byteLength;
  }
}

/** A non-negative shape dimension as an int64 varint (negative ones, -1 for dynamic, take 10 bytes). */
function dimSize(d: number): number {
  return d < 0 ? 10 : varintSize(d);
}

function writeDim(w: Writer, d: number): void {
  if (d >= 0) {
    w.varint(d);
    return;
  }
  // Two's complement over 64 bits: 9 bytes of 7 bits, then the last bit.
  const big = BigInt.asUintN(64, BigInt(d));
  for (let i = 0; i < 9; i++) w.buf[w.pos++] = Number((big >> BigInt(7 * i)) & 0x7fn) | 0x80;
  w.buf[w.pos++] = Number(big >> 63n);
}

/**
 * Bytes of one map entry's content. The only parameters an answer carries: error_code
 * (string) on a failed stream request, and the shared memory parameters of an output written
 * into a region (a string and non-negative int64s).
 */
function parameterEntrySize(key: string, p: WireParameter): number {
  const keyBytes = Buffer.byteLength(key);
  return fieldSize(keyBytes) + fieldSize(parameterSize(p));
}

/** Bytes of an InferParameter holding a string_param or a non-negative int64_param. */
function parameterSize(p: WireParameter): number {
  if (p.string_param !== undefined) return fieldSize(Buffer.byteLength(p.string_param));
  if (p.int64_param !== undefined) return 1 + varintSize(Number(p.int64_param));
  return 0;
}

function writeParameter(w: Writer, field: number, key: string, p: WireParameter): void {
  const keyBytes = Buffer.byteLength(key);
  const value = parameterSize(p);
  w.head(field, fieldSize(keyBytes) + fieldSize(value));
  w.string(1, key, keyBytes);
  w.head(2, value);
  if (p.string_param !== undefined) w.string(3, p.string_param, Buffer.byteLength(p.string_param));
  else if (p.int64_param !== undefined) {
    w.buf[w.pos++] = (2 << 3) | VARINT;
    w.varint(Number(p.int64_param));
  }
}

interface Sizes {
  total: number;
  /** Per output: [name bytes, datatype bytes, packed shape bytes, output message bytes]. */
  outputs: number[];
  name: number;
  version: number;
  id: number;
}

function responseSizes(m: WireInferResponse): Sizes {
  const name = Buffer.byteLength(m.model_name);
  const version = Buffer.byteLength(m.model_version);
  const id = Buffer.byteLength(m.id);
  // Empty strings are written too, as protobufjs did: a client reading without defaults sees '' rather than nothing.
  let total = fieldSize(name) + fieldSize(version) + fieldSize(id);
  if (m.parameters !== undefined) for (const key in m.parameters) total += fieldSize(parameterEntrySize(key, m.parameters[key]!));
  const outputs: number[] = [];
  for (const o of m.outputs) {
    const n = Buffer.byteLength(o.name);
    const d = Buffer.byteLength(o.datatype);
    let shape = 0;
    for (const dim of o.shape) shape += dimSize(dim);
    let size = fieldSize(n) + fieldSize(d) + (shape > 0 ? fieldSize(shape) : 0);
    if (o.parameters !== undefined) for (const key in o.parameters) size += fieldSize(parameterEntrySize(key, o.parameters[key]!));
    outputs.push(n, d, shape, size);
    total += fieldSize(size);
  }
  for (const raw of m.raw_output_contents) total += fieldSize(raw.byteLength);
  return { total, outputs, name, version, id };
}

function writeResponse(w: Writer, m: WireInferResponse, s: Sizes): void {
  w.string(1, m.model_name, s.name);
  w.string(2, m.model_version, s.version);
  w.string(3, m.id, s.id);
  if (m.parameters !== undefined) for (const key in m.parameters) writeParameter(w, 4, key, m.parameters[key]!);
  for (let i = 0; i < m.outputs.length; i++) {
    const o = m.outputs[i]!;
    const [n, d, shape, size] = [s.outputs[4 * i]!, s.outputs[4 * i + 1]!, s.outputs[4 * i + 2]!, s.outputs[4 * i + 3]!];
    w.head(5, size);
    w.string(1, o.name, n);
    w.string(2, o.datatype, d);
    if (shape > 0) {
      w.head(3, shape);
      for (const dim of o.shape) writeDim(w, dim);
    }
    if (o.parameters !== undefined) for (const key in o.parameters) writeParameter(w, 4, key, o.parameters[key]!);
  }
  for (const raw of m.raw_output_contents) w.bytes(6, raw);
}

/** Encodes a ModelInferResponse (the fields tensorwire writes) into one buffer. */
export function writeInferResponse(m: WireInferResponse): Buffer {
  const sizes = responseSizes(m);
  const w = new Writer(Buffer.allocUnsafe(sizes.total));
  writeResponse(w, m, sizes);
  return w.buf;
}

/** Encodes a ModelStreamInferResponse: the error message (if any) and the answer. */
export function writeStreamResponse(m: WireStreamResponse): Buffer {
  const error = Buffer.byteLength(m.error_message);
  const sizes = m.infer_response === undefined ? undefined : responseSizes(m.infer_response);
  const total = fieldSize(error) + (sizes !== undefined ? fieldSize(sizes.total) : 0);
  const w = new Writer(Buffer.allocUnsafe(total));
  w.string(1, m.error_message, error);
  if (sizes !== undefined) {
    w.head(2, sizes.total);
    writeResponse(w, m.infer_response!, sizes);
  }
  return w.buf;
}

/**
 * `definition` with ModelInfer and ModelStreamInfer reading requests and writing answers
 * through this file. Applied before tolerantDefinition, which wraps the request reader.
 */
export function withHandWrittenInferCodec(definition: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const out: Record<string, grpc.MethodDefinition<unknown, unknown>> = { ...definition };
  const infer = definition.ModelInfer;
  const stream = definition.ModelStreamInfer;
  if (infer === undefined || stream === undefined) throw new Error('the inference service definition has no ModelInfer/ModelStreamInfer');
  out.ModelInfer = { ...infer, requestDeserialize: readInferRequest, responseSerialize: writeInferResponse } as grpc.MethodDefinition<unknown, unknown>;
  out.ModelStreamInfer = { ...stream, requestDeserialize: readInferRequest, responseSerialize: writeStreamResponse } as grpc.MethodDefinition<unknown, unknown>;
  return out as grpc.ServiceDefinition;
}
