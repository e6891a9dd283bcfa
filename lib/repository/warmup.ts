/**
 * Warm-up samples (Triton's `model_warmup`): checked against the model's inputs when the config
 * is completed, and turned into tensor bytes when a new version is warmed up before it takes
 * traffic. A version whose warm-up fails never serves.
 */
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { DATATYPE_SIZE, type Datatype, type TensorSpec } from '../engine/types';
import { BYTES_PREFIX, bytesElementOffsets, serializeBytesElements } from '../protocol/bytes-tensor';
import { TensorwireError } from '../errors';
import type { WarmupConfig } from './config';
import { TRITON_DATATYPE } from './config';

/** Where a warm-up input's values come from. `file` is inside `<model dir>/warmup/`. */
export type WarmupSource = { kind: 'zero' } | { kind: 'random' } | { kind: 'file'; file: string };

/** One input of a warm-up request, with its full concrete shape (batch dimension included when the model batches). */
export interface WarmupInput {
  name: string;
  datatype: Datatype;
  shape: number[];
  source: WarmupSource;
}

/** One warm-up request, run `count` times. */
export interface WarmupSample {
  name: string;
  /** Batch size of the request; 1 for a model that does not batch. */
  batchSize: number;
  count: number;
  /** In the model's input order. */
  inputs: WarmupInput[];
}

/**
 * Checks `model_warmup` against the effective model inputs (full shapes, batch dimension -1
 * first when maxBatchSize > 0) and resolves each sample's concrete shapes.
 */
export function resolveWarmup(configs: WarmupConfig[] | undefined, inputs: TensorSpec[], maxBatchSize: number, where: string): WarmupSample[] {
  const fail = (msg: string): never => {
    throw new TensorwireError('INVALID_INPUT', `${where}: ${msg}`);
  };
  return (configs ?? []).map((w, i) => {
    const at = `model_warmup[${i}]`;
    let batchSize = 1;
    if (maxBatchSize > 0) {
      batchSize = w.batch_size || 1;
      if (batchSize > maxBatchSize) fail(`${at}.batch_size ${batchSize} is larger than max_batch_size ${maxBatchSize}`);
    } else if (w.batch_size !== undefined && w.batch_size > 1) {
      fail(`${at}.batch_size must be 0 or 1 for a model served with max_batch_size 0, got ${w.batch_size}`);
    }
    for (const name of Object.keys(w.inputs)) {
      if (!inputs.some((t) => t.name === name)) fail(`${at}.inputs.${name} is not an input of the model (its inputs: ${inputs.map((t) => t.name).join(', ')})`);
    }
    const resolved = inputs.map((t): WarmupInput => {
      const x = w.inputs[t.name];
      if (!x) return fail(`${at}.inputs is missing input "${t.name}" (a warm-up request must give every input)`);
      const ip = `${at}.inputs.${t.name}`;
      if (x.data_type !== undefined && x.data_type !== t.datatype) fail(`${ip}.data_type is ${TRITON_DATATYPE[x.data_type]} but the model declares ${TRITON_DATATYPE[t.datatype]}`);
      const modelDims = maxBatchSize > 0 ? t.shape.slice(1) : t.shape;
      let dims = modelDims;
      if (x.dims !== undefined) {
        if (x.dims.length !== modelDims.length) fail(`${ip}.dims [${x.dims.join(', ')}] do not match the input's [${modelDims.join(', ')}]`);
        dims = x.dims;
        x.dims.forEach((d, k) => {
          if (d === -1 || (modelDims[k] !== -1 && modelDims[k] !== d)) fail(`${ip}.dims [${x.dims!.join(', ')}] must be concrete and match the input's [${modelDims.join(', ')}]`);
        });
      } else if (modelDims.includes(-1)) {
        fail(`${ip}.dims is needed: the input's shape [${modelDims.join(', ')}] has dynamic dimensions`);
      }
      const source: WarmupSource = x.input_data_file !== undefined ? { kind: 'file', file: x.input_data_file } : x.random_data ? { kind: 'random' } : { kind: 'zero' };
      return { name: t.name, datatype: t.datatype, shape: maxBatchSize > 0 ? [batchSize, ...dims] : dims.slice(), source };
    });
    return { name: w.name, batchSize, count: w.count ?? 1, inputs: resolved };
  });
}

/** Float -> IEEE half bits (round to nearest; values here are in [0, 1)). */
function toHalf(v: number): number {
  const f = new Float32Array([v]);
  const b = new Uint32Array(f.buffer)[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = ((b >>> 23) & 0xff) - 127 + 15;
  if (exp <= 0) return sign; // too small for a normal half: zero is fine for warm-up data
  return sign | (exp << 10) | ((b >>> 13) & 0x3ff);
}

/** Random values that every model accepts: floats in [0, 1), integers and booleans 0 or 1 (safe as indices). */
function randomBytes(datatype: Datatype, count: number): Uint8Array {
  switch (datatype) {
    case 'FP32':
      return new Uint8Array(Float32Array.from({ length: count }, Math.random).buffer);
    case 'FP64':
      return new Uint8Array(Float64Array.from({ length: count }, Math.random).buffer);
    case 'FP16':
      return new Uint8Array(Uint16Array.from({ length: count }, () => toHalf(Math.random())).buffer);
    case 'BF16':
      return new Uint8Array(Uint16Array.from({ length: count }, () => new Uint32Array(new Float32Array([Math.random()]).buffer)[0] >>> 16).buffer);
    default: {
      const size = DATATYPE_SIZE[datatype];
      const out = new Uint8Array(count * size);
      // Little-endian: the lowest byte of each element carries the 0/1.
      for (let i = 0; i < count; i++) out[i * size] = Math.random() < 0.5 ? 0 : 1;
      return out;
    }
  }
}

/**
 * The bytes of one warm-up input (little-endian, row-major). A data file holds either the
 * whole tensor or one batch element, which is repeated `batchSize` times (Triton's layout).
 */
export async function warmupInputData(input: WarmupInput, modelDir: string, batchSize = 1): Promise<Uint8Array> {
  const elements = input.shape.reduce((a, b) => a * b, 1);
  // BYTES: all-zero bytes are `elements` empty strings (zero length prefixes); random ones are "0"/"1".
  const bytes = elements * (input.datatype === 'BYTES' ? BYTES_PREFIX : DATATYPE_SIZE[input.datatype]);
  if (input.source.kind === 'zero') return new Uint8Array(bytes);
  if (input.source.kind === 'random' && input.datatype === 'BYTES') return serializeBytesElements(Array.from({ length: elements }, () => (Math.random() < 0.5 ? '0' : '1')));
  if (input.source.kind === 'random') return randomBytes(input.datatype, elements);
  const file = path.join(modelDir, 'warmup', input.source.file);
  let data: Buffer;
  try {
    data = await readFile(file);
  } catch (e) {
    throw new TensorwireError('INVALID_INPUT', `warm-up input "${input.name}": cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (input.datatype === 'BYTES') return bytesWarmupFile(input, data, elements, batchSize);
  if (data.byteLength === bytes) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (batchSize > 1 && data.byteLength * batchSize === bytes) {
    const out = new Uint8Array(bytes);
    for (let i = 0; i < batchSize; i++) out.set(data, i * data.byteLength);
    return out;
  }
  throw new TensorwireError(
    'INVALID_INPUT',
    `warm-up input "${input.name}": ${file} holds ${data.byteLength} bytes, expected ${bytes} (shape [${input.shape.join(', ')}] of ${input.datatype})${batchSize > 1 ? ` or ${bytes / batchSize} for one batch element` : ''}`,
  );
}

/** The bytes of every input of `sample`, in its input order. */
export function warmupSampleData(sample: WarmupSample, modelDir: string): Promise<Uint8Array[]> {
  return Promise.all(sample.inputs.map((input) => warmupInputData(input, modelDir, sample.batchSize)));
}

/** A BYTES warm-up file in the serialized form: the whole tensor, or one batch element repeated. */
function bytesWarmupFile(input: WarmupInput, data: Buffer, elements: number, batchSize: number): Uint8Array {
  const label = `warm-up input "${input.name}"`;
  try {
    bytesElementOffsets(label, data, elements);
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  } catch (whole) {
    if (batchSize <= 1) throw whole;
    bytesElementOffsets(label, data, elements / batchSize);
    return Buffer.concat(Array.from({ length: batchSize }, () => data));
  }
}
