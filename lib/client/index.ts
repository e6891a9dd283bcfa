/**
 * tensorwire's Node clients: `HttpClient` (KServe v2 REST, binary tensor extension) and
 * `StreamClient` (WebSocket /v2/stream), typed arrays in and out.
 */
export { HttpClient, type HttpClientOptions, type InferOptions, type InferResult, type InferInputs } from './http-client';
export { StreamClient, streamUrl, type StreamClientOptions, type StreamInferOptions, type SubscribeOptions, type FeedPrediction } from './stream-client';
export { bytesTensorElements, bytesTensorStrings, datatypeOf, toFloat32, toWireTensor, toWireTensors, fromWireBytes, type Tensor, type TensorInput, type TypedArray, type WireTensor } from './tensor';
export {
  encodeJsonRequest,
  encodeBinaryRequest,
  encodeStreamBinaryFrame,
  encodeStreamTextFrame,
  decodeHttpResponse,
  decodeResponseText,
  decodeStreamMessage,
  errorFromResponse,
  type RequestOptions,
  type DecodedResponse,
  type StreamMessage,
} from './wire';
