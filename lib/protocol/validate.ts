/**
 * Does a decoded request fit the model? Names, datatypes, shapes, byte counts, batch
 * size, requested outputs, with messages that name the tensor, what the model expects and
 * what came. Runs once per request before it is queued, so it is written for the hot
 * path: no allocation beyond the result unless the request is bad.
 */
import type { ModelMetadata, TensorSpec } from '../engine/types';
import { DATATYPE_SIZE } from '../engine/types';
import { checkBytesInputCount, checkBytesText } from './bytes-tensor';
import { TensorwireError } from '../errors';
import { clip } from './request-limits';
import { elementCount, formatShape } from './tensor-data';
import type { InferInputTensor, InferRequest } from './types';

/** What the scheduler needs from a valid request. */
export interface ValidatedRequest {
  /** Rows this request adds to a batch: the first dimension for batchable models, 1 otherwise. */
  batchSize: number;
  /**
   * Requests may share a batch only when their keys are equal: the non-batch dimensions of
   * every input in model order (all dimensions for a model that is not batchable), e.g.
   * "3,224,224;7" for two inputs. '' when none of those dimensions is dynamic, since every
   * valid request then has the same shapes (and building the key would be wasted work).
   */
  compatKey: string;
  /** The request's inputs in the model's input order (index i goes to the slot's input i). */
  inputs: InferInputTensor[];
}

function invalid(message: string): TensorwireError {
  return new TensorwireError('INVALID_INPUT', message);
}

function names(specs: readonly TensorSpec[]): string {
  return specs.map((s) => `'${s.name}'`).join(', ');
}

/**
 * Checks `request` against the model. `maxBatchSize` > 0 means the model batches along the
 * first dimension (its metadata shapes include that dimension); 0 means requests must match
 * the model's shapes exactly, dynamic dimensions (-1) taking any size. Throws INVALID_INPUT.
 */
export function validateRequest(request: InferRequest, metadata: ModelMetadata, maxBatchSize: number): ValidatedRequest {
  const specs = metadata.inputs;
  const given = request.inputs;
  const inputs: InferInputTensor[] = new Array(specs.length);

  // Model inputs are few: a linear scan beats building a map per request.
  for (let i = 0; i < given.length; i++) {
    const input = given[i];
    let j = 0;
    while (j < specs.length && specs[j].name !== input.name) j++;
    if (j === specs.length) throw invalid(`unknown input '${clip(input.name)}'; the model's inputs are ${names(specs)}`);
    if (inputs[j] !== undefined) throw invalid(`input '${clip(input.name)}' is given more than once`);
    inputs[j] = input;
  }

  const batched = maxBatchSize > 0;
  let batchSize = batched ? -1 : 1;
  let batchFrom = '';
  let dynamic = false;
  for (let j = 0; j < specs.length; j++) {
    const spec = specs[j];
    const input = inputs[j];
    if (input === undefined) throw invalid(`missing input '${spec.name}'; the model's inputs are ${names(specs)}`);
    if (input.datatype !== spec.datatype) throw invalid(`input '${spec.name}': expected datatype ${spec.datatype}, got ${input.datatype}`);
    const shape = input.shape;
    const expected = spec.shape;
    if (shape.length !== expected.length) {
      throw invalid(`input '${spec.name}': expected shape ${formatShape(expected)} (rank ${expected.length}), got ${formatShape(shape)} (rank ${shape.length})`);
    }
    for (let d = batched ? 1 : 0; d < expected.length; d++) {
      if (expected[d] < 0) dynamic = true;
      else if (expected[d] !== shape[d]) throw invalid(`input '${spec.name}': expected shape ${formatShape(expected)}, got ${formatShape(shape)}`);
    }
    if (batched) {
      if (shape.length === 0) throw invalid(`input '${spec.name}': expected shape ${formatShape(expected)} with a batch dimension, got []`);
      if (batchSize === -1) {
        batchSize = shape[0];
        batchFrom = spec.name;
      } else if (shape[0] !== batchSize) {
        throw invalid(`input '${spec.name}': batch size ${shape[0]} does not match input '${batchFrom}' batch size ${batchSize}`);
      }
    }
    if (spec.datatype === 'BYTES') {
      // The model's tensor is an ONNX string: well-formed elements, each UTF-8 text.
      const count = elementCount(shape);
      checkBytesInputCount(`input '${spec.name}'`, count);
      checkBytesText(`input '${spec.name}'`, input.data, count);
      continue;
    }
    const bytes = elementCount(shape) * DATATYPE_SIZE[spec.datatype];
    if (input.data.byteLength !== bytes) {
      throw invalid(`input '${spec.name}': expected ${bytes} bytes of data for ${spec.datatype} shape ${formatShape(shape)}, got ${input.data.byteLength}`);
    }
  }

  if (batched) {
    if (batchSize === 0) throw invalid(`input '${batchFrom}': batch size is 0; the first dimension must be at least 1`);
    if (batchSize > maxBatchSize) throw invalid(`batch size ${batchSize} exceeds max_batch_size ${maxBatchSize}`);
  }

  if (request.outputs !== undefined) checkOutputs(request, metadata);

  let compatKey = '';
  if (dynamic) {
    for (let j = 0; j < inputs.length; j++) {
      const shape = inputs[j].shape;
      if (j > 0) compatKey += ';';
      for (let d = batched ? 1 : 0; d < shape.length; d++) compatKey += d === (batched ? 1 : 0) ? '' + shape[d] : ',' + shape[d];
    }
  }
  return { batchSize: batched ? batchSize : 1, compatKey, inputs };
}

function checkOutputs(request: InferRequest, metadata: ModelMetadata): void {
  const requested = request.outputs!;
  const specs = metadata.outputs;
  for (let i = 0; i < requested.length; i++) {
    const name = requested[i].name;
    let j = 0;
    while (j < specs.length && specs[j].name !== name) j++;
    if (j === specs.length) throw invalid(`unknown output '${clip(name)}'; the model's outputs are ${names(specs)}`);
    for (let k = 0; k < i; k++) if (requested[k].name === name) throw invalid(`output '${clip(name)}' is requested more than once`);
  }
}
