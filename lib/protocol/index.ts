/**
 * The KServe v2 / Open Inference Protocol layer: codecs for JSON requests and responses,
 * Triton's binary tensor data extension, WebSocket stream frames, and validation of a
 * request against a model. Nothing here knows about HTTP servers or the engine's runtime.
 */
export type { InferInputTensor, InferRequest, InferResponse, InferOutputTensor, RequestedOutput, StageTimings } from './types';
export { float32ToFloat16Bits, float16BitsToFloat32, float32ToBfloat16Bits, bfloat16BitsToFloat32, decodeFloat16Array, decodeBfloat16Array } from './half';
export { DATATYPES, isDatatype, elementCount, formatShape, jsonToTensorBytes, type JsonDecodeState } from './tensor-data';
export { tensorBytesToJsonText, tensorBytesToValues, checkOutputBytes } from './tensor-json';
export { parseJsonText } from './json-text';
export type { BinarySection, RequestDecodeOptions } from './request-object';
export { decodeJsonRequest, decodeRequestRoot, encodeJsonResponse, buildResponseHeader, type ResponseHeader } from './json-codec';
export {
  INFERENCE_HEADER_CONTENT_LENGTH,
  decodeBinaryRequest,
  decodeInferRequest,
  encodeResponse,
  parseHeaderLength,
  type EncodedResponse,
} from './binary-codec';
export { decodeStreamFrame, encodeStreamResponse, encodeStreamError, type StreamFrame, type StreamId } from './stream-frame';
export { validateRequest, type ValidatedRequest } from './validate';
export { assertJsonDepth, MAX_JSON_DEPTH } from './json-depth';
export { decodeInferRequestOffLoop, decodeStreamFrameOffLoop, OFFLOAD_JSON_BYTES } from './request-decode-pool';
export { MAX_ID_CHARS, MAX_NAME_CHARS, MAX_TENSORS, MAX_RANK, MAX_PARAMETERS, MAX_PARAMETER_CHARS, MAX_JSON_OUTPUT_ELEMENTS, clip } from './request-limits';
